"""Outputs of the streams core: the ``liveroom.room-metrics``, ``liveroom.moments``
and ``liveroom.dead-letters`` contracts, plus the per-room campaign settings.

They are msgspec structs so both runtimes encode them to the same bytes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class RoomMetrics(msgspec.Struct, kw_only=True, frozen=True):
    """Snapshot of one room at the end of one tick of event time.

    Rates (``*_per_min``) cover the trailing rate window (default 60 s) ending
    at ``ts``; ``*_total`` fields are cumulative since the room was first seen.
    """

    room_id: str
    ts: float
    online: int
    peak_online: int
    organic_entries_per_min: float
    paid_entries_per_min: float
    interactions_per_min: dict[str, float]
    interactions_per_viewer_min: float
    organic_entries_total: int
    paid_entries_total: int
    interactions_total: dict[str, int]
    orders_total: int
    gmv_total: float
    gift_value_total: float
    spend_total: float
    live: bool
    # Spend reports that answer bid decisions: every spend under decisions with
    # seq <= spend_covered_seq is in spend_covered_total (None: no such report yet).
    spend_covered_seq: int | None = None
    spend_covered_total: float = 0.0
    # Interactions by viewers who entered as paid and are still in the room, by kind.
    paid_interactions_total: dict[str, int] = msgspec.field(default_factory=dict)
    # The room's first snapshot, with its room_start in this tick: no bid decision can precede it.
    opened: bool = False


class Moment(msgspec.Struct, kw_only=True, frozen=True):
    """An interaction surge: the room's interaction rate well above its own
    rolling baseline. ``strength`` is the peak robust z-score."""

    room_id: str
    start: float
    end: float
    strength: float
    peak_per_min: float
    interactions: int
    kinds: list[str]


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True):
    """An input that could not be used, with everything needed to look at it
    again: the raw bytes (base64 in JSON), where it came from and why.

    ``raw`` keeps at most the configured number of bytes (``dead_letter_max_raw``,
    by default as many as the largest accepted event, so every input of a sane
    size is kept whole). A longer input keeps its prefix; ``raw_bytes`` is then
    its full length and ``raw_sha256`` the hash of all of it, so it can still be
    matched against the source."""

    reason: str
    detail: str
    source: str
    raw: bytes
    room_id: str | None = None
    raw_bytes: int | None = None  # full length, when ``raw`` is only its prefix
    raw_sha256: str | None = None  # hex digest of the full input, when ``raw`` is only its prefix


# Campaign bounds are part of the contract: the controllers are proven finite for
# every campaign inside them (tests/bidding, hypothesis over the extremes).
Weight = Annotated[float, msgspec.Meta(ge=0, le=1e6)]
Price = Annotated[float, msgspec.Meta(ge=1e-9, le=1e9)]
Budget = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
Seconds = Annotated[float, msgspec.Meta(ge=1e-3, le=1e7)]


class RampSettings(msgspec.Struct, kw_only=True, frozen=True):
    window_s: Seconds = 300.0
    budget: Budget = 200.0
    target_paid_entries: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 100
    max_cost_per_entry: Price = 2.0


class McbSettings(msgspec.Struct, kw_only=True, frozen=True):
    max_cost_per_interaction: Price = 0.5
    duration_s: Seconds = 3600.0  # planned broadcast length from room_start: the spend plan's horizon
    weights: dict[str, Weight] = msgspec.field(
        default_factory=lambda: {"comment": 1.0, "like": 0.2, "share": 2.0, "follow": 2.0,
                                 "gift": 1.0, "cart_add": 3.0, "order": 10.0}
    )


Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]  # ISO 4217, e.g. CNY, USD
Epoch = Annotated[float, msgspec.Meta(ge=0, le=1e11)]
MomentKind = Annotated[str, msgspec.Meta(max_length=64)]


class ScheduledMoment(msgspec.Struct, kw_only=True, frozen=True):
    """One entry of a room's run of show: a product reveal or flash sale the
    merchant has planned for ``at`` (epoch s), for about ``duration_s``.

    Why bidding wants it: a viewer bought now is worth the interactions of their
    next minute, and a moment that has not started yet cannot be seen in the
    room's rates. The schedule is a prior, not a promise: bidding learns from the
    room how much a scheduled window actually lifts it (a run of show that slips
    or lists a moment that never comes is trusted less)."""

    at: Epoch
    duration_s: Seconds = 60.0
    kind: MomentKind | None = None


RunOfShow = Annotated[list[ScheduledMoment], msgspec.Meta(max_length=500)]


class Campaign(msgspec.Struct, kw_only=True, frozen=True):
    """Per-room settings (``liveroom.campaigns``, compacted, keyed by room).

    ``total_budget`` has no default on purpose: money is never invented. A room
    without a campaign gets none of it (``no_campaign``: a zero budget), and a
    campaign that does not say its budget is refused. ``currency`` labels
    budgets, spend and GMV in reports (None: not given, shown as such).
    ``run_of_show`` lists the room's planned moments (republish the campaign
    when the plan changes)."""

    room_id: str
    total_budget: Budget
    currency: Currency | None = None
    ramp: RampSettings = msgspec.field(default_factory=RampSettings)
    mcb: McbSettings = msgspec.field(default_factory=McbSettings)
    run_of_show: RunOfShow = msgspec.field(default_factory=list)  # planned moments; empty: none known


def no_campaign(room_id: str) -> Campaign:
    """What a room without a campaign bids with: nothing (no campaign, no spend)."""
    return Campaign(room_id=room_id, total_budget=0.0)
