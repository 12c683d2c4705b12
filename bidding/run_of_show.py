"""The run of show as a forecast: what a viewer bought now is worth, given the moments planned.

A paid viewer interacts for about a stay (a minute). A product reveal that starts
in forty seconds cannot be seen in the room's rates yet, but it is in the
merchant's run of show, and it is what the viewer bought now will be there for.
So the predicted rate of a viewer bought at ``t`` is the room's baseline times

    1 + gain x (seconds of [t, t + stay] inside planned windows) / stay.

``gain`` is learnt per room, from a prior: least squares of each tick's lift
(its rate over the baseline, less one) on the share of the tick inside a
planned window. A run of show that slips, or lists moments that never come,
lifts the room less inside its windows, so it is trusted less.

The same forecast shapes the spend plan: a tick is given a share of the budget
left in proportion to its forecast value, so the budget is kept for the moments
instead of being paced flat across them.

Pure functions and one msgspec struct (stored with the room's bidding state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from streams.models import ScheduledMoment

GAIN_PRIOR = 2.0  # a planned moment doubles to triples the room's rate (the sample rooms' moments: x2.4 to x4)
GAIN_PRIOR_TICKS = 6.0  # the prior weighs as much as six ticks fully inside a window
MAX_GAIN = 20.0
STAY_S = 60.0  # a paid viewer's typical stay: the minute a viewer bought now is worth
EARLY_S = 30.0  # a moment may show this long before its planned time ...
LATE_S = 60.0  # ... or this long after it, and still be the one planned
ONSET_LIFT = 0.5  # a moment shows when the room's smoothed rate is this far over its baseline ...
ONSET_SHARE = 0.4  # ... and at least this share of the lift its moments bring
MAX_TRACKED = 500

Window = tuple[float, float]


def windows(run_of_show: Sequence[ScheduledMoment]) -> tuple[Window, ...]:
    """The planned moments as sorted, merged ``(start, end)`` windows (epoch s)."""
    spans = sorted((m.at, m.at + m.duration_s) for m in run_of_show)
    merged: list[Window] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


def overlap_s(wins: Sequence[Window], a: float, b: float) -> float:
    """Seconds of ``[a, b]`` inside the (merged) windows."""
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in wins if s < b and e > a)


def forecast_factor(wins: Sequence[Window], t: float, gain: float, stay_s: float) -> float:
    """How much more than the baseline a viewer arriving at ``t`` is worth."""
    return 1.0 + gain * overlap_s(wins, t, t + stay_s) / stay_s if wins and gain > 0 else 1.0


def plan_share(wins: Sequence[Window], t: float, ticks_left: int, tick_s: float, gain: float,
               stay_s: float) -> float:
    """The share of the budget left that the tick after ``t`` should spend: its
    forecast factor over the sum of the factors of every tick left (``ticks_left``,
    this one included; the last tick gets all that is left). With no planned
    moment ahead it is ``1 / ticks_left``: a flat plan. A window adds ``gain x
    overlap / stay`` to each tick near it; the later ticks' sum is taken as the
    integral of the (trapezoid) overlap over their arrival times, over the tick,
    so the cost is one step per window, however long the room or the window."""
    ticks_left = max(ticks_left, 1)
    if not wins or gain <= 0 or not math.isfinite(gain):
        return 1.0 / ticks_left
    # Ticks 1 .. n-1 after this one, each the midpoint of its own tick_s of arrivals.
    a, b = t + tick_s / 2, t + (ticks_left - 0.5) * tick_s
    extra = sum(_overlap_integral(s, e, stay_s, a, b) for s, e in wins if e > a and s - stay_s < b) if b > a else 0.0
    now = forecast_factor(wins, t, gain, stay_s)
    return min(now / (now + (ticks_left - 1) + gain * extra / (stay_s * tick_s)), 1.0)


def _overlap_integral(s: float, e: float, stay_s: float, a: float, b: float) -> float:
    """The integral over arrival times ``x`` in ``[a, b]`` of the seconds of
    ``[x, x + stay_s]`` inside ``[s, e]``: a trapezoid rising from ``s - stay_s``,
    flat at ``min(stay, e - s)``, falling to zero at ``e``."""
    h = min(stay_s, e - s)
    knots = ((s - stay_s, 0.0), (s - stay_s + h, h), (e - h, h), (e, 0.0))
    total = 0.0
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        lo, hi = max(x0, a), min(x1, b)
        if hi <= lo or x1 <= x0:
            continue
        y_lo = y0 + (y1 - y0) * (lo - x0) / (x1 - x0)
        y_hi = y0 + (y1 - y0) * (hi - x0) / (x1 - x0)
        total += (y_lo + y_hi) / 2 * (hi - lo)
    return total


class MomentGain(msgspec.Struct, kw_only=True):
    """What this room's run of show has turned out to mean.

    ``gain``: how much its windows lift the room, least squares through the
    origin of a tick's lift on its share inside a window, from ``GAIN_PRIOR``.

    Timing: a planned moment that starts up to ``EARLY_S`` before or ``LATE_S``
    after its time is re-anchored where the room's rate showed it (``onsets``:
    planned start, observed start). While a moment is due and has not shown, it
    is taken as about to start; one that has not shown ``LATE_S`` after its time
    is written off (``missed``), and counts as a window that brought nothing."""

    sxy: float = 0.0
    sxx: float = 0.0
    onsets: list[tuple[float, float]] = msgspec.field(default_factory=list)
    missed: list[float] = msgspec.field(default_factory=list)

    def learn(self, share: float, lift: float) -> None:
        if share > 0 and math.isfinite(lift):
            lift = min(max(lift, -1.0), MAX_GAIN)
            self.sxy += share * lift
            self.sxx += share * share

    @property
    def gain(self) -> float:
        g = (GAIN_PRIOR * GAIN_PRIOR_TICKS + self.sxy) / (GAIN_PRIOR_TICKS + self.sxx)
        return min(max(g, 0.0), MAX_GAIN)

    def as_shown(self, wins: Sequence[Window], t: float) -> tuple[Window, ...]:
        """The planned windows as the room has kept them by ``t``: re-anchored
        where a moment showed, starting now where one is due and has not, gone
        where one was written off. A due moment is expected shorter the longer
        it keeps the room waiting (gone at ``LATE_S``)."""
        onsets, missed = dict(self.onsets), set(self.missed)
        out = []
        for s, e in wins:
            if s in onsets:
                out.append((onsets[s], onsets[s] + e - s))
            elif s in missed:
                continue
            elif s <= t < s + LATE_S:  # due: the longer it keeps us waiting, the less of it we expect
                out.append((t, t + (e - s) * (1.0 - (t - s) / LATE_S)))
            else:
                out.append((s, e))
        return tuple(out)

    def track(self, wins: Sequence[Window], tick: tuple[float, float], lift: float, tick_s: float) -> None:
        """After the tick ``(start, end)`` whose smoothed lift over the baseline
        was ``lift``: anchor a due moment that shows, write off one that did not."""
        a, t = tick
        done = {s for s, _ in self.onsets} | set(self.missed)
        showing = math.isfinite(lift) and lift > max(ONSET_LIFT, ONSET_SHARE * self.gain)
        for s, e in wins:
            if s in done or t < s - EARLY_S:
                continue
            if showing and t <= s + LATE_S:
                self.onsets.append((s, a))
                break  # one moment per onset
            if t >= s + LATE_S:
                self.missed.append(s)
                ticks = (e - s) / max(tick_s, 1e-3)
                self.sxx += min(ticks, 1e6)  # a window that brought nothing: lift 0 for its length
        del self.onsets[:-MAX_TRACKED], self.missed[:-MAX_TRACKED]


__all__ = ["windows", "overlap_s", "forecast_factor", "plan_share", "MomentGain", "GAIN_PRIOR", "STAY_S"]
