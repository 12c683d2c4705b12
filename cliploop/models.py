"""Outputs and state of the clip traffic loop: ``liveroom.clip-stats``,
``liveroom.promotions`` and the per-room state a worker keeps in its table.

msgspec structs, so the embedded run and the Kafka agent write the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from .events import ClipPublish


@dataclass(frozen=True)
class ClipLoopConfig:
    """How the loop counts and promotes. Event time only; ``period_s`` is the
    promotion period (an hour), ``budget`` the promoted impressions a room may
    buy per period."""

    period_s: float = 3600.0
    grace_s: float = 300.0  # how late a clip event may come and still count in its own period
    budget: int = 2000  # promoted impressions per room per period
    slots: int = 20  # the budget is handed out in this many equal parts
    explore_max: float = 0.3  # at most this share of the slots goes to clips other than the leader
    prior_impressions: float = 200.0  # weight of a clip's prior, in impressions
    base_rate: float = 0.004  # room entries per impression a clip of reference score draws (the prior)
    reference_score: float = 4.0  # a highlight score worth base_rate
    half_life_h: float = 24.0  # old outcomes count for half after this long: pull decays over days
    entries_per_click: float = 0.4  # the prior of a room's conversion from a click to the room to an entry
    conversion_weight: float = 50.0  # ... worth this many clicks
    max_age_days: float = 14.0  # older clips are no longer promoted
    max_clips: int = 500  # clips a room remembers (the oldest forgotten first; later events start it afresh)
    max_future_s: float = 7 * 86_400.0  # an event this far ahead of its room is refused (ts_jump)
    max_empty_periods: int = 48  # a silent gap closes at most this many empty periods
    seed: int = 0


class ClipStats(msgspec.Struct, kw_only=True, frozen=True):
    """One clip over one period of event time (``ts`` is the period's end)."""

    room_id: str
    clip_id: str
    ts: float
    published: float | None = None  # the clip's clip_publish time (None: not published yet)
    hour: int  # whole periods since publication (0: the first)
    impressions: int
    promoted_impressions: int
    plays: int
    completes: int
    watch_ratio: float | None  # mean over completes this period
    likes: int
    shares: int
    clicks_room: int
    clicks_product: int
    entries: int  # room entries the clip drew
    orders: int
    gmv: float
    ctr: float | None  # clicks (room and product) per impression
    pull: float | None  # entries per 1000 impressions, this period
    total_impressions: int
    total_entries: int
    total_orders: int
    total_gmv: float
    decay: float | None  # pull of the last day over pull of the first day (None before day two)


class Allocation(msgspec.Struct, kw_only=True, frozen=True):
    clip_id: str
    impressions: int
    share: float
    mean: float  # posterior mean of entries per impression
    prior: float  # the prior mean it started from


class Promotion(msgspec.Struct, kw_only=True, frozen=True):
    """Which of a room's clips to push in the period starting at ``ts``."""

    room_id: str
    ts: float
    seq: int  # the period's index (ts / period_s)
    budget: int
    allocations: list[Allocation]
    explored: float  # share of the budget given to clips other than the leader
    reason: str


class ClipState(msgspec.Struct, kw_only=True):
    clip_id: str
    published: float | None  # None: events before its clip_publish (counted; not promoted until published)
    score: float = 0.0
    features: dict[str, float] = msgspec.field(default_factory=dict)
    prior: float = 0.0
    impressions: int = 0
    clicks: int = 0  # to the room
    entries: int = 0
    orders: int = 0
    gmv: float = 0.0
    disc_impressions: float = 0.0  # discounted by half_life_h, for the posterior
    disc_clicks: float = 0.0  # clicks to the room, the first sign of pull (entries may come a broadcast later)
    daily: list[list[int]] = msgspec.field(default_factory=list)  # [day, impressions, entries], newest last


class PeriodCounts(msgspec.Struct, kw_only=True, array_like=True):
    """One clip's counts in one open period, summed as its events come: sums do
    not depend on arrival order (money and watch ratios in integer millionths,
    so float rounding cannot either), and a clip publication keeps the first and
    the last by ``(ts, event_id)``. An hour of a million events is a few numbers."""

    impressions: int = 0
    promoted_impressions: int = 0
    plays: int = 0
    completes: int = 0
    watch_micro: int = 0
    likes: int = 0
    shares: int = 0
    clicks_room: int = 0
    clicks_product: int = 0
    entries: int = 0
    orders: int = 0
    gmv_micro: int = 0  # saturates at GMV_MICRO_MAX (an order-independent bound, and msgpack's int range)
    first_publish: ClipPublish | None = None
    last_publish: ClipPublish | None = None


class RoomClips(msgspec.Struct, kw_only=True):
    """A room's clip state: its clips, the counts of its open periods, the
    hashed ids of their events (for dedup), and its event-time clock."""

    room_id: str
    clips: dict[str, ClipState] = msgspec.field(default_factory=dict)
    open: dict[int, dict[str, PeriodCounts]] = msgspec.field(default_factory=dict)  # period -> clip -> counts
    seen: dict[int, bytearray] = msgspec.field(default_factory=dict)  # period -> 8-byte id hashes, in arrival order
    max_ts: float = 0.0
    closed_through: int = -1  # every period up to this one is closed
    entries: int = 0  # room entries drawn by all its clips, and clicks to the room: the room's
    room_clicks: int = 0  # conversion from a click to an entry
    gen: int = 0  # persists of this state so far (see ``cliploop/parts.py``)
    done: int = -1  # the Kafka runtime's: the partition offset this state holds the room's messages through
