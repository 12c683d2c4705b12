"""Bidding controllers: fast ramp, interaction MCB, and the baselines they are scored against.

Pure and deterministic: ``Bidder.step(observation) -> BidDecision``, with all
state in msgspec structs so it can be stored and restored. A strategy proposes a
bid and the spend it wants for the next tick; the :class:`~bidding.budget.BudgetGuard`
decides how much of that may actually be committed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from streams.models import Campaign

from .budget import BudgetGuard
from .paid_value import PAID_PRIOR, PaidValue
from .models import FAST_RAMP, INTERACTION_MCB, PAUSED, BidDecision, Observation
from .run_of_show import STAY_S, forecast_factor, plan_share

DEFAULT_DWELL_S = STAY_S
PACING_GAIN = 0.2  # log-step of r_budget per plan share of spend over or under plan
PACING_SETTLE = 40.0  # ticks after which the pacing gain has fallen by 1/sqrt(2)
PACE_CLIP = 5.0  # a tick's spend counts at most this many times the usual spend over plan
CAP_MARGIN = 0.9  # r_cap aims the campaign's cost per interaction at this share of C
CAP_FLOOR = 0.6  # however far over the aim the total is, the rest of the room aims at least this share of it
CAP_RISE_PER_TICK = 1.2  # r_cap rises at most this much per tick ...
CAP_MAX_RISE = 1.5  # ... and to at most this many times the thresholds it has bought at
CAP_SETTLE = 200.0  # weighted interactions due at which a tick's evidence moves r_cap half way up to its target ...
CAP_SETTLE_DOWN = 50.0  # ... and half way down (it falls faster than it rises)
EXPLORE_SHARE = 0.03  # what exploring may spend past C x the value the evidence shows, as a share of the budget ...
EXPLORE_FADE = 50.0  # ... halved once this many weighted interactions of paid viewers are due
EXPLORE_MAX_OVER_VALUE = 2.0  # ... and a threshold rises so, to at most this many times C x the value factor learnt
EXPLORE_EVIDENCE = 20.0  # until this many are due, that is a limit on the spend itself; after, r_cap holds the cap
MAX_OVER_CAP = 30.0  # no bid above this many times C per unit of predicted value
MIN_R = 1e-4
BURST = 12.0  # a tick may take this many plan shares (a burst of supply is bought) ...
BURST_RAMP_IN = 1.0  # ... but the first may take one, the next two, and so on: the pace before the market is known
MAX_STEP = 1.0  # largest log-step of a threshold per tick
MAX_MULTIPLIER = 1e9  # bids are finite whatever the campaign says


@dataclass(frozen=True, slots=True)
class Proposal:
    strategy: str
    bid_cap: float | None  # hard cap per impression
    multiplier: float  # on predicted value; 0 = flat bid_cap
    wanted: float  # spend wanted for the next tick
    reason: str
    lam: float | None = None
    mu: float | None = None


def unit_value(obs: Observation) -> float:
    """Predicted weighted interactions of one paid viewer of average propensity:
    the room's predicted rate per viewer-minute over a typical stay. The stays of
    past paid viewers are not in it: they are known a stay late, and a hot room
    keeps viewers longer, so they would add the past's noise to the future."""
    return obs.value_rate * DEFAULT_DWELL_S / 60.0


class BidderState(msgspec.Struct, kw_only=True):
    guard: BudgetGuard
    start_ts: float | None = None
    last_ts: float | None = None
    tick_s: float = 5.0
    phase: str = FAST_RAMP
    # fast ramp
    ramp_entries0: int | None = None
    ramp_spend0: float = 0.0  # committed spend when the ramp began
    ramp_confirmed0: float = 0.0  # reported spend when the ramp began
    ramp_bid: float = 0.0
    ramp_done_reason: str | None = None
    ramp_end_ts: float | None = None
    last_entries: int = 0
    last_confirmed: float = 0.0
    last_plan: float = 0.0
    # interaction MCB / pacers
    lam: float = 0.0  # reported: 1 / r_budget
    mu: float = 0.0  # reported: 1 / r_cap
    r_budget: float = 0.0  # bid per unit of predicted value the budget's pace allows (0: not set)
    r_cap: float = 0.0  # bid per unit of predicted value the cost cap allows (0: not set)
    pace_ticks: int = 0
    pace_usual: float = 1.0  # moving average of (clipped) spend over plan per tick
    last_multiplier: float = 0.0  # the threshold the last decision bid at
    cap_ticks: int = 0  # ticks whose buys r_cap has learnt from
    cap_spend: float = 0.0  # confirmed spend, and spend x the threshold it was bought at
    cap_spend_r: float = 0.0
    multiplier: float = 1.0
    paid: PaidValue = msgspec.field(default_factory=PaidValue)  # what paid viewers are worth (cohorts, evidence)
    last_unit: float = 0.0  # the predicted value per viewer the last buying decision bid on
    last_spend_cap: float = 0.0  # the spend cap the last decision issued
    cap_entries: int = 0  # paid entries when r_cap last looked
    cap_held: bool = False  # the last decision's spend was cut to what exploring may still risk


