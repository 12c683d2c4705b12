"""Live bidding on Kafka: the batch drain hands ``liveroom.room-metrics`` to a
runtime (:class:`BiddingRuntime`) that runs the same
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

import asyncio
import logging

import faust
import msgspec

from bidding.live import LiveBidding, decode_bidding, encode_bidding
from streams.core import dead_letter
from liveroom.kafka.topics import BID_DECISIONS, CAMPAIGNS, DEAD_LETTERS, ROOM_METRICS, KafkaConfig
from streams.models import Campaign, RoomMetrics, no_campaign
from liveroom.kafka.records import confirm, sender
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
    dead_topic = app.topic(DEAD_LETTERS, key_serializer="raw", value_serializer="raw")

    async def refuse(msg, reason: str, detail: str) -> None:
        log.warning("%s at %s@%d refused: %s", msg.topic, msg.partition, msg.offset, detail)
        dead = dead_letter(msg.value or b"", reason, detail, f"{msg.topic}/{msg.partition}@{msg.offset}",
                           max_raw=dead_letter_max_raw)
        await dead_topic.send(key=msg.key, value=_encode(dead))
    state = app.Table("bidding-state", partitions=config.partitions, key_type=bytes, value_type=bytes)
    campaigns = app.Table("campaigns", partitions=config.partitions, key_type=bytes, value_type=bytes)

    def campaign_for(room_id: str) -> Campaign:
        stored = campaigns.data.get(room_id.encode())
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

    runtime = BiddingRuntime(app, state, campaigns, campaign_for, strategy=strategy, tick_s=tick_s,
                             dead_letter_max_raw=dead_letter_max_raw, stats=stats)
    app.topics.add(metrics_topic)  # subscribed; its messages go to the batch drain, not to an agent
    app.batch_runtimes[ROOM_METRICS] = runtime  # type: ignore[attr-defined]

    @app.on_partitions_revoked.connect
    async def finish_bidding_batch_before_rebalance(app, revoked, **kwargs):  # noqa: ARG001
        await runtime.barrier()  # the batches taken are finished (their state and decisions written)


class BiddingRuntime:
    """What the batch drain does with a fetched batch of ``liveroom.room-metrics``:
    the bidding agent, without Faust's per-message cost (about 80 us a message:
    with 2,000 rooms there is a snapshot every 19 events)."""

    fills_gaps = False  # offsets a rebalance skipped are Faust's gaps, as on its own path (snapshots are cumulative)

    def __init__(self, app: faust.App, state, campaigns, campaign_for, *, strategy: str, tick_s: float,
                 dead_letter_max_raw: int, stats: WorkerStats | None) -> None:
        self.app, self.state, self.campaigns, self.campaign_for = app, state, campaigns, campaign_for
        self.strategy, self.tick_s, self.max_raw, self.stats = strategy, tick_s, dead_letter_max_raw, stats
        self.lock = asyncio.Lock()
        # Batches are decided by a task of their own, in the order taken: the drain goes on
        # with the rooms' events while a batch waits for its state to be acknowledged (as
        # when bidding was a Faust agent). At most a few batches wait: then the drain does.
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def process_batch(self, messages: list) -> list:
        """Queue the batch; its messages are acked by the bidding task once decided."""
        if self.task is None or self.task.done():
            if self.task is not None and self.task.exception() is not None:
                raise self.task.exception()  # a write failed: the worker stops (the batch was never acked)
            self.queue = asyncio.Queue(maxsize=4)
            self.task = asyncio.get_running_loop().create_task(self._run())
        await self.queue.put(messages)
        return []

    async def _run(self) -> None:
        queue, ack = self.queue, self.app.consumer.ack
        while True:
            messages = await queue.get()
            try:
                for message in await asyncio.shield(self._process(messages)):
                    ack(message)
            except Exception as exc:
                await self.app.crash(exc)  # not acked: the worker stops, its successor decides the batch
                raise
            finally:
                queue.task_done()

    async def barrier(self) -> None:
        """Every batch taken so far decided and written (a rebalance waits for it)."""
        if self.queue is not None and self.task is not None and not self.task.done():
            await self.queue.join()

    def refuse(self, msg, reason: str, detail: str, dead: list) -> None:
        log.warning("%s at %s@%d refused: %s", msg.tp.topic, msg.partition, msg.offset, detail)
        dead.append((msg.key, dead_letter(msg.value or b"", reason, detail,
                                          f"{msg.tp.topic}/{msg.partition}@{msg.offset}", max_raw=self.max_raw)))

    async def _process(self, messages: list) -> list:
        async with self.lock:
            assigned = self.app.consumer.assignment()
            messages = [m for m in messages if m.tp in assigned]  # moved meanwhile: its new owner decides
            state, campaigns, campaign_for = self.state, self.campaigns, self.campaign_for
            live = LiveBidding(campaign_for, strategy=self.strategy, tick_s=self.tick_s)
            partitions: dict[str, int] = {}
            snapshots = []
            finished: dict[str, int] = {}
            dead: list = []
            for msg in messages:
                if msg.value is None and msg.key is not None:
                    # the room is finished: after its last snapshots, in its partition's order
                    finished[msg.key.decode("utf-8", "replace")] = msg.partition
                    continue
                try:
                    m = _metrics.decode(msg.value or b"")
                except Exception as exc:  # noqa: BLE001 - our own topic, but anyone with access can write it
                    self.refuse(msg, "invalid_metrics", f"{type(exc).__name__}: {exc}", dead)
                    continue
                if msg.key != m.room_id.encode():  # its room's state lives on its key's partition only
                    self.refuse(msg, "key_mismatch", "the message key is not the snapshot's room", dead)
                    continue
                if m.room_id not in live.rooms:
                    stored = state.data.get(m.room_id.encode())
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
            out = sender(self.app.producer)
            state_topic = state.changelog_topic.get_topic_name()
            for room_id, room_state in live.rooms.items():
                if room_id in finished:
                    continue
                key, value = room_id.encode(), encode_bidding(room_state)
                state.data[key] = value
                await out.add(state_topic, key, value, partitions[room_id])
            for room_id, partition in finished.items():  # deleted: a new broadcast needs a new campaign
                key = room_id.encode()
                for table in (state, campaigns):
                    if table.data.pop(key, None) is not None:
                        await out.add(table.changelog_topic.get_topic_name(), key, None, partition)
            await self._written(await out.close(), "a bidding state record")
            currency: dict[str, str | None] = {}  # a room's campaign decoded once a batch, not once a decision
            for d in decisions:
                await out.add(BID_DECISIONS, d.room_id.encode(), _encode(d))
            for key, letter in dead:
                await out.add(DEAD_LETTERS, key, _encode(letter))
            await self._written(await out.close(), "a bid decision")
            stats = self.stats
            if stats is not None:
                for d in decisions:
                    if d.room_id not in currency:
                        currency[d.room_id] = campaign_for(d.room_id).currency
                    stats.record_decision(d, currency[d.room_id])
                if finished:
                    stats.forget_finished(finished)
            return messages

    async def _written(self, sent: list, what: str) -> None:
        await confirm(self.app.producer, sent, what, stats=self.stats, who="bidding")
