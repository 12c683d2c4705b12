"""Scenario families for scoring the bidding: room shapes, budgets, caps and markets.

A family is a recipe: a room (a synthetic shape, or the shipped sample session),
a campaign transform (budget, cost cap, planned length) and a market (supply,
competitor prices). Each seed draws its own market, and synthetic families
cycle through four rooms of their shape, so no family rests on one recording.

The cost cap of the ``cap binds`` families is set per episode, by bisection on
the hindsight bound, so that the best possible run spends a given share of the
budget: the cap, not the budget, is what stops it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import msgspec
import numpy as np

from sessions.folder import LineReader, Session, open_session
from streams.config import CoreConfig
from streams.core import StreamCore
from streams.models import Campaign, RoomMetrics, ScheduledMoment

from .market import Episode, MarketConfig, build_episode, hindsight

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample-session"
ROOM_VARIANTS = 4  # synthetic rooms per family; seed s uses room s % 4


@dataclass(frozen=True)
class Family:
    name: str
    shape: str | None  # synthetic room shape (sessions.synth.SHAPES); None: the sample session
    budget_factor: float = 1.0
    cap_spend_share: float | None = None  # C set so the hindsight bound spends this share of the budget
    planned_length: float = 1.0  # the campaign's planned duration over the room's real length
    interaction_decay: float | None = None  # interactions per viewer fall linearly to this share by the end
    market: MarketConfig = field(default_factory=MarketConfig)
    run_of_show: str = "exact"  # the campaign's planned moments: exact | slipped | phantom | none
    cap_unmeetable: bool = False  # C below what any viewer on offer costs per interaction: nothing can be bought
    end_notice_s: float | None = None  # the campaign is republished with the real length this long before the end


FAMILIES = (
    Family("sample session", None),
    Family("quiet room", "quiet"),
    Family("one big peak", "one_peak"),
    Family("steady", "steady"),
    Family("budget x10", "default", budget_factor=10.0),
    Family("budget x0.1", "default", budget_factor=0.1),
    Family("cap binds (bound spends 60%)", "default", cap_spend_share=0.6),
    Family("cap binds hard (bound spends 30%)", "default", cap_spend_share=0.3),
    Family("bursty supply (10% of ticks x10)", "default", market=MarketConfig(burst_share=0.1)),
    Family("interactions decay to 0.2x", "default", interaction_decay=0.2),
    Family("competitor prices x2 from half-time", "default", market=MarketConfig(price_shift_at=0.5, price_shift=2.0)),
    Family("ends at half its planned length", "default", planned_length=2.0),
    Family("ends at half its planned length, announced 3 min ahead", "default", planned_length=2.0,
           end_notice_s=180.0),
    Family("runs 1.5x its planned length", "default", planned_length=1 / 1.5),
    Family("two late peaks", "late_peaks"),
    Family("run of show slips (moments +-30 s off plan)", "default", run_of_show="slipped"),
    Family("run of show lists a moment that never comes", "default", run_of_show="phantom"),
    Family("no run of show", "default", run_of_show="none"),
    Family("cap binds, run of show slips", "default", cap_spend_share=0.6, run_of_show="slipped"),
    Family("cap binds, a moment never comes", "default", cap_spend_share=0.6, run_of_show="phantom"),
    Family("cap binds, no run of show", "default", cap_spend_share=0.6, run_of_show="none"),
    Family("cheap supply comes late (prices /3 from 60%)", "default",
           market=MarketConfig(price_median=1.5, price_shift_at=0.6, price_shift=1 / 3)),
    Family("paid viewers stay 10-30 s, cap binds", "default", cap_spend_share=0.6,
           market=MarketConfig(stay_s=(10.0, 30.0))),
    Family("C cannot be met", "default", cap_unmeetable=True),
    Family("C cannot be met, quiet room", "quiet", cap_unmeetable=True),
)
SLIP_S = 30.0  # the slipped family's moments start this many seconds (sd) off their planned time


@dataclass(frozen=True)
class Case:
    """One episode of a family: the room, the campaign and the drawn market."""

    family: str
    seed: int
    campaign: Campaign
    episode: Episode
    updates: tuple[tuple[float, Campaign], ...] = ()  # (from this snapshot time on, the campaign republished)


def session_metrics(session: Session, config: CoreConfig | None = None) -> list[RoomMetrics]:
    """Snapshots of the session's main room, from the streams core."""
    core = StreamCore(config or CoreConfig())
    for lines in LineReader(session.events_path).chunks():
        core.feed_many(lines)
    core.flush()
    metrics, _, _ = core.drain()
    room = [m for m in metrics if m.room_id == session.info.room_id]
    if not room:
        raise ValueError(f"session {session.name} has no snapshots of room {session.info.room_id}")
    return room


