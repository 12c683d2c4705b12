"""The evaluation itself: the hindsight bound against an independent LP, the
scenario families doing what their names say, the scoring rules, and the
controller properties the families exercise (cost cap held, fair PID pacing),
and the value predictor."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from bidding.controllers import Bidder
from bidding.evaluate import (BEST_FIXED, EpisodeScore, _ranks, by_family, evaluate, predictor_quality,
                              summarize)
from bidding.market import FAST_RAMP, hindsight, run_episode
from bidding.models import ValueRate
from bidding.scenarios import FAMILIES, cases, family_named
from streams.models import RoomMetrics


def lp_bound(ep, budget: float, cap: float) -> float:
    """max sum v x  s.t.  sum p x <= budget,  sum (p - cap v) x <= 0,  0 <= x <= 1 (HiGHS)."""
    p = np.concatenate(ep.prices[1:])
    v = np.concatenate([u * ep.unit_value[i] for i, u in enumerate(ep.propensity)][1:])
    res = optimize.linprog(-v, A_ub=np.vstack([p, p - cap * v]), b_ub=[budget, 0.0], bounds=(0, 1),
                           method="highs")
    assert res.status == 0, res.message
    return -res.fun


@pytest.mark.parametrize("name", ["sample session", "budget x0.1", "cap binds hard (bound spends 30%)",
                                  "bursty supply (10% of ticks x10)", "budget x10"])
def test_the_hindsight_bound_equals_an_independent_lp(name):
    for case in cases(family_named(name), range(3)):
        c = case.campaign
        bound = hindsight(case.episode, c.total_budget, c.mcb.max_cost_per_interaction)
        assert bound.value == pytest.approx(lp_bound(case.episode, c.total_budget, c.mcb.max_cost_per_interaction),
                                            rel=1e-7)


def test_the_families_are_what_they_say():
    cap = cases(family_named("cap binds (bound spends 60%)"), range(3))
    for case in cap:  # the cap, not the budget, stops the best possible run
        c = case.campaign
        b = hindsight(case.episode, c.total_budget, c.mcb.max_cost_per_interaction)
        assert b.spend == pytest.approx(0.6 * c.total_budget, rel=1e-3)
    plain = cases(family_named("steady"), range(1))[0].episode
    bursty = cases(family_named("bursty supply (10% of ticks x10)"), range(1))[0].episode
    counts = np.array([len(p) for p in bursty.prices[1:-1]])
    assert counts.max() > 5 * np.median(counts) and np.median(counts) == pytest.approx(
        np.median([len(p) for p in plain.prices[1:-1]]), rel=0.3)
    shifted = cases(family_named("competitor prices x2 from half-time"), range(1))[0].episode
    half = len(shifted.prices) // 2
    early = np.median(np.concatenate(shifted.prices[1:half]))
    late = np.median(np.concatenate(shifted.prices[half + 1:]))
    assert 1.6 < late / early < 2.5
    ends = cases(family_named("ends at half its planned length"), range(1))[0]
    real = ends.episode.metrics[-1].ts - ends.episode.metrics[0].ts
    assert ends.campaign.mcb.duration_s == pytest.approx(2 * real)


def test_an_episode_over_the_cap_scores_zero_and_is_counted_apart():
    common = dict(family="f", seed=0, budget=10.0, bound_value=100.0, bound_spend=10.0, max_cpi=0.1)
    within = EpisodeScore(strategy="a", value=100.0, spend=10.5, **common)  # cpi 0.105: within 10%
    over = EpisodeScore(strategy="b", value=100.0, spend=11.5, **common)  # cpi 0.115
    assert within.ratio == 1.0 and not within.over_cap
    assert over.ratio == 0.0 and over.over_cap
    table = summarize([within, over])
    assert table["b"]["share_over_cap_10pct"] == 1.0 and table["a"]["share_over_cap_10pct"] == 0.0


def test_rank_correlation_matches_scipy():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=200), 1)  # with ties
    y = x + rng.normal(size=200)
    assert np.corrcoef(_ranks(x), _ranks(y))[0, 1] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    case = cases(family_named("one big peak"), range(1))[0]
    pred = np.array([d.unit_value for d in run_episode(case.episode, Bidder("mcb", case.campaign),
                                                       keep_decisions=True).decisions])
    corr, err = predictor_quality(case.episode, pred)
    assert corr is not None and -1 <= corr <= 1 and 0 < err < 2.0
    # a perfect predictor scores 1 and no error
    perfect = np.concatenate([case.episode.unit_value[1:], [0.0]])
    assert predictor_quality(case.episode, perfect) == (pytest.approx(1.0), pytest.approx(0.0))


def test_the_cost_cap_holds_where_it_binds_ramp_included():
    """In the families where the cap binds, ramp+mcb keeps the true cost per
    interaction within 10% of C, and no ramp bid exceeds what the cap allows."""
    fams = tuple(f for f in FAMILIES if f.cap_spend_share is not None)
    scores = evaluate(fams, range(6), ("ramp+mcb",))
    assert sum(s.over_cap for s in scores) == 0, [(s.family, s.seed, s.cpi / s.max_cpi) for s in scores]
    assert all(s.value > 0 for s in scores)
    case = cases(fams[1], range(1))[0]
    r = run_episode(case.episode, Bidder("ramp+mcb", case.campaign), keep_decisions=True)
    ramp = [d for d in r.decisions if d.strategy == FAST_RAMP and d.multiplier > 0]
    assert ramp and all(d.multiplier <= 1.0 / d.mu + 1e-6 for d in ramp)


def test_the_fair_pid_paces_both_ways():
    """The audit found the old PID's x0.7 step never fired (its pace was measured
    against its own cap). Paced against the plan, it goes down as well as up."""
    case = cases(family_named("budget x0.1"), range(1))[0]
    r = run_episode(case.episode, Bidder("pid", case.campaign), keep_decisions=True)
    mult = [d.multiplier for d in r.decisions if d.strategy == "pid"]
    steps = np.diff(mult)
    assert (steps < 0).sum() >= 3 and (steps > 0).sum() >= 3
    assert r.spend >= 0.9 * case.campaign.total_budget


def test_ramp_mcb_beats_the_hindsight_fixed_bid_and_the_pid_where_budgets_bind():
    """On the budget-bound families with room shapes of every kind (a run of the
    full table is in the README; these are the ones it wins). In the world where
    paid viewers' interactions come over their stay, r_cap sees a cost per
    interaction that is too high until they have, and holds spend back: 74-83%
    of a binding budget is used here (it was 95% when value showed at once)."""
    names = ("sample session", "one big peak", "competitor prices x2 from half-time", "interactions decay to 0.2x")
    scores = evaluate(tuple(family_named(n) for n in names), range(6), ("ramp+mcb", "pid", BEST_FIXED))
    for fam, t in by_family(scores).items():
        assert t["ramp+mcb"]["ratio_to_hindsight"] > t["pid"]["ratio_to_hindsight"], fam
        assert t["ramp+mcb"]["budget_used_where_binding"] >= 0.7, fam
    overall = summarize(scores)
    assert overall["ramp+mcb"]["ratio_to_hindsight"] >= overall[BEST_FIXED]["ratio_to_hindsight"]


def _snapshot(ts: float, online: int, comments: float) -> RoomMetrics:
    return RoomMetrics(room_id="r", ts=ts, online=online, peak_online=online, organic_entries_per_min=0.0,
                       paid_entries_per_min=0.0, interactions_per_min={}, interactions_per_viewer_min=0.0,
                       organic_entries_total=0, paid_entries_total=0, interactions_total={"comment": comments},
                       orders_total=0, gmv_total=0.0, gift_value_total=0.0, spend_total=0.0, live=True)


def test_the_value_predictor_keeps_its_baseline_through_a_surge():
    """A steady room (2 weighted interactions per viewer-minute), a 40 s surge
    at 5x, then steady again: the prediction rises with the surge and is back
    near the baseline a stay later (the surge did not lift it)."""
    vr, total, preds = ValueRate(), 0.0, []
    for k in range(1, 121):
        rate = 10.0 if 60 <= k < 68 else 2.0
        total += rate * 100 * 5 / 60  # 100 viewers, 5 s ticks
        preds.append(vr.update(_snapshot(5.0 * k, 100, total), {"comment": 1.0}))
    assert preds[58] == pytest.approx(2.0, rel=0.05)
    assert preds[62] > 2.6  # the surge shows
    assert preds[100] == pytest.approx(2.0, rel=0.1)  # and is gone a stay after it ended


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.integers(0, 10**9), st.floats(0, 1e15)), min_size=1, max_size=40))
def test_the_value_predictor_is_finite_whatever_the_snapshots(steps):
    """Clock jumps back and forth, rooms of no one or a billion, totals that fall or explode."""
    vr, ts = ValueRate(), 1000.0
    for dt, online, total in steps:
        ts += dt
        rate = vr.update(_snapshot(ts, online, total), {"comment": 1e6})
        assert math.isfinite(rate) and rate >= 0


def test_the_value_predictor_survives_a_room_with_nobody_online():
    """The repro: comments while nobody is online (no enters seen) for longer than
    the baseline's warm-up divided by an exposure of zero."""
    vr = ValueRate()
    for k in range(1, 60):
        rate = vr.update(_snapshot(5.0 * k, 0, 3.0 * k), {"comment": 1.0})
        assert math.isfinite(rate) and rate >= 0


