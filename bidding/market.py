"""Market simulator and hindsight bound: replay a recorded room counterfactually.

The recorded snapshots say how the room's *organic* viewers interacted at each
moment. The market adds what the recording cannot, and what production has and
the bidder does not know:

- impression opportunities for the room (Poisson per second; optionally in
  bursts) at competing prices (log-normal; optionally shifted part-way), each
  viewer with a propensity (log-normal, mean 1, known to the ad system when it
  bids);
- **paid viewers are not organic viewers**: one is worth an unknown factor
  ``f`` of the organic rate (drawn per episode from ``paid_factor``), and it
  follows the room's moments as the organic rate does;
- **they interact over their stay**: the room's paid viewers stay ``stay_s``
  (drawn per episode; each tick's cohort a little more or less) and a cohort's
  interactions arrive spread over its stay, as Poisson counts, so the bidder's
  evidence is late and noisy;
- **spend reports arrive late**: each tick's report takes ``report_delay_s``
  and misses the next decision when it is later than ``decision_lag_s``.

Winning an impression costs the competing price (second price). The score
counts value in expectation (a strategy's score is not luck); only what the
bidder *sees* is noisy.

The hindsight bound sees every opportunity's price and true value (``f``
included: it is hindsight) and takes the best fractional set under the budget
and the cost-per-interaction cap (fractional knapsack by price/value: the
feasible set is a prefix), which no online strategy can beat. Tests check it
against an LP solved by HiGHS.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from streams.models import Campaign, RoomMetrics

from .controllers import Bidder
from .models import FAST_RAMP, BidDecision, Observation, ValueRate, decision_seq, weighted_total
from .run_of_show import windows


DWELL_S = 60.0


@dataclass(frozen=True, slots=True)
class MarketConfig:
    opportunities_per_s: float = 2.0
    price_median: float = 0.5
    price_sigma: float = 0.6
    propensity_sigma: float = 0.5
    dwell_s: float = DWELL_S  # the minute of the room's rate a viewer's worth is measured over
    tick_s: float = 5.0
    burst_share: float = 0.0  # share of live ticks whose opportunities come burst_factor times over
    burst_factor: float = 10.0
    price_shift_at: float | None = None  # from this share of the room's ticks on, prices are price_shift times
    price_shift: float = 1.0
    paid_factor: tuple[float, float] = (0.2, 1.5)  # a paid viewer's worth over an organic one (log-uniform)
    stay_s: tuple[float, float] = (60.0, 180.0)  # paid viewers' mean stay in the room, drawn per episode
    cohort_stay_sigma: float = 0.15  # a tick's cohort's mean stay around the room's (log-normal sigma)
    report_delay_s: tuple[float, float] = (0.0, 3.0)  # how late a tick's spend report comes
    decision_lag_s: float = 1.0  # a decision is made this long after its tick ends


@dataclass
class Episode:
    """One room under one seed: everything the market needs, drawn up front."""

    room_id: str
    metrics: list[RoomMetrics]
    prices: list[np.ndarray]
    propensity: list[np.ndarray]
    unit_value: np.ndarray  # true value of a propensity-1 viewer bought in each tick (the factor included)
    dwell_s: np.ndarray  # each tick's cohort's stay
    factor: float = 1.0  # paid viewers' worth over organic ones (unknown to the bidder)
    report_late: np.ndarray | None = None  # per tick: its spend report misses the next decision
    seed: int = 0


@dataclass
class EpisodeResult:
    strategy: str
    spend: float = 0.0
    value: float = 0.0
    wins: int = 0
    ramp_spend: float = 0.0
    ramp_wins: int = 0
    ramp_target_s: float | None = None  # seconds from the first tick to the paid-entry target
    decisions: list[BidDecision] = field(default_factory=list)
    seen_value: float = 0.0  # the paid viewers' interactions the bidder had seen by the end


def per_tick_rates(metrics: list[RoomMetrics], weights: dict[str, float], tick_s: float) -> np.ndarray:
    """Weighted interactions per viewer-minute in each tick, from cumulative totals."""
    delta, exposure = tick_counts(metrics, weights, tick_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(exposure > 0, delta / np.where(exposure > 0, exposure, 1.0), 0.0)


def tick_counts(metrics: list[RoomMetrics], weights: dict[str, float], tick_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per tick: weighted interactions, and viewer-minutes of exposure (online x tick)."""
    totals = np.array([weighted_total(m.interactions_total, weights) for m in metrics])
    online = np.array([m.online for m in metrics], dtype=float)
    return np.diff(totals, prepend=0.0), online * tick_s / 60.0


