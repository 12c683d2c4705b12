"""Bidding: budget safety whatever arrives, determinism, the hindsight bound, the ramp's cost cap."""

from __future__ import annotations

import math
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
from bidding.run_of_show import windows
from streams.models import Campaign, McbSettings, RampSettings, ScheduledMoment
from sessions.folder import open_session


@pytest.fixture(scope="module")
def sample(sample_session):
    session = open_session(sample_session)
    return session_metrics(session), session.campaign()


@settings(max_examples=300, deadline=None)
@given(
    budget=st.floats(0.0, 500.0),
    strategy=st.sampled_from(Bidder.STRATEGIES),
    ticks=st.integers(1, 80),
    rnd=st.randoms(use_true_random=False),
)
def test_spend_never_exceeds_budget_whatever_the_reports(budget, strategy, ticks, rnd: random.Random):
    """The bidder alone, driven by an adversarial ad server that spends anything up
    to each cap and reports covers late, twice, out of order or not at all; old
    snapshots arrive again; snapshots go missing; the bidder restarts from stored
    state of any age or none. (The closed loop through the streams core is in
    test_closed_loop.py.)"""
    campaign = Campaign(room_id="r", total_budget=budget,
                        ramp=RampSettings(window_s=120, budget=budget * rnd.random(), target_paid_entries=50,
                                          max_cost_per_entry=rnd.uniform(0.1, 5)),
                        mcb=McbSettings(max_cost_per_interaction=rnd.uniform(0.05, 2), duration_s=ticks * 5.0))
    bidder = Bidder(strategy, campaign)
    checkpoints = [msgspec.msgpack.encode(bidder.state)]
    actual = 0.0
    applied = -1  # the ad server's newest applied decision
    reports: list[tuple[int, float]] = []  # every (covers, total) the ad server sent
    delivered: list[Observation] = []
    for k in range(1, ticks + 1):
        if rnd.random() < 0.1:
            continue  # missing snapshot
        cover = rnd.choice(reports) if reports and rnd.random() < 0.8 else (None, None)
        obs = Observation(room_id="r", ts=1000.0 + 5 * k, seq=200 + k, live=True, started_at=1000.0,
                          value_rate=rnd.uniform(0, 5), online=rnd.randint(0, 300), covered_seq=cover[0],
                          covered_total=cover[1], paid_entries_total=rnd.randint(0, 100), opened=k == 1,
                          paid_dwell_s=rnd.choice([None, 10.0, 60.0]))
        if delivered and rnd.random() < 0.1:  # a snapshot already delivered arrives again
            obs = rnd.choice(delivered)
        delivered.append(obs)
        decision = bidder.step(obs, bought_value_total=rnd.choice([None, actual * rnd.uniform(0, 10)]))
        assert decision.spend_cap >= 0 and decision.budget_left <= budget + 1e-9
        if decision.seq > applied:  # the ad server applies newer decisions only, reports what came before
            reports.append((decision.seq - 1, actual))
            applied = decision.seq
            actual += decision.spend_cap * rnd.choice([0.0, 0.3, 1.0, 1.0])
        assert actual <= budget + 1e-9
        checkpoints.append(msgspec.msgpack.encode(bidder.state))
        if rnd.random() < 0.1:  # restart from stored state of any age, or with none at all
            stored = rnd.choice(checkpoints + [None])
            state = msgspec.msgpack.decode(stored, type=BidderState) if stored else None
            bidder = Bidder(strategy, campaign, state=state)


def test_a_fresh_guard_pauses_until_a_report_covers_what_came_before_it():
    """The state-loss repro: a lost guard re-issued the budget (20 spent of 10)."""
    guard = BudgetGuard(total=10.0)
    guard.begin(100)  # not the room's opening snapshot: caps of a lost state may be in flight
    assert guard.issue(100, 10.0) == 0.0
    guard.observe(98, 9.0)  # not yet everything before 100
    guard.begin(101)
    assert guard.issue(101, 10.0) == 0.0
    guard.observe(99, 9.5)  # everything before 100: but 100 itself may be a predecessor's too (redelivered)
    guard.begin(102)
    assert guard.issue(102, 10.0) == 0.0
    guard.observe(100, 9.5)  # the ad server applied 101: a decision made after the lost state's
    guard.begin(103)
    assert guard.issue(103, 10.0) == 0.5
    opened = BudgetGuard(total=10.0)
    opened.begin(7, opened=True)  # the room's first snapshot: nothing can precede it
    assert opened.issue(7, 4.0) == 4.0


def test_the_guard_counts_caps_until_covered_and_pauses_on_late_or_missing_reports():
    guard = BudgetGuard(total=100.0, stale_ticks=3)
    guard.begin(1, opened=True)
    assert guard.issue(1, 60.0) == 60.0
    guard.begin(2)
    assert guard.issue(2, 60.0) == 40.0  # the first 60 is not covered yet
    guard.observe(1, 10.0)  # decision 1 spent 10 of its 60
    guard.begin(3)
    assert guard.issue(3, 60.0) == 50.0  # 10 spent, 40 in flight
    guard.observe(0, 0.0)  # an old report arriving late changes nothing
    assert guard.committed() == 100.0
    guard.begin(4)
    guard.begin(5)
    assert guard.pause_reason(5) is not None  # reports 4 decisions behind
    guard.begin(7)  # a gap: decisions 6 (and 7, handed over again) may have been made by a state we lost
    guard.observe(5, 30.0)
    assert guard.issue(7, 1.0) == 0.0
    guard.observe(6, 30.0)
    assert guard.issue(7, 100.0) == 0.0
    guard.observe(7, 30.0)
    guard.begin(8)
    assert guard.issue(8, 100.0) == 70.0


