"""The clip traffic loop's pure core: clip events in; per-clip stats and
promotion decisions out, in event time.

Like the streams core, in event time: each event is added to its clip's counts
for its period (an hour; :class:`~cliploop.models.PeriodCounts`, sums that do
not depend on arrival order), and a period closes once the room's newest clip
event has passed its end by ``grace_s``; so any arrival order within the grace
gives the same outputs, embedded or on Kafka. A busy hour costs a few numbers
per clip and 8 bytes per event id (dedup), never the events themselves. Closing a period writes one :class:`ClipStats`
per clip active in it, then the room's :class:`Promotion` for the next period.
Every input is accounted for: processed, duplicate (same ``event_id``), blank,
or a dead letter with its bytes and reason (the room events' reasons, plus
``late``, ``ts_jump`` and ``key_mismatch``). An input may be an envelope (a JSON
array of events), as room events may. No I/O, no wall clock.
"""

from __future__ import annotations

import math
from hashlib import blake2b
from typing import Callable

import msgspec

from streams.core import dead_letter
from streams.events import JSON_SPACE, BlankLines, Rejected
from streams.models import DeadLetter

from .events import (ClipClick, ClipComplete, ClipEntry, ClipImpression, ClipLike, ClipOrder,
                     ClipPlay, ClipPublish, ClipShare, clip_event_decoder)
from .models import ClipLoopConfig, ClipState, ClipStats, PeriodCounts, Promotion, RoomClips
from .parts import ClipJournal
from .promote import allocate, conversion, score_prior

DAY_S = 86_400.0
_envelope = msgspec.json.Decoder(list[msgspec.Raw]).decode
_pack = msgspec.msgpack.Encoder().encode
KEEP_DAYS = 30  # daily aggregates kept per clip (the decay curve)
PriorFn = Callable[[ClipPublish], float]


