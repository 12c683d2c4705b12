"""Bidding: budget safety whatever arrives, determinism, the hindsight bound, the ramp's cost cap."""

from __future__ import annotations

import random

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidding.budget import BudgetGuard
from bidding.controllers import Bidder, BidderState
from bidding.evaluate import session_metrics, simulate, summarize
from bidding.market import Episode, MarketConfig, build_episode, hindsight, impression_bids, run_episode
from bidding.models import FAST_RAMP, Observation
from streams.models import Campaign, McbSettings, RampSettings
from streams.session import open_session


@pytest.fixture(scope="module")
def sample(sample_session):
    session = open_session(sample_session)
    return session_metrics(session), session.campaign()


@settings(max_examples=200, deadline=None)
@given(
    budget=st.floats(0.0, 500.0),
    strategy=st.sampled_from(Bidder.STRATEGIES),
    ticks=st.integers(1, 80),
    rnd=st.randoms(use_true_random=False),
)
def test_spend_never_exceeds_budget_whatever_the_reports(budget, strategy, ticks, rnd: random.Random):
    """An adversarial ad server spends anything up to each cap and reports late
    (within settle_s, the contract), twice, or not at all; old snapshots arrive
    again out of order; snapshots go missing; the bidder restarts from its stored
    state. Spend stays within budget."""
    campaign = Campaign(room_id="r", total_budget=budget,
                        ramp=RampSettings(window_s=120, budget=budget * rnd.random(), target_paid_entries=50,
                                          max_cost_per_entry=rnd.uniform(0.1, 5)),
                        mcb=McbSettings(max_cost_per_interaction=rnd.uniform(0.05, 2), duration_s=ticks * 5.0))
    bidder = Bidder(strategy, campaign)
    settle = bidder.state.guard.settle_s
    actual = 0.0
    history: list[tuple[float, float]] = []  # (decision ts, true cumulative spend once that tick is over)
    ts = 1000.0
    delivered: list[tuple[float, float | None]] = []
    for _ in range(ticks):
        ts += 5.0
        if rnd.random() < 0.1:
            continue  # missing snapshot
        snap_ts = ts
        # complete for every decision up to ts - settle: any cumulative value recorded since
        fresh = [v for t, v in history if t >= ts - settle] or [actual]
        spend_report = rnd.choice(fresh) if rnd.random() < 0.85 else None
        if delivered and rnd.random() < 0.1:  # a snapshot already delivered arrives again
            snap_ts, spend_report = rnd.choice(delivered)
        delivered.append((snap_ts, spend_report))
        obs = Observation(room_id="r", ts=snap_ts, live=True, started_at=1000.0,
                          value_rate=rnd.uniform(0, 5), online=rnd.randint(0, 300), spend_total=spend_report,
                          paid_entries_total=rnd.randint(0, 100), paid_dwell_s=rnd.choice([None, 10.0, 60.0]))
        decision = bidder.step(obs, bought_value_total=rnd.choice([None, actual * rnd.uniform(0, 10)]))
        assert decision.spend_cap >= 0 and decision.budget_left <= budget + 1e-9
        actual += decision.spend_cap * rnd.choice([0.0, 0.3, 1.0, 1.0])
        assert actual <= budget + 1e-9
        history.append((ts, actual))
        if rnd.random() < 0.1:  # restart from stored state
            stored = msgspec.msgpack.encode(bidder.state)
            bidder = Bidder(strategy, campaign, state=msgspec.msgpack.decode(stored, type=BidderState))


def test_guard_started_without_state_after_spend_pauses_until_reports_settle():
    guard = BudgetGuard(total=100.0, settle_s=10.0)
    guard.observe(1000.0, 40.0)  # spend happened before this guard existed
    assert guard.issue(1000.0, 10.0) == 0.0
    guard.observe(1005.0, 45.0)
    assert guard.issue(1005.0, 10.0) == 0.0
    guard.observe(1010.0, 47.0)
    assert guard.issue(1010.0, 10.0) == 10.0