def test_a_budget_cut_applies_at_once():
    """The repro: lowering the campaign from 100 to 10 still let 15.67 be spent."""
    campaign = Campaign(room_id="r", total_budget=100.0, mcb=McbSettings(duration_s=60.0))
    bidder = Bidder("mcb", campaign)
    spent, caps = 0.0, []
    for k in range(1, 13):
        if k == 3:
            bidder.campaign = Campaign(room_id="r", total_budget=10.0, mcb=McbSettings(duration_s=60.0))
        obs = Observation(room_id="r", ts=5.0 * k, seq=k, live=True, started_at=0.0, value_rate=3.0, online=100,
                          covered_seq=k - 1, covered_total=spent, paid_entries_total=0, opened=k == 1)
        d = bidder.step(obs)
        caps.append(d.spend_cap)
        spent += d.spend_cap
    assert caps[0] > 0 and spent <= max(10.0, sum(caps[:2])) + 1e-9
    assert sum(caps[2:]) <= max(10.0 - sum(caps[:2]), 0.0) + 1e-9


@settings(max_examples=300, deadline=None)
@given(total=st.floats(0, 1e12), ramp_budget=st.floats(0, 1e12), cpe=st.floats(1e-9, 1e9), cpi=st.floats(1e-9, 1e9),
       window=st.floats(1e-3, 1e7), duration=st.floats(1e-3, 1e7), target=st.integers(0, 10**9),
       weight=st.floats(0, 1e6), value_rate=st.floats(0, 1e9), strategy=st.sampled_from(Bidder.STRATEGIES),
       show=st.lists(st.tuples(st.floats(0, 1e11), st.floats(1e-3, 1e7)), max_size=6),
       gain=st.floats(0, 1e6), rnd=st.randoms(use_true_random=False))
def test_every_controller_update_is_bounded_for_any_campaign(total, ramp_budget, cpe, cpi, window, duration, target,
                                                            weight, value_rate, strategy, show, gain, rnd):
    """The overflow repro: a 24-hour plan plus one ramp tick raised OverflowError in
    the lambda update. No campaign within the contract gives an error, NaN,
    infinity or a negative bid (a run of show of any moments and trust included)."""
    campaign = Campaign(room_id="r", total_budget=total,
                        ramp=RampSettings(window_s=window, budget=ramp_budget, target_paid_entries=target,
                                          max_cost_per_entry=cpe),
                        mcb=McbSettings(max_cost_per_interaction=cpi, duration_s=duration,
                                        weights={k: weight for k in ("comment", "like", "order")}),
                        run_of_show=[ScheduledMoment(at=a, duration_s=d) for a, d in show])
    bidder = Bidder(strategy, campaign)
    spent = 0.0
    for k in range(1, 40):
        obs = Observation(room_id="r", ts=5.0 * k, seq=k, live=True, started_at=0.0,
                          value_rate=value_rate * rnd.choice([0.0, 1e-9, 1.0, 1e3]), online=rnd.randint(0, 10**6),
                          covered_seq=k - 1, covered_total=spent, paid_entries_total=rnd.randint(0, 10**6),
                          paid_value_total=rnd.choice([None, 0.0, spent * 1e6, 1e300]), opened=k == 1,
                          paid_dwell_s=rnd.choice([None, 0.0, 1e-9, 1e6]), moment_gain=gain,
                          moment_windows=windows(campaign.run_of_show))
        d = bidder.step(obs)
        for x in (d.spend_cap, d.multiplier, d.unit_value, d.budget_left, d.bid_cap or 0.0, d.lam or 0.0, d.mu or 0.0):
            assert math.isfinite(x) and x >= 0
        spent += d.spend_cap * rnd.random()
        assert spent <= total * (1 + 1e-12) + 1e-6


def test_a_24_hour_plan_plus_one_ramp_tick_does_not_overflow():
    campaign = Campaign(room_id="r", total_budget=1000.0, mcb=McbSettings(duration_s=86_400.0))
    bidder = Bidder("ramp+mcb", campaign)
    bidder.state.last_plan = 1e-12  # the plan of a tick that wanted next to nothing
    bidder.state.phase = "interaction_mcb"
    obs = Observation(room_id="r", ts=10.0, seq=2, live=True, started_at=0.0, value_rate=1.0, online=10,
                      covered_seq=1, covered_total=500.0, paid_entries_total=0)
    bidder.state.guard.begin(1, opened=True)
    bidder.state.last_ts = 5.0
    d = bidder.step(obs)
    assert math.isfinite(d.lam) and d.lam > 0


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


def test_a_guard_handed_snapshots_again_stays_blind_until_a_report_covers_a_later_decision():
    """The redelivery repro (a helper's): a state restored as of the committed offset,
    then the snapshots after it again; the old caps of those seqs are the ad
    server's, the re-issued ones are ignored by it, so the guard must not count
    its own in their place."""
    guard = BudgetGuard(total=10.0)
    guard.begin(1, opened=True)
    assert guard.issue(1, 2.0) == 2.0
    guard.restored = True  # seq 2 handed over again: the predecessor may have decided 2 (and 3)
    guard.observe(0, 0.0)
    guard.begin(2)
    assert guard.issue(2, 5.0) == 0.0
    guard.restored = True
    guard.begin(3)
    assert guard.issue(3, 5.0) == 0.0
    guard.observe(2, 8.0)  # a report covering 2 does not say what was decided for 3
    guard.begin(4)
    assert guard.issue(4, 5.0) == 0.0
    guard.observe(3, 9.0)  # covering the last one handed over again: the rest is this guard's own
    guard.begin(5)
    assert guard.issue(5, 5.0) == 1.0