class ClipLoopCore:
    """Many rooms' clip loops. ``restore`` returns a room's stored state (Kafka);
    ``prior`` overrides the score prior with a learned pull model's prediction."""

    def __init__(self, config: ClipLoopConfig = ClipLoopConfig(), *, source: str = "clip-events",
                 max_event_bytes: int = 65536, dead_letter_max_raw: int = 65536,
                 max_envelope_events: int = 1000, max_envelope_bytes: int = 1 << 20,
                 restore: Callable[[str], RoomClips | None] | None = None, prior: PriorFn | None = None,
                 journal: bool = False) -> None:
        self.config = config
        self.source = source
        self.decoder = clip_event_decoder(max_bytes=max_event_bytes)
        self.max_envelope_events = max_envelope_events
        self.max_envelope_bytes = max_envelope_bytes
        # what changed per room since the last persist (a Kafka store writes it in parts)
        self.journals: dict[str, ClipJournal] | None = {} if journal else None
        self.max_raw = dead_letter_max_raw
        self.restore = restore
        self.prior = prior
        self.rooms: dict[str, RoomClips] = {}
        self._ids: dict[str, set[str]] = {}
        self.stats: list[ClipStats] = []
        self.promotions: list[Promotion] = []
        self.dead: list[DeadLetter] = []
        self.inputs = self.processed = self.duplicates = self.blank = self.dead_count = 0
        self.rejected: dict[str, int] = {}

    # -- input ---------------------------------------------------------------

    def feed(self, raw: bytes, where: str, *, expect_room: str | None = None) -> None:
        """One raw input (a line of the file, a message's value)."""
        if isinstance(raw, BlankLines):
            self.inputs += raw.lines
            self.blank += raw.lines
            return
        self.inputs += 1
        if not raw.strip(JSON_SPACE):
            self.blank += 1
            return
        if raw[:1] == b"[" and type(raw) is bytes:  # an over-long line (LongInput) is never decoded: oversized
            self._feed_envelope(raw, where, expect_room)
            return
        try:
            event = self.decoder.decode(raw)
        except Rejected as r:
            self._reject(raw, r.reason, str(r), where, None)
            return
        if expect_room is not None and event.room_id != expect_room:
            self._reject(raw, "key_mismatch", f"an event of room {event.room_id!r} under room {expect_room!r} (the "
                         "message's key, or the session the file belongs to)", where, event.room_id)
            return
        self._take(event, raw, where)

    def _feed_envelope(self, raw: bytes, where: str, expect_room: str | None) -> None:
        """The events of an envelope, each an input of its own; a bad envelope is
        one input and one dead letter (the room events' verdicts)."""
        if len(raw) > self.max_envelope_bytes:
            self._reject(raw, "oversized", f"envelope of {len(raw)} bytes > limit {self.max_envelope_bytes}", where,
                         None)
            return
        try:
            items = [bytes(item) for item in _envelope(raw)]
        except Exception:  # noqa: BLE001 - any failure is a verdict
            items = None
        if items is not None and len(items) > self.max_envelope_events:
            self._reject(raw, "oversized", f"envelope of {len(items)} events > limit {self.max_envelope_events}",
                         where, None)
            return
        if items is None or any(item[:1] == b"[" for item in items):
            self._reject(raw, "malformed_envelope",
                         "an envelope (an input starting with '[') must be a JSON array of events", where, None)
            return
        if not items:
            self.blank += 1
            return
        self.inputs -= 1  # its events count instead
        for i, item in enumerate(items):
            self.feed(item, f"{where}#{i}", expect_room=expect_room)

    def reject_input(self, raw: bytes, *, reason: str, detail: str, where: str) -> None:
        """An input its adapter refuses before decoding (a Kafka message on another
        partition than its key's): one input, one dead letter."""
        self.inputs += 1
        self._reject(raw, reason, detail, where, None)

    def feed_event(self, event, where: str = "simulator") -> None:
        """A typed event (the simulator's; it never needs decoding)."""
        self.inputs += 1
        self._take(event, None, where)

    def _take(self, event, raw: bytes | None, where: str) -> None:
        room = self._room(event.room_id)
        cfg = self.config
        if room.max_ts and event.ts > room.max_ts + cfg.max_future_s:
            self._reject(raw, "ts_jump", f"ts {event.ts} is over {cfg.max_future_s:.0f} s past the room's clock",
                         where, event.room_id, event)
            return
        period = int(event.ts // cfg.period_s)
        if period <= room.closed_through:
            self._reject(raw, "late", f"period {period} closed (ts {event.ts})", where, event.room_id, event)
            return
        ids = self._ids[room.room_id]
        digest = id_hash(event.event_id)
        if digest in ids:
            self.duplicates += 1
            return
        ids.add(digest)
        journal = self.journals.get(room.room_id) if self.journals is not None else None
        seen = room.seen.get(period)
        if seen is None:
            seen = room.seen[period] = bytearray()
        if journal is not None and period not in journal.ids_from:
            journal.ids_from[period] = len(seen) // 8
        seen += digest
        counts = room.open.get(period)
        if counts is None:
            counts = room.open[period] = {}
        c = counts.get(event.clip_id)
        if journal is not None and (period, event.clip_id) not in journal.counts:
            journal.counts[(period, event.clip_id)] = _pack(c) if c is not None else None
        if c is None:
            c = counts[event.clip_id] = PeriodCounts()
        count(c, event)
        self.processed += 1
        if event.ts > room.max_ts:
            room.max_ts = event.ts
            due = int((room.max_ts - cfg.grace_s) // cfg.period_s) - 1
            if due > room.closed_through:
                self._close_through(room, due)

    def _reject(self, raw, reason: str, detail: str, where: str, room_id: str | None, event=None) -> None:
        if raw is None:  # a typed event: its JSON is the record of it
            raw = msgspec.json.encode(event)
        self.dead_count += 1
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.dead.append(dead_letter(raw, reason, detail, where, max_raw=self.max_raw, room_id=room_id))

    def _room(self, room_id: str) -> RoomClips:
        room = self.rooms.get(room_id)
        if room is None:
            room = (self.restore(room_id) if self.restore is not None else None) or RoomClips(room_id=room_id)
            self.rooms[room_id] = room
            self._ids[room_id] = {bytes(s[i:i + 8]) for s in room.seen.values() for i in range(0, len(s), 8)}
            if self.journals is not None:
                self.journals[room_id] = ClipJournal()
        return room

    def release(self, room_id: str) -> None:
        """Let a room go from memory (its state is stored: a later event restores it)."""
        self.rooms.pop(room_id, None)
        self._ids.pop(room_id, None)
        if self.journals is not None:
            self.journals.pop(room_id, None)

    # -- closing periods -----------------------------------------------------

    def flush(self) -> None:
        """Close every open period of every room (the end of the input; an idle partition)."""
        for room in list(self.rooms.values()):
            self.flush_room(room.room_id)

    def flush_room(self, room_id: str) -> None:
        room = self._room(room_id)
        if room.open:
            self._close_through(room, max(room.open))

    def _close_through(self, room: RoomClips, due: int) -> None:
        cfg = self.config
        if room.closed_through < 0:
            if not room.open:
                return
            room.closed_through = min(room.open) - 1
        first = max(room.closed_through + 1, due - cfg.max_empty_periods + 1)
        periods = sorted({p for p in room.open if p <= due} | set(range(first, due + 1)))
        previous = room.closed_through
        journal = self.journals.get(room.room_id) if self.journals is not None else None
        if journal is not None:
            for clip_id, clip in room.clips.items():  # every clip ages when a period closes
                if clip_id not in journal.clips:
                    journal.clips[clip_id] = _pack(clip)
        for p in periods:
            self._close(room, p, p - previous, journal)  # a silent gap skipped still ages the outcomes
            previous = p
        room.closed_through = due
        # A copy of an event of a closed period is late, never counted again: only the
        # ids of open periods need remembering (they are in the room's state).
        ids = self._ids[room.room_id]
        for p in [p for p in room.seen if p <= due]:
            seen = room.seen.pop(p)
            for i in range(0, len(seen), 8):
                ids.discard(bytes(seen[i:i + 8]))
            if journal is not None:
                journal.closed[p] = max(journal.closed.get(p, 0), len(seen) // 8)

    def _close(self, room: RoomClips, period: int, periods_since_last: int = 1, journal=None) -> None:
        cfg = self.config
        end = (period + 1) * cfg.period_s
        counts = room.open.pop(period, {})
        if journal is not None:
            journal.closed_counts.extend((period, clip_id) for clip_id in counts)
        for clip_id in sorted(counts):
            c = counts[clip_id]
            clip = room.clips.get(clip_id)
            if clip is None:
                clip = room.clips[clip_id] = ClipState(clip_id=clip_id, published=None)
                if journal is not None and clip_id not in journal.clips:
                    journal.clips[clip_id] = None
            if c.first_publish is not None and clip.published is None:
                clip.published = c.first_publish.ts
            if c.last_publish is not None:
                ev = c.last_publish
                clip.score = ev.score
                clip.features = features_of(ev)
                clip.prior = self.prior(ev) if self.prior is not None else score_prior(ev.score, cfg)
        keep = 0.5 ** (periods_since_last * cfg.period_s / 3600.0 / cfg.half_life_h) if cfg.half_life_h > 0 else 0.0
        for clip_id in sorted(room.clips):
            clip = room.clips[clip_id]
            c = counts.get(clip_id)
            clip.disc_impressions *= keep
            clip.disc_clicks *= keep
            if c is None:
                continue
            gmv = c.gmv_micro / MICRO
            clip.disc_impressions += c.impressions
            clip.disc_clicks += c.clicks_room
            room.entries += c.entries
            room.room_clicks += c.clicks_room
            clip.impressions += c.impressions
            clip.clicks += c.clicks_room
            clip.entries += c.entries
            clip.orders += c.orders
            clip.gmv = round(clip.gmv + gmv, 6)
            born = clip.published if clip.published is not None else period * cfg.period_s
            day = max(0, int((end - 1e-6 - born) // DAY_S))
            if clip.daily and clip.daily[-1][0] == day:
                clip.daily[-1][1] += c.impressions
                clip.daily[-1][2] += c.entries
            else:
                clip.daily.append([day, c.impressions, c.entries])
                del clip.daily[:-KEEP_DAYS]
            self.stats.append(self._stats(room.room_id, clip, c, end, born))
        self._keep_newest(room, journal)
        live = [c for c in room.clips.values() if c.published is not None and c.published <= end
                and end - c.published <= cfg.max_age_days * DAY_S]
        if live:
            self.promotions.append(allocate(room.room_id, period + 1, live, cfg,
                                            conv=conversion(room.entries, room.room_clicks, cfg)))

    def _keep_newest(self, room: RoomClips, journal=None) -> None:
        """At most ``max_clips`` clips per room, the oldest published forgotten first:
        what a room remembers (and a restore reads) stays bounded."""
        excess = len(room.clips) - self.config.max_clips
        if excess > 0:
            by_age = sorted(room.clips.values(), key=lambda c: (c.published is not None, c.published or 0.0, c.clip_id))
            for c in by_age[:excess]:
                del room.clips[c.clip_id]
                if journal is not None and c.clip_id not in journal.clips:
                    journal.clips[c.clip_id] = None

    def _stats(self, room_id: str, clip: ClipState, c: PeriodCounts, end: float, born: float) -> ClipStats:
        clicks = c.clicks_room + c.clicks_product
        first = clip.daily[0] if clip.daily and clip.daily[0][0] == 0 else None
        # the latest day that is over: a day just begun has impressions and hardly any
        # entries yet (they come a broadcast later), which read as a pull of zero
        complete = [d for d in clip.daily if end >= born + (d[0] + 1) * DAY_S - 1e-6]
        last = complete[-1] if complete else None
        decay = None
        if first is not None and last is not None and last[0] > 0 and first[1] and last[1] and first[2]:
            decay = round(min(1.0, last[2] / last[1]) / min(1.0, first[2] / first[1]), 4)
        return ClipStats(
            room_id=room_id, clip_id=clip.clip_id, ts=end, published=clip.published, hour=max(0, int((end - 1e-6 - born) // self.config.period_s)),
            impressions=c.impressions, promoted_impressions=c.promoted_impressions, plays=c.plays,
            completes=c.completes, watch_ratio=round(c.watch_micro / MICRO / c.completes, 4) if c.completes else None,
            likes=c.likes, shares=c.shares, clicks_room=c.clicks_room, clicks_product=c.clicks_product,
            entries=c.entries, orders=c.orders, gmv=round(c.gmv_micro / MICRO, 6),
            # per impression at most 1, as the posterior counts them: counts as reported, ratios bounded
            ctr=round(min(1.0, clicks / c.impressions), 6) if c.impressions else None,
            pull=round(1000 * min(1.0, c.entries / c.impressions), 4) if c.impressions else None,
            total_impressions=clip.impressions, total_entries=clip.entries, total_orders=clip.orders,
            total_gmv=clip.gmv, decay=decay)

    # -- output --------------------------------------------------------------

    def drain(self) -> tuple[list[ClipStats], list[Promotion], list[DeadLetter]]:
        out = (self.stats, self.promotions, self.dead)
        self.stats, self.promotions, self.dead = [], [], []
        return out

    def accounting(self) -> dict[str, object]:
        return {
            "inputs": self.inputs, "processed": self.processed, "duplicates": self.duplicates, "blank": self.blank,
            "dead_letters": self.dead_count, "dead_letter_reasons": dict(sorted(self.rejected.items())),
            "all_accounted_for": self.inputs == self.processed + self.duplicates + self.blank + self.dead_count,
        }


MICRO = 1_000_000
GMV_MICRO_MAX = 2**62  # about 4.6e12 in money: a sum of non-negative amounts saturated here is order-independent


def id_hash(event_id: str) -> bytes:
    """An event id as 8 bytes (BLAKE2b): what dedup remembers of it. A million ids
    of one open hour are 8 MB, not 100; two ids of one room's open periods share
    a hash with odds of about n^2 / 2^65 (3e-8 for a million)."""
    return blake2b(event_id.encode(), digest_size=8).digest()


def _order(ev: ClipPublish) -> tuple:
    return (ev.ts, ev.event_id)


def count(c: PeriodCounts, ev) -> None:
    """Add one event to its clip's counts for its period."""
    t = type(ev)
    if t is ClipImpression:
        c.impressions += ev.count
        if ev.promoted:
            c.promoted_impressions += ev.count
    elif t is ClipPlay:
        c.plays += 1
    elif t is ClipComplete:
        c.completes += 1
        c.watch_micro += round(ev.watch_ratio * MICRO)
    elif t is ClipLike:
        c.likes += 1
    elif t is ClipShare:
        c.shares += 1
    elif t is ClipClick:
        if ev.target == "room":
            c.clicks_room += 1
        else:
            c.clicks_product += 1
    elif t is ClipEntry:
        c.entries += 1
    elif t is ClipOrder:
        c.orders += 1
        c.gmv_micro = min(GMV_MICRO_MAX, c.gmv_micro + round(ev.amount * MICRO))
    elif t is ClipPublish:
        if c.first_publish is None or _order(ev) < _order(c.first_publish):
            c.first_publish = ev
        if c.last_publish is None or _order(ev) > _order(c.last_publish):
            c.last_publish = ev


KIND_FEATURES = ("order", "cart_add", "share", "comment", "like", "gift", "follow")


def features_of(p: ClipPublish) -> dict[str, float]:
    """What the pull model learns from: the highlight score and signals, face time,
    length in minutes, place in the broadcast, and which interaction kinds rose."""
    f = {"score": p.score, "video": p.signals.get("video", 0.0), "audio": p.signals.get("audio", 0.0),
         "interactions": p.signals.get("interactions", 0.0), "face_share": p.face_share,
         "length_min": p.length_s / 60.0, "position": p.position}
    for k in KIND_FEATURES:
        f[f"kind_{k}"] = 1.0 if k in p.kinds else 0.0
    return {k: (v if math.isfinite(v) else 0.0) for k, v in f.items()}
