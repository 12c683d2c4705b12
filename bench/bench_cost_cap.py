"""The cost-per-interaction cap on the live path: the streams core, live bidding
and a bid-responsive ad server in a closed loop (bidding/closed_loop.py), cost
per weighted interaction measured on what paid viewers really did in the room.

The world is bidding/market.py's: a paid viewer is worth an unknown factor f of
what the room's organic rate predicts (0.2, 0.5, 1.0, 1.5 here, and the loop's
old ad server, about 0.1), its comments come over a stay the bidder does not
know (60-180 s), spend reports come 0-2 s late. Printed per strategy, C and f:
episodes over 1.1 C, the median cost per paid interaction over C, and the share
of the budget spent. The limit is C itself (the issue's bar: at most 5% of the
episodes over 1.1 C where C can be met; a median spend of at most 5% of the
budget where it cannot, as with the old ad server at C = 0.08).

    python bench/bench_cost_cap.py [--seeds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bidding.closed_loop import Scenario, run  # noqa: E402

BUDGET = 20.0
FACTORS = (None, 0.2, 0.5, 1.0, 1.5)  # None: the loop's old ad server (0.6 comments a minute, about f = 0.1)


def measure(cap: float, seeds: int, strategy: str, factor: float | None) -> dict:
    over, cpis, spent = 0, [], []
    for seed in range(seeds):
        out = run(Scenario(seed=seed, duration_s=300.0, budget=BUDGET, market=True, price=0.5,
                           cap_cost_per_interaction=cap, strategy=strategy, paid_factor=factor))
        cpi = out.spent / out.paid_interactions if out.paid_interactions else (float("inf") if out.spent else 0.0)
        over += cpi > 1.1 * cap
        cpis.append(cpi / cap)
        spent.append(out.spent / BUDGET)
    finite = [c for c in cpis if c != float("inf")]
    return {"over": over, "median_cpi": statistics.median(finite) if finite else None,
            "spend": statistics.median(spent)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--strategy", action="append", help="ramp+mcb and mcb unless given")
    args = ap.parse_args()
    print(f"{'strategy':>9s} {'C':>5s} {'f':>5s} {'over 1.1 C':>11s} {'median cost/inter. / C':>23s} "
          f"{'median spend / budget':>22s}")
    for strategy in args.strategy or ["ramp+mcb", "mcb"]:
        for cap in (0.08, 0.04):
            for factor in FACTORS:
                r = measure(cap, args.seeds, strategy, factor)
                med = "-" if r["median_cpi"] is None else f"{r['median_cpi']:.2f}"
                f = "old" if factor is None else f"{factor:g}"
                print(f"{strategy:>9s} {cap:5.2f} {f:>5s} {r['over']:>4d} of {args.seeds:<4d} {med:>23s} "
                      f"{r['spend']:22.3f}", flush=True)

if __name__ == "__main__":
    main()
