"""The clip traffic loop's pure core: clip events in; per-clip stats and
promotion decisions out, in event time.

Like the streams core: events are buffered per period (an hour) and applied,
sorted by ``(ts, event_id)``, once the room's newest clip event has passed the
period's end by ``grace_s``; so any arrival order within the grace gives the same
outputs, embedded or on Kafka. Closing a period writes one :class:`ClipStats`
per clip active in it, then the room's :class:`Promotion` for the next period.
Every input is accounted for: processed, duplicate (same ``event_id``), blank,
or a dead letter with its bytes and reason (the room events' reasons, plus
``late``, ``ts_jump`` and ``key_mismatch``). No I/O, no wall clock.
"""

from __future__ import annotations

import math
from typing import Callable

import msgspec

from streams.core import dead_letter
from streams.events import JSON_SPACE, BlankLines, Rejected
from streams.models import DeadLetter

from .events import (ClipClick, ClipComplete, ClipEntry, ClipImpression, ClipLike, ClipOrder,
                     ClipPlay, ClipPublish, ClipShare, clip_event_decoder)
from .models import ClipLoopConfig, ClipState, ClipStats, Promotion, RoomClips
from .promote import allocate, conversion, score_prior

DAY_S = 86_400.0
KEEP_DAYS = 30  # daily aggregates kept per clip (the decay curve)
PriorFn = Callable[[ClipPublish], float]


