"""Kafka runtime: the streams core as a Faust agent (faust-streaming).

Thin by design. The agent takes events in batches, groups them by message key
(the room), loads each room's :class:`~streams.room.RoomState` from a
changelog-backed table, runs the same :class:`~streams.core.StreamCore` as the
embedded replay, writes each touched room's state back once per batch, and
publishes snapshots, moments and dead letters.

Why the table is written with an explicit partition: a batch holds events from
several partitions, and Faust's ``table[key] = value`` would send the changelog
record to the partition of whatever event is current. Each room's state goes to
the partition its events came from, so a restarted or rebalanced worker restores
exactly the rooms it now owns.

Why duplicates cannot double-count after a crash: with at-least-once delivery a
restarted worker sees again the events after the last committed offset, but the
restored state remembers recent event ids (``dedup_horizon_s``) and drops them.
Snapshots may be published twice; they are keyed by room and stamped with the
tick, so consumers keep the last one.

The only wall-clock logic is the silence timer: a room whose partition has no
unprocessed backlog and that saw no event for ``silence_s`` is flushed, as the
embedded replay flushes every room at the end of its input.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path
from typing import NamedTuple

import faust
import msgspec
from faust.types import TP

from .config import CoreConfig
from .core import StreamCore
from .kafka_topics import DEAD_LETTERS, EVENTS, MOMENTS, ROOM_METRICS, KafkaConfig
from .room import decode_state, encode_state

log = logging.getLogger(__name__)
STATE_TABLE = "room-state"


_encode = msgspec.json.Encoder().encode


def _credentials(config: KafkaConfig):
    context = ssl.create_default_context(cafile=config.ssl_cafile) if config.security_protocol.endswith("SSL") else None
    if config.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=config.sasl_username, password=config.sasl_password,
                                     mechanism=config.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class RoomsRuntime:
    """What the agent and the silence timer do; holds no Faust magic of its own."""

    def __init__(self, app: faust.App, table, core_config: CoreConfig, config: KafkaConfig) -> None:
        self.app = app
        self.table = table
        self.config = config
        self.core = StreamCore(core_config, source=f"{EVENTS}/")
        self.metrics_topic = app.topic(ROOM_METRICS, key_serializer="raw", value_serializer="raw")
        self.moments_topic = app.topic(MOMENTS, key_serializer="raw", value_serializer="raw")
        self.dead_topic = app.topic(DEAD_LETTERS, key_serializer="raw", value_serializer="raw")
        self.offsets: dict = {}  # highest offset processed, per topic-partition
        self.last_seen: dict[bytes, tuple[float, object]] = {}  # room key -> (monotonic time, tp)
        self.lock = asyncio.Lock()
        self._logged = time.monotonic()

    async def process(self, events) -> None:
        async with self.lock:
            core = self.core
            core.processors.clear()
            messages = [event.message for event in events]
            gaps = offset_gaps(self.offsets, messages)
            if gaps:
                messages = await self._fill(messages, gaps)
            by_key: dict[bytes | None, list] = {}
            for msg in messages:
                by_key.setdefault(msg.key, []).append(msg)
                previous = self.offsets.get(msg.tp)
                if previous is None:
                    log.info("rooms agent: processing partition %s[%d]", msg.tp.topic, msg.tp.partition)
                if previous is None or msg.offset > previous:
                    self.offsets[msg.tp] = msg.offset
            now = time.monotonic()
            touched = []
            for key, msgs in by_key.items():
                room = key.decode("utf-8", "replace") if key else ""
                if room and room not in core.processors:
                    stored = self.table.get(key)
                    if stored is not None:
                        core.load(decode_state(stored))
                core.feed_many([m.value or b"" for m in msgs], [f"{m.partition}@{m.offset}" for m in msgs],
                               expect_room=room)
                if room in core.processors:
                    touched.append((key, room, msgs[-1].tp))
                    self.last_seen[key] = (now, msgs[-1].tp)
            for key, room, tp in touched:
                self._persist(key, core.processors[room].state, tp.partition)
            await self._publish()
        if now - self._logged > 30:
            self._logged = now
            log.info("rooms agent: %s", core.accounting())

    async def _fill(self, messages: list, gaps: list[tuple]) -> list:
        """Read the skipped offsets from the broker and put them in their place.

        Faust can pass over messages around a rebalance: seen here in 4 of about
        30 SIGKILL test runs, 1 to 38 events each. (Its stream acks messages it
        skips for an older generation, and its consumer's gap tracking lets the
        commit move past offsets never delivered.) Room events must not go
        missing, so the runtime notices offsets that jump forward within a
        partition it kept and reads them itself. Transaction markers also leave
        such jumps; they read back as nothing."""
        fetched = []
        for tp, start, end in gaps:
            got = await asyncio.to_thread(fetch_range, self.config, tp, start, end)
            if got:
                log.warning("rooms agent: %s[%d] offsets %d-%d were not delivered; read %d event(s) back from the "
                            "broker", tp.topic, tp.partition, start, end - 1, len(got))
            fetched.extend(got)
        return sorted(messages + fetched, key=lambda m: (m.tp, m.offset))

    async def barrier(self) -> None:
        """Called when partitions are revoked: wait for the batch in hand and make its
        state writes durable before the rebalance goes on. Recovery then reads the
        changelog to its end and finds them; a write still in flight would land
        after the end it read, so the restored (older) state would replace ours in
        memory while the batch's offsets get committed: events lost."""
        async with self.lock:
            await self.app.producer.flush()

    def keep_only(self, assigned) -> None:
        """A new assignment: forget partitions that moved away. Should one come back
        later, its old offset must not make it look caught up while the events its
        other owner left uncommitted are re-delivered (a silence flush then would
        close ticks those events belong to: lost, as 'late'). Partitions kept across
        the rebalance keep what we know: re-delivered events are ones we processed."""
        for tp in [tp for tp in self.offsets if tp not in assigned]:
            del self.offsets[tp]
        for key in [k for k, (_, tp) in self.last_seen.items() if tp not in assigned]:
            del self.last_seen[key]

    async def flush_silent(self) -> None:
        """Flush rooms quiet for ``silence_s`` whose partition has no backlog."""
        now = time.monotonic()
        quiet = {key: tp for key, (seen_at, tp) in self.last_seen.items() if now - seen_at >= self.config.silence_s}
        if not quiet:
            return
        # Ask the broker for the partitions' end offsets: a cached highwater can be
        # stale during a rebalance, and a room is only silent if nothing of it waits.
        try:
            ends = await self.app.consumer.highwaters(*set(quiet.values()))
        except Exception as exc:  # broker unreachable: not the moment to decide anything
            log.info("silence check skipped: %s", exc)
            return
        async with self.lock:
            assigned = self.app.consumer.assignment()
            core = self.core
            core.processors.clear()
            flushed = []
            for key, tp in quiet.items():
                if tp not in assigned:
                    self.last_seen.pop(key, None)
                    continue
                seen = self.last_seen.get(key)
                if seen is None or time.monotonic() - seen[0] < self.config.silence_s:
                    continue  # events arrived meanwhile
                end = ends.get(tp)
                if end is None or self.offsets.get(tp, -1) + 1 < end:
                    continue  # events of this partition still wait: not silent, just behind
                del self.last_seen[key]
                stored = self.table.get(key)
                state = decode_state(stored) if stored is not None else None
                if state is None or (not state.buckets and not state.surge.active):
                    continue
                core.load(state).flush()
                flushed.append((key, state, tp.partition))
            for key, state, partition in flushed:
                self._persist(key, state, partition)
            await self._publish()
            if flushed:
                log.info("flushed %d silent room(s)", len(flushed))

    def _persist(self, key: bytes, state, partition: int) -> None:
        value = encode_state(state)
        self.table.data[key] = value
        self.table.send_changelog(partition, key, value)

    async def _publish(self) -> None:
        metrics, moments, dead = self.core.drain()
        for m in metrics:
            await self.metrics_topic.send(key=m.room_id.encode(), value=_encode(m))
        for m in moments:
            await self.moments_topic.send(key=m.room_id.encode(), value=_encode(m))
        for d in dead:
            await self.dead_topic.send(key=d.room_id.encode() if d.room_id else None, value=_encode(d))


