"""Score bidding strategies on recorded sessions against the hindsight bound.

``simulate`` runs one session under several strategies and seeds; ``main`` (run as
``python -m bidding.evaluate``) runs the standard scenarios (the sample session
and synthetic rooms of different shapes and budgets) and prints the table the
README reports.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec

from streams.config import CoreConfig
from streams.core import StreamCore
from streams.models import Campaign, RoomMetrics
from streams.session import LineReader, Session, open_session

from .controllers import Bidder
from .market import MarketConfig, build_episode, hindsight, run_episode


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


@dataclass(frozen=True)
class EpisodeScore:
    strategy: str
    seed: int
    value: float
    spend: float
    budget: float
    bound_value: float
    bound_spend: float
    max_cpi: float
    ramp_minutes: float | None
    ramp_cpe: float | None

    @property
    def ratio(self) -> float:
        return self.value / self.bound_value if self.bound_value > 0 else 1.0

    @property
    def cpi(self) -> float:
        return self.spend / self.value if self.value > 0 else 0.0

    @property
    def over_cap(self) -> bool:
        return self.cpi > 1.1 * self.max_cpi

    @property
    def budget_binds(self) -> bool:
        """The best possible run spends the whole budget (the cap did not stop it first)."""
        return self.bound_spend >= 0.99 * self.budget


def simulate(metrics: list[RoomMetrics], campaign: Campaign, strategies: list[str], seeds: range,
             market: MarketConfig | None = None) -> list[EpisodeScore]:
    market = market or MarketConfig()
    out = []
    for seed in seeds:
        ep = build_episode(metrics, campaign, market, seed)
        bound = hindsight(ep, campaign.total_budget, campaign.mcb.max_cost_per_interaction)
        for strategy in strategies:
            r = run_episode(ep, Bidder(strategy, campaign, tick_s=market.tick_s))
            out.append(EpisodeScore(
                strategy=strategy, seed=seed, value=r.value, spend=r.spend, budget=campaign.total_budget,
                bound_value=bound.value, bound_spend=bound.spend, max_cpi=campaign.mcb.max_cost_per_interaction,
                ramp_minutes=None if r.ramp_target_s is None else r.ramp_target_s / 60.0,
                ramp_cpe=r.ramp_spend / r.ramp_wins if r.ramp_wins else None,
            ))
    return out


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def summarize(scores: list[EpisodeScore]) -> dict[str, dict]:
    """Per strategy: the figures ``liveroom simulate`` prints."""
    table = {}
    for strategy in dict.fromkeys(s.strategy for s in scores):
        rows = [s for s in scores if s.strategy == strategy]
        binding = [s for s in rows if s.budget_binds]
        ramp = [s for s in rows if s.ramp_cpe is not None]
        table[strategy] = {
            "episodes": len(rows),
            "weighted_interactions": _mean([s.value for s in rows]),
            "spend": _mean([s.spend for s in rows]),
            "budget_used": _mean([s.spend / s.budget for s in rows]),
            "budget_used_where_binding": _mean([s.spend / s.budget for s in binding]),
            "cost_per_interaction": _mean([s.cpi for s in rows]),
            "ratio_to_hindsight": _mean([s.ratio for s in rows]),
            "share_over_cap_10pct": sum(s.over_cap for s in rows) / len(rows),
            "ramp_minutes_to_target": _mean([s.ramp_minutes for s in ramp]),
            "ramp_target_reached": sum(s.ramp_minutes is not None for s in ramp) / len(ramp) if ramp else None,
            "ramp_cost_per_paid_entry": _mean([s.ramp_cpe for s in ramp]),
        }
    return table


def format_table(table: dict[str, dict]) -> str:
    def f(x, digits=3):
        return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))

    lines = ["| strategy | weighted inter. | spend | budget used | used where binding | cost/inter. | "
             "vs hindsight | over cap >10% | ramp min to target | ramp cost/entry |",
             "| --- " * 10 + "|"]
    for name, r in table.items():
        lines.append(f"| {name} | {f(r['weighted_interactions'], 1)} | {f(r['spend'], 1)} | {f(r['budget_used'])} | "
                     f"{f(r['budget_used_where_binding'])} | {f(r['cost_per_interaction'])} | "
                     f"{f(r['ratio_to_hindsight'])} | {f(r['share_over_cap_10pct'])} | "
                     f"{f(r['ramp_minutes_to_target'], 2)} | {f(r['ramp_cost_per_paid_entry'])} |")
    return "\n".join(lines)


def scale_budget(campaign: Campaign, factor: float) -> Campaign:
    ramp = msgspec.structs.replace(campaign.ramp, budget=campaign.ramp.budget * factor)
    return msgspec.structs.replace(campaign, total_budget=campaign.total_budget * factor, ramp=ramp)


SCENARIOS = (  # name, synth shape (None: the sample session), budget factor
    ("sample session", None, 1.0),
    ("quiet room", "quiet", 1.0),
    ("one big peak", "one_peak", 1.0),
    ("steady", "steady", 1.0),
    ("budget far too large (x10)", "default", 10.0),
    ("budget far too small (x0.1)", "default", 0.1),
)


def main(argv: list[str] | None = None) -> None:
    from streams.synth import synth_session

    ap = argparse.ArgumentParser(description="Score the bidding strategies over the standard scenarios.")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sample", default=str(Path(__file__).resolve().parents[1] / "examples" / "sample-session"))
    args = ap.parse_args(argv)
    everything: list[EpisodeScore] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape, factor in SCENARIOS:
            folder = Path(args.sample) if shape is None else synth_session(
                Path(tmp) / name.split()[0], minutes=args.minutes, seed=101, shape=shape)
            session = open_session(folder)
            scores = simulate(session_metrics(session), scale_budget(session.campaign(), factor),
                              list(Bidder.STRATEGIES), range(args.seeds))
            everything += scores
            print(f"\n### {name} ({args.seeds} seeds)\n")
            print(format_table(summarize(scores)))
    print(f"\n### all scenarios ({len(everything) // len(Bidder.STRATEGIES)} episodes per strategy)\n")
    print(format_table(summarize(everything)))


if __name__ == "__main__":
    main()

__all__ = ["simulate", "summarize", "format_table", "session_metrics", "scale_budget", "EpisodeScore"]
