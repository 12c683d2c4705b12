"""Configuration of the pure core. Built from the environment by ``liveroom.settings``;
the core itself only ever sees this frozen value."""

from __future__ import annotations

from dataclasses import dataclass, field

from .surge import SurgeConfig


@dataclass(frozen=True, slots=True)
class CoreConfig:
    tick_s: float = 5.0  # one snapshot per room per tick of event time
    grace_s: float = 10.0  # how late an event may arrive and still land in its own tick
    rate_window_s: float = 60.0  # span of the per-minute rates
    dedup_horizon_s: float = 120.0  # event ids remembered this long after their tick closed
    max_future_s: float = 3600.0  # a jump further ahead of the room's newest event is refused
    max_event_bytes: int = 65536  # larger inputs (and longer lines) are dead letters, not decoded
    dead_letter_max_raw: int = 65536  # bytes of an input kept in its dead letter (longer: prefix + sha256)
    max_envelope_events: int = 1000  # events one input may carry as an envelope (a JSON array)
    max_envelope_bytes: int = 1 << 20  # and its size (Kafka's default message size)
    max_dedup_ids: int = 1_000_000  # event ids a room remembers, at most (see room.py: past it, copies are late)
    silent_snapshots: int = 12  # snapshots of a silent gap before the room's snapshots pause (see room.py)
    quiet_s: float = 30.0  # a quiet room's ticks close once its partition's event time is this far past them
    idle_room_s: float = 3600.0  # a room with no event for this long (its partition's event time) is finished
    finished_retention_s: float = 600.0  # events for a finished room are `room_finished` dead letters this long
    surge: SurgeConfig = field(default_factory=SurgeConfig)

    def __post_init__(self) -> None:
        if self.tick_s <= 0 or self.grace_s < 0 or self.rate_window_s < self.tick_s:
            raise ValueError("need tick_s > 0, grace_s >= 0 and rate_window_s >= tick_s")
        if self.quiet_s < 0 or self.idle_room_s <= 0 or self.finished_retention_s < 0:
            raise ValueError("need quiet_s >= 0, idle_room_s > 0 and finished_retention_s >= 0")
        if self.max_event_bytes < 1 or self.dead_letter_max_raw < 0 or self.silent_snapshots < 0 \
                or self.max_dedup_ids < 1 or self.max_envelope_events < 1 or self.max_envelope_bytes < 2:
            raise ValueError("need max_event_bytes >= 1, dead_letter_max_raw >= 0, silent_snapshots >= 0, "
                             "max_dedup_ids >= 1, max_envelope_events >= 1 and max_envelope_bytes >= 2")
