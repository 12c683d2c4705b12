"""What a Kafka worker has done, kept where it happens and read by its web pages,
its Prometheus metrics and its progress line.

Plain counters, no I/O and no Faust: the rooms runtime and the bidding agent
record into one :class:`WorkerStats`; ``liveroom/kafka/web.py`` turns it into
``/metrics``, ``/rooms`` and the dashboard. Counts of inputs and dead letters are
the core's own accounting (one source of truth), not a second tally.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

import msgspec

# Upper bounds (seconds) of the batch latency histogram's buckets.
BATCH_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_MOMENTS = 20  # a room's newest moments kept for its page
MAX_ROOMS_LISTED = 200  # /rooms lists the busiest rooms only: the dashboard reads it every 2 s
HISTORY = 60  # a room's newest snapshots kept for its sparklines (5 minutes at 5 s ticks)
SILENT_S = 300.0  # a live room with no snapshot for this long (wall clock) is silent: an alert


@dataclass
class Histogram:
    """A cumulative-bucket histogram, as Prometheus exposes one."""

    bounds: tuple[float, ...] = BATCH_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts):
            running += count
            out.append((bound, running))
        return out


@dataclass
class PartsSize:
    """Live bytes of the ``room-parts`` changelog this worker wrote: segment and
    id-chunk records exactly (few keys), viewer records as the online viewers
    times their mean record size (a dict of every viewer's size would cost as
    much memory as the viewers themselves)."""

    exact: dict[bytes, int] = field(default_factory=dict)
    viewer_bytes: int = 0  # of every viewer record written, for the mean
    viewer_records: int = 0

    @staticmethod
    def is_viewer(key: bytes) -> bool:
        return key[1:3] == b"\xa1P"  # a msgpack list whose first item is the string "P"

    def write(self, key: bytes, value: bytes | None) -> None:
        if self.is_viewer(key):
            if value is not None:
                self.viewer_bytes += len(key) + len(value)
                self.viewer_records += 1
        elif value is None:
            self.exact.pop(key, None)
        else:
            self.exact[key] = len(key) + len(value)

    def total(self, online_viewers: int) -> int:
        mean = self.viewer_bytes / self.viewer_records if self.viewer_records else 0.0
        return sum(self.exact.values()) + round(online_viewers * mean)


@dataclass
class WorkerStats:
    """Everything the worker's pages show. ``latest`` and ``decisions`` hold one
    entry per room this worker owns (dropped when its partition moves away)."""

    started: float = field(default_factory=time.time)
    batches: Histogram = field(default_factory=Histogram)
    changelog_bytes: dict[str, int] = field(default_factory=dict)  # table -> bytes written
    head_bytes: dict[str, int] = field(default_factory=dict)  # room -> its head record's size
    parts: PartsSize = field(default_factory=PartsSize)
    latest: dict[str, object] = field(default_factory=dict)  # room -> newest RoomMetrics
    moments: dict[str, list] = field(default_factory=dict)  # room -> its Moments
    decisions: dict[str, object] = field(default_factory=dict)  # room -> newest BidDecision
    decisions_by_strategy: dict[str, int] = field(default_factory=dict)
    lag: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> messages behind
    events_per_s: float = 0.0  # over the last progress interval
    last_batch_wall: float | None = None  # when the last batch of events was done (wall clock)
    failed: str | None = None  # set when a write failed; the worker stops
    write_failures: int = 0
    # room -> its newest snapshots as [ts, online, entries per min, spend], oldest first (HISTORY at most)
    history: dict[str, list[list[float]]] = field(default_factory=dict)
    seen_wall: dict[str, float] = field(default_factory=dict)  # room -> when its newest snapshot was published
    currency: dict[str, str] = field(default_factory=dict)  # room -> its campaign's currency
    clips: dict[str, dict] = field(default_factory=dict)  # room -> what the highlight worker published for it

    def record_batch(self, seconds: float) -> None:
        self.batches.observe(seconds)
        self.last_batch_wall = time.time()

    def record_changelog(self, table: str, key: bytes, value: bytes | None) -> None:
        self.changelog_bytes[table] = self.changelog_bytes.get(table, 0) + len(key) + len(value or b"")
        if table == "room-parts":
            self.parts.write(key, value)
        elif table == "room-state" and value is not None:  # other tables (the clip loop's): bytes only
            self.head_bytes[key.decode("utf-8", "replace")] = len(key) + len(value)

    def record_failure(self, what: str) -> None:
        self.failed = what
        self.write_failures += 1

    def record_outputs(self, metrics, moments) -> None:
        now = time.time()
        for m in metrics:
            self.latest[m.room_id] = m
            self.seen_wall[m.room_id] = now
            points = self.history.setdefault(m.room_id, [])
            points.append([m.ts, m.online, round(m.organic_entries_per_min + m.paid_entries_per_min, 2),
                           m.spend_total])
            del points[:-HISTORY]
        for m in moments:
            kept = self.moments.setdefault(m.room_id, [])
            kept.append(m)
            del kept[:-MAX_MOMENTS]

    def record_decision(self, d, currency: str | None = None) -> None:
        self.decisions[d.room_id] = d
        if currency:
            self.currency[d.room_id] = currency
        self.decisions_by_strategy[d.strategy] = self.decisions_by_strategy.get(d.strategy, 0) + 1

    def record_clips(self, manifest: dict) -> None:
        """A manifest the highlight worker published on ``liveroom.clips``."""
        room = str(manifest.get("room_id") or "?")[:128]
        seen = self.clips.setdefault(room, {"parts": 0, "clips": 0, "final": False, "error": None})
        seen["parts"] += 1
        seen["clips"] = len(manifest.get("clips") or []) if manifest.get("final") else seen["clips"] + len(
            manifest.get("clips") or [])
        seen["final"] = seen["final"] or bool(manifest.get("final"))
        seen["error"] = manifest.get("error") or seen["error"]
        if len(self.clips) > 10 * MAX_ROOMS_LISTED:  # bounded: the oldest rooms go first
            del self.clips[next(iter(self.clips))]

    def highlight_status(self) -> dict:
        """The highlight worker as ``liveroom.clips`` shows it: rooms cut, clips, the last error."""
        errors = [(room, c["error"]) for room, c in self.clips.items() if c["error"]]
        return {"rooms_cut": sum(c["final"] for c in self.clips.values()),
                "clips": sum(c["clips"] for c in self.clips.values()),
                "last_error": f"{errors[-1][0]}: {errors[-1][1]}" if errors else None}

    def live_rooms_silent(self, now: float | None = None) -> int:
        """Live rooms whose newest snapshot was published more than SILENT_S ago."""
        now = time.time() if now is None else now
        return sum(1 for room, m in self.latest.items()
                   if getattr(m, "live", False) and now - self.seen_wall.get(room, now) > SILENT_S)

    def live_rooms_out_of_budget(self) -> int:
        """Live rooms with a budget whose newest decision has none of it left."""
        return sum(1 for room, d in self.decisions.items()
                   if getattr(self.latest.get(room), "live", False) and (d.budget or 0) > 0 and d.budget_left <= 0)

    def forget_rooms(self, keep) -> None:
        """Rooms this worker no longer owns leave its pages."""
        for d in (self.latest, self.moments, self.decisions, self.head_bytes, self.history, self.seen_wall,
                  self.currency):
            for room in [r for r in d if r not in keep]:
                del d[room]

    def forget_finished(self, rooms) -> None:
        """Finished rooms leave the pages (their state has left the worker)."""
        for room in rooms:
            for d in (self.latest, self.moments, self.decisions, self.head_bytes, self.history, self.seen_wall,
                      self.currency):
                d.pop(room, None)

    def state_bytes(self, online_viewers: int) -> dict[str, int]:
        return {"room-state": sum(self.head_bytes.values()), "room-parts": self.parts.total(online_viewers)}

    def room(self, room_id: str) -> dict | None:
        """``/rooms/<id>``: the room's newest snapshot, moments and bid decision."""
        if room_id not in self.latest and room_id not in self.decisions:
            return None
        return msgspec.to_builtins({"room_id": room_id, "metrics": self.latest.get(room_id),
                                    "moments": self.moments.get(room_id, []),
                                    "decision": self.decisions.get(room_id),
                                    "currency": self.currency.get(room_id),
                                    "history": self.history.get(room_id, []),
                                    "clips": self.clips.get(room_id)})

    def rooms(self, limit: int = MAX_ROOMS_LISTED) -> list[dict]:
        """``/rooms``: the ``limit`` busiest owned rooms (most online first, then by
        id); ``/rooms/<id>`` reaches any of them."""
        ids = sorted(set(self.latest) | set(self.decisions),
                     key=lambda r: (-(getattr(self.latest.get(r), "online", 0)), r))
        return [self.room(r) for r in ids[:limit]]
