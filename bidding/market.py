"""Market simulator and hindsight bound: replay a recorded room counterfactually.

The recorded snapshots say how the room's viewers interacted at each moment. The
market adds what the recording cannot: impression opportunities for the room
(Poisson per second), competing prices (log-normal), and per-viewer propensity
(log-normal, mean 1, known to the ad system when it bids). Winning an impression
costs the competing price (second price) and brings one paid viewer who stays
longer in a hot room and interacts at the room's recorded per-viewer rate of the
next minute. Value is counted in expectation, so a strategy's score is not luck.

The hindsight bound sees every opportunity's price and true value at once and
takes the best fractional set under the budget and the cost-per-interaction cap
(fractional knapsack by price/value: the feasible set is a prefix), which no
online strategy can beat.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from streams.models import Campaign, RoomMetrics

from .controllers import Bidder
from .models import FAST_RAMP, BidDecision, Observation, ValueRate, decision_seq, weighted_total


@dataclass(frozen=True, slots=True)
class MarketConfig:
    opportunities_per_s: float = 2.0
    price_median: float = 0.5
    price_sigma: float = 0.6
    propensity_sigma: float = 0.5
    dwell_s: float = 60.0  # paid viewers' stay in a room of median heat
    tick_s: float = 5.0


@dataclass
class Episode:
    """One room under one seed: everything the market needs, drawn up front."""

    room_id: str
    metrics: list[RoomMetrics]
    prices: list[np.ndarray]
    propensity: list[np.ndarray]
    unit_value: np.ndarray  # true value of a propensity-1 viewer bought in each tick
    dwell_s: np.ndarray


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


def per_tick_rates(metrics: list[RoomMetrics], weights: dict[str, float], tick_s: float) -> np.ndarray:
    """Weighted interactions per viewer-minute in each tick, from cumulative totals."""
    totals = np.array([weighted_total(m.interactions_total, weights) for m in metrics])
    online = np.array([m.online for m in metrics], dtype=float)
    delta = np.diff(totals, prepend=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(online > 0, delta / (online * tick_s / 60.0), 0.0)
    return rate


def build_episode(metrics: list[RoomMetrics], campaign: Campaign, market: MarketConfig, seed: int) -> Episode:
    rng = np.random.default_rng([seed, zlib.crc32(metrics[0].room_id.encode())])
    rate = per_tick_rates(metrics, campaign.mcb.weights, market.tick_s)
    live = np.array([m.live for m in metrics])
    ref = float(np.median(rate[live & (rate > 0)])) if np.any(live & (rate > 0)) else 1.0
    dwell = market.dwell_s * np.clip(rate / max(ref, 1e-9), 0.4, 1.6)
    k = max(1, int(round(market.dwell_s / market.tick_s)))
    future = np.array([rate[i + 1:i + 1 + k].mean() if i + 1 < len(rate) else 0.0 for i in range(len(rate))])
    unit = np.where(live, future * dwell / 60.0, 0.0)
    prices, prop = [], []
    mu_p, sig = np.log(market.price_median), market.propensity_sigma
    for i in range(len(metrics)):
        n = int(rng.poisson(market.opportunities_per_s * market.tick_s)) if live[i] else 0
        prices.append(rng.lognormal(mu_p, market.price_sigma, n))
        prop.append(rng.lognormal(-sig * sig / 2, sig, n))
    return Episode(metrics[0].room_id, metrics, prices, prop, unit, dwell)


def run_episode(ep: Episode, bidder: Bidder, *, keep_decisions: bool = False) -> EpisodeResult:
    """Play the episode: decide after each recorded tick, buy during the next one."""
    res = EpisodeResult(strategy=bidder.strategy)
    rate = ValueRate()
    weights = bidder.campaign.mcb.weights
    target = bidder.campaign.ramp.target_paid_entries
    t0 = ep.metrics[0].ts
    started = None
    for i, m in enumerate(ep.metrics):
        if started is None and m.live:
            started = m.ts - bidder.state.tick_s
        # The simulated ad server reports at once: every spend of earlier decisions is known.
        seq = decision_seq(m.ts, bidder.state.tick_s)
        obs = Observation(room_id=m.room_id, ts=m.ts, seq=seq, live=m.live, started_at=started,
                          value_rate=rate.update(m, weights), online=m.online, covered_seq=seq - 1,
                          covered_total=res.spend, paid_entries_total=res.wins, opened=i == 0,
                          paid_dwell_s=float(ep.dwell_s[i]))
        d = bidder.step(obs, bought_value_total=res.value)
        if keep_decisions:
            res.decisions.append(d)
        if i + 1 >= len(ep.metrics) or d.spend_cap <= 0:
            continue
        p, u = ep.prices[i + 1], ep.propensity[i + 1]
        won = p <= impression_bids(d, u)
        cost = p[won]
        take = np.cumsum(cost) <= d.spend_cap  # buy in arrival order until the tick's cap
        spent = float(cost[take].sum())
        n = int(take.sum())
        res.spend += spent
        res.wins += n
        res.value += float((u[won][take]).sum() * ep.unit_value[i + 1])
        if d.strategy == FAST_RAMP:
            res.ramp_spend += spent
            res.ramp_wins += n
            if res.ramp_target_s is None and res.ramp_wins >= target > 0:
                res.ramp_target_s = ep.metrics[i + 1].ts - t0
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
