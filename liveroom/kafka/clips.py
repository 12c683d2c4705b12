"""The clip traffic loop on Kafka: an agent on ``liveroom.clip-events`` that runs
the same :class:`cliploop.core.ClipLoopCore` as the embedded replay and publishes
``liveroom.clip-stats`` and ``liveroom.promotions``.

Clip events are keyed by room, so a room's clips and their state live on one
partition; the state is a table (``clip-rooms``, changelog-backed), restored per
batch like the bidding agent's. A period closes on the room's own event time;
a room whose events stopped (the end of a recorded week, a quiet night) has its
open periods flushed once it has been idle for ``silence_s`` of wall-clock time,
as the streams worker flushes an idle partition. So a recorded session gives
the same stats and promotions here as embedded, byte for byte (tested on the
real broker). A clip event that comes after its period was flushed is a ``late``
dead letter, as embedded.

No message can crash the agent: the core turns every bad input into a dead
letter with its bytes and reason, and the batch goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
import msgspec

from cliploop.core import ClipLoopCore
from cliploop.models import ClipLoopConfig, RoomClips
from liveroom.kafka.topics import CLIP_EVENTS, CLIP_STATS, DEAD_LETTERS, PROMOTIONS, KafkaConfig

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder(RoomClips).decode


def add_clip_loop(app: faust.App, config: KafkaConfig, loop: ClipLoopConfig, *, max_event_bytes: int = 65536,
                  dead_letter_max_raw: int = 65536) -> None:
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": config.partitions}
    events_topic = app.topic(CLIP_EVENTS, **raw)
    out = {name: app.topic(name, key_serializer="raw", value_serializer="raw")
           for name in (CLIP_STATS, PROMOTIONS, DEAD_LETTERS)}
    table = app.Table("clip-rooms", partitions=config.partitions, key_type=bytes, value_type=bytes)
    lock = asyncio.Lock()
    open_rooms: dict[str, tuple[int, float]] = {}  # room -> (partition, monotonic time of its last event)

    def restore(room_id: str) -> RoomClips | None:
        stored = table.data.get(room_id.encode())
        return _unpack(stored) if stored is not None else None

    def new_core() -> ClipLoopCore:
        return ClipLoopCore(loop, max_event_bytes=max_event_bytes, dead_letter_max_raw=dead_letter_max_raw,
                            restore=restore)

    async def finish(core: ClipLoopCore, partitions: dict[str, int]) -> None:
        """Publish the batch's outputs, then persist the rooms it touched. In that
        order, a crash between the two repeats outputs (keyed by room, stamped
        with their period: keep the newest) rather than losing them: the events
        come again and, the state not having moved, decide the same."""
        stats, promotions, dead = core.drain()
        for s in stats:
            await out[CLIP_STATS].send(key=s.room_id.encode(), value=_encode(s))
        for p in promotions:
            await out[PROMOTIONS].send(key=p.room_id.encode(), value=_encode(p))
        for d in dead:
            await out[DEAD_LETTERS].send(key=d.room_id.encode() if d.room_id else None, value=_encode(d))
        now = time.monotonic()
        for room_id, room in core.rooms.items():
            key, value = room_id.encode(), _pack(room)
            table.data[key] = value
            table.send_changelog(partitions[room_id], key, value)
            if room.buckets:
                open_rooms[room_id] = (partitions[room_id], open_rooms.get(room_id, (0, now))[1])
            else:
                open_rooms.pop(room_id, None)

    @app.agent(events_topic, name="clip-loop")
    async def clip_loop(stream):
        async for batch in stream.take_events(config.batch_max, within=config.batch_within_s):
            async with lock:
                core = new_core()
                partitions: dict[str, int] = {}
                now = time.monotonic()
                for event in batch:
                    msg = event.message
                    room = msg.key.decode("utf-8", "replace") if msg.key else ""
                    core.feed(msg.value or b"", f"{CLIP_EVENTS}/{msg.partition}@{msg.offset}", expect_room=room)
                    if room in core.rooms:
                        partitions[room] = msg.partition
                        open_rooms[room] = (msg.partition, now)
                await finish(core, partitions)

    @app.timer(interval=max(0.5, config.silence_s / 4))
    async def flush_idle_clip_rooms():
        if not open_rooms:
            return
        async with lock:  # decided inside: a batch may have brought a room's events meanwhile
            now = time.monotonic()
            idle = [room for room, (_, last) in open_rooms.items() if now - last >= config.silence_s]
            if not idle:
                return
            assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == CLIP_EVENTS}
            core = new_core()
            partitions = {}
            for room in idle:
                partition = open_rooms[room][0]
                if partition not in assigned:  # moved to another worker: it flushes the room
                    open_rooms.pop(room, None)
                    continue
                core.flush_room(room)
                partitions[room] = partition
            await finish(core, partitions)
            log.info("clip loop: flushed %d idle room(s)", len(partitions))
