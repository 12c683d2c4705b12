"""What paid viewers are worth, learnt from late and noisy evidence.

A paid viewer is not an organic one: it may be worth a fraction of what the
room's organic rate predicts, or more, and its interactions come over its stay,
so at any moment part of what was bought has not shown yet. Counting that part
as zero makes a campaign look dearer than it is (and buying stops); counting it
as finished makes it look cheaper (and the cap is overpaid).

So the paid entries of each tick are a *cohort*, predicted to be worth the value
the decision that bought them bid on. A cohort is *due* the share of its stay
that has passed, and the interactions seen over those due are what a paid
viewer is worth over the prediction: a Gamma-Poisson posterior mean, shrunk
toward a cautious prior while few are due, so one unlucky tick is noise, not a
verdict. The stay is taken as the shortest one considered: it makes the most
interactions due soonest, the cautious side (viewers who stay longer bring
theirs later, and the estimate rises as they do).

Pure and stored with the bidder's state (a msgspec struct).
"""

from __future__ import annotations

import math

import msgspec

STAY_S = 60.0  # a cohort's interactions are taken to come over this long (the shortest stay seen in rooms)
PAID_PRIOR = 0.5  # before evidence, a paid viewer is taken to be worth this share of an organic one ...
PRIOR_WEIGHT = 4.0  # ... with the weight of this many weighted interactions due
MAX_PREDICTED = 1e12  # weighted interactions one cohort may be predicted to bring
MAX_COHORTS = 64  # cohorts kept apart; older ones are summed (past their stay they are all due)


class PaidValue(msgspec.Struct, kw_only=True):
    """Cohorts of paid viewers and the interactions seen from them."""

    cohorts: list[list[float]] = msgspec.field(default_factory=list)  # [arrived ts, predicted value] in their stay
    done: float = 0.0  # predicted value of cohorts past their stay
    seen: float = 0.0  # paid viewers' weighted interactions seen (the highest total reported)

    def add(self, ts: float, predicted: float) -> None:
        """A cohort that arrived at ``ts``, predicted to be worth ``predicted`` (at
        most MAX_PREDICTED: sums stay finite whatever a snapshot said)."""
        if predicted > 0 and math.isfinite(predicted) and math.isfinite(ts):
            self.cohorts.append([ts, min(predicted, MAX_PREDICTED)])

    def observe(self, now: float, seen: float | None) -> None:
        """The paid viewers' interactions total as of ``now`` (only counts up: a
        stale or repeated total is not news); cohorts past their stay are summed."""
        if seen is not None and math.isfinite(seen) and seen > self.seen:
            self.seen = seen
        while self.cohorts and (now - self.cohorts[0][0] >= STAY_S or len(self.cohorts) > MAX_COHORTS):
            self.done = min(self.done + self.cohorts.pop(0)[1], MAX_PREDICTED * MAX_COHORTS)

    def due(self, now: float) -> float:
        """Predicted interactions the cohorts owe by ``now``."""
        return self.done + sum(v * min(max(now - t, 0.0) / STAY_S, 1.0) for t, v in self.cohorts)

    def predicted(self) -> float:
        """Predicted interactions of every cohort, over its whole stay."""
        return self.done + sum(v for _, v in self.cohorts)

    def factor(self, now: float) -> float:
        """A paid viewer's worth over the prediction (posterior mean)."""
        return (self.seen + PRIOR_WEIGHT * PAID_PRIOR) / (self.due(now) + PRIOR_WEIGHT)

    def value(self, now: float) -> float:
        """What everything bought is worth, pending stays included, at the factor learnt."""
        return self.factor(now) * self.predicted()

    def proven(self, now: float) -> float:
        """What the evidence alone shows was bought: no prior, one interaction of doubt."""
        return self.seen / (self.due(now) + 1.0) * self.predicted()
