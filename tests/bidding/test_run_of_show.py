"""The run of show as a forecast: the arithmetic, the trust it earns, the foresight
it gives, the plan it shapes, what it is worth in the evaluation, and the
campaign contract that carries it."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidding.evaluate import by_family, evaluate
from bidding.models import ValueRate
from bidding.run_of_show import (STAY_S, MomentGain, _overlap_integral, forecast_factor, overlap_s, plan_share,
                                 windows)
from bidding.scenarios import cases, family_named
from streams.models import Campaign, RoomMetrics, ScheduledMoment


def test_windows_are_sorted_and_merged():
    show = [ScheduledMoment(at=100.0, duration_s=30.0), ScheduledMoment(at=10.0, duration_s=5.0),
            ScheduledMoment(at=120.0, duration_s=40.0)]
    assert windows(show) == ((10.0, 15.0), (100.0, 160.0))
    assert overlap_s(windows(show), 0.0, 200.0) == 65.0
    assert overlap_s(windows(show), 150.0, 155.0) == 5.0 and overlap_s(windows(show), 20.0, 90.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(s=st.floats(-500, 500), length=st.floats(0.5, 400), stay=st.floats(1, 200), a=st.floats(-800, 800),
       span=st.floats(0, 1200))
def test_the_overlap_integral_is_the_integral(s, length, stay, a, span):
    """The closed form the plan uses, against a fine Riemann sum of the overlap itself."""
    e, b = s + length, a + span
    xs = np.linspace(a, b, 4001)
    numeric = np.trapezoid([overlap_s(((s, e),), x, x + stay) for x in xs], xs) if span > 0 else 0.0
    step = span / 4000
    assert _overlap_integral(s, e, stay, a, b) == pytest.approx(numeric, abs=4 * step * min(stay, length) + 1e-9)


def test_a_viewer_bought_before_a_planned_moment_is_forecast_to_be_worth_more():
    wins = ((1000.0, 1040.0),)
    assert forecast_factor(wins, 900.0, 2.0, STAY_S) == 1.0  # the minute ahead misses it
    assert forecast_factor(wins, 970.0, 2.0, STAY_S) == pytest.approx(1 + 2.0 * 30 / 60)  # 30 s of it ahead
    assert forecast_factor(wins, 1000.0, 2.0, STAY_S) == pytest.approx(1 + 2.0 * 40 / 60)
    assert forecast_factor(wins, 1040.0, 2.0, STAY_S) == 1.0
    assert forecast_factor(wins, 970.0, 0.0, STAY_S) == 1.0  # no trust, no lift


@pytest.mark.parametrize("gain", [0.0, 0.5, 2.0, 8.0])
def test_following_the_plan_spends_the_budget_by_the_end_and_saves_it_for_the_moments(gain):
    wins = ((300.0, 345.0), (700.0, 760.0), (5000.0, 5100.0))  # the last one after the planned end
    left, spent = 100.0, []
    ticks = 200  # 5 s ticks from t = 0 to 1000
    for k in range(ticks):
        share = plan_share(wins, 5.0 * k, ticks - k, 5.0, gain, STAY_S)
        assert 0 < share <= 1
        spent.append(left * share)
        left -= spent[-1]
    assert left == pytest.approx(0.0, abs=1e-9)
    spent = np.array(spent)
    calm, before_moment = spent[20:30].mean(), spent[56:60].mean()  # t = 100-150 s and 280-300 s
    if gain == 0:
        assert np.allclose(spent, 100.0 / ticks)
    else:  # the ticks whose viewers will see the moment get more than the calm ones
        assert before_moment > calm * (1 + 0.5 * gain * 0.6)


@settings(max_examples=200, deadline=None)
@given(moments=st.lists(st.tuples(st.floats(0, 1e11), st.floats(1e-3, 1e7)), max_size=20), t=st.floats(0, 1e11),
       ticks=st.integers(1, 10**7), gain=st.floats(0, 1e6))
def test_a_plan_share_is_a_share_for_any_run_of_show(moments, t, ticks, gain):
    wins = windows([ScheduledMoment(at=a, duration_s=d) for a, d in moments])
    share = plan_share(wins, t, ticks, 5.0, gain, STAY_S)
    assert math.isfinite(share) and 0 < share <= 1


def test_the_gain_is_learnt_from_what_the_windows_bring():
    kept, broken = MomentGain(), MomentGain()
    for _ in range(60):
        kept.learn(1.0, 3.0)  # inside a window the room runs at 4x its baseline
        broken.learn(1.0, 0.0)  # the moment never came
        broken.learn(0.0, 5.0)  # and a surge outside any window says nothing about the schedule
    assert kept.gain == pytest.approx(3.0, rel=0.1)
    assert broken.gain < 0.25
    assert MomentGain().gain == 2.0  # the prior, before any window


def _snapshot(ts: float, online: int, total: float) -> RoomMetrics:
    return RoomMetrics(room_id="r", ts=ts, online=online, peak_online=online, organic_entries_per_min=0.0,
                       paid_entries_per_min=0.0, interactions_per_min={}, interactions_per_viewer_min=0.0,
                       organic_entries_total=0, paid_entries_total=0, interactions_total={"comment": total},
                       orders_total=0, gmv_total=0.0, gift_value_total=0.0, spend_total=0.0, live=True)


def _predict(moments: list[tuple[float, float]], planned: list[tuple[float, float]]) -> list[float]:
    """A steady room at 2 interactions per viewer-minute, 5x during ``moments``;
    the prediction after each 5 s tick, given the run of show ``planned``."""
    wins = windows([ScheduledMoment(at=a, duration_s=b - a) for a, b in planned])
    vr, total, preds = ValueRate(), 0.0, []
    for k in range(1, 241):
        ts = 5.0 * k
        rate = 10.0 if any(a <= ts - 5.0 < b for a, b in moments) else 2.0
        total += rate * 100 * 5 / 60
        preds.append(vr.update(_snapshot(ts, 100, total), {"comment": 1.0}, wins))
    return preds


def test_the_predictor_sees_a_planned_moment_coming_and_trusts_a_run_of_show_that_keeps_its_word():
    moment = [(400.0, 440.0), (900.0, 940.0)]
    blind = _predict(moment, [])
    told = _predict(moment, moment)
    k = int(370 / 5) - 1  # 30 s before the first moment: nothing in the room shows it yet
    assert blind[k] == pytest.approx(2.0, rel=0.05)
    assert told[k] > 2.0 * 1.5
    assert told[int(600 / 5) - 1] == pytest.approx(2.0, rel=0.05)  # between moments: the baseline, not lifted
    # The first moment came as planned: the second is forecast with more trust than the prior.
    before_second = int(880 / 5) - 1
    assert told[before_second] > told[k]


def test_a_run_of_show_that_lists_moments_that_never_come_is_trusted_less():
    phantom = [(400.0, 440.0), (900.0, 940.0)]
    told = _predict([], phantom)
    k1, k2 = int(370 / 5) - 1, int(870 / 5) - 1
    assert told[k1] > 2.0 * 1.5  # the prior trusts the plan once
    assert told[k2] - 2.0 < 0.5 * (told[k1] - 2.0)  # after a window that brought nothing, half the lift or less
    assert told[int(600 / 5) - 1] == pytest.approx(2.0, rel=0.05)


def test_a_moment_that_runs_late_is_waited_for_then_anchored_where_it_shows():
    """Planned at 400 s, it comes at 440 s. While it is due the forecast stays up
    (less and less), once it shows the rest of it is forecast from its real start,
    and its lift teaches the gain as if it had been on time."""
    planned = [(400.0, 440.0), (900.0, 940.0)]
    late = _predict([(440.0, 480.0), (900.0, 940.0)], planned)
    on_time = _predict(planned, planned)
    due_early, due_late = int(410 / 5) - 1, int(435 / 5) - 1
    assert late[due_early] > late[due_late] > 2.0 * 1.1  # waiting, expecting less as it keeps us waiting
    k = int(450 / 5) - 1  # 10 s into the late moment: 30 s of it left in the minute ahead
    assert late[k] == pytest.approx(on_time[int(410 / 5) - 1], rel=0.25)
    vr = ValueRate()
    wins = windows([ScheduledMoment(at=a, duration_s=b - a) for a, b in planned])
    total = 0.0
    for i in range(1, 120):
        ts = 5.0 * i
        total += (10.0 if 440 <= ts - 5.0 < 480 else 2.0) * 100 * 5 / 60
        vr.update(_snapshot(ts, 100, total), {"comment": 1.0}, wins)
    assert vr.moments.onsets == [(400.0, pytest.approx(440.0, abs=10.0))]
    assert vr.moments.gain > 2.0  # the late moment lifted the room 4x: trust went up, not down


def test_a_moment_that_never_shows_is_written_off_and_costs_the_schedule_trust():
    vr = ValueRate()
    wins = windows([ScheduledMoment(at=400.0, duration_s=40.0)])
    total, preds = 0.0, []
    for i in range(1, 120):
        total += 2.0 * 100 * 5 / 60
        preds.append(vr.update(_snapshot(5.0 * i, 100, total), {"comment": 1.0}, wins))
    assert vr.moments.missed == [400.0] and not vr.moments.onsets
    assert vr.moments.gain < 1.0
    assert preds[int(470 / 5) - 1] == pytest.approx(2.0, rel=0.05)  # written off: the baseline again


def test_the_run_of_show_pays_where_the_cap_binds_and_a_wrong_one_costs_little():
    """The evaluation's own figures, six seeds: with the run of show ramp+mcb buys
    more under a binding cap than without; one that lists a moment that never
    comes or slips by half a minute still beats none; and no episode breaks the cap."""
    names = ("cap binds (bound spends 60%)", "cap binds, no run of show", "cap binds, a moment never comes",
             "cap binds, run of show slips")
    scores = evaluate(tuple(family_named(n) for n in names), range(6), ("ramp+mcb",))
    t = {f: v["ramp+mcb"] for f, v in by_family(scores).items()}
    exact, none = t[names[0]]["ratio_to_hindsight"], t[names[1]]["ratio_to_hindsight"]
    assert exact > none + 0.1
    assert t[names[2]]["ratio_to_hindsight"] > none and t[names[3]]["ratio_to_hindsight"] > none
    assert all(v["share_over_cap_10pct"] == 0 for v in t.values())


def test_the_families_run_of_show_is_what_they_say():
    exact = cases(family_named("cap binds (bound spends 60%)"), range(2))
    slipped = cases(family_named("cap binds, run of show slips"), range(2))
    phantom = cases(family_named("cap binds, a moment never comes"), range(2))
    none = cases(family_named("cap binds, no run of show"), range(2))
    for e, s, p, n in zip(exact, slipped, phantom, none):
        planned = e.campaign.run_of_show
        assert planned and not n.campaign.run_of_show
        assert len(p.campaign.run_of_show) == len(planned) + 1
        offs = [b.at - a.at for a, b in zip(planned, s.campaign.run_of_show)]
        assert all(o != 0 for o in offs) and max(abs(o) for o in offs) < 150
    ends = cases(family_named("ends at half its planned length"), range(1))[0]
    assert max(m.at for m in ends.campaign.run_of_show) > ends.episode.metrics[-1].ts  # planned past the real end
    long = cases(family_named("runs 1.5x its planned length"), range(1))[0]
    planned_end = long.episode.metrics[0].ts + long.campaign.mcb.duration_s
    assert all(m.at < planned_end for m in long.campaign.run_of_show)


@pytest.mark.parametrize("show, why", [
    ([{"at": -1.0}], "at"),
    ([{"at": 1.0, "duration_s": 0.0}], "duration_s"),
    ([{"at": 1.0, "kind": "x" * 65}], "kind"),
    ([{"at": 1.0}] * 501, "length"),
    ({"at": 1.0}, "array"),
])
def test_a_campaign_with_a_bad_run_of_show_is_refused(show, why):
    raw = msgspec.json.encode({"room_id": "r", "total_budget": 10.0, "run_of_show": show})
    with pytest.raises(msgspec.ValidationError, match=why):
        msgspec.json.decode(raw, type=Campaign)
    ok = msgspec.json.decode(b'{"room_id": "r", "total_budget": 1, "run_of_show": [{"at": 5, "kind": "flash_sale"}]}',
                             type=Campaign)
    assert ok.run_of_show == [ScheduledMoment(at=5.0, duration_s=60.0, kind="flash_sale")]
