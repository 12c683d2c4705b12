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


class RoomBidding(msgspec.Struct, kw_only=True):
    """Everything one room's live bidding needs to resume."""

    bidder: BidderState
    value_rate: ValueRate = msgspec.field(default_factory=ValueRate)
    started_at: float | None = None


class LiveBidding:
    def __init__(self, campaign_for: Callable[[str], Campaign], *, strategy: str = "ramp+mcb",
                 tick_s: float = 5.0) -> None:
        self.campaign_for = campaign_for
        self.strategy = strategy
        self.tick_s = tick_s
        self.rooms: dict[str, RoomBidding] = {}

    def state_for(self, room_id: str) -> RoomBidding:
        state = self.rooms.get(room_id)
        if state is None:
            campaign = self.campaign_for(room_id)
            bidder = Bidder(self.strategy, campaign, tick_s=self.tick_s)
            state = self.rooms[room_id] = RoomBidding(bidder=bidder.state)
        return state

    def on_metrics(self, metrics: list[RoomMetrics]) -> list[BidDecision]:
        out = []
        for m in metrics:
            state = self.state_for(m.room_id)
            campaign = self.campaign_for(m.room_id)
            if state.started_at is None and m.live:
                state.started_at = m.ts - self.tick_s
            bidder = Bidder(self.strategy, campaign, state=state.bidder, tick_s=self.tick_s)
            obs = observe(m, state.value_rate, campaign.mcb.weights, state.started_at)
            out.append(bidder.step(obs))
        return out


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(RoomBidding)


def encode_bidding(state: RoomBidding) -> bytes:
    return _encoder.encode(state)


def decode_bidding(data: bytes) -> RoomBidding:
    return _decoder.decode(data)