@lru_cache(maxsize=64)
def room(shape: str | None, variant: int, minutes: float) -> tuple[tuple[RoomMetrics, ...], Campaign]:
    """Snapshots and campaign of a family's room (cached: the streams core runs once per room)."""
    from sessions.synth import synth_session

    if shape is None:
        session = open_session(SAMPLE)
        assert session.campaign() is not None, "the sample session carries its campaign"
        return tuple(session_metrics(session)), session.campaign()
    with tempfile.TemporaryDirectory() as tmp:
        session = open_session(synth_session(Path(tmp) / "room", minutes=minutes, seed=101 + variant, shape=shape))
        assert session.campaign() is not None, "synthetic sessions carry a campaign"
        return tuple(session_metrics(session)), session.campaign()


def cases(family: Family, seeds: range, *, minutes: float = 10.0) -> list[Case]:
    out = []
    for seed in seeds:
        metrics, campaign = room(family.shape, seed % ROOM_VARIANTS, minutes)
        metrics = list(metrics)
        if family.interaction_decay is not None:
            metrics = decay_interactions(metrics, family.interaction_decay)
        campaign = scale_budget(campaign, family.budget_factor)
        if family.planned_length != 1.0:
            campaign = with_planned_length(campaign, metrics, family.planned_length)
        campaign = with_run_of_show(campaign, family.run_of_show, seed, metrics)
        episode = build_episode(metrics, campaign, family.market, seed)
        if family.cap_spend_share is not None:
            campaign = with_cap(campaign, cap_for_share(episode, campaign.total_budget, family.cap_spend_share))
        if family.cap_unmeetable:
            campaign = with_cap(campaign, unmeetable_cap(episode))
        updates: tuple = ()
        if family.end_notice_s is not None:  # the end signal: the campaign republished with the real length
            real = metrics[-1].ts - metrics[0].ts
            mcb = msgspec.structs.replace(campaign.mcb, duration_s=round(real, 3))
            updates = ((metrics[-1].ts - family.end_notice_s, msgspec.structs.replace(campaign, mcb=mcb)),)
        out.append(Case(family.name, seed, campaign, episode, updates))
    return out


def with_run_of_show(campaign: Campaign, how: str, seed: int, metrics: list[RoomMetrics]) -> Campaign:
    """The campaign's run of show as the family has it: as planned (``exact``),
    each moment listed ``SLIP_S`` (sd) off when it really came (``slipped``),
    one more moment listed where nothing happens (``phantom``: in the longest
    stretch without one), or none at all (``none``)."""
    show = list(campaign.run_of_show)
    if how == "exact":
        return campaign
    if how == "none":
        show = []
    elif how == "slipped":
        rng = np.random.default_rng([seed, 7])
        show = [msgspec.structs.replace(m, at=round(m.at + float(rng.normal(0.0, SLIP_S)), 3)) for m in show]
    elif how == "phantom":
        t0, t1 = metrics[0].ts, metrics[-1].ts
        edges = [t0] + sorted(x for m in show for x in (m.at, m.at + m.duration_s)) + [t1]
        gaps = [(b - a, a, b) for a, b in zip(edges[::2], edges[1::2])]
        _, a, b = max(gaps)
        show.append(ScheduledMoment(at=round((a + b) / 2 - 22.5, 3), duration_s=45.0, kind="flash_sale"))
    else:
        raise ValueError(f"unknown run of show {how!r}")
    return msgspec.structs.replace(campaign, run_of_show=show)