class ClipLoopCore:
    """Many rooms' clip loops. ``restore`` returns a room's stored state (Kafka);
    ``prior`` overrides the score prior with a learned pull model's prediction."""

    def __init__(self, config: ClipLoopConfig = ClipLoopConfig(), *, source: str = "clip-events",
                 max_event_bytes: int = 65536, dead_letter_max_raw: int = 65536,
                 restore: Callable[[str], RoomClips | None] | None = None, prior: PriorFn | None = None) -> None:
        self.config = config
        self.source = source
        self.decoder = clip_event_decoder(max_bytes=max_event_bytes)
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
        if event.event_id in ids:
            self.duplicates += 1
            return
        ids.add(event.event_id)
        room.seen.setdefault(period, []).append(event.event_id)
        room.buckets.setdefault(period, []).append(event)
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
            self._ids[room_id] = {i for ids in room.seen.values() for i in ids}
        return room

    # -- closing periods -----------------------------------------------------

    def flush(self) -> None:
        """Close every open period of every room (the end of the input; an idle partition)."""
        for room in self.rooms.values():
            self.flush_room(room.room_id)

    def flush_room(self, room_id: str) -> None:
        room = self._room(room_id)
        if room.buckets:
            self._close_through(room, max(room.buckets))

    def _close_through(self, room: RoomClips, due: int) -> None:
        cfg = self.config
        if room.closed_through < 0:
            if not room.buckets:
                return
            room.closed_through = min(room.buckets) - 1
        first = max(room.closed_through + 1, due - cfg.max_empty_periods + 1)
        periods = sorted({p for p in room.buckets if p <= due} | set(range(first, due + 1)))
        previous = room.closed_through
        for p in periods:
            self._close(room, p, p - previous)  # a silent gap skipped still ages the outcomes
            previous = p
        room.closed_through = due
        # A copy of an event of a closed period is late, never counted again: only the
        # ids of open periods need remembering (they are in the room's state record).
        for p in [p for p in room.seen if p <= due]:
            for i in room.seen.pop(p):
                self._ids[room.room_id].discard(i)

    def _close(self, room: RoomClips, period: int, periods_since_last: int = 1) -> None:
        cfg = self.config
        end = (period + 1) * cfg.period_s
        counts: dict[str, dict] = {}
        for ev in sorted(room.buckets.pop(period, []), key=lambda e: (e.ts, e.event_id)):
            clip = room.clips.get(ev.clip_id)
            if clip is None:
                clip = room.clips[ev.clip_id] = ClipState(clip_id=ev.clip_id, published=None)
            c = counts.setdefault(ev.clip_id, _zero())
            t = type(ev)
            if t is ClipPublish:
                if clip.published is None:
                    clip.published = ev.ts
                clip.score = ev.score
                clip.features = features_of(ev)
                clip.prior = self.prior(ev) if self.prior is not None else score_prior(ev.score, cfg)
            elif t is ClipImpression:
                c["impressions"] += ev.count
                c["promoted_impressions"] += ev.count if ev.promoted else 0
            elif t is ClipPlay:
                c["plays"] += 1
            elif t is ClipComplete:
                c["completes"] += 1
                c["watch"] += ev.watch_ratio
            elif t is ClipLike:
                c["likes"] += 1
            elif t is ClipShare:
                c["shares"] += 1
            elif t is ClipClick:
                c["clicks_room" if ev.target == "room" else "clicks_product"] += 1
            elif t is ClipEntry:
                c["entries"] += 1
            elif t is ClipOrder:
                c["orders"] += 1
                c["gmv"] += ev.amount
        keep = 0.5 ** (periods_since_last * cfg.period_s / 3600.0 / cfg.half_life_h) if cfg.half_life_h > 0 else 0.0
        for clip_id in sorted(room.clips):
            clip = room.clips[clip_id]
            c = counts.get(clip_id)
            clip.disc_impressions *= keep
            clip.disc_clicks *= keep
            if c is None:
                continue
            clip.disc_impressions += c["impressions"]
            clip.disc_clicks += c["clicks_room"]
            room.entries += c["entries"]
            room.room_clicks += c["clicks_room"]
            clip.impressions += c["impressions"]
            clip.clicks += c["clicks_room"]
            clip.entries += c["entries"]
            clip.orders += c["orders"]
            clip.gmv = round(clip.gmv + c["gmv"], 6)
            born = clip.published if clip.published is not None else period * cfg.period_s
            day = max(0, int((end - 1e-6 - born) // DAY_S))
            if clip.daily and clip.daily[-1][0] == day:
                clip.daily[-1][1] += c["impressions"]
                clip.daily[-1][2] += c["entries"]
            else:
                clip.daily.append([day, c["impressions"], c["entries"]])
                del clip.daily[:-KEEP_DAYS]
            self.stats.append(self._stats(room.room_id, clip, c, end, born))
        self._keep_newest(room)
        live = [c for c in room.clips.values() if c.published is not None and c.published <= end
                and end - c.published <= cfg.max_age_days * DAY_S]
        if live:
            self.promotions.append(allocate(room.room_id, period + 1, live, cfg,
                                            conv=conversion(room.entries, room.room_clicks, cfg)))

    def _keep_newest(self, room: RoomClips) -> None:
        """At most ``max_clips`` clips per room, the oldest published forgotten first:
        a room's state is one table record and must stay well under the broker's
        message size (a clip's state is about 600 bytes)."""
        excess = len(room.clips) - self.config.max_clips
        if excess > 0:
            by_age = sorted(room.clips.values(), key=lambda c: (c.published is not None, c.published or 0.0, c.clip_id))
            for c in by_age[:excess]:
                del room.clips[c.clip_id]

    def _stats(self, room_id: str, clip: ClipState, c: dict, end: float, born: float) -> ClipStats:
        clicks = c["clicks_room"] + c["clicks_product"]
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
            impressions=c["impressions"], promoted_impressions=c["promoted_impressions"], plays=c["plays"],
            completes=c["completes"], watch_ratio=round(c["watch"] / c["completes"], 4) if c["completes"] else None,
            likes=c["likes"], shares=c["shares"], clicks_room=c["clicks_room"], clicks_product=c["clicks_product"],
            entries=c["entries"], orders=c["orders"], gmv=round(c["gmv"], 6),
            # per impression at most 1, as the posterior counts them: counts as reported, ratios bounded
            ctr=round(min(1.0, clicks / c["impressions"]), 6) if c["impressions"] else None,
            pull=round(1000 * min(1.0, c["entries"] / c["impressions"]), 4) if c["impressions"] else None,
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


def _zero() -> dict:
    return {"impressions": 0, "promoted_impressions": 0, "plays": 0, "completes": 0, "watch": 0.0, "likes": 0,
            "shares": 0, "clicks_room": 0, "clicks_product": 0, "entries": 0, "orders": 0, "gmv": 0.0}


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
