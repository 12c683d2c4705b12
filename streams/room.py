"""Per-room state core: event-time windows, online viewers, rates, totals, surges.

Pure and deterministic: events in, snapshots and moments out, no clock, no I/O.
Its whole state is one :class:`RoomState` struct, so the embedded runtime can
park it encoded and the Kafka runtime persist it (in parts, see
``streams/room_parts.py``), with the same results.

Ordering. Events are buffered per tick and applied only when the tick closes
(its end plus the grace period has been passed by the room's newest event time),
sorted by ``(ts, event_id)``. So any arrival order within the grace period gives
the same snapshots, to the bit: float sums are added in one fixed order.

Whose clock. A room's event time moves with the room's own events, never with
the ad server's ``spend`` reports: a report answers a bid decision, a decision
answers a snapshot, and if reports closed ticks, a room with nothing going on
(or whose ``room_end`` was lost) would be kept ticking forever by its own
decisions. A report is applied in its tick when the room's events close it.

Silent gaps. A room that goes quiet and comes back hours later would otherwise
owe one snapshot per tick of the gap (an event an hour apart: 720 snapshots).
A silent gap gives snapshots for its first ``silent_snapshots`` empty ticks (12 by
default: the rate window at 5 s ticks, so the per-minute rates reach zero), then
none until the room's next event. Once the gap is longer than the rate window and
the surge baseline, further empty ticks change nothing in the state, so they are
skipped outright: the cost of a gap is bounded, whatever its length.

Who makes an event late. Only the room's own clock: an event is ``late`` when
the room's own newest event time had already closed its tick. Ticks can also be
closed by something else: the end of the input, a Kafka partition whose event
time has moved on while this room was quiet, or a partition gone idle (see
``liveroom/kafka/app.py``). Such a close publishes the tick without waiting, and
the tick *reopens*: an event for it that comes afterwards is counted in the
room's first open tick (its totals are exact; only the per-tick rates place it
one tick later). Reopening reaches back as far as event ids are remembered, so a
re-delivered copy is still recognised as a duplicate and never counted twice.

Memory of event ids. Ids are kept for the ticks still open and for
``dedup_horizon_s`` of closed ticks, at most ``max_dedup_ids`` ids per room.
Past the cap the oldest closed ticks are forgotten first; a copy of a forgotten
id can only belong to a tick that is closed, so it is refused as ``late`` (a dead
letter), never counted twice. The ids of open ticks are never dropped: their
events are held anyway, and grace bounds them.

Changes, for stores that write in parts. A processor given a
:class:`~streams.room_parts.Journal` reports what it changed (events buffered,
ticks closed, ids remembered and forgotten, viewers in and out), so the Kafka
runtime writes each change once instead of the room's whole state.
"""

from __future__ import annotations

from operator import attrgetter

import msgspec

from .config import CoreConfig
from .events import INTERACTION_KINDS, N_KINDS, AnyEvent, Enter, Gift, Leave, Like, Order, RoomEnd, RoomStart, Spend
from .models import Moment, RoomMetrics
from .surge import SurgeDetector, SurgeState
from .windows import closable_until, tick_end, ticks_per

# Layout of a per-tick count vector: one slot per interaction kind, then entries.
ORGANIC = N_KINDS
PAID = N_KINDS + 1
VECTOR_LEN = N_KINDS + 2

# A viewer's presence, as a store that writes in parts records it.
ABSENT, VIEWER, PAID_VIEWER = 0, 1, 2

DUPLICATE = "duplicate"
LATE = "late"
TS_JUMP = "ts_jump"
# What a spend report may cover when it arrives: the decision made on tick t's
# snapshot has seq t + 1, so with ticks closed below ``next_tick`` the newest
# decision that can exist is ``next_tick``; the ad server reports ``covers = k - 1``
# when it applies decision k, so an honest report covers less than ``next_tick``.
# One covering more names a decision not made yet (see bidding.budget).
SPEND_UNISSUED = "spend_unissued"
SPEND_TOTAL_DOWN = "spend_total_down"

_apply_order = attrgetter("ts", "event_id")


