"""Data at the bidding boundary: what a controller observes each tick and what it decides.

The bid for one impression is ``min(bid_cap, multiplier * predicted value)``,
where the predicted value is ``unit_value`` (a viewer of average propensity in
this room now) times the viewer's propensity, which the ad system knows when it
bids. A *flat* decision (multiplier 0) bids ``bid_cap`` for everyone. Every
decision carries a ``spend_cap`` for its tick, which is how budget safety is
enforced: the ad server (or the market simulator) never spends more than the
cap until the next decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from streams.events import INTERACTION_KINDS
from streams.models import Campaign, RoomMetrics

from .run_of_show import STAY_S, MomentGain, Window, forecast_factor, overlap_s

FAST_RAMP = "fast_ramp"
INTERACTION_MCB = "interaction_mcb"
PAUSED = "paused"


class BidDecision(msgspec.Struct, kw_only=True, frozen=True):
    """``liveroom.bid-decisions``: one per room per tick."""

    room_id: str
    ts: float
    seq: int  # the decision's sequence number (its snapshot's tick): spend reports say which seq they cover
    strategy: str  # fast_ramp | interaction_mcb | paused | pid | fixed
    bid_cap: float | None  # no impression is bid above this (None: no cap)
    multiplier: float  # bid = multiplier * predicted value (0: flat bid_cap)
    unit_value: float  # predicted weighted interactions of an average-propensity viewer
    spend_cap: float  # at most this much may be spent until the next decision
    budget_left: float  # budget - spent - committed: what new caps may still take
    reason: str
    lam: float | None = None
    mu: float | None = None
    budget: float | None = None  # the campaign's budget in force
    spent: float | None = None  # spend the ad server has reported (for decisions up to the newest covered)
    committed: float | None = None  # caps issued and not yet covered by a report: they count as spent until one is


@dataclass(frozen=True, slots=True)
class Observation:
    """What a controller sees at the end of a tick.

    ``value_rate`` is the room's weighted interactions per viewer-minute now (a
    hot room is worth more); ``seq`` is the decision's sequence number (the
    snapshot's tick). ``covered_seq`` and ``covered_total`` are the newest spend
    report that answers decisions: every spend under decisions with
    ``seq <= covered_seq`` is in ``covered_total`` (cumulative; the only spend
    figure the budget guard trusts). ``opened``: the room's first snapshot, with
    its room_start in it, so no decision can precede this one.
    ``paid_entries_total`` and ``paid_value_total`` (weighted interactions of paid
    viewers) are cumulative as reported (they may be stale, repeated or missing);
    ``paid_dwell_s`` is how long recent paid viewers stayed (None: unknown).
    ``moment_gain`` and ``moment_windows``: what the run of show has turned out to mean
    here (:class:`bidding.run_of_show.MomentGain`), for the spend plan.
    """

    room_id: str
    ts: float
    seq: int
    live: bool
    started_at: float | None
    value_rate: float
    online: int
    covered_seq: int | None
    covered_total: float | None
    paid_entries_total: int | None
    paid_value_total: float | None = None
    opened: bool = False
    paid_dwell_s: float | None = None
    moment_gain: float = 0.0  # how much the run of show's windows lift this room (learnt; 0: no run of show)
    moment_windows: tuple[Window, ...] = ()  # the run of show as the room has kept it (re-anchored, written off)


def weighted_total(interactions: dict[str, float], weights: dict[str, float]) -> float:
    return sum(interactions.get(k, 0.0) * weights.get(k, 0.0) for k in INTERACTION_KINDS)


BASELINE_CLIP = 1.5


class ValueRate(msgspec.Struct, kw_only=True):
    """The room's weighted interactions per viewer-minute, predicted for the next stay.

    Rates are pooled, not averaged: moving averages of the interactions in each
    tick and of the viewer-minutes they came from, and their ratio, so a tick of
    twenty viewers weighs a fifth of a tick of a hundred. Two speeds: a fast rate
    (the room now) and a slow one (its baseline). A moment shows as the fast
    rate's excess over the baseline, and the next stay (``stay_ticks``) gets the
    share ``beta`` of that excess that has lasted in this room: least squares of
    the excess a stay later (the mean of the stay's per-tick excesses) on the
    excess at its start, from a prior of 0.5. So a room whose surges are short or
    whose rate is mostly noise is predicted near its baseline.

    A surge seen is half over; a moment that starts in forty seconds cannot be
    seen at all, and it is what a viewer bought now will be there for. So when
    the campaign has a run of show (:mod:`bidding.run_of_show`), the prediction
    is the baseline times the forecast of the minute ahead instead, with the
    lift its windows have been seen to bring here (``moments``), and the planned
    windows stay out of the baseline. A struct, so it is stored with the
    bidder's state."""

    fast: float = 0.5
    slow: float = 0.05
    stay_ticks: int = 12
    last_total: float | None = None
    last_ts: float | None = None
    fast_inter: float = 0.0
    fast_exposure: float = 0.0
    slow_inter: float = 0.0
    slow_exposure: float = 0.0
    starts: list[float] = msgspec.field(default_factory=list)  # fast excess at each of the last stay_ticks ticks
    later: list[float] = msgspec.field(default_factory=list)  # per-tick excess at each of them
    sxy: float = 2.0  # prior: beta 0.5 with the weight of a stay of excess 1 per-viewer-minute... scaled below
    sxx: float = 4.0
    rate: float = 0.0
    ticks: int = 0
    moments: MomentGain = msgspec.field(default_factory=MomentGain)

    def update(self, m: RoomMetrics, weights: dict[str, float], wins: Sequence[Window] = ()) -> float:
        """Take the snapshot ``m``; return the rate predicted for a viewer bought
        now. ``wins``: the run of show's windows (:func:`bidding.run_of_show.windows`).
        With them, the prediction is the baseline times the forecast factor of the
        minute ahead; the live surge is left out (measured: following it as well
        bought the ends of moments dear)."""
        total = weighted_total(m.interactions_total, weights)
        if self.last_total is not None and self.last_ts is not None and m.ts > self.last_ts:
            got = max(total - self.last_total, 0.0)
            exposure = max(m.online, 0) * (m.ts - self.last_ts) / 60.0
            a = self.fast if self.fast_exposure > 0 else 1.0
            self.fast_inter = a * got + (1 - a) * self.fast_inter
            self.fast_exposure = a * exposure + (1 - a) * self.fast_exposure
            share, shown = 0.0, None
            if wins and exposure > 0 and self.slow_exposure > 0 and self.slow_inter > 0:
                base = self.slow_inter / self.slow_exposure
                if self.fast_exposure > 0:
                    self.moments.track(wins, (self.last_ts, m.ts), self.fast_inter / self.fast_exposure / base - 1.0,
                                       m.ts - self.last_ts)
                # How far this tick stands above the room's baseline, against how
                # much of it the run of show (as the room has kept it) has as a moment.
                shown = self.moments.as_shown(wins, m.ts)  # a moment still due is not in this tick
                share = overlap_s(shown, self.last_ts, m.ts) / (m.ts - self.last_ts)
                self.moments.learn(share, (got / exposure) / base - 1.0)
            # The baseline is the room without its moments: planned ones stay out
            # of it, and once it has formed, a surge moves it no more than 1.5x its rate.
            a = (self.slow if self.slow_exposure > 0 else 1.0) * (1.0 - share)
            self.ticks += 1
            base_got = got
            if self.ticks * self.slow > 1.0 and self.slow_exposure > 0:
                base_got = min(got, BASELINE_CLIP * exposure * self.slow_inter / self.slow_exposure)
            if a > 0:
                self.slow_inter = a * base_got + (1 - a) * self.slow_inter
                self.slow_exposure = a * exposure + (1 - a) * self.slow_exposure
            if self.fast_exposure > 0 and self.slow_exposure > 0:
                base = self.slow_inter / self.slow_exposure
                excess = self.fast_inter / self.fast_exposure - base
                now = (base_got / exposure - base) if exposure > 0 else 0.0
                if math.isfinite(excess) and math.isfinite(now):
                    self._learn(excess, now)
                if wins:  # the minute ahead, as the run of show has it
                    shown = self.moments.as_shown(wins, m.ts) if shown is None else shown
                    rate = base * forecast_factor(shown, m.ts, self.moments.gain, STAY_S)
                else:  # the share of the surge now that lasts a stay in this room
                    beta = min(max(self.sxy / self.sxx, 0.0), 1.0) if self.sxx > 0 else 0.5
                    rate = base + (excess if math.isfinite(excess) else 0.0) * beta
                if math.isfinite(rate):
                    self.rate = max(rate, 0.0)
        if self.last_ts is None or m.ts > self.last_ts:
            self.last_total, self.last_ts = total, m.ts
        return self.rate

    def _learn(self, excess: float, now: float) -> None:
        """Keep the last stay's ticks; once a tick's stay is over, add its pair."""
        self.later.append(now)
        if len(self.starts) >= self.stay_ticks:
            x = self.starts.pop(0)
            y = sum(self.later[-self.stay_ticks:]) / self.stay_ticks
            self.sxy += x * y
            self.sxx += x * x
        self.starts.append(excess)
        del self.later[:-self.stay_ticks]


def decision_seq(ts: float, tick_s: float) -> int:
    """The sequence number of the decision made on the snapshot stamped ``ts``: its tick."""
    return int(round(ts / tick_s))


def observe(m: RoomMetrics, value_rate: ValueRate, weights: dict[str, float], started_at: float | None,
            tick_s: float, wins: Sequence[Window] = ()) -> Observation:
    """Observation of a live room from its snapshot (the runtimes' path)."""
    return Observation(room_id=m.room_id, ts=m.ts, seq=decision_seq(m.ts, tick_s), live=m.live,
                       started_at=started_at, value_rate=value_rate.update(m, weights, wins), online=m.online,
                       moment_gain=value_rate.moments.gain if wins else 0.0,
                       moment_windows=value_rate.moments.as_shown(wins, m.ts) if wins else (),
                       covered_seq=m.spend_covered_seq, covered_total=m.spend_covered_total,
                       paid_entries_total=m.paid_entries_total,
                       paid_value_total=weighted_total(m.paid_interactions_total, weights), opened=m.opened)


__all__ = ["BidDecision", "Observation", "Campaign", "ValueRate", "observe", "weighted_total", "decision_seq",
           "FAST_RAMP", "INTERACTION_MCB", "PAUSED"]
