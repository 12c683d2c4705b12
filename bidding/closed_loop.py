"""A closed loop around the real pipeline, for the budget property.

events -> StreamCore -> LiveBidding -> an ad server -> spend reports and paid
viewers -> the same StreamCore. Everything runs in event time, in one process,
from a seed; the ad server is the adversary the guard must withstand:

- it spends every cap in full, at once (the most any cap allows);
- its reports arrive on time, late (past the core's grace: dead-lettered as
  ``late`` and lost), twice, or not at all;
- decisions reach it late, twice, or out of order (it applies newer ones only);
- snapshots reach the bidder twice or out of order;
- the bidder restarts from a stored state of any age, or with none, and (as
  Kafka delivers at least once) may be handed the snapshots after that state again;
- the campaign's budget is raised and cut while the room runs.

It checks the guarantee where money leaves: whenever the ad server applies a
decision, what it has spent plus the new cap is within the budget in force when
that decision was made (so final spend <= budget when the budget never changes).
"""

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import dataclass, field

import msgspec

from bidding.live import LiveBidding, decode_bidding, encode_bidding
from bidding.models import BidDecision
from streams.config import CoreConfig
from streams.core import StreamCore
from streams.events import INTERACTION_KINDS
from streams.models import Campaign, McbSettings, RampSettings, ScheduledMoment

T0 = 1_780_000_000.0
enc = msgspec.json.encode


@dataclass
class Scenario:
    seed: int
    duration_s: float = 180.0
    budget: float = 10.0
    report_delay_s: tuple[float, float] = (0.0, 2.0)  # how long a spend report takes to reach the core
    late_reports: float = 0.0  # share of reports that arrive 15-60 s late (past the grace: lost as `late`)
    duplicate_reports: float = 0.0
    lost_reports: float = 0.0
    decision_delay_s: tuple[float, float] = (0.0, 1.0)
    duplicate_decisions: float = 0.0
    reordered_snapshots: float = 0.0  # share of snapshots held back and delivered after a newer one
    restarts: float = 0.0  # per batch: restart from a stored state of any age (or none)
    state_loss: float = 0.0  # share of restarts with no stored state at all
    redeliver: int = 0  # on a restart, the state of this many batches back, and those batches decided again
    budget_changes: int = 0  # campaign budget set anew this many times while the room runs
    cap_cost_per_interaction: float = 0.5
    price: float = 0.3  # the ad server's cost per paid entry
    market: bool = False  # a bid-responsive ad server (MarketAdServer) instead of one that spends every cap
    strategy: str = "ramp+mcb"
    planned_moments: int = 0  # the campaign's run of show: this many moments, anywhere in (or past) the room
    forged_reports: float = 0.0  # per applied decision: also a wrong spend report (see forged_report)
    forged_at: float | None = None  # one wrong report at this share of the room (covers 2^52, total 0)
    paid_factor: float | None = None  # market: a paid viewer is worth this times the decision's predicted value
    paid_stay_s: tuple[float, float] = (60.0, 180.0)  # market with paid_factor: the room's paid viewers' stay


@dataclass
class Outcome:
    spent: float = 0.0
    applied: int = 0
    violations: list[str] = field(default_factory=list)
    decisions: int = 0
    paid_interactions: float = 0.0
    budgets: list[float] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)


class AdServer:
    """Honours caps and keeps (by default) the contract: applies a decision only if
    its seq is newer, and when it does, reports the cumulative spend of everything
    before it (``covers = seq - 1``). Spends the whole cap at once and turns it
    into paid viewers who interact."""

    def __init__(self, room: str, rnd: random.Random, price: float) -> None:
        self.room = room
        self.rnd = rnd
        self.price = price
        self.spent = 0.0
        self.applied = -1
        self.n = 0

    def _id(self, kind: str) -> str:
        self.n += 1
        return f"ad-{kind}-{self.n}"

    def report(self, now: float, seq: int) -> bytes:
        return enc({"event_id": self._id("spend"), "room_id": self.room, "ts": now, "type": "spend",
                    "amount": 0.0, "covers": seq - 1, "total": self.spent})

    def apply(self, d: BidDecision, now: float) -> list[tuple[float, bytes]]:
        """Take a decision at event time ``now``; returns the paid viewers' events it buys (ts, raw)."""
        self.applied = d.seq
        cap = d.spend_cap
        self.spent += cap
        out = []
        for _ in range(int(cap / self.price)):
            user = self._id("viewer")
            t = now + self.rnd.uniform(0, 5)
            out.append((t, enc({"event_id": self._id("enter"), "room_id": self.room, "ts": t, "type": "enter",
                                "user_id": user, "source": "paid"})))
            for _ in range(self.rnd.choice([0, 0, 1, 2])):
                ti = t + self.rnd.uniform(0, 20)
                out.append((ti, enc({"event_id": self._id("c"), "room_id": self.room, "ts": ti, "type": "comment",
                                     "user_id": user})))
        return out