class RoomState(msgspec.Struct, kw_only=True):
    """All of one room's state; encodable with msgspec (JSON or msgpack)."""

    room_id: str
    max_ts: float = 0.0
    next_tick: int | None = None  # lowest tick not closed yet; None before the first close
    buckets: dict[int, list[AnyEvent]] = msgspec.field(default_factory=dict)
    seen: set[str] = msgspec.field(default_factory=set)
    seen_log: list[tuple[int, list[str]]] = msgspec.field(default_factory=list)
    online: set[str] = msgspec.field(default_factory=set)
    peak_online: int = 0
    recent: list[list[int]] = msgspec.field(default_factory=list)
    recent_online: list[int] = msgspec.field(default_factory=list)
    totals: list[int] = msgspec.field(default_factory=lambda: [0] * VECTOR_LEN)
    gmv: float = 0.0
    gift_value: float = 0.0
    spend: float = 0.0
    live: bool = True
    started_at: float | None = None
    ended_at: float | None = None
    surge: SurgeState = msgspec.field(default_factory=SurgeState)
    quiet: int = 0  # empty ticks closed in a row (a silent gap)
    first_tick: int | None = None  # the room's first closed tick
    covered_seq: int | None = None  # newest decision seq a spend report covers
    covered_total: float = 0.0  # cumulative spend under decisions <= covered_seq
    paid: set[str] = msgspec.field(default_factory=set)  # online viewers who entered as paid
    paid_totals: list[int] = msgspec.field(default_factory=lambda: [0] * N_KINDS)  # their interactions, by kind
    recall_from: int | None = None  # ids of closed ticks below this one are forgotten
    # kept by stores that write in parts (streams/room_parts.py): persist count, and stored segments per open tick
    gen: int = 0
    segments: dict[int, int] = msgspec.field(default_factory=dict)
    # kept by the Kafka runtime (liveroom/kafka/app.py): the partition offset this state holds the
    # room's messages through, and the partition clock's moves that its messages made since the
    # partition's processed offset last written, as (offset, clock); see "Re-delivery" there
    done: int = -1
    moves: list[tuple[int, float]] = msgspec.field(default_factory=list)


class Outputs:
    """Where a processor appends what it produced; a runtime drains the lists."""

    __slots__ = ("metrics", "moments", "refused")

    def __init__(self) -> None:
        self.metrics: list[RoomMetrics] = []
        self.moments: list[Moment] = []
        # events accepted, then found wrong when their tick closed: (event, reason, detail);
        # the runtime turns them into dead letters (see StreamCore.drain)
        self.refused: list[tuple[AnyEvent, str, str]] = []

    def drain(self) -> tuple[list[RoomMetrics], list[Moment]]:
        metrics, moments = self.metrics, self.moments
        self.metrics, self.moments = [], []
        return metrics, moments