class Bidder:
    """One room's bidding: a strategy behind a budget guard.

    Strategies: ``ramp+mcb`` (fast ramp, then interaction MCB), ``mcb``, ``pid``
    (AuctionNet-style pacer on a value bid) and ``fixed`` (one flat bid)."""

    STRATEGIES = ("ramp+mcb", "mcb", "pid", "fixed")

    def __init__(self, strategy: str, campaign: Campaign, *, state: BidderState | None = None,
                 tick_s: float = 5.0) -> None:
        if strategy not in self.STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(self.STRATEGIES)}")
        self.strategy = strategy
        self.campaign = campaign
        self.state = state or BidderState(guard=BudgetGuard(total=campaign.total_budget), tick_s=tick_s,
                                          phase=FAST_RAMP if strategy == "ramp+mcb" else INTERACTION_MCB)

    def step(self, obs: Observation, *, bought_value_total: float | None = None) -> BidDecision:
        """Decide the bid for the tick after ``obs``. ``bought_value_total`` is the
        cumulative value bought so far, when the ad server reports it (the market
        simulator); live, it is the weighted interactions of paid viewers."""
        st = self.state
        guard = st.guard
        guard.total = self.campaign.total_budget  # a budget change applies at once, cuts included
        guard.observe(obs.covered_seq, obs.covered_total, obs.seq)
        if st.last_ts is not None and obs.ts <= st.last_ts:
            return self._decision(obs, _pause("stale or repeated snapshot"), 0.0)
        guard.begin(obs.seq, opened=obs.opened)
        if st.start_ts is None and obs.live:
            known = obs.started_at is not None and math.isfinite(obs.started_at) and obs.started_at <= obs.ts
            st.start_ts = obs.started_at if known else obs.ts - st.tick_s
        st.last_ts = obs.ts
        if bought_value_total is None:
            bought_value_total = obs.paid_value_total
        spend = guard.committed()  # reported spend plus every cap not yet covered: never less than spent
        entries = obs.paid_entries_total if obs.paid_entries_total is not None else st.last_entries
        if entries > st.last_entries and st.last_unit > 0:  # the last tick's paid entries: a cohort
            st.paid.add(obs.ts - st.tick_s / 2, (entries - st.last_entries) * st.last_unit)
        st.paid.observe(obs.ts, bought_value_total)
        if not obs.live or st.start_ts is None:
            proposal = _pause("room not live")
        elif self.strategy == "fixed":
            proposal = self._fixed(obs)
        elif self.strategy == "pid":
            proposal = self._pid(obs, spend)
        else:
            proposal = self._mcb(obs, spend, bought_value_total)  # first: it learns r_cap, which the ramp holds to
            ramp = self._ramp(obs, spend, entries) if st.phase == FAST_RAMP else None
            if ramp is not None:
                proposal = _with_ramp(ramp, proposal)
        st.last_entries = entries
        st.last_confirmed = guard.covered_total
        st.cap_held = False
        if proposal.strategy in (FAST_RAMP, INTERACTION_MCB) and proposal.wanted > 0 \
                and st.paid.due(obs.ts) < EXPLORE_EVIDENCE:
            # Before there is evidence, the cost cap is a limit on money, as the budget is:
            # spend runs ahead of what the evidence shows was bought within C by the
            # exploration allowance only. (After, r_cap holds the cap: stopping would lock
            # in a dear start that buying cheaper can still bring back to C.)
            room = self._explore_room(obs, spend)  # committed: the caps in flight are cut to it as well
            if room < proposal.wanted:
                st.cap_held = True
                proposal = _limited(proposal, max(room, 0.0), "held by the cost cap until paid viewers' "
                                    f"interactions show more value bought ({st.paid.value(obs.ts):.1f} so far)")
        if proposal.strategy != PAUSED:
            why = guard.pause_reason(obs.seq)
            cap = guard.issue(obs.seq, proposal.wanted) if why is None else 0.0
            if cap <= 0.0:
                if self.campaign.total_budget <= 0:  # first: it is why nothing is bought, whatever else holds
                    why = "budget 0: no campaign for the room (none published, or deleted), or one with a budget of 0"
                elif why is None and guard.left <= 1e-9:
                    why = "budget spent"
                elif why is None and proposal.wanted <= 0:
                    why = f"nothing to buy yet ({proposal.reason})"  # e.g. no value measured yet
                elif why is None:
                    why = "paused: the budget left is held by decisions not yet reported"
                proposal = _pause(why, proposal.lam, proposal.mu)
        else:
            cap = 0.0
        st.last_multiplier = proposal.multiplier if cap > 0 else 0.0
        st.last_spend_cap = cap
        if cap > 0:
            st.last_unit = unit_value(obs)
        return self._decision(obs, proposal, cap)

    def _explore_room(self, obs: Observation, spent: float) -> float:
        """What exploring may still risk: an allowance that fades as evidence comes,
        plus C x what the buys so far are worth (the posterior: a viewer who has
        not commented yet is not a verdict), less ``spent``:
        what is committed where the room's caps are cut to this (before evidence),
        what the ad server reports where they are not (a cap in flight is a
        ceiling, mostly not spent: counted whole, it would end exploring)."""
        paid = self.state.paid
        allowance = EXPLORE_SHARE * self.campaign.total_budget * EXPLORE_FADE / (paid.due(obs.ts) + EXPLORE_FADE)
        return allowance + self.campaign.mcb.max_cost_per_interaction * paid.value(obs.ts) - spent

    # -- strategies --------------------------------------------------------

    def _ramp(self, obs: Observation, spend: float, entries: int) -> Proposal | None:
        """Front-loaded plan of paid entries over the ramp window, bid <= max cost per entry."""
        st = self.state
        ramp = self.campaign.ramp
        confirmed = st.guard.covered_total
        if st.ramp_entries0 is None:
            st.ramp_entries0, st.ramp_spend0, st.ramp_confirmed0 = entries, spend, confirmed
        got = entries - st.ramp_entries0
        # The ramp is over when its budget is spent by the reports; meanwhile it asks
        # only for what its caps in flight (counted whole) leave of it.
        spent = confirmed - st.ramp_confirmed0
        committed = spend - st.ramp_spend0
        elapsed = max(obs.ts - (st.start_ts or obs.ts), 0.0)
        done = None
        if got >= ramp.target_paid_entries:
            done = "target reached"
        elif spent >= ramp.budget - 1e-9 or ramp.budget - spent < 0.25 * ramp.max_cost_per_entry:
            done = "ramp budget spent"
        elif elapsed >= ramp.window_s:
            done = "ramp window over"
        if done is not None:
            st.phase = INTERACTION_MCB
            st.ramp_done_reason = done
            st.ramp_end_ts = obs.ts
            return None
        horizon = min(elapsed + 2 * st.tick_s, ramp.window_s)
        shape = (1 - math.exp(-3.0 * horizon / ramp.window_s)) / (1 - math.exp(-3.0))
        want_entries = max(ramp.target_paid_entries * shape - got, 0.0)
        unit = unit_value(obs)
        if st.ramp_bid <= 0.0:  # first tick: an average viewer bid at 60% of the entry cap
            st.ramp_bid = _bounded(0.6 * ramp.max_cost_per_entry / unit) if unit > 0 else 0.0
        # Feedback: behind plan -> bid up, ahead -> down. Bids rank viewers by their
        # predicted value, and no entry costs more than the cap (second price <= bid).
        last_got = entries - st.last_entries
        if want_entries > 0 and last_got < want_entries / 2:
            st.ramp_bid *= 1.25
        elif last_got > want_entries:
            st.ramp_bid *= 0.8
        if unit > 0:  # keep the multiplier where the cap still binds for most viewers
            st.ramp_bid = _bounded(min(st.ramp_bid, 4.0 * ramp.max_cost_per_entry / unit))
        reason = f"ramp: {got}/{ramp.target_paid_entries} paid entries after {elapsed:.0f}s"
        cap = ramp.max_cost_per_entry
        # The cost cap holds during the ramp too: no viewer is bid above what the cap
        # allows for their predicted value (r_cap, which MCB set this tick, learns
        # from the ramp's own buys).
        if unit <= 0:  # nothing to hold the cost cap against yet: wait for the room's first interactions
            return Proposal(FAST_RAMP, cap, 0.0, 0.0, reason + "; waiting for a value to bid on")
        multiplier = min(st.ramp_bid, st.r_cap)
        if obs.paid_dwell_s is not None and obs.paid_dwell_s < 20.0:
            # The room cannot hold bought viewers: buy slower and cheaper.
            want_entries *= 0.5
            cap *= 0.7
            reason += f"; throttled, paid viewers stay {obs.paid_dwell_s:.0f}s"
        wanted = min(want_entries * cap, ramp.budget - committed)
        return Proposal(FAST_RAMP, cap, round(multiplier, 6), max(wanted, 0.0), reason)

    def _plan_per_tick(self, obs: Observation, spend: float) -> tuple[float, int]:
        st = self.state
        end = (st.start_ts or obs.ts) + self.campaign.mcb.duration_s
        ticks_left = max(int(math.ceil((end - obs.ts) / st.tick_s)), 1)
        left = max(self.campaign.total_budget - spend, 0.0)  # spend: committed, caps in flight included
        # Flat over the ticks left, unless the run of show says where the value is.
        share = plan_share(obs.moment_windows, obs.ts, ticks_left, st.tick_s, obs.moment_gain, STAY_S)
        return left * share, ticks_left

    def _mcb(self, obs: Observation, spend: float, bought_value_total: float | None) -> Proposal:
        """Bid ``multiplier x predicted value`` with ``multiplier = min(r_budget, r_cap)``.

        The two thresholds are the LP's dual prices, learnt online in log space:
        ``r_budget = 1/lambda`` paces spend to the plan, ``r_cap`` holds the
        campaign's cost per interaction (ramp spend included) at CAP_MARGIN x C,
        judged on what the buys are worth with their pending stays counted
        (:class:`~bidding.paid_value.PaidValue`). Each moves only while its own
        constraint is the one that binds, so the idle one does not wind up."""
        st = self.state
        cap_c = self.campaign.mcb.max_cost_per_interaction
        plan, ticks_left = self._plan_per_tick(obs, spend)
        confirmed = st.guard.covered_total
        if st.r_budget <= 0.0:  # a cautious start: a paid viewer worth the prior's share of an organic one
            st.r_budget = st.r_cap = PAID_PRIOR * cap_c
        spent_tick = max(confirmed - st.last_confirmed, 0.0)
        if st.last_plan > 0 and not st.cap_held:  # spend the cost cap held back says nothing of the pace
            # Dual subgradient on the budget: the last tick's spend over its plan
            # share, less one (mean zero when on plan, however sparse the buys),
            # clipped so that one burst of supply moves it only so far, with a
            # step that shrinks as the room goes on.
            st.pace_ticks += 1
            gain = PACING_GAIN / math.sqrt(1.0 + st.pace_ticks / PACING_SETTLE)
            ratio = spent_tick / st.last_plan if math.isfinite(spent_tick / st.last_plan) else 1e6
            # A burst counts at most PACE_CLIP times the spend that is usual here
            # (sparse buys are usual at a small budget and still count in full).
            err = min(ratio, PACE_CLIP * max(st.pace_usual, 1.0)) - 1.0
            st.pace_usual = 0.9 * st.pace_usual + 0.1 * min(ratio, PACE_CLIP * max(st.pace_usual, 1.0))
            step = _clamp(-gain * err, MAX_STEP)
            if step < 0 or st.r_budget <= 1.05 * st.r_cap:
                st.r_budget = _clamp_pos(st.r_budget * math.exp(step), cap_c)
        if spent_tick > 0 and st.last_multiplier > 0:
            st.cap_spend += spent_tick
            st.cap_spend_r += spent_tick * st.last_multiplier
            st.cap_ticks += 1
        value = st.paid.value(obs.ts)  # what the buys so far are worth, their pending stays included
        bought = spent_tick > 0 or st.last_entries > st.cap_entries
        st.cap_entries = st.last_entries
        if not bought and st.last_multiplier > 0 and st.last_spend_cap > 0:
            # The last threshold bought nothing: too low for this market now (or the
            # market has moved: competitors run out late). It rises, so a threshold
            # that buys nothing learns that it is too low, as long as what the room
            # has spent past the value its evidence shows is within the exploration
            # allowance: a market where C cannot be met costs that much, no more.
            if self._explore_room(obs, confirmed) > 0:
                # Not past what a paid viewer is believed to be worth: a threshold that
                # climbs while nothing is bought must not wait, far above C, for evidence.
                ceiling = EXPLORE_MAX_OVER_VALUE * st.paid.factor(obs.ts) * cap_c
                st.r_cap = _clamp_pos(min(st.r_cap * CAP_RISE_PER_TICK, max(ceiling, st.r_cap)), cap_c)
        elif value > 0 and st.cap_ticks > 0 and confirmed > 0:
            # Bought at thresholds averaging r_used, the campaign paid cpi per
            # interaction; cost per interaction scales with the threshold, so
            # r_used x aim / cpi is where it meets the aim (the predictor's bias
            # included). Past overspend pulls it lower until the total is back.
            r_used = st.cap_spend_r / st.cap_spend
            cpi = confirmed / value
            # What the rest of the room must average for the total to end at the aim,
            # if it buys as much value per tick as the room so far has.
            elapsed = max((obs.ts - (st.start_ts or obs.ts)) / st.tick_s, 1.0)
            future_value = value * ticks_left / elapsed
            aim = CAP_MARGIN * cap_c
            future_aim = (aim * (value + future_value) - confirmed) / future_value if future_value > 0 else aim
            future_aim = max(future_aim, CAP_FLOOR * aim) if math.isfinite(future_aim) else aim
            target = _clamp_pos(r_used * math.exp(_log_ratio(future_aim, cpi)), cap_c)
            # While little is due, one tick's evidence moves r_cap only part of the way.
            settle = CAP_SETTLE if target > st.r_cap else CAP_SETTLE_DOWN
            due = st.paid.due(obs.ts)
            w = due / (due + settle) if settle > 0 else 1.0
            if target > 0 and st.r_cap > 0:
                target = math.exp(w * math.log(target) + (1 - w) * math.log(st.r_cap))
            if target > st.r_cap:
                st.r_cap = min(target, CAP_MAX_RISE * max(r_used, st.last_multiplier), CAP_RISE_PER_TICK * st.r_cap)
            else:
                st.r_cap = target
        unit = unit_value(obs)
        multiplier = min(st.r_budget, st.r_cap)
        st.lam = 1.0 / st.r_budget
        st.mu = 1.0 / st.r_cap
        st.last_plan = plan
        # The plan is a pace, not a ceiling: a hot tick or a burst of supply may take
        # several ticks' worth; r_budget brings the average back.
        wanted = plan * min(BURST, BURST_RAMP_IN + st.pace_ticks) if ticks_left > 1 else plan
        reason = (f"mcb: plan {plan:.3f}/tick, value {unit:.3f} per viewer, "
                  f"bid x{multiplier:.3f} (budget x{st.r_budget:.3f}, cap x{st.r_cap:.3f})")
        ahead = forecast_factor(obs.moment_windows, obs.ts, obs.moment_gain, STAY_S)
        if ahead > 1.0:
            reason += f"; a planned moment ahead: value x{ahead:.2f}"
        if unit <= 0:
            return _pause("no interactions to buy yet", st.lam, st.mu)
        return Proposal(INTERACTION_MCB, None, round(multiplier, 6), wanted, reason, round(st.lam, 6), round(st.mu, 6))

    def _pid(self, obs: Observation, spend: float) -> Proposal:
        """AuctionNet-style pacer, the fair baseline: the multiplier on value goes x1.2
        when the last tick's confirmed spend was under 0.7 of its plan share, x0.7
        when over 1.1; the plan and the burst allowance are MCB's."""
        st = self.state
        plan, ticks_left = self._plan_per_tick(obs, spend)
        if st.last_plan > 0:
            pace = (st.guard.covered_total - st.last_confirmed) / st.last_plan
            if pace < 0.7:
                st.multiplier = min(st.multiplier * 1.2, 1e6)
            elif pace > 1.1:
                st.multiplier = max(st.multiplier * 0.7, 1e-6)
        st.last_plan = plan
        mult = st.multiplier * self.campaign.mcb.max_cost_per_interaction
        wanted = plan * BURST if ticks_left > 1 else plan
        return Proposal("pid", None, round(mult, 6), wanted, f"pid: multiplier {st.multiplier:.3f}")

    def _fixed(self, obs: Observation) -> Proposal:
        plan, _ = self._plan_per_tick(obs, self.state.guard.committed())
        bid = self.campaign.ramp.max_cost_per_entry / 4
        return Proposal("fixed", bid, 0.0, plan, f"fixed bid {bid:.3f}")

    def _decision(self, obs: Observation, p: Proposal, cap: float) -> BidDecision:
        return BidDecision(
            room_id=obs.room_id, ts=obs.ts, seq=obs.seq, strategy=p.strategy,
            bid_cap=None if p.bid_cap is None else round(_bounded(p.bid_cap), 6),
            multiplier=round(_bounded(p.multiplier), 6),
            unit_value=round(_bounded(unit_value(obs)), 6), spend_cap=_floor6(cap),
            budget_left=_floor6(self.state.guard.left), reason=p.reason, lam=p.lam, mu=p.mu,
            budget=round(_bounded(self.state.guard.total), 6), spent=_floor6(self.state.guard.covered_total),
            committed=_floor6(self.state.guard.committed() - self.state.guard.covered_total),
        )