class MarketAdServer(AdServer):
    """Buys what the bids win: per tick about 10 impressions, competing prices
    log-normal around ``price``, each viewer's propensity log-normal (mean 1, known
    when bidding); a won viewer costs the competing price, enters paid and comments,
    so the cost per interaction that results depends on the bids.

    How much a paid viewer comments: with ``paid_factor`` f (the honest world of
    bidding/market.py), f x propensity x the decision's predicted value per
    viewer, spread over the room's paid stay (drawn once from ``stay_s``); the
    bidder does not know f or the stay. Without it, propensity x 0.6 times a
    minute for a minute, whatever the room: about a tenth of what the organic
    rate predicts in this loop's rooms."""

    def __init__(self, room: str, rnd: random.Random, price: float, paid_factor: float | None = None,
                 stay_s: tuple[float, float] = (60.0, 180.0)) -> None:
        super().__init__(room, rnd, price)
        self.paid_factor = paid_factor
        self.stay = rnd.uniform(*stay_s) if paid_factor is not None else 60.0  # (no draw: the old market's stream)

    def apply(self, d: BidDecision, now: float) -> list[tuple[float, bytes]]:
        self.applied = d.seq
        left = d.spend_cap
        out = []
        for _ in range(self._poisson(10.0)):
            price = self.rnd.lognormvariate(math.log(self.price), 0.6)
            propensity = self.rnd.lognormvariate(-0.125, 0.5)
            bid = d.multiplier * d.unit_value * propensity if d.multiplier > 0 else (d.bid_cap or 0.0)
            if d.bid_cap is not None:
                bid = min(bid, d.bid_cap)
            if price > bid or price > left:
                continue
            left -= price
            self.spent += price
            user = self._id("viewer")
            t = now + self.rnd.uniform(0, 5)
            out.append((t, enc({"event_id": self._id("enter"), "room_id": self.room, "ts": t, "type": "enter",
                                "user_id": user, "source": "paid"})))
            if self.paid_factor is None:
                comments, stay = self._poisson(propensity * 0.6), 60.0
            else:
                comments, stay = self._poisson(self.paid_factor * propensity * d.unit_value), self.stay
            for _ in range(comments):
                ti = t + self.rnd.uniform(0, stay)
                out.append((ti, enc({"event_id": self._id("c"), "room_id": self.room, "ts": ti, "type": "comment",
                                     "user_id": user})))
        return out

    def _poisson(self, lam: float) -> int:
        n, p, limit = 0, 1.0, math.exp(-lam)
        while True:
            p *= self.rnd.random()
            if p <= limit:
                return n
            n += 1


def forged_report(ad: AdServer, rnd: random.Random, now: float, seq: int, last_seq: int) -> bytes:
    """A spend report that is wrong in a way the guard can tell: it covers a
    decision never made (2^52, a millisecond timestamp, decisions ahead of the
    newest one made), or its total goes down, is negative, NaN or infinite, or
    is higher than what was spent (which only holds budget back). What no
    check can tell is left out: a total under the ad server's real spend for
    decisions it did receive is the ad server's word on its own spend (the trust
    model in docs/contracts.md)."""
    kind = rnd.randrange(7)
    covers: object = seq - 1
    total: object = ad.spent
    if kind == 0:
        covers, total = 1 << 52, 0.0
    elif kind == 1:
        covers, total = int(now * 1000), 0.0
    elif kind == 2:
        covers, total = last_seq + rnd.randint(1, 50), rnd.choice([0.0, ad.spent * 0.5])
    elif kind == 3:
        covers, total = rnd.randint(0, max(seq - 1, 0)), -rnd.uniform(0.01, 10)
    elif kind == 4:
        total = rnd.choice([float("nan"), float("inf"), 1e300])
    elif kind == 5:
        total = ad.spent * rnd.uniform(1.0, 3.0) + rnd.uniform(0, 5)
    else:
        covers, total = rnd.choice([-1, 2**63, "12", None]), rnd.choice([ad.spent, "0", None])
    raw = {"event_id": ad._id("forged"), "room_id": ad.room, "ts": now, "type": "spend", "amount": 0.0,
           "covers": covers, "total": total}
    return msgspec.json.encode(raw) if kind != 4 else json.dumps(raw).encode()


