"""Budget safety: spend never exceeds the budget, whatever the reports say.

The guard rests on no timing assumption. Every decision carries a sequence
number (``seq``: its snapshot's tick), and the ad server's spend reports say
which decisions they cover (``covers``: every spend under decisions with
``seq <= covers`` is in the report's cumulative ``total``). A cap counts as
spent, whole, until a report provably covers its decision; then the report's
total replaces it. So at any time::

    committed = covered_total + sum(cap of every issued decision with seq > covered_seq)

bounds what the ad server can have spent and may still spend, and each new cap
is at most ``budget - committed``. Late, lost, duplicated or reordered reports
only keep caps counted longer; cumulative totals make a later report heal a lost
one.

The ad server's side of the contract (README, "Budget safety"): it spends at
most a decision's ``spend_cap`` under it; it applies a decision only if its
``seq`` is higher than any it applied before, and stops spending under older
ones from then on; and when it applies decision ``k`` it reports, as a ``spend``
event, ``covers = k - 1`` with the room's cumulative spend under every earlier
decision.

Failing closed. A guard that cannot know every cap in flight pauses (cap 0)
until a report covers a decision it made itself:

- a fresh guard (no stored state, or state lost), unless its first snapshot is
  the room's first one with the room's ``room_start`` in it (nothing can precede it);
- a guard handed a snapshot that may have been decided before, by a predecessor
  whose state it does not hold (``restored``, set by
  :meth:`bidding.live.LiveBidding.on_metrics` for snapshots marked replayed: a
  runtime that delivers at least once and cannot store the state before it sends
  the decisions; the Kafka agent stores first and needs no marks);
- a guard whose decisions have a gap (``seq`` jumps: a state restored from an
  older checkpoint, whose lost successor may have issued caps in between);
- reports older than ``stale_ticks`` decisions: the ad server is not answering.
A budget cut applies at once: ``total`` is the campaign's budget at every step.
"""

from __future__ import annotations

import math

import msgspec


class BudgetGuard(msgspec.Struct, kw_only=True):
    total: float
    stale_ticks: int = 12  # decisions a report may lag before bidding pauses (60 s at 5 s ticks)
    covered_seq: int | None = None
    covered_total: float = 0.0
    issued: list[tuple[int, float]] = msgspec.field(default_factory=list)  # (seq, cap) not covered yet
    first_seq: int | None = None  # the first decision this guard made
    last_seq: int | None = None  # the newest decision this guard made
    blind_until: int | None = None  # pause until a report covers this seq (caps before it may be unknown)
    refused_through: int | None = None  # covers up to here named decisions this guard had not made: never taken
    restored: bool = False  # the next snapshot may have been decided before, by a predecessor (see begin)

    def observe(self, covered_seq: int | None, covered_total: float | None, seq: int | None = None) -> None:
        """Take the newest cover a snapshot carries (stale, repeated or out of
        order: the highest cover wins; a cumulative total never goes down).

        A cover is trusted only as far as it agrees with what was issued: one
        past the newest decision this guard made cannot be true (taking it would
        count the next decisions as paid before they are made), nor can it
        become true later, so it is refused for good; caps stay counted until a
        report covering a later decision comes. ``seq`` is the decision about to
        be made (a guard that has made none yet knows only that much). A negative
        or non-finite total is refused too."""
        if covered_seq is None or covered_total is None or not math.isfinite(covered_total) or covered_total < 0:
            return
        if self.refused_through is not None and covered_seq <= self.refused_through:
            return
        newest = self.last_seq if self.last_seq is not None else (seq - 1 if seq is not None else None)
        if newest is not None and covered_seq > newest:
            self.refused_through = covered_seq
            return
        if self.covered_seq is None or covered_seq > self.covered_seq:
            self.covered_seq = covered_seq
            self.covered_total = max(covered_total, self.covered_total)
        elif covered_seq == self.covered_seq and covered_total > self.covered_total:
            self.covered_total = covered_total
        self.issued = [(s, c) for s, c in self.issued if s > self.covered_seq]

    def begin(self, seq: int, *, opened: bool = False) -> None:
        """A decision for ``seq`` is about to be made (``seq`` newer than the last).
        Notices what this guard cannot know: decisions before its first one, in a
        gap since its last one, or made by a predecessor after the state it was
        restored from. A runtime that delivers snapshots at least once may hand a
        restored (or fresh) guard snapshots its predecessor already decided: this
        guard then re-decides seqs whose caps the ad server already has (and
        ignores the repeats), so it cannot know what is committed until a report
        covers a decision it made itself. It stays blind until then."""
        if self.last_seq is None:
            self.first_seq = seq
            if not opened or self.restored:  # state lost or never stored: decisions up to this one may be in flight
                self.blind_until = max(self.blind_until or -1, seq)
        elif self.restored or seq > self.last_seq + 1:  # restored from storage, or a gap
            self.blind_until = max(self.blind_until or -1, seq)
        self.restored = False
        self.last_seq = seq

    def committed(self) -> float:
        """What the ad server may have spent or may still spend, by the reports and the caps in flight."""
        return self.covered_total + sum(c for _, c in self.issued)

    def pause_reason(self, seq: int) -> str | None:
        """Why no cap may be issued at ``seq`` now, or None."""
        covered = self.covered_seq
        if self.blind_until is not None:
            if covered is None or covered < self.blind_until:
                return (f"paused: caps up to decision {self.blind_until} may be in flight unknown to this bidder until "
                        "a spend report covers them")
            self.blind_until = None
        since = covered if covered is not None else (self.first_seq if self.first_seq is not None else seq) - 1
        if seq - since > self.stale_ticks:
            return f"paused: spend reports {seq - since} decisions behind"
        return None

    def available(self, seq: int) -> float:
        """What may still be committed by a decision at ``seq`` (0 when in doubt)."""
        if self.pause_reason(seq) is not None:
            return 0.0
        left = self.total - self.committed()
        return left if left > 0 and math.isfinite(left) else 0.0

    def issue(self, seq: int, wanted: float) -> float:
        """Grant a spend cap for decision ``seq``: at most ``wanted``, at most what is left."""
        cap = min(wanted, self.available(seq)) if math.isfinite(wanted) else 0.0
        cap = math.floor(max(cap, 0.0) * 1e6) / 1e6  # money leaves rounded down, never up
        if cap > 0:
            self.issued.append((seq, cap))
        return cap

    @property
    def left(self) -> float:
        """Budget not committed (for decisions' ``budget_left``)."""
        left = self.total - self.committed()
        return left if left > 0 and math.isfinite(left) else 0.0
