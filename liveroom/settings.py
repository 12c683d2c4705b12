"""All configuration in one place: environment variables (``LIVEROOM_*``) first,
then defaults. The pure cores never read the environment; they get frozen
config values built here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cliploop.models import ClipLoopConfig
from liveroom.terminal import escape
from streams.config import CoreConfig
from liveroom.kafka.topics import KafkaConfig
from sessions.folder import ReadLimits
from streams.surge import SurgeConfig


def _in(default, lo, hi, doc: str, *, lo_open: bool = False):
    """A setting with its range: ``lo`` (exclusive with ``lo_open``) to ``hi``.
    Ranges keep the process up (no zero divisor, no NaN) and bound the work a
    value can cause (a 1e-9 s tick would be billions of ticks a session)."""
    bounds = {"gt": lo} if lo_open else {"ge": lo}
    return Field(default, le=hi, description=doc, **bounds)


KiB, MiB, GiB, DAY = 1 << 10, 1 << 20, 1 << 30, 86_400.0


class Settings(BaseSettings):
    """Every ``LIVEROOM_*`` setting with its default and range (docs/configuration.md
    is rendered from here: ``python -m liveroom.settings``). A value out of its
    range is one ``Error:`` line naming the variable, the value and the range."""

    model_config = SettingsConfigDict(env_prefix="LIVEROOM_", extra="ignore", allow_inf_nan=False)

    # streams core (event time)
    tick_s: float = _in(5.0, 0.1, 3600.0, "one snapshot per room per tick of event time (0.1 s at least: "
                        "at most 36,000 ticks per hour of a session; LIVEROOM_RATE_WINDOW_S must be at least one tick)")
    grace_s: float = _in(10.0, 0.0, 3600.0, "how late an event may arrive and still land in its own tick; later: "
                         "dead letter `late`")
    rate_window_s: float = _in(60.0, 0.1, DAY, "span of the per-minute rates (at least one tick, at most 10,000)")
    dedup_horizon_s: float = _in(120.0, 0.0, DAY, "event ids are remembered this long after their tick closed")
    max_future_s: float = _in(3600.0, 1.0, 30 * DAY, "an event this far ahead of its room's newest event is "
                              "refused (`ts_jump`)")
    max_event_bytes: int = _in(65536, 256, 16 * MiB, "larger inputs, and longer lines of an events file, are "
                               "dead letters (`oversized`) without being decoded")
    dead_letter_max_raw: int = _in(65536, 0, 16 * MiB, "bytes of an input kept in its dead letter; a longer one "
                                   "keeps its prefix, `raw_bytes` and `raw_sha256`")
    quiet_s: float = _in(30.0, 0.0, DAY, "event time a room's partition moves past its ticks before they close "
                         "without it (a quiet room; embedded and on Kafka alike, over LIVEROOM_KAFKA_PARTITIONS)")
    idle_room_s: float = _in(3600.0, 1.0, 30 * DAY, "a room with no event for this long (its partition's event "
                             "time) is finished and let go, as one is grace + quiet after its `room_end`")
    finished_retention_s: float = _in(600.0, 0.0, 30 * DAY, "events for a finished room are dead letters "
                                      "(`room_finished`) for this long; then its id starts a new room")
    silent_snapshots: int = _in(12, 0, 100_000, "snapshots a silent gap gives before a room's snapshots pause "
                                "until its next event")
    max_envelope_events: int = _in(1000, 1, 100_000, "events one message (or line) may carry as a JSON array; "
                                   "more is one `oversized` dead letter")
    max_envelope_bytes: int = _in(MiB, 256, 64 * MiB, "and the size of such an envelope")
    max_dedup_ids: int = _in(1_000_000, 1, 100_000_000, "event ids of closed ticks a room remembers at most; "
                             "copies of older ones are `late`, never counted twice")
    max_decompressed_bytes: int = _in(64 * GiB, MiB, 1 << 40, "a gzip events file stops here "
                                      "(`decompression_limit`)")
    max_decompression_ratio: float = _in(200.0, 1.0, 1e6, "... or past this ratio, once 64 MiB are out (a gzip bomb)")
    max_session_json_bytes: int = _in(MiB, KiB, 64 * MiB, "a larger `session.json` is refused")
    max_rooms_in_memory: int = _in(10_000, 1, 10_000_000, "embedded: rooms held decoded; the rest are parked "
                                   "as their encoded state")
    session_ts_margin_s: float = _in(300.0, 0.0, 30 * DAY, "events this far outside a recorded session's "
                                     "start/end are refused (`ts_out_of_range`)")
    surge_baseline_s: float = _in(300.0, 1.0, DAY, "surge detection: rolling baseline length")
    surge_warmup_s: float = _in(60.0, 0.0, DAY, "surge detection: no surge before this much baseline")
    surge_z_on: float = _in(3.5, 0.0, 100.0, "surge detection: robust z that opens a surge", lo_open=True)
    surge_z_off: float = _in(1.5, 0.0, 100.0, "surge detection: below this the surge is over (at most Z_ON)")
    surge_min_per_tick: int = _in(5, 1, 1_000_000_000, "surge detection: interactions in a tick needed to open one")

    # replay --kafka pacing, when --speed is not given (times real time; 0: as fast as possible)
    replay_speed: float = _in(0.0, 0.0, 1e6, "`replay --kafka` pacing when `--speed` is not given (times real "
                              "time; 0: as fast as possible)")

    # bidding
    bidding_strategy: Literal["ramp+mcb", "mcb", "pid", "fixed"] = Field(
        "ramp+mcb", description="the live bidding strategy: ramp+mcb, mcb, pid or fixed")

    # clip traffic loop (cliploop): promotion periods in event time
    clip_period_s: float = _in(3600.0, 300.0, 30 * DAY, "clip loop: promotion period (5 minutes at least: the "
                               "work of a session grows with its periods times the slots)")
    clip_grace_s: float = _in(300.0, 0.0, 7 * DAY, "clip loop: how late a clip event may come and still count")
    clip_budget: int = _in(2000, 0, 1_000_000_000, "clip loop: promoted impressions per room per period")
    clip_slots: int = _in(20, 1, 1000, "clip loop: the budget is handed out in this many slots")
    clip_explore_max: float = _in(0.3, 0.0, 1.0, "clip loop: most of the slots given to clips other than the leader")
    clip_prior_impressions: float = _in(200.0, 0.0, 1e9, "clip loop: weight of a clip's score prior, in "
                                        "impressions", lo_open=True)
    clip_base_rate: float = _in(0.004, 0.0, 1.0, "clip loop: entries per impression of a clip of reference score",
                                lo_open=True)
    clip_half_life_h: float = _in(24.0, 0.0, 100_000.0, "clip loop: old outcomes count half after this long",
                                  lo_open=True)
    clip_max_age_days: float = _in(14.0, 0.0, 3650.0, "clip loop: older clips are no longer promoted", lo_open=True)
    clip_seed: int = _in(0, 0, 2**63 - 1, "clip loop: the draws' seed")
    clip_idle_s: float = _in(0.0, 0.0, 30 * DAY, "clip loop on Kafka: a room with no clip event for this long (wall "
                             "clock) and nothing of its partition waiting has its open periods closed, as at the end "
                             "of the input. 0: one period plus its grace (live, event time has passed them by then, "
                             "so no event is made late); a few seconds for replays of recorded sessions")

    # highlight worker
    recordings_dir: str = Field("./recordings", description="highlight worker: where recordings are read "
                                "(`ROOM/` session folders or `ROOM.mp4`)")
    clips_dir: str = Field("./clips", description="highlight worker: where clips are written")
    highlight_segment_s: float = _in(1800.0, 0.0, 30 * DAY, "highlight worker: analyse a running broadcast in "
                                     "parts this long (0: only at its end)")
    highlight_settle_s: float = _in(60.0, 0.0, DAY, "highlight worker: ... once the room's event time is this far "
                                    "past the part's end")
    highlight_web_port: int = _in(6067, 0, 65535, "highlight worker: its /healthz and /metrics (0: none); bound "
                                  "to LIVEROOM_KAFKA_WEB_BIND")

    # Kafka runtime
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="the cluster's bootstrap servers")
    kafka_app_id: str = Field("liveroom", description="the Faust app id (consumer group, table names)")
    kafka_partitions: int = _in(4, 1, 10_000, "partitions of every topic created")
    kafka_replication_factor: int = _in(1, 1, 100, "replication factor of every topic created")
    kafka_processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="Faust's processing guarantee")
    kafka_store: str = Field("memory://", description="Faust's table store (memory:// or rocksdb://)")
    kafka_data_dir: str = Field("./.liveroom-data", description="Faust's data folder")
    kafka_batch_max: int = _in(2000, 1, 1_000_000, "messages per fetched batch")
    kafka_batch_within_s: float = _in(0.25, 0.0, 60.0, "the bidding agent's batching window", lo_open=True)
    kafka_persist_s: float = _in(1.0, 0.0, 60.0, "room state is written to the changelogs (and its events' "
                                 "offsets committed) this often: each changed room once, however many batches "
                                 "changed it (0: every batch)")
    kafka_silence_s: float = _in(30.0, 0.0, DAY, "an idle partition (wall clock, nothing waiting) has its rooms "
                                 "flushed", lo_open=True)
    kafka_envelope_events: int = _in(100, 1, 100_000, "events per message from `replay --kafka` (1: single-event "
                                     "messages)")
    kafka_envelope_linger_s: float = _in(2.0, 0.0, 60.0, "event time an event of `replay --kafka` waits, at "
                                         "most, for others of its room in an envelope (the embedded replay groups "
                                         "the same way)")
    kafka_session_timeout_s: float = _in(30.0, 1.0, 3600.0, "the consumer group's session timeout")
    kafka_web_port: int = _in(6066, 0, 65535, "the worker's /healthz, /metrics, /rooms and /dashboard (0: none)")
    kafka_web_bind: str = Field("127.0.0.1", description="the pages' address (0.0.0.0 in a container)")
    kafka_progress_s: float = _in(10.0, 0.0, DAY, "the worker's progress line and its lag figures, this often",
                                  lo_open=True)
    kafka_connect_timeout_s: float = _in(10.0, 0.0, 3600.0, "an unreachable cluster is an error after this long",
                                         lo_open=True)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="the client's security protocol")
    kafka_sasl_mechanism: str = Field("PLAIN", description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (a secret: never printed)")
    kafka_ssl_cafile: str | None = Field(None, description="CA file for SSL")

    @model_validator(mode="after")
    def _relations(self) -> "Settings":
        """Ranges that depend on another setting."""
        if not self.tick_s <= self.rate_window_s <= 10_000 * self.tick_s:
            raise ValueError(f"LIVEROOM_RATE_WINDOW_S={self.rate_window_s:g} is out of range: from LIVEROOM_TICK_S "
                             f"({self.tick_s:g}) to 10,000 ticks ({10_000 * self.tick_s:g})")
        if self.kafka_envelope_events > self.max_envelope_events:
            raise ValueError(f"LIVEROOM_KAFKA_ENVELOPE_EVENTS={self.kafka_envelope_events} is out of range: at most "
                             f"LIVEROOM_MAX_ENVELOPE_EVENTS ({self.max_envelope_events}), or its envelopes are refused")
        if self.surge_z_off > self.surge_z_on:
            raise ValueError(f"LIVEROOM_SURGE_Z_OFF={self.surge_z_off:g} is out of range: at most LIVEROOM_SURGE_Z_ON "
                             f"({self.surge_z_on:g})")
        return self

    def kafka_config(self, bootstrap_servers: str | None = None) -> KafkaConfig:
        return KafkaConfig(
            bootstrap_servers=bootstrap_servers or self.kafka_bootstrap_servers,
            app_id=self.kafka_app_id,
            partitions=self.kafka_partitions,
            replication_factor=self.kafka_replication_factor,
            processing_guarantee=self.kafka_processing_guarantee,
            store=self.kafka_store,
            data_dir=self.kafka_data_dir,
            batch_max=self.kafka_batch_max,
            batch_within_s=self.kafka_batch_within_s,
            silence_s=self.kafka_silence_s,
            persist_s=self.kafka_persist_s,
            envelope_events=self.kafka_envelope_events,
            envelope_linger_s=self.kafka_envelope_linger_s,
            session_timeout_s=self.kafka_session_timeout_s,
            web_port=self.kafka_web_port,
            web_bind=self.kafka_web_bind,
            progress_s=self.kafka_progress_s,
            connect_timeout_s=self.kafka_connect_timeout_s,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None,
            ssl_cafile=self.kafka_ssl_cafile,
        )

    def clip_idle(self) -> float:
        """``LIVEROOM_CLIP_IDLE_S``, 0 resolved."""
        return self.clip_idle_s or self.clip_period_s + self.clip_grace_s

    def clip_loop_config(self) -> ClipLoopConfig:
        return ClipLoopConfig(period_s=self.clip_period_s, grace_s=self.clip_grace_s, budget=self.clip_budget,
                              slots=self.clip_slots, explore_max=self.clip_explore_max,
                              prior_impressions=self.clip_prior_impressions, base_rate=self.clip_base_rate,
                              half_life_h=self.clip_half_life_h, max_age_days=self.clip_max_age_days,
                              seed=self.clip_seed)

    def read_limits(self) -> ReadLimits:
        return ReadLimits(max_line_bytes=self.max_event_bytes, keep_bytes=self.dead_letter_max_raw,
                          max_decompressed_bytes=self.max_decompressed_bytes,
                          max_ratio=self.max_decompression_ratio)

    def core_config(self) -> CoreConfig:
        return CoreConfig(
            tick_s=self.tick_s,
            grace_s=self.grace_s,
            rate_window_s=self.rate_window_s,
            dedup_horizon_s=self.dedup_horizon_s,
            max_future_s=self.max_future_s,
            max_event_bytes=self.max_event_bytes,
            dead_letter_max_raw=self.dead_letter_max_raw,
            silent_snapshots=self.silent_snapshots,
            quiet_s=self.quiet_s,
            idle_room_s=self.idle_room_s,
            finished_retention_s=self.finished_retention_s,
            max_dedup_ids=self.max_dedup_ids,
            max_envelope_events=self.max_envelope_events,
            max_envelope_bytes=self.max_envelope_bytes,
            surge=SurgeConfig(
                baseline_s=self.surge_baseline_s,
                warmup_s=self.surge_warmup_s,
                z_on=self.surge_z_on,
                z_off=self.surge_z_off,
                min_per_tick=self.surge_min_per_tick,
            ),
        )


def setting_error(exc: ValidationError) -> str:
    """One line for a bad setting: the variable, the value and its range."""
    first = exc.errors()[0]
    if not first["loc"]:  # a relation between settings: the validator said it all
        return str(first["msg"]).removeprefix("Value error, ")
    name = str(first["loc"][0])
    field = Settings.model_fields.get(name)
    value = escape(str(first.get("input")))  # one line, nothing a terminal acts on
    value = value if len(value) <= 80 else value[:77] + "..."
    return f"LIVEROOM_{name.upper()}={value} is out of range: {range_text(field) if field else ''} ({first['msg']})"


def range_text(field) -> str:
    """A field's range in words (``0.1 to 3600``, ``above 0, at most 1``, ``one of: a, b``)."""
    lo = hi = None
    lo_open = False
    for m in field.metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, lo_open = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
    if lo is None and hi is None:
        args = getattr(field.annotation, "__args__", ())
        return "one of: " + ", ".join(map(str, args)) if args and all(isinstance(a, str) for a in args) else "any"
    def num(x) -> str:
        return f"{int(x):,}" if isinstance(x, int) or float(x).is_integer() else f"{x:,g}"
    return f"{'above' if lo_open else 'from'} {num(lo)} {'up to' if lo_open else 'to'} {num(hi)}"


def markdown_table() -> str:
    """docs/configuration.md's table: every setting, its default, range and meaning."""
    rows = ["| variable | default | range | what it sets |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default is not None else "(none)"
        rows.append(f"| `LIVEROOM_{name.upper()}` | {default} | {range_text(field)} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m liveroom.settings > docs/configuration.md
    print("# Configuration\n")
    print("Every setting is an environment variable, read once where a command starts; `liveroom/settings.py`")
    print("is the one place they are defined (this page is rendered from it: `python -m liveroom.settings`).")
    print("A value out of its range stops the command with one `Error:` line naming the variable, the value")
    print("and the range (exit status 2). Ranges also bound the work a value can cause.\n")
    print(markdown_table())