def build_episode(metrics: list[RoomMetrics], campaign: Campaign, market: MarketConfig, seed: int) -> Episode:
    rng = np.random.default_rng([seed, zlib.crc32(metrics[0].room_id.encode())])
    live = np.array([m.live for m in metrics])
    n = len(metrics)
    lo, hi = market.paid_factor
    factor = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)
    # The room's paid viewers stay stay_s (unknown, per room); a tick's cohort
    # averages its viewers' stays, so it varies around the room's by a little.
    stay = float(rng.uniform(*market.stay_s)) if market.stay_s[1] > market.stay_s[0] else float(market.stay_s[0])
    stays = stay * rng.lognormal(0.0, market.cohort_stay_sigma, n)
    # A paid viewer is worth f times an organic viewer bought in the same tick: the
    # room's interactions over its viewer-minutes in the minute from that tick
    # (pooled, so a tick of twenty viewers weighs a fifth of a tick of a hundred),
    # over a minute. The stay decides when those interactions come, not how many.
    delta, exposure = tick_counts(metrics, campaign.mcb.weights, market.tick_s)
    cd, ce = np.concatenate([[0.0], np.cumsum(delta)]), np.concatenate([[0.0], np.cumsum(exposure)])
    unit = np.zeros(n)
    k = max(1, int(round(market.dwell_s / market.tick_s)))
    for i in range(n):
        j = min(i + k, n)
        rate = (cd[j] - cd[i]) / (ce[j] - ce[i]) if ce[j] > ce[i] else 0.0
        unit[i] = factor * rate * market.dwell_s / 60.0 if live[i] else 0.0
    prices, prop = [], []
    mu_p, sig = np.log(market.price_median), market.propensity_sigma
    shift_from = n if market.price_shift_at is None else int(market.price_shift_at * n)
    for i in range(n):
        burst = market.burst_factor if market.burst_share > 0 and rng.random() < market.burst_share else 1.0
        k = int(rng.poisson(market.opportunities_per_s * market.tick_s * burst)) if live[i] else 0
        prices.append(rng.lognormal(mu_p, market.price_sigma, k) * (market.price_shift if i >= shift_from else 1.0))
        prop.append(rng.lognormal(-sig * sig / 2, sig, k))
    late = rng.uniform(*market.report_delay_s, n) > market.decision_lag_s
    return Episode(metrics[0].room_id, metrics, prices, prop, unit, stays, factor, late, seed)


def run_episode(ep: Episode, bidder: Bidder, *, keep_decisions: bool = False,
                updates: tuple[tuple[float, Campaign], ...] = ()) -> EpisodeResult:
    """Play the episode: decide after each recorded tick, buy during the next one.

    What the bidder is told is what a live room would tell it: paid entries at
    once, paid viewers' interactions as they come (a Poisson count of each
    cohort's share of its stay, tick by tick), and spend once its report is in
    (a late one a decision later). Its value is scored in expectation.
    ``updates``: the campaign republished, from a snapshot time on (as the
    live runtimes look the campaign up at every snapshot)."""
    res = EpisodeResult(strategy=bidder.strategy)
    rate = ValueRate()
    weights = bidder.campaign.mcb.weights
    target = bidder.campaign.ramp.target_paid_entries
    t0 = ep.metrics[0].ts
    tick_s = bidder.state.tick_s
    started = None
    n = len(ep.metrics)
    arriving = np.zeros(n + 1)  # expected paid interactions arriving in each tick
    noise = np.random.default_rng([ep.seed, zlib.crc32(ep.room_id.encode()), 1])
    seen = 0.0
    spent_by = np.zeros(n + 1)  # cumulative spend through the purchases of tick i
    late = ep.report_late if ep.report_late is not None else np.zeros(n, dtype=bool)
    wins = windows(bidder.campaign.run_of_show)
    for i, m in enumerate(ep.metrics):
        if started is None and m.live:
            started = m.ts - tick_s
        if arriving[i] > 0:
            seen += float(noise.poisson(arriving[i]))
        for at, campaign in updates:
            if m.ts >= at:
                bidder.campaign = campaign
        seq = decision_seq(m.ts, tick_s)
        # The report of tick i's purchases (decision i - 1's) is in unless it came late.
        covered = i - 1 if i >= 1 and not late[i] else i - 2
        obs = Observation(room_id=m.room_id, ts=m.ts, seq=seq, live=m.live, started_at=started,
                          value_rate=rate.update(m, weights, wins), online=m.online,
                          moment_gain=rate.moments.gain if wins else 0.0,
                          moment_windows=rate.moments.as_shown(wins, m.ts) if wins else (),
                          covered_seq=seq - (i - covered) if covered >= 0 else None,
                          covered_total=float(spent_by[covered + 1]) if covered >= 0 else None,
                          paid_entries_total=res.wins, paid_value_total=seen, opened=i == 0)
        d = bidder.step(obs, bought_value_total=seen)
        if keep_decisions:
            res.decisions.append(d)
        spent_by[i + 1] = res.spend
        if i + 1 >= n or d.spend_cap <= 0:
            continue
        p, u = ep.prices[i + 1], ep.propensity[i + 1]
        won = p <= impression_bids(d, u)
        cost = p[won]
        take = np.cumsum(cost) <= d.spend_cap  # buy in arrival order until the tick's cap
        spent = float(cost[take].sum())
        k = int(take.sum())
        value = float((u[won][take]).sum() * ep.unit_value[i + 1])
        res.spend += spent
        spent_by[i + 1] = res.spend
        res.wins += k
        res.value += value
        if value > 0:  # the cohort's interactions, spread over its stay
            stay = max(1, int(round(ep.dwell_s[i + 1] / tick_s)))
            arriving[i + 1:min(i + 1 + stay, n)] += value / stay
        if d.strategy == FAST_RAMP:
            res.ramp_spend += spent
            res.ramp_wins += k
            if res.ramp_target_s is None and res.ramp_wins >= target > 0:
                res.ramp_target_s = ep.metrics[i + 1].ts - t0
    res.seen_value = seen
    return res


