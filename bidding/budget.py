"""Budget safety: spend never exceeds the budget, whatever the reports say.

The guard does not trust spend reports to be complete, fresh, unique or in
order. It counts as spent the highest cumulative spend ever reported, plus every
spend cap it issued that a report may not cover yet (issued less than
``settle_s`` before the newest report). Each tick's cap is at most what is left
after that. As long as the ad server honours the caps and reports a tick's spend
within ``settle_s``, total spend <= budget. Duplicated or reordered reports only
make it more careful; missing ones make it pause (``stale_s``).

The contract it relies on: a report stamped ``ts`` includes every spend of
decisions older than ``ts - settle_s`` (with spend events flowing through the
streams core, that is: the ad server reports within the core's grace period).
A guard that starts without its stored state while spend was already reported
cannot know the caps still in flight, and a cumulative total that goes down
means a report was lost: in both cases it pauses until a report ``settle_s``
newer arrives.
"""

from __future__ import annotations

import msgspec


class BudgetGuard(msgspec.Struct, kw_only=True):
    total: float
    settle_s: float = 10.0
    stale_s: float = 30.0
    reported: float = 0.0
    reported_at: float | None = None
    issued: list[tuple[float, float]] = msgspec.field(default_factory=list)  # (decision ts, cap)
    blind_until: float | None = None  # set when started without state after spend happened

    def observe(self, ts: float, spend_total: float | None) -> None:
        """Take a (possibly stale, repeated or out-of-order) cumulative spend report."""
        if spend_total is None or spend_total != spend_total:  # None or NaN: no information
            return
        if self.reported_at is None and spend_total > 0 and not self.issued:
            self.blind_until = ts + self.settle_s
        elif self.reported_at is not None and ts > self.reported_at and spend_total < self.reported:
            # A cumulative total went down: a report was lost somewhere. Trust nothing new for a while.
            self.blind_until = ts + self.settle_s
        if spend_total > self.reported or (spend_total == self.reported and (self.reported_at or -1.0) < ts):
            self.reported = max(self.reported, spend_total)
            self.reported_at = ts if self.reported_at is None else max(self.reported_at, ts)
        if self.reported_at is not None:
            horizon = self.reported_at - self.settle_s
            self.issued = [(t, c) for t, c in self.issued if t > horizon]

    def available(self, now: float) -> float:
        """What may still be committed at ``now`` (0 when in doubt)."""
        if self.reported_at is None:
            return 0.0 if self.issued else max(self.total - self.reported, 0.0)
        if self.blind_until is not None and self.reported_at < self.blind_until:
            return 0.0
        if now - self.reported_at > self.stale_s:
            return 0.0
        pending = sum(c for _, c in self.issued)
        return max(self.total - self.reported - pending, 0.0)

    def issue(self, now: float, wanted: float) -> float:
        """Grant a spend cap for the next tick: at most ``wanted``, at most what is left."""
        cap = max(min(wanted, self.available(now)), 0.0)
        if cap > 0:
            self.issued.append((now, cap))
        return cap

    @property
    def left(self) -> float:
        """Budget left by the reports alone (for decisions' ``budget_left``)."""
        return max(self.total - self.reported, 0.0)
