"""Live bidding on Kafka: an agent on ``liveroom.room-metrics`` that runs the same
:class:`bidding.live.LiveBidding` as the embedded replay and publishes
``liveroom.bid-decisions``. Campaigns come from the compacted
``liveroom.campaigns`` topic into a table; both topics are keyed by room and
co-partitioned with the metrics, so a worker holds the campaigns and bidding
state of exactly the rooms it bids for. A room without a campaign gets a zero
budget: no campaign, no spend.

A tombstone on the metrics topic (a null value keyed by room) says the rooms
runtime finished the room (``streams/partitions.py``): its bidding state and its
campaign are deleted (tombstones in both tables). A campaign is for one
broadcast; should the id come back as a new room, it bids nothing until a new
campaign is published, so a budget is never spent twice.

No message can crash either agent: a campaign or a snapshot that does not decode
(any failure, not only msgspec's) or whose key is not its room goes to
``liveroom.dead-letters`` with its bytes and the reason, and the batch goes on.
"""

from __future__ import annotations

import logging

import faust
import msgspec

from bidding.live import LiveBidding, decode_bidding, encode_bidding
from streams.core import dead_letter
from liveroom.kafka.topics import BID_DECISIONS, CAMPAIGNS, DEAD_LETTERS, ROOM_METRICS, KafkaConfig
from streams.models import Campaign, RoomMetrics, no_campaign
from liveroom.kafka.stats import WorkerStats

log = logging.getLogger(__name__)
_metrics = msgspec.json.Decoder(RoomMetrics)
_campaign = msgspec.json.Decoder(Campaign)
_encode = msgspec.json.Encoder().encode


def add_bidding(app: faust.App, config: KafkaConfig, *, strategy: str, tick_s: float,
                dead_letter_max_raw: int = 65536, stats: WorkerStats | None = None) -> None:
    """Add the two agents; ``stats`` (the worker's pages) learns every decision published."""
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": config.partitions}
    metrics_topic = app.topic(ROOM_METRICS, **raw)
    campaigns_topic = app.topic(CAMPAIGNS, **raw)
    decisions_topic = app.topic(BID_DECISIONS, key_serializer="raw", value_serializer="raw")
    dead_topic = app.topic(DEAD_LETTERS, key_serializer="raw", value_serializer="raw")

    async def refuse(msg, reason: str, detail: str) -> None:
        log.warning("%s at %s@%d refused: %s", msg.topic, msg.partition, msg.offset, detail)
        dead = dead_letter(msg.value or b"", reason, detail, f"{msg.topic}/{msg.partition}@{msg.offset}",
                           max_raw=dead_letter_max_raw)
        await dead_topic.send(key=msg.key, value=_encode(dead))
    state = app.Table("bidding-state", partitions=config.partitions, key_type=bytes, value_type=bytes)
    campaigns = app.Table("campaigns", partitions=config.partitions, key_type=bytes, value_type=bytes)

    def campaign_for(room_id: str) -> Campaign:
        stored = campaigns.get(room_id.encode())
        return _campaign.decode(stored) if stored is not None else no_campaign(room_id)

    @app.agent(campaigns_topic, name="campaigns")
    async def take_campaigns(stream):
        async for event in stream.events():
            msg = event.message
            if msg.value is None:
                # A tombstone: the campaign is deleted (how a compacted topic says "gone").
                # Budget zero from the room's next decision; the table forgets it too.
                if msg.key is not None and msg.key in campaigns:
                    del campaigns[msg.key]
                continue
            try:
                campaign = _campaign.decode(msg.value)
            except Exception as exc:  # noqa: BLE001 - hostile bytes raise more than msgspec's errors
                await refuse(msg, "invalid_campaign", f"{type(exc).__name__}: {exc}")
                continue
            if msg.key != campaign.room_id.encode():
                await refuse(msg, "key_mismatch", "the message key is not the campaign's room")
                continue
            campaigns[msg.key] = msg.value  # single event in context: its own partition

    @app.agent(metrics_topic, name="bidding")
    async def bid(stream):
        async for batch in stream.take_events(config.batch_max, within=config.batch_within_s):
            live = LiveBidding(campaign_for, strategy=strategy, tick_s=tick_s)
            partitions: dict[str, int] = {}
            snapshots = []
            finished: dict[str, int] = {}
            for event in batch:
                msg = event.message
                if msg.value is None and msg.key is not None:
                    # the room is finished: after its last snapshots, in its partition's order
                    finished[msg.key.decode("utf-8", "replace")] = msg.partition
                    continue
                try:
                    m = _metrics.decode(msg.value or b"")
                except Exception as exc:  # noqa: BLE001 - our own topic, but anyone with access can write it
                    await refuse(msg, "invalid_metrics", f"{type(exc).__name__}: {exc}")
                    continue
                if m.room_id not in live.rooms:
                    stored = state.get(m.room_id.encode())
                    if stored is not None:
                        live.rooms[m.room_id] = decode_bidding(stored)
                partitions[m.room_id] = msg.partition
                snapshots.append(m)
            decisions = live.on_metrics(snapshots)
            # The state goes first, and is on the broker before any decision made with it
            # is sent: a restarted (or new) owner then restores a guard that knows every
            # cap sent, and the snapshots it is handed again are stale to it. (Sent the
            # other way round, a crash between the two let a restored guard decide those
            # snapshots again and count its own caps in place of the ones the ad server had.)
            written = []
            for room_id, room_state in live.rooms.items():
                if room_id in finished:
                    continue
                key, value = room_id.encode(), encode_bidding(room_state)
                state.data[key] = value
                written.append(state.send_changelog(partitions[room_id], key, value))
            for room_id, partition in finished.items():  # deleted: a new broadcast needs a new campaign
                key = room_id.encode()
                for table in (state, campaigns):
                    if table.data.pop(key, None) is not None:
                        written.append(table.send_changelog(partition, key, None))
            if written:
                await app.producer.flush()
                for future in written:
                    await future  # a state not written stops the agent before its decisions go out
            currency: dict[str, str | None] = {}  # a room's campaign decoded once a batch, not once a decision
            for d in decisions:
                await decisions_topic.send(key=d.room_id.encode(), value=_encode(d))
                if stats is not None:
                    if d.room_id not in currency:
                        currency[d.room_id] = campaign_for(d.room_id).currency
                    stats.record_decision(d, currency[d.room_id])
            if stats is not None and finished:
                stats.forget_finished(finished)