def test_the_world_hides_what_paid_viewers_are_worth_and_tells_it_late():
    """The market the bidder is scored in is not its own assumption: paid viewers
    are worth an unknown factor of organic ones (the bound knows it), their
    interactions come over their stay (the bidder sees less than it bought until
    they have), spend reports miss decisions, and a family exists where nothing
    can be bought within C (the bound buys nothing; the bidder should not either)."""
    from bidding.market import MarketConfig, build_episode

    case = cases(family_named("steady"), range(1))[0]
    metrics = case.episode.metrics
    factors = {round(build_episode(metrics, case.campaign, MarketConfig(), s).factor, 3) for s in range(12)}
    assert len(factors) >= 10 and min(factors) >= 0.2 and max(factors) <= 1.5
    low = build_episode(metrics, case.campaign, MarketConfig(paid_factor=(0.3, 0.3)), 0)
    high = build_episode(metrics, case.campaign, MarketConfig(paid_factor=(1.2, 1.2)), 0)
    assert np.allclose(high.unit_value, 4 * low.unit_value)  # the same room, worth 4x: only f differs
    r = run_episode(case.episode, Bidder("ramp+mcb", case.campaign), keep_decisions=True)
    assert 0 < r.seen_value < r.value  # interactions still to come at the end: seen lags what was bought
    late = case.episode.report_late
    assert late is not None and 0.3 < late.mean() < 0.9  # reports 0-3 s late miss a decision 1 s after the tick
    for name in ("C cannot be met", "C cannot be met, quiet room"):
        for c in cases(family_named(name), range(2)):
            assert hindsight(c.episode, c.campaign.total_budget, c.campaign.mcb.max_cost_per_interaction).value == 0
            spent = run_episode(c.episode, Bidder("ramp+mcb", c.campaign)).spend
            assert spent <= 0.05 * c.campaign.total_budget, (name, spent)
