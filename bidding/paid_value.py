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
verdict. The stay is unknown too (seconds to minutes): it is the shortest one the
arrivals so far do not rule out, the cautious side (it makes interactions due
soonest); viewers who stay longer show it as their interactions keep coming.

Pure and stored with the bidder's state (a msgspec struct).
"""

from __future__ import annotations

import math

import msgspec

STAYS_S = (20.0, 60.0, 120.0, 240.0)  # paid viewers' stays the evidence chooses between
STAY_S = STAYS_S[0]  # the cautious one, until the evidence rules it out: it makes interactions due soonest
HISTORY = 12  # snapshots of the interactions seen that the stay is fitted on
CHI2_SCALE, CHI2_SLACK = 2.0, 4.0  # a stay is ruled out past 2x the best one's chi-square plus 4
PAID_PRIOR = 0.5  # before evidence, a paid viewer is taken to be worth this share of an organic one ...
PRIOR_WEIGHT = 4.0  # ... with the weight of this many weighted interactions due
MAX_PREDICTED = 1e12  # weighted interactions one cohort may be predicted to bring
MAX_COHORTS = 80  # cohorts kept apart; older ones are summed (past the longest stay they are all due)


class PaidValue(msgspec.Struct, kw_only=True):
    """Cohorts of paid viewers and the interactions seen from them."""

    cohorts: list[list[float]] = msgspec.field(default_factory=list)  # [arrived ts, predicted value] in their stay
    done: float = 0.0  # predicted value of cohorts past their stay
    seen: float = 0.0  # paid viewers' weighted interactions seen (the highest total reported)
    # [ts, seen, due at each of STAYS_S] of the last HISTORY snapshots
    history: list[list[float]] = msgspec.field(default_factory=list)
    stay_s: float = STAY_S  # the shortest stay the evidence does not rule out

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
        keep = STAYS_S[-1] + 5.0 * HISTORY  # past the longest stay over the whole history: due under every stay
        while self.cohorts and (now - self.cohorts[0][0] >= keep or len(self.cohorts) > MAX_COHORTS):
            self.done = min(self.done + self.cohorts.pop(0)[1], MAX_PREDICTED * MAX_COHORTS)
        if math.isfinite(now) and (self.cohorts or self.done > 0):
            # each stay's due as of now, kept with the snapshot: a past snapshot's due never
            # changes (later cohorts arrived after it), so the fit does not recompute it
            self.history.append([now, self.seen, *(self.due(now, stay) for stay in STAYS_S)])
            del self.history[:-HISTORY]
            self.stay_s = self._fit_stay()

    def due(self, now: float, stay_s: float | None = None) -> float:
        """Predicted interactions the cohorts owe by ``now`` if paid viewers stay
        ``stay_s`` (default: the stay the evidence fits)."""
        stay = self.stay_s if stay_s is None else stay_s
        return self.done + sum(v * min(max(now - t, 0.0) / stay, 1.0) for t, v in self.cohorts if t <= now)

    def _fit_stay(self) -> float:
        """The shortest stay the last snapshots' interactions do not rule out. Each
        stay gives an arrival curve, its factor fitted by least squares on the
        snapshots' increments (Poisson counts: each weighs by its variance); a
        stay is ruled out when its chi-square passes CHI2_SCALE x the best one's
        plus CHI2_SLACK (counts vary more than Poisson: moments, propensities).
        Until cohorts are older than the shortest stay every stay fits alike and
        the shortest is kept."""
        if len(self.history) < 3:
            return STAY_S
        ys = [b[1] - a[1] for a, b in zip(self.history, self.history[1:])]
        chi2 = []
        for i in range(len(STAYS_S)):
            due = [h[2 + i] if len(h) == 2 + len(STAYS_S) else self.due(h[0], STAYS_S[i]) for h in self.history]
            ds = [b - a for a, b in zip(due, due[1:])]
            try:
                dd = sum(d * d for d in ds)
                f = max(sum(d * y for d, y in zip(ds, ys)) / dd, 0.0) if 0 < dd < math.inf else 0.0
                chi2.append(sum((y - f * d) * (y - f * d) / max(f * d, 1.0) for d, y in zip(ds, ys)))
            except (OverflowError, ZeroDivisionError):  # totals past what a float holds (a hostile report)
                chi2.append(math.inf)
        finite = [c for c in chi2 if math.isfinite(c)]
        if not finite:
            return STAY_S
        best = min(finite)
        return next(st for st, c in zip(STAYS_S, chi2) if math.isfinite(c) and c <= CHI2_SCALE * best + CHI2_SLACK)

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