def offset_gaps(processed: dict, messages) -> list[tuple]:
    """``(tp, start, end)`` for each run of offsets skipped in ``messages``: after
    the highest offset already ``processed`` in that partition, or between two
    messages. Lower offsets (re-delivered after a rebalance) are not gaps. The
    events topic is not compacted, so only transaction markers leave holes of
    their own (reading them back returns nothing)."""
    following = {tp: offset + 1 for tp, offset in processed.items()}
    gaps = []
    for m in messages:
        expected = following.get(m.tp)
        if expected is not None and m.offset > expected:
            gaps.append((m.tp, expected, m.offset))
        if expected is None or m.offset >= expected:
            following[m.tp] = m.offset + 1
    return gaps


class FetchedMessage(NamedTuple):
    """A record read directly from the broker, shaped like the Faust message fields we use."""

    tp: TP
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


def fetch_range(config: KafkaConfig, tp: TP, start: int, end: int, *, timeout_s: float = 15.0) -> list:
    """Records ``start`` to ``end - 1`` of one partition (a group-less kafka-python consumer)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **config.kafka_python_options())
    try:
        ktp = TopicPartition(tp.topic, tp.partition)
        consumer.assign([ktp])
        consumer.seek(ktp, start)
        out: list[FetchedMessage] = []
        deadline = time.monotonic() + timeout_s
        while consumer.position(ktp) < end and time.monotonic() < deadline:  # position passes markers too
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(FetchedMessage(tp, r.key, r.value, r.partition, r.offset) for r in records
                           if r.offset < end)
        return out
    finally:
        consumer.close()


def create_app(config: KafkaConfig, core_config: CoreConfig) -> faust.App:
    """The Faust app of the streams side: one agent, one table, one timer."""
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)  # Faust does not create datadir parents
    app = faust.App(
        config.app_id,
        broker=[f"kafka://{h}" for h in config.bootstrap_servers.split(",")],
        broker_credentials=_credentials(config),
        store=config.store,
        datadir=config.data_dir,
        processing_guarantee=config.processing_guarantee,
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication_factor,
        topic_allow_declare=True,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        # On a rebalance, let the agent finish the events it holds (take_events
        # buffers them unacked) before the producer is flushed and recovery reads
        # the changelog: with False, a batch applied during recovery was lost.
        stream_wait_empty=True,
        web_enabled=False,
        table_cleanup_interval=3600.0,
        # Throughput: the agent works in batches of ``batch_max``, so let the
        # fetcher hand over several batches' worth at a time.
        broker_max_poll_records=config.batch_max * 2,
        stream_buffer_maxsize=config.batch_max * 4,
        consumer_max_fetch_size=4 * 1024 * 1024,
    )
    events = app.topic(EVENTS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                       partitions=config.partitions)
    # Values are the msgpack bytes of RoomState: ``bytes`` makes Faust use its
    # raw codec in the store, the changelog and recovery alike.
    table = app.Table(STATE_TABLE, partitions=config.partitions, key_type=bytes, value_type=bytes)
    runtime = RoomsRuntime(app, table, core_config, config)
    app.rooms_runtime = runtime  # type: ignore[attr-defined]

    @app.agent(events, name="rooms")
    async def rooms(stream):
        async for batch in stream.take_events(config.batch_max, within=config.batch_within_s):
            await runtime.process(batch)

    @app.on_partitions_revoked.connect
    async def finish_batch_before_rebalance(app, revoked, **kwargs):  # noqa: ARG001 (Faust's signal signature)
        await runtime.barrier()

    @app.on_partitions_assigned.connect
    async def forget_moved_partitions(app, assigned, **kwargs):  # noqa: ARG001 (Faust's signal signature)
        runtime.keep_only(assigned)

    @app.timer(interval=max(0.5, config.silence_s / 4))
    async def flush_silent_rooms():
        await runtime.flush_silent()

    return app