class RoomProcessor:
    """Runs one room's :class:`RoomState` forward. Cheap to build around a stored state."""

    __slots__ = ("config", "state", "out", "journal", "_tick", "_grace", "_window", "_horizon", "_max_future",
                 "_surge", "_close_at", "_seen", "_buckets", "_settled", "_max_ids")

    def __init__(self, config: CoreConfig, state: RoomState, out: Outputs, journal=None) -> None:
        self.config = config
        self.state = state
        self.out = out
        self.journal = journal  # a streams.room_parts.Journal, or None
        self._tick = config.tick_s
        self._grace = config.grace_s
        self._window = ticks_per(config.rate_window_s, config.tick_s)
        self._horizon = ticks_per(config.dedup_horizon_s, config.tick_s)
        self._max_future = config.max_future_s
        self._max_ids = config.max_dedup_ids
        self._seen = state.seen
        self._buckets = state.buckets
        self._surge = SurgeDetector(config.surge, tick_s=config.tick_s, state=state.surge)
        # Empty ticks in a row after which another empty tick leaves the state as it
        # was: the rate window is all zeros, the surge baseline is all calm.
        # (A gap is skipped only past its snapshots, so a huge ``silent_snapshots`` skips nothing.)
        self._settled = max(self._window, self._surge.settled_after, config.silent_snapshots)
        self._close_at = self._next_close_ts()

    def accept(self, event: AnyEvent) -> str | None:
        """Take one valid event. Returns None when accepted, else why not
        (``duplicate``, ``late`` or ``ts_jump``); the caller accounts for it."""
        eid = event.event_id
        seen = self._seen
        if eid in seen:
            return DUPLICATE
        st = self.state
        ts = event.ts
        idx = int(ts // self._tick)  # tick_index, inlined: this is the per-event hot path
        if st.next_tick is not None and idx < st.next_tick:
            if idx < closable_until(st.max_ts, self._grace, self._tick) or (
                    st.recall_from is not None and idx < st.recall_from):
                return LATE  # the room's own clock closed it (or its ids are forgotten)
            idx = st.next_tick  # closed by something else: reopened, counted in the first open tick
        if ts > st.max_ts + self._max_future and st.max_ts > 0.0:
            return TS_JUMP
        if type(event) is Spend and event.covers is not None and (st.next_tick is None or event.covers >= st.next_tick):
            return SPEND_UNISSUED
        seen.add(eid)
        if self.journal is not None:
            self.journal.buffered(idx, event)
        bucket = self._buckets.get(idx)
        if bucket is None:
            self._buckets[idx] = [event]
            if st.next_tick is None:  # before the first close, the lowest tick may move down
                self._close_at = min(self._close_at, tick_end(idx, self._tick) + self._grace)
        else:
            bucket.append(event)
        if ts > st.max_ts and type(event) is not Spend:  # the ad server's reports are inputs, not a clock
            st.max_ts = ts
            if ts >= self._close_at:
                self._close_until(closable_until(ts, self._grace, self._tick))
        return None

    def flush(self) -> None:
        """Close every buffered tick now (end of input, or a room gone silent)
        and end an open surge. Events that come later for those ticks reopen them
        (see the module docstring)."""
        st = self.state
        if st.buckets:
            self._close_until(max(st.buckets) + 1)
        moment = self._surge.post_process(st.room_id)
        if moment is not None:
            self.out.moments.append(moment)

    def close_through(self, ts: float) -> bool:
        """Close the buffered ticks whose end plus grace lies at or before event
        time ``ts`` (another clock than the room's own: its Kafka partition's).
        Never closes past the newest buffered tick, so no empty tick is published
        that the room's own next event would not publish too. Returns whether
        anything closed."""
        st = self.state
        if not st.buckets:
            return False
        stop = min(closable_until(ts, self._grace, self._tick), max(st.buckets) + 1)
        start = st.next_tick if st.next_tick is not None else min(st.buckets)
        if stop <= start:
            return False
        self._close_until(stop)
        return True

    # -- internals -------------------------------------------------------

    def _next_close_ts(self) -> float:
        """Newest event time at which the lowest open tick may close."""
        st = self.state
        if st.next_tick is not None:
            first = st.next_tick
        elif st.buckets:
            first = min(st.buckets)
        else:
            return float("inf")
        return tick_end(first, self._tick) + self._grace

    def _close_until(self, stop: int) -> None:
        st = self.state
        start = st.next_tick if st.next_tick is not None else (min(st.buckets) if st.buckets else stop)
        buckets = st.buckets
        idx = start
        while idx < stop:
            if st.quiet >= self._settled and idx not in buckets:
                # Settled silence: skip to the next tick holding events (see the module docstring).
                idx = min(min((b for b in buckets if b > idx), default=stop), stop)
                continue
            self._close(idx)
            idx += 1
        if stop > start:
            st.next_tick = stop
            self._forget_before(stop - 1 - self._horizon)  # as if every skipped tick had closed
        self._close_at = self._next_close_ts()

    def _close(self, idx: int) -> None:
        st = self.state
        vec = [0] * VECTOR_LEN
        bucket = st.buckets.pop(idx, None)
        journal = self.journal
        if bucket:
            st.quiet = 0
            if len(bucket) > 1:
                bucket.sort(key=_apply_order)
            self._apply(bucket, vec)
            ids = [e.event_id for e in bucket]
            st.seen_log.append((idx, ids))
            if journal is not None:
                journal.closed(idx, ids)
        else:
            st.quiet += 1
        self._forget_before(idx - self._horizon)
        if len(st.seen) > self._max_ids:
            self._forget_oldest()
        online = len(st.online)
        if online > st.peak_online:
            st.peak_online = online
        st.totals = [a + b for a, b in zip(st.totals, vec)]
        st.recent.append(vec)
        st.recent_online.append(online)
        if len(st.recent) > self._window:
            del st.recent[0]
            del st.recent_online[0]
        opened = st.first_tick is None
        if opened:
            st.first_tick = idx
            opened = st.started_at is not None and int(st.started_at // self._tick) == idx
        if st.quiet <= self.config.silent_snapshots:
            self.out.metrics.append(self._snapshot(idx, online, opened))
        moment = self._surge.process_tick(st.room_id, idx, vec[:N_KINDS], online)
        if moment is not None:
            self.out.moments.append(moment)

    def _forget_before(self, idx: int) -> None:
        """Forget event ids of ticks before ``idx`` (closed more than the dedup horizon ago)."""
        st = self.state
        log = st.seen_log
        while log and log[0][0] < idx:
            self._forget_first()
        if st.recall_from is None or idx > st.recall_from:
            st.recall_from = idx

    def _forget_oldest(self) -> None:
        """Over ``max_dedup_ids``: forget closed ticks' ids, oldest first (see the module docstring)."""
        st = self.state
        while len(st.seen) > self._max_ids and st.seen_log:
            st.recall_from = st.seen_log[0][0] + 1
            self._forget_first()

    def _forget_first(self) -> None:
        st = self.state
        tick, ids = st.seen_log.pop(0)
        discard = st.seen.discard
        for eid in ids:
            discard(eid)
        if self.journal is not None:
            self.journal.forgot(tick, ids)

    def _apply(self, events: list[AnyEvent], vec: list[int]) -> None:
        st = self.state
        online = st.online
        paid = st.paid
        journal = self.journal
        for ev in events:
            cls = type(ev)
            k = cls.kind_index
            if k >= 0:
                n = ev.count if cls is Like else 1
                vec[k] += n
                if cls is Order:
                    st.gmv += ev.amount
                elif cls is Gift:
                    st.gift_value += ev.value
                if ev.user_id in paid:  # attributed to bought traffic: the cost cap is measured on these
                    st.paid_totals[k] += n
            elif cls is Enter:
                if st.live and ev.user_id not in online:
                    online.add(ev.user_id)
                    if ev.source == "paid":
                        paid.add(ev.user_id)
                        vec[PAID] += 1
                    else:
                        vec[ORGANIC] += 1
                    if journal is not None:
                        journal.presence(ev.user_id, PAID_VIEWER if ev.source == "paid" else VIEWER, ABSENT)
            elif cls is Leave:
                if journal is not None and ev.user_id in online:
                    journal.presence(ev.user_id, ABSENT, PAID_VIEWER if ev.user_id in paid else VIEWER)
                online.discard(ev.user_id)
                paid.discard(ev.user_id)
            elif cls is Spend:
                self._spend(ev)
            elif cls is RoomStart:
                st.live = True
                if st.started_at is None:
                    st.started_at = ev.ts
            elif cls is RoomEnd:
                # The broadcast is over: nobody is watching any more.
                st.live = False
                st.ended_at = ev.ts
                if journal is not None:
                    for user in online:
                        journal.presence(user, ABSENT, PAID_VIEWER if user in paid else VIEWER)
                online.clear()
                paid.clear()

    def _spend(self, ev: Spend) -> None:
        """Apply a spend report. Cumulative reports: the newest cover wins,
        whatever the arrival order; an older cover can only raise the total (a
        later decision's cumulative spend is never less). A report whose total is
        below one already taken for the same or an earlier cover contradicts it:
        refused (a dead letter), its ``amount`` not counted."""
        st = self.state
        covers, total = ev.covers, ev.total
        if covers is not None and total is not None and st.covered_seq is not None:
            if covers >= st.covered_seq and total < st.covered_total:
                self.out.refused.append((ev, SPEND_TOTAL_DOWN,
                                         f"total {total} for decisions <= {covers} is below {st.covered_total} "
                                         f"already reported for decisions <= {st.covered_seq} (room {st.room_id})"))
                return
        st.spend += ev.amount
        if covers is None or total is None:
            return
        if st.covered_seq is None or covers > st.covered_seq:
            st.covered_seq, st.covered_total = covers, total
        elif total > st.covered_total:
            st.covered_total = total

    def _snapshot(self, idx: int, online: int, opened: bool) -> RoomMetrics:
        st = self.state
        n = len(st.recent)
        sums = [sum(col) for col in zip(*st.recent)]
        per_min = 60.0 / (n * self._tick)
        viewer_min = sum(st.recent_online) * self._tick / 60.0
        inter = sum(sums[:N_KINDS])
        totals = st.totals
        return RoomMetrics(
            room_id=st.room_id,
            ts=tick_end(idx, self._tick),
            online=online,
            peak_online=st.peak_online,
            organic_entries_per_min=round(sums[ORGANIC] * per_min, 4),
            paid_entries_per_min=round(sums[PAID] * per_min, 4),
            interactions_per_min={k: round(sums[i] * per_min, 4) for i, k in enumerate(INTERACTION_KINDS)},
            interactions_per_viewer_min=round(inter / viewer_min, 6) if viewer_min > 0 else 0.0,
            organic_entries_total=totals[ORGANIC],
            paid_entries_total=totals[PAID],
            interactions_total={k: totals[i] for i, k in enumerate(INTERACTION_KINDS)},
            orders_total=totals[N_KINDS - 1],
            gmv_total=round(st.gmv, 6),
            gift_value_total=round(st.gift_value, 6),
            spend_total=round(st.spend, 6),
            live=st.live,
            spend_covered_seq=st.covered_seq,
            spend_covered_total=st.covered_total,
            paid_interactions_total={k: st.paid_totals[i] for i, k in enumerate(INTERACTION_KINDS)},
            opened=opened,
        )


def new_room(room_id: str) -> RoomState:
    return RoomState(room_id=room_id)



_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(RoomState)


def encode_state(state: RoomState) -> bytes:
    """Bytes of a room's whole state (a parked room, a checkpoint)."""
    return _state_encoder.encode(state)


def decode_state(data: bytes) -> RoomState:
    return _state_decoder.decode(data)