def room_events(room: str, rnd: random.Random, duration_s: float) -> list[tuple[float, bytes]]:
    """A room's own events: room_start, organic viewers coming and going, their interactions, room_end."""
    out = [(T0, enc({"event_id": "start", "room_id": room, "ts": T0, "type": "room_start"}))]
    t, i = T0, 0
    while t < T0 + duration_s:
        t += rnd.expovariate(4.0)
        i += 1
        kind = rnd.choice(["enter", "enter", "comment", "like", "leave"])
        fields = {"source": "organic"} if kind == "enter" else {}
        out.append((t, enc({"event_id": f"o{i}", "room_id": room, "ts": t, "type": kind,
                            "user_id": f"u{rnd.randrange(200)}", **fields})))
    out.append((T0 + duration_s, enc({"event_id": "end", "room_id": room, "ts": T0 + duration_s, "type": "room_end"})))
    return out


def run(sc: Scenario, *, config: CoreConfig = CoreConfig()) -> Outcome:
    rnd = random.Random(sc.seed)
    room = "room"
    budget = [sc.budget]
    # A run of show the room need not keep: moments may overlap, start before the
    # room or after its end; the plan weighs ticks by them, the guard must not care.
    show = [ScheduledMoment(at=T0 + rnd.uniform(-60.0, sc.duration_s + 60.0), duration_s=rnd.uniform(1.0, 120.0))
            for _ in range(sc.planned_moments)]

    def campaign_for(room_id: str) -> Campaign:
        return Campaign(room_id=room_id, total_budget=budget[0],
                        ramp=RampSettings(window_s=60.0, budget=budget[0] * 0.3, target_paid_entries=30,
                                          max_cost_per_entry=1.0),
                        mcb=McbSettings(max_cost_per_interaction=sc.cap_cost_per_interaction,
                                        duration_s=sc.duration_s), run_of_show=show)

    core = StreamCore(config)
    bidding = LiveBidding(campaign_for, strategy=sc.strategy, tick_s=config.tick_s)
    ad = MarketAdServer(room, rnd, sc.price, sc.paid_factor, sc.paid_stay_s) if sc.market else AdServer(room, rnd,
                                                                                                      sc.price)
    out = Outcome(budgets=[sc.budget])
    queue: list[tuple[float, int, str, object]] = []  # (time, tiebreak, kind, payload)
    tie = 0

    def push(t: float, kind: str, payload) -> None:
        nonlocal tie
        tie += 1
        heapq.heappush(queue, (t, tie, kind, payload))

    for t, raw in room_events(room, rnd, sc.duration_s):
        push(t + rnd.uniform(0, 2), "event", raw)  # arrival within the grace period
    if sc.forged_at is not None:
        t = T0 + sc.forged_at * sc.duration_s
        push(t, "event", enc({"event_id": "forged", "room_id": room, "ts": t, "type": "spend", "amount": 0.0,
                              "covers": 1 << 52, "total": 0.0}))
    changes = sorted(rnd.uniform(0, sc.duration_s) for _ in range(sc.budget_changes))
    for t in changes:
        push(T0 + t, "budget", sc.budget * rnd.choice([0.0, 0.1, 0.5, 1.0, 2.0]))
    checkpoints: list[bytes | None] = [None]
    batches: list[tuple[bytes | None, list]] = []  # (the state before it, a batch of snapshots) as decided
    held = []  # snapshots held back (delivered out of order)
    # each decision made (a seq decided again after a restart is another decision) -> the budget in force then
    issued_budget: dict[int, float] = {}
    made: list[BidDecision] = []  # keeps them alive: issued_budget is keyed by id()

    def bid(metrics, replayed: bool = False) -> None:
        decisions = bidding.on_metrics(metrics, [replayed] * len(metrics))
        for d in decisions:
            out.decisions += 1
            issued_budget[id(d)] = budget[0]
            made.append(d)
            copies = 2 if rnd.random() < sc.duplicate_decisions else 1
            for _ in range(copies):
                push(now + rnd.uniform(*sc.decision_delay_s), "decision", d)

    now = T0

    def play() -> None:
        steps = 0
        while queue:
            step()
            steps += 1
            if steps > 500_000:  # a room of minutes is a few thousand steps: this is a feedback loop
                raise AssertionError(f"runaway closed loop at event time {now - T0:.0f}s")

    def step() -> None:
        nonlocal now, held
        now, _, kind, payload = heapq.heappop(queue)
        if kind == "budget":
            budget[0] = payload
            out.budgets.append(payload)
            return
        if kind == "decision":
            d: BidDecision = payload
            if d.seq <= ad.applied:
                return  # not newer: ignored (the contract)
            limit = issued_budget[id(d)]
            if d.spend_cap > 0 and ad.spent + d.spend_cap > limit + 1e-6:  # new money past the budget
                out.violations.append(f"decision {d.seq}: spent {ad.spent:.6f} + cap {d.spend_cap:.6f} > "
                                      f"budget {limit:.6f} ({d.reason})")
            report = ad.report(now, d.seq)
            if sc.forged_reports and rnd.random() < sc.forged_reports:
                push(now + rnd.uniform(*sc.report_delay_s), "event",
                     forged_report(ad, rnd, now, d.seq, max(m.seq for m in made)))
            if rnd.random() >= sc.lost_reports:
                late = rnd.random() < sc.late_reports
                delay = rnd.uniform(15, 60) if late else rnd.uniform(*sc.report_delay_s)
                push(now + delay, "event", report)
                if rnd.random() < sc.duplicate_reports:
                    push(now + rnd.uniform(*sc.report_delay_s) + rnd.uniform(0, 30), "event",
                         enc({**msgspec.json.decode(report), "event_id": ad._id("dup")}))
            for t, raw in ad.apply(d, now):
                push(t + rnd.uniform(0, 2), "event", raw)
            out.applied += 1
            return
        core.feed(payload)
        metrics, _, _ = core.drain()
        if not metrics:
            return
        if sc.reordered_snapshots and rnd.random() < sc.reordered_snapshots:
            held.extend(metrics)
            return
        if held and rnd.random() < 0.5:
            metrics, held = metrics + held, []  # older snapshots after newer ones
        before = checkpoints[-1]
        bid(metrics)
        batches.append((before, metrics))
        if room in bidding.rooms:
            checkpoints.append(encode_bidding(bidding.rooms[room]))
        if sc.restarts and rnd.random() < sc.restarts:
            again: list = []
            if sc.redeliver and len(batches) > sc.redeliver:
                # as Kafka at least once: the state as of the committed offset (or none), then
                # the snapshots after that offset handed over again
                stored, again = batches[-sc.redeliver][0], [b for _, b in batches[-sc.redeliver:]]
            else:
                stored = rnd.choice(checkpoints)
            stored = None if rnd.random() < sc.state_loss else stored
            bidding.rooms.pop(room, None)
            if stored is not None:
                bidding.rooms[room] = decode_bidding(stored)
            for batch in again:  # what the Kafka agent marks: snapshots below the end offset it found
                bid(batch, replayed=True)
    play()
    core.flush()  # the end of input: the last ticks close, their decisions go out too
    metrics, _, _ = core.drain()
    if metrics:
        bid(metrics + held)
    play()
    out.spent = ad.spent
    out.dead_letters = core.accounting()["dead_letter_reasons"]
    paid = next(s for s in core.states() if s.room_id == room).paid_totals
    weights = campaign_for(room).mcb.weights
    out.paid_interactions = sum(n * weights.get(k, 0.0) for n, k in zip(paid, INTERACTION_KINDS))
    return out
