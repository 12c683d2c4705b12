"""Bid decisions from live room snapshots: the same code under both runtimes.

The embedded replay calls :meth:`LiveBidding.on_metrics` with each batch of
snapshots; the Kafka runtime does the same from ``liveroom.room-metrics``,
storing each room's :class:`RoomBidding` state in a table. Decisions are a pure
function of the room's snapshot sequence and its campaign, so both runtimes
write the same decision log.
"""

from __future__ import annotations

from typing import Callable

import msgspec

from streams.models import Campaign, RoomMetrics

from .controllers import Bidder, BidderState
from .models import BidDecision, ValueRate, observe
from .run_of_show import windows


class RoomBidding(msgspec.Struct, kw_only=True):
    """Everything one room's live bidding needs to resume."""

    bidder: BidderState
    value_rate: ValueRate = msgspec.field(default_factory=ValueRate)
    started_at: float | None = None
    ended: bool = False  # the pause for a room no longer live went out; no more until it is live again


class LiveBidding:
    """Live bidding for many rooms. The campaign is looked up at every snapshot, so
    a campaign update (a budget cut too) applies from the next decision on.
    With ``max_rooms``, at most that many rooms' states are held decoded; the rest
    are parked as their encoded bytes (the embedded runtime's bound on memory;
    on Kafka the states live in a table)."""

    def __init__(self, campaign_for: Callable[[str], Campaign], *, strategy: str = "ramp+mcb",
                 tick_s: float = 5.0, max_rooms: int | None = None) -> None:
        self.campaign_for = campaign_for
        self.strategy = strategy
        self.tick_s = tick_s
        self.max_rooms = max_rooms
        self.rooms: dict[str, RoomBidding] = {}
        self.parked: dict[str, bytes] = {}

    def state_for(self, room_id: str) -> RoomBidding:
        state = self.rooms.get(room_id)
        if state is None:
            if self.max_rooms is not None and len(self.rooms) >= self.max_rooms:
                self._park()
            stored = self.parked.pop(room_id, None)
            if stored is not None:
                state = decode_bidding(stored)
            else:
                campaign = self.campaign_for(room_id)
                state = RoomBidding(bidder=Bidder(self.strategy, campaign, tick_s=self.tick_s).state)
            self.rooms[room_id] = state
        return state

    def _park(self) -> None:
        """Park the half of the rooms whose last decision is oldest (ties by id)."""
        order = sorted(self.rooms.items(), key=lambda kv: (kv[1].bidder.last_ts or 0.0, kv[0]))
        for room_id, state in order[: max(1, len(order) // 2)]:
            self.parked[room_id] = encode_bidding(state)
            del self.rooms[room_id]

    def finish(self, room_id: str) -> None:
        """The room is finished (its stream state was let go, and events for it are
        refused while its marker lasts): its bidding state goes too."""
        self.rooms.pop(room_id, None)
        self.parked.pop(room_id, None)

    def on_metrics(self, metrics: list[RoomMetrics], replayed: list[bool] | None = None) -> list[BidDecision]:
        """Decisions for ``metrics``, in order. ``replayed[i]`` says the i-th
        snapshot may have been decided before, by a predecessor whose state this
        one does not hold (an at-least-once runtime hands it over again after a
        restart or a rebalance): the guard then stays blind until a report covers
        a decision made after it (see :meth:`bidding.budget.BudgetGuard.begin`)."""
        out = []
        for i, m in enumerate(metrics):
            state = self.state_for(m.room_id)
            if replayed is not None and replayed[i]:
                state.bidder.guard.restored = True
            if not m.live and state.ended:
                # One pause when a room ends, then silence: a decision draws a spend
                # report, a report is an event, an event closes a tick, a tick gives a
                # snapshot: answering every snapshot of an ended room loops forever.
                continue
            state.ended = not m.live
            campaign = self.campaign_for(m.room_id)
            if state.started_at is None and m.live:
                state.started_at = m.ts - self.tick_s
            bidder = Bidder(self.strategy, campaign, state=state.bidder, tick_s=self.tick_s)
            obs = observe(m, state.value_rate, campaign.mcb.weights, state.started_at, self.tick_s,
                          windows(campaign.run_of_show))
            out.append(bidder.step(obs))
        return out


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(RoomBidding)


def encode_bidding(state: RoomBidding) -> bytes:
    return _encoder.encode(state)


def decode_bidding(data: bytes) -> RoomBidding:
    return _decoder.decode(data)
