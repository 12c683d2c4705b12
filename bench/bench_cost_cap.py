"""The cost-per-interaction cap on the live path: the streams core, live bidding
and a bid-responsive ad server in a closed loop (bidding/closed_loop.py),
cost per weighted interaction measured on what paid viewers really did in the
room. The limit it is compared with is the same loop with r_cap held at C (no
learning from paid viewers' interactions), in the same run.

    python bench/bench_cost_cap.py [--seeds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bidding.controllers as controllers  # noqa: E402
from bidding.closed_loop import Scenario, run  # noqa: E402


def measure(cap: float, seeds: int, strategy: str) -> dict:
    over, cpis, spent = 0, [], []
    for seed in range(seeds):
        out = run(Scenario(seed=seed, duration_s=300.0, budget=20.0, market=True, price=0.5,
                           cap_cost_per_interaction=cap, strategy=strategy))
        cpi = out.spent / out.paid_interactions if out.paid_interactions else (float("inf") if out.spent else 0.0)
        over += cpi > cap
        cpis.append(cpi)
        spent.append(out.spent)
    finite = [c for c in cpis if c != float("inf")]
    return {"over": over, "median_cpi": statistics.median(finite) if finite else None,
            "mean_spend": statistics.mean(spent)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    print(f"{'strategy':>9s} {'C':>5s} {'r_cap':>8s} {'episodes over C':>16s} {'median cost/interaction':>24s} "
          f"{'mean spend':>11s}")
    evidence = controllers.CAP_EVIDENCE
    for strategy in ("ramp+mcb", "mcb"):
        for cap in (0.08, 0.04):
            rows = {}
            for label, needed in (("live", evidence), ("held C", 10**9)):  # held: r_cap never leaves C
                controllers.CAP_EVIDENCE = needed
                rows[label] = measure(cap, args.seeds, strategy)
            controllers.CAP_EVIDENCE = evidence
            for label, r in rows.items():
                med = "-" if r["median_cpi"] is None else f"{r['median_cpi']:.3f}"
                print(f"{strategy:>9s} {cap:5.2f} {label:>8s} {r['over']:>9d} of {args.seeds:<4d} {med:>24s} "
                      f"{r['mean_spend']:11.2f}")


if __name__ == "__main__":
    main()