def impression_bids(d: BidDecision, propensity: np.ndarray) -> np.ndarray:
    """What the ad server bids for each impression under decision ``d``."""
    if d.multiplier > 0:
        bids = d.multiplier * d.unit_value * propensity
        return np.minimum(bids, d.bid_cap) if d.bid_cap is not None else bids
    return np.full(len(propensity), d.bid_cap or 0.0)


@dataclass(frozen=True)
class Bound:
    value: float
    spend: float


def hindsight(ep: Episode, budget: float, max_cpi: float) -> Bound:
    """Best fractional purchase with every price and value known: max value,
    spend <= budget, spend <= max_cpi * value. Items taken by price/value."""
    p = np.concatenate(ep.prices[1:]) if len(ep.prices) > 1 else np.zeros(0)
    v = np.concatenate([u * ep.unit_value[i] for i, u in enumerate(ep.propensity)][1:]) if len(ep.prices) > 1 else p
    keep = v > 0
    p, v = p[keep], v[keep]
    if not len(p):
        return Bound(0.0, 0.0)
    order = np.argsort(p / v, kind="stable")
    p, v = p[order], v[order]
    cp, cv = np.cumsum(p), np.cumsum(v)
    ok = (cp <= budget) & (cp <= max_cpi * cv)
    k = int(np.argmin(ok)) if not ok.all() else len(p)  # ok is a prefix: first False
    spend, value = (float(cp[k - 1]), float(cv[k - 1])) if k else (0.0, 0.0)
    if k < len(p):
        x = (budget - spend) / p[k]
        if p[k] > max_cpi * v[k]:
            x = min(x, (max_cpi * value - spend) / (p[k] - max_cpi * v[k]))
        x = min(max(x, 0.0), 1.0)
        spend += x * float(p[k])
        value += x * float(v[k])
    return Bound(value, spend)


def run_static(ep: Episode, budget: float, *, flat_bid: float | None = None, multiplier: float | None = None,
               predicted: np.ndarray | None = None) -> tuple[float, float]:
    """(value, spend) of one bid held for the whole room, buying in arrival order
    until the budget is spent: a flat ``flat_bid`` for every impression, or
    ``multiplier`` times the predicted value (``predicted[i]``: the unit value
    predicted after tick i, used for tick i + 1's impressions)."""
    p = np.concatenate(ep.prices[1:]) if len(ep.prices) > 1 else np.zeros(0)
    u = np.concatenate(ep.propensity[1:]) if len(ep.prices) > 1 else p
    tick = np.concatenate([np.full(len(x), i) for i, x in enumerate(ep.prices)][1:]) if len(ep.prices) > 1 else p
    tick = tick.astype(int)
    if multiplier is not None and predicted is not None:
        bids = multiplier * predicted[tick - 1] * u
    else:
        bids = np.full(len(p), flat_bid or 0.0)
    won = p <= bids
    cost = p[won]
    take = np.cumsum(cost) <= budget
    value = float((u[won] * ep.unit_value[tick[won]])[take].sum())
    return value, float(cost[take].sum())