def _with_ramp(ramp: Proposal, mcb: Proposal) -> Proposal:
    """During the ramp, interaction bidding goes on: the ramp adds entries on top.
    Each impression gets the higher of the two bids, and no impression is bid
    above the ramp's cost per entry, so every entry of the ramp window holds it."""
    if mcb.strategy == PAUSED or mcb.multiplier <= ramp.multiplier:
        return Proposal(FAST_RAMP, ramp.bid_cap, ramp.multiplier, ramp.wanted + mcb.wanted, ramp.reason,
                        mcb.lam, mcb.mu)
    return Proposal(FAST_RAMP, ramp.bid_cap, mcb.multiplier, ramp.wanted + mcb.wanted,
                    f"{ramp.reason}; interaction bid is higher", mcb.lam, mcb.mu)


def _limited(p: Proposal, wanted: float, why: str) -> Proposal:
    return Proposal(p.strategy, p.bid_cap, p.multiplier, wanted, f"{p.reason}; {why}", p.lam, p.mu)


def _log_ratio(a: float, b: float) -> float:
    """log(a / b) within +-log(1e3), for any a, b >= 0 (inf and 0 included)."""
    r = a / b if b > 0 else math.inf
    return math.log(min(max(r, 1e-3), 1e3)) if r == r else 0.0


def _clamp(x: float, bound: float) -> float:
    return min(max(x, -bound), bound)


def _clamp_pos(r: float, cap_c: float) -> float:
    """A threshold (bid per unit of predicted value) within MIN_R..MAX_OVER_CAP times C."""
    return min(max(r, MIN_R * cap_c), MAX_OVER_CAP * cap_c)


def _bounded(x: float) -> float:
    """A bid parameter the ad server can use: finite, not negative, not absurd."""
    return min(x, MAX_MULTIPLIER) if x > 0 and math.isfinite(x) else 0.0


def _floor6(x: float) -> float:
    """Money leaves a decision rounded down, never up."""
    return math.floor(x * 1e6) / 1e6


def _pause(reason: str, lam: float | None = None, mu: float | None = None) -> Proposal:
    return Proposal(PAUSED, 0.0, 0.0, 0.0, reason, lam, mu)
