"""All configuration in one place: environment variables (``LIVEROOM_*``) first,
then defaults. The pure cores never read the environment; they get frozen
config values built here."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cliploop.models import ClipLoopConfig
from streams.config import CoreConfig
from streams.kafka_topics import KafkaConfig
from streams.session import ReadLimits
from streams.surge import SurgeConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEROOM_", extra="ignore")

    # streams core (event time)
    tick_s: float = 5.0
    grace_s: float = 10.0
    rate_window_s: float = 60.0
    dedup_horizon_s: float = 120.0
    max_future_s: float = 3600.0
    max_event_bytes: int = 65536  # also the longest line read from an events file
    dead_letter_max_raw: int = 65536  # bytes of an input kept in its dead letter (longer: prefix, length, sha256)
    silent_snapshots: int = 12  # snapshots a silent gap gives before the room's snapshots pause
    max_envelope_events: int = 1000  # events one message (or line) may carry as a JSON array
    max_envelope_bytes: int = 1 << 20  # and its size
    max_dedup_ids: int = 1_000_000  # event ids a room remembers at most (past it, old copies are late, not counted)
    max_decompressed_bytes: int = 64 << 30  # a gzip events file stops here (decompression_limit)
    max_decompression_ratio: float = 200.0  # ... or past this ratio, once 64 MiB are out (a gzip bomb)
    max_session_json_bytes: int = 1 << 20
    max_rooms_in_memory: int = 10_000  # embedded: rooms held live; the rest parked as encoded state
    session_ts_margin_s: float = 300.0  # events this far outside a recorded session are refused
    surge_baseline_s: float = 300.0
    surge_warmup_s: float = 60.0
    surge_z_on: float = 3.5
    surge_z_off: float = 1.5
    surge_min_per_tick: int = 5

    # replay --kafka pacing, when --speed is not given (times real time; 0: as fast as possible)
    replay_speed: float = 0.0

    # bidding
    bidding_strategy: str = "ramp+mcb"  # ramp+mcb | mcb | pid | fixed

    # clip traffic loop (cliploop): promotion periods in event time
    clip_period_s: float = 3600.0
    clip_grace_s: float = 300.0
    clip_budget: int = 2000  # promoted impressions per room per period
    clip_slots: int = 20
    clip_explore_max: float = 0.3
    clip_prior_impressions: float = 200.0
    clip_base_rate: float = 0.004  # entries per impression of a clip of reference score (the prior)
    clip_half_life_h: float = 24.0
    clip_max_age_days: float = 14.0
    clip_seed: int = 0

    # highlight worker
    recordings_dir: str = "./recordings"  # ROOM/ session folders or ROOM.mp4
    clips_dir: str = "./clips"
    highlight_segment_s: float = 1800.0  # analyse a running broadcast every this many seconds (0: only at its end)
    highlight_settle_s: float = 60.0  # and this long after a part's end, for late reactions and the recording

    # Kafka runtime
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_app_id: str = "liveroom"
    kafka_partitions: int = 4
    kafka_replication_factor: int = 1
    kafka_processing_guarantee: str = "at_least_once"
    kafka_store: str = "memory://"
    kafka_data_dir: str = "./.liveroom-data"
    kafka_batch_max: int = 2000
    kafka_batch_within_s: float = 0.25
    kafka_silence_s: float = 30.0  # an idle partition (wall clock, nothing waiting) has its rooms flushed
    kafka_quiet_s: float = 30.0  # event time a partition moves past a quiet room's ticks before they close
    kafka_envelope_events: int = 100  # events per message from replay --kafka (1: single-event messages)
    kafka_session_timeout_s: float = 30.0
    kafka_web_port: int = 6066  # the worker's /healthz, /metrics, /rooms and /dashboard (0: off)
    kafka_web_bind: str = "127.0.0.1"
    kafka_progress_s: float = 10.0  # the worker's progress line and lag figures, this often
    kafka_connect_timeout_s: float = 10.0
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None  # never printed: SecretStr masks it in repr and logs
    kafka_ssl_cafile: str | None = None

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
            quiet_s=self.kafka_quiet_s,
            envelope_events=self.kafka_envelope_events,
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