def test_guard_counts_unconfirmed_caps_and_pauses_when_reports_stop():
    guard = BudgetGuard(total=100.0, settle_s=10.0, stale_s=30.0)
    guard.observe(0.0, 0.0)
    assert guard.issue(0.0, 60.0) == 60.0
    assert guard.issue(5.0, 60.0) == 40.0  # the first 60 may not be reported yet
    guard.observe(5.0, 0.0)  # stale report of nothing: still counted as possibly spent
    assert guard.issue(5.0, 60.0) == 0.0
    guard.observe(40.0, 100.0)
    assert guard.available(40.0) == 0.0
    guard2 = BudgetGuard(total=100.0, stale_s=30.0)
    guard2.observe(0.0, 0.0)
    assert guard2.available(31.0) == 0.0  # no news for too long: pause


def test_same_seed_same_decisions(sample):
    metrics, campaign = sample
    runs = []
    for _ in range(2):
        ep = build_episode(metrics, campaign, MarketConfig(), seed=3)
        runs.append(run_episode(ep, Bidder("ramp+mcb", campaign), keep_decisions=True))
    assert msgspec.json.encode(runs[0].decisions) == msgspec.json.encode(runs[1].decisions)
    assert runs[0].value == runs[1].value and runs[0].spend == runs[1].spend
    other = run_episode(build_episode(metrics, campaign, MarketConfig(), seed=4), Bidder("ramp+mcb", campaign))
    assert other.value != runs[0].value


def test_hindsight_on_a_known_case():
    ep = Episode(room_id="r", metrics=[], prices=[np.zeros(0), np.array([1.0, 2.0, 4.0])],
                 propensity=[np.zeros(0), np.array([1.0, 1.0, 1.0])], unit_value=np.array([0.0, 4.0]),
                 dwell_s=np.array([60.0, 60.0]))
    # values 4,4,4; prices 1,2,4. Budget 2.5: all of item 1 and 3/4 of item 2.
    b = hindsight(ep, budget=2.5, max_cpi=10.0)
    assert b.spend == pytest.approx(2.5) and b.value == pytest.approx(4 + 3)
    # cap 0.5 per interaction: items 1 and 2 (average 0.375) leave room for half of item 3
    b = hindsight(ep, budget=100.0, max_cpi=0.5)
    assert b.value == pytest.approx(10.0) and b.spend == pytest.approx(5.0)  # cost/value exactly 0.5


def test_no_strategy_beats_the_bound(sample):
    metrics, campaign = sample
    for score in simulate(metrics, campaign, list(Bidder.STRATEGIES), range(5)):
        assert score.spend <= score.budget + 1e-9
        if score.cpi <= score.max_cpi:
            assert score.value <= score.bound_value * (1 + 1e-9)


def test_ramp_never_pays_more_than_its_cap_per_entry(sample):
    metrics, campaign = sample
    ep = build_episode(metrics, campaign, MarketConfig(), seed=1)
    result = run_episode(ep, Bidder("ramp+mcb", campaign), keep_decisions=True)
    ramp = [d for d in result.decisions if d.strategy == FAST_RAMP]
    assert ramp, "the ramp never ran"
    for d in ramp:
        assert d.bid_cap is not None and d.bid_cap <= campaign.ramp.max_cost_per_entry
        assert np.all(impression_bids(d, np.array([0.1, 1.0, 10.0])) <= campaign.ramp.max_cost_per_entry)
    assert result.ramp_wins > 0 and result.ramp_spend / result.ramp_wins <= campaign.ramp.max_cost_per_entry
    # and it hands over to interaction bidding
    assert result.decisions[-1].strategy in ("interaction_mcb", "paused")


def test_ramp_plus_mcb_beats_the_pid_baseline(sample):
    metrics, campaign = sample
    table = summarize(simulate(metrics, campaign, ["ramp+mcb", "pid"], range(10)))
    assert table["ramp+mcb"]["ratio_to_hindsight"] > table["pid"]["ratio_to_hindsight"]
    assert table["ramp+mcb"]["share_over_cap_10pct"] <= 0.05