def with_planned_length(campaign: Campaign, metrics: list[RoomMetrics], factor: float) -> Campaign:
    """The campaign planned for ``factor`` times the room's real length, with a run
    of show that fits the plan, not the room: moments planned past the real end
    are listed (the room's own pattern repeated), and moments the room had past
    the planned end are not (nobody planned them)."""
    start, real = metrics[0].ts, metrics[-1].ts - metrics[0].ts
    planned = real * factor
    show = [m for m in campaign.run_of_show if m.at < start + planned]
    k = 1
    while factor > 1 and campaign.run_of_show and start + k * real < start + planned:
        show += [msgspec.structs.replace(m, at=round(m.at + k * real, 3)) for m in campaign.run_of_show
                 if m.at + k * real < start + planned]
        k += 1
    mcb = msgspec.structs.replace(campaign.mcb, duration_s=round(planned, 3))
    return msgspec.structs.replace(campaign, mcb=mcb, run_of_show=show)


def scale_budget(campaign: Campaign, factor: float) -> Campaign:
    ramp = msgspec.structs.replace(campaign.ramp, budget=campaign.ramp.budget * factor)
    return msgspec.structs.replace(campaign, total_budget=campaign.total_budget * factor, ramp=ramp)


def with_cap(campaign: Campaign, cap: float) -> Campaign:
    return msgspec.structs.replace(campaign, mcb=msgspec.structs.replace(campaign.mcb, max_cost_per_interaction=cap))


def cap_for_share(ep: Episode, budget: float, share: float) -> float:
    """The cost cap under which the hindsight bound spends ``share`` of the budget
    (bisection in log space: the bound's spend grows with the cap)."""
    lo, hi = np.log(1e-6), np.log(1e3)
    for _ in range(60):
        mid = (lo + hi) / 2
        if hindsight(ep, budget, float(np.exp(mid))).spend < share * budget:
            lo = mid
        else:
            hi = mid
    return round(float(np.exp(hi)), 9)


def unmeetable_cap(ep: Episode) -> float:
    """Half the lowest price per true interaction of any viewer on offer: at this
    C nothing can be bought within the cap (the hindsight bound buys nothing)."""
    ratios = [p / (u * ep.unit_value[i]) for i, (p, u) in enumerate(zip(ep.prices, ep.propensity))
              if len(p) and ep.unit_value[i] > 0]
    return round(float(min(r.min() for r in ratios)) * 0.5, 12) if ratios else 1e-9


def decay_interactions(metrics: list[RoomMetrics], to: float) -> list[RoomMetrics]:
    """The same room with each tick's interactions scaled by a factor falling
    linearly from 1 at the first snapshot to ``to`` at the last."""
    t0, t1 = metrics[0].ts, metrics[-1].ts
    out, prev, acc = [], {}, {}
    for m in metrics:
        f = 1.0 - (1.0 - to) * (m.ts - t0) / max(t1 - t0, 1e-9)
        for kind, total in m.interactions_total.items():
            acc[kind] = acc.get(kind, 0.0) + (total - prev.get(kind, 0)) * f
        prev = dict(m.interactions_total)
        out.append(msgspec.structs.replace(m, interactions_total={k: round(v, 6) for k, v in acc.items()}))
    return out


def family_named(name: str) -> Family:
    for f in FAMILIES:
        if f.name == name:
            return f
    raise ValueError(f"unknown family {name!r}")


__all__ = ["Family", "FAMILIES", "Case", "cases", "room", "scale_budget", "with_run_of_show", "with_planned_length",
           "with_cap", "cap_for_share", "unmeetable_cap", "decay_interactions", "family_named"]
