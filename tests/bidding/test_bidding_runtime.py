"""The bidding runtime (the batch drain's handler of ``liveroom.room-metrics``)
driven in-process: a snapshot under another room's key is refused, never decided
on the wrong partition (found by a tester: it split a room's bidding state over
two partitions, and a restart could restore the copy that did not know a cap)."""

from __future__ import annotations

import asyncio

import msgspec

from liveroom.kafka.bidding import BiddingRuntime
from liveroom.kafka.topics import BID_DECISIONS, DEAD_LETTERS, ROOM_METRICS
from streams.models import Campaign, RoomMetrics, no_campaign
from streams.partitions import partition_for

from ..rooms_runtime_driver import TP, Message, Producer, Table

PARTITIONS = 4


class _Consumer:
    def assignment(self):
        return {TP(ROOM_METRICS, p) for p in range(PARTITIONS)}


class _App:
    def __init__(self) -> None:
        self.consumer, self.producer = _Consumer(), Producer()


def _snapshot(room: str, i: int) -> bytes:
    return msgspec.json.encode(RoomMetrics(
        room_id=room, ts=1_780_000_000 + 5 * i, online=200, peak_online=200, organic_entries_per_min=10,
        paid_entries_per_min=0, interactions_per_min={"comment": 30}, interactions_per_viewer_min=0.5,
        organic_entries_total=10 * i, paid_entries_total=0, interactions_total={"comment": 30 * i}, orders_total=0,
        gmv_total=0, gift_value_total=0, spend_total=0, live=True, opened=i == 0))


def test_a_snapshot_under_another_rooms_key_is_a_dead_letter_not_a_decision():
    room, other = "room-x", next(f"room-y{i}" for i in range(100)
                                 if partition_for(f"room-y{i}".encode(), PARTITIONS) != partition_for(b"room-x", PARTITIONS))
    home, elsewhere = partition_for(room.encode(), PARTITIONS), partition_for(other.encode(), PARTITIONS)
    app = _App()
    state, campaigns = Table("bidding-state"), Table("campaigns")
    campaigns.data[room.encode()] = msgspec.json.encode(Campaign(room_id=room, total_budget=3.0))

    def campaign_for(room_id: str) -> Campaign:
        stored = campaigns.data.get(room_id.encode())
        return msgspec.json.decode(stored, type=Campaign) if stored else no_campaign(room_id)

    runtime = BiddingRuntime(app, state, campaigns, campaign_for, strategy="ramp+mcb", tick_s=5.0,
                             dead_letter_max_raw=65536, stats=None)
    own = [Message(TP(ROOM_METRICS, home), room.encode(), _snapshot(room, i), home, i) for i in range(5)]
    forged = [Message(TP(ROOM_METRICS, elsewhere), other.encode(), _snapshot(room, i), elsewhere, i - 5)
              for i in range(5, 8)]
    asyncio.run(runtime._process(own))
    decided = sum(1 for topic, *_ in app.producer.records if topic == BID_DECISIONS)
    asyncio.run(runtime._process(forged))
    records = app.producer.records
    assert decided == 5 and sum(1 for topic, *_ in records if topic == BID_DECISIONS) == decided
    dead = [msgspec.json.decode(value) for topic, _, value, _ in records if topic == DEAD_LETTERS]
    assert [d["reason"] for d in dead] == ["key_mismatch"] * 3
    state_partitions = {partition for topic, key, _, partition in records
                        if topic.endswith("bidding-state-changelog") and key == room.encode()}
    assert state_partitions == {home}
