"""The clip traffic loop on Kafka: the same :class:`cliploop.core.ClipLoopCore`
as the embedded replay on ``liveroom.clip-events``, publishing
``liveroom.clip-stats`` and ``liveroom.promotions``.

Built for a popular clip's volume (millions of impressions an hour), as the
rooms runtime is (``liveroom/kafka/app.py``):

* **On the batch drain.** Clip events are taken a fetched batch at a time, not
  through Faust's per-message path; messages may be envelopes (a JSON array of
  one room's clip events).
* **State in parts** (``cliploop/parts.py``): a head per room, a record per clip,
  per clip and open period, and per 16,384 event-id hashes; no record grows
  with the hour's volume. Written at most every ``persist_s``, each changed room
  once, outputs first; then each partition's processed offset, so a new owner
  skips what the state already holds. Messages are acked after that.
* **A failed write stops the batch**: the worker's health check fails and the
  worker stops before acking, so its successor redoes the batch. Never a
  silent skip.
* **Rooms leave memory** once idle with nothing open: their state stays in the
  tables, and a later clip event restores it.

Clip events are keyed by room; a room's state is written to the partition its
events come from, and a message on another partition than its key's is a
``wrong_partition`` dead letter. A period closes on the room's own event time; a
room whose events stopped (the end of a recorded week, a quiet night) has its
open periods flushed once it has been idle for ``LIVEROOM_CLIP_IDLE_S`` of
wall-clock time with nothing of its partition waiting, as the end of the input
does embedded. By default that is one period plus its grace: live, event time
has passed the open periods' close by then, so the flush makes no event late (a
shorter idle time closed a sparse room's hour at its first lull, and its later
events were dead letters). Replays of recorded sessions set a few seconds.
So a recorded session gives the same stats and promotions here as embedded,
byte for byte. A clip event that comes after its period was flushed is a
``late`` dead letter, as embedded.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
import msgspec

from cliploop.core import ClipLoopCore, count, id_hash
from cliploop.events import AnyClipEvent
from cliploop.models import ClipLoopConfig, ClipState, PeriodCounts, RoomClips
from cliploop.parts import ClipHead, ClipJournal, restore, room_of, split
from liveroom.kafka.app import OFFSET_PREFIX, PersistCadence, key_room, misplaced, offset_gaps, offset_key, read_back
from liveroom.kafka.records import HEADS, OFFSETS, PARTS, TOMBSTONES, confirm, sender, write_phases
from liveroom.kafka.stats import WorkerStats
from liveroom.kafka.topics import CLIP_EVENTS, CLIP_STATS, DEAD_LETTERS, PROMOTIONS, KafkaConfig

log = logging.getLogger(__name__)
HEADS_TABLE = "clip-heads"
PARTS_TABLE = "clip-parts"
LEGACY_TABLE = "clip-rooms"  # before parts: one record per room (read once, to carry a room's state over)
_encode = msgspec.json.Encoder().encode
_pack = msgspec.msgpack.Encoder().encode
_decode_any = msgspec.msgpack.Decoder().decode
_head = msgspec.msgpack.Decoder(ClipHead).decode


class _LegacyRoom(msgspec.Struct, kw_only=True):
    room_id: str
    clips: dict[str, ClipState] = {}
    buckets: dict[int, list[AnyClipEvent]] = {}
    seen: dict[int, list[str]] = {}
    max_ts: float = 0.0
    closed_through: int = -1
    entries: int = 0
    room_clicks: int = 0


_legacy = msgspec.msgpack.Decoder(_LegacyRoom).decode


def from_legacy(value: bytes) -> RoomClips:
    """A room stored whole by an earlier version, in today's form (its buffered
    events summed into their periods' counts, its ids hashed)."""
    old = _legacy(value)
    room = RoomClips(room_id=old.room_id, clips=old.clips, max_ts=old.max_ts, closed_through=old.closed_through,
                     entries=old.entries, room_clicks=old.room_clicks)
    for period, events in sorted(old.buckets.items()):
        counts = room.open.setdefault(period, {})
        for ev in events:
            count(counts.setdefault(ev.clip_id, PeriodCounts()), ev)
    for period, ids in old.seen.items():
        room.seen[period] = bytearray(b"".join(id_hash(i) for i in ids))
    return room


class ClipStore:
    """The clip rooms of the partitions this worker owns, in the two tables."""

    def __init__(self, heads, parts, legacy, stats: WorkerStats) -> None:
        self.heads, self.parts, self.legacy, self.stats = heads, parts, legacy, stats
        self.topic = {id(heads): heads.changelog_topic.get_topic_name(),
                      id(parts): parts.changelog_topic.get_topic_name(),
                      id(legacy): legacy.changelog_topic.get_topic_name()}
        self.outbox: list[tuple[int, str, int, bytes, bytes | None]] = []  # see ``write_phases``
        self.repairs: dict[str, list[tuple[bytes, bytes | None]]] = {}  # room -> records to write first
        self._keys: dict[str, set[bytes]] | None = None  # room -> its part keys in the store (after recovery)
        self.carried: set[str] = set()  # rooms restored from the legacy table, written whole on their next persist

    def stale(self) -> None:
        """A new assignment: the tables hold freshly recovered records."""
        self._keys = None

    def keys(self) -> dict[str, set[bytes]]:
        if self._keys is None:
            index: dict[str, set[bytes]] = {}
            for key in list(self.parts.data.keys()):
                room = room_of(key)
                if room is not None:
                    index.setdefault(room, set()).add(key)
            self._keys = index
        return self._keys

    def restore(self, room_id: str) -> RoomClips | None:
        head = self.heads.data.get(room_id.encode())
        data = self.parts.data
        room, repairs = restore(head, [(k, data[k]) for k in self.keys().get(room_id, ()) if data.get(k) is not None])
        if repairs:
            self.repairs[room_id] = repairs
        if head is None:
            old = self.legacy.data.get(room_id.encode())
            if old is None:
                return None
            self.carried.add(room_id)
            return from_legacy(old)
        return room

    def persist(self, room: RoomClips, journal: ClipJournal, partition: int) -> None:
        name = room.room_id
        for key, value in self.repairs.pop(name, []):
            self._send(self.parts, partition, key, value, name, PARTS)
        legacy = name in self.carried
        if legacy:  # everything it holds is new to the parts
            self.carried.discard(name)
            for clip in room.clips:
                journal.clips.setdefault(clip, None)
            for period, counts in room.open.items():
                for clip in counts:
                    journal.counts.setdefault((period, clip), None)
            for period in room.seen:
                journal.ids_from[period] = 0
        parts, head, tombstones = split(room, journal)
        for key, value in parts:
            self._send(self.parts, partition, key, value, name, PARTS)
        self._send(self.heads, partition, name.encode(), head, name, HEADS)
        for key, value in tombstones:
            self._send(self.parts, partition, key, value, name, TOMBSTONES)
        if legacy:  # carried over: the old record goes
            self._send(self.legacy, partition, name.encode(), None, name, TOMBSTONES)

    def open_rooms(self, partition: int) -> list[str]:
        """Rooms of ``partition`` whose stored head (or record of an earlier
        version) has open periods: a restart must still close them when idle."""
        data = self.heads.data
        where = getattr(data, "_key_partition", None) or {}
        rooms = []
        for key, p in list(where.items()):
            value = data.get(key) if p == partition else None
            if value is None or key.startswith(OFFSET_PREFIX):
                continue
            try:
                if _head(value).ids:
                    rooms.append(key.decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - not a head of ours
                continue
        legacy = self.legacy.data
        where = getattr(legacy, "_key_partition", None) or {}
        for key, p in list(where.items()):
            value = legacy.get(key) if p == partition else None
            if value is None or data.get(key) is not None:
                continue  # carried over already
            try:
                if _legacy(value).buckets:
                    rooms.append(key.decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - not a room of ours
                continue
        return rooms

    def mark_offset(self, partition: int, offset: int) -> None:
        self._send(self.heads, partition, offset_key(partition), _pack(offset), None, OFFSETS)  # once the heads are

    def done_of(self, room_id: str) -> int:
        """The offset a room's stored head holds its messages through (-1: none)."""
        value = self.heads.data.get(room_id.encode())
        try:
            return _head(value).done if value is not None else -1
        except Exception:  # noqa: BLE001 - not a head of ours
            return -1

    def held_through(self, partition: int) -> int:
        """The highest offset any stored head of ``partition`` holds."""
        data = self.heads.data
        where = getattr(data, "_key_partition", None) or {}
        held = -1
        for key, p in list(where.items()):
            if p == partition and not key.startswith(OFFSET_PREFIX) and data.get(key) is not None:
                held = max(held, self.done_of(key.decode("utf-8", "replace")))
        return held

    def processed_offset(self, partition: int) -> int | None:
        value = self.heads.data.get(offset_key(partition))
        try:
            return int(_decode_any(value)) if value is not None else None
        except Exception:  # noqa: BLE001 - damaged: start from the group's commit
            return None

    def _send(self, table, partition: int, key: bytes, value: bytes | None, room: str | None, phase: int) -> None:
        """Keep the record in the table's memory (a room let go is restored from
        it) and queue it for the changelog."""
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
        if table is self.parts and room is not None and self._keys is not None:
            keys = self._keys.setdefault(room, set())
            if value is None:
                keys.discard(key)
            else:
                keys.add(key)
        self.outbox.append((phase, self.topic[id(table)], partition, key, value))
        self.stats.record_changelog(HEADS_TABLE if table is self.heads else PARTS_TABLE if table is self.parts
                                    else LEGACY_TABLE, key, value)


class ClipsRuntime(PersistCadence):
    """What the batch drain and the timers do for ``liveroom.clip-events``."""

    fills_gaps = True  # reads skipped offsets back itself

    def __init__(self, app: faust.App, store: ClipStore, loop: ClipLoopConfig, config: KafkaConfig, *,
                 idle_s: float | None = None, max_event_bytes: int = 65536, dead_letter_max_raw: int = 65536, max_envelope_events: int = 1000,
                 max_envelope_bytes: int = 1 << 20, stats: WorkerStats) -> None:
        self.app, self.store, self.config, self.stats = app, store, config, stats
        self.idle_s = idle_s if idle_s else loop.period_s + loop.grace_s  # see ``LIVEROOM_CLIP_IDLE_S``
        self.core = ClipLoopCore(loop, source=CLIP_EVENTS, max_event_bytes=max_event_bytes,
                                 dead_letter_max_raw=dead_letter_max_raw, max_envelope_events=max_envelope_events,
                                 max_envelope_bytes=max_envelope_bytes, restore=store.restore, journal=True)
        self.partition_of: dict[str, int] = {}  # room held -> its partition
        self.last_event: dict[str, float] = {}  # room held -> monotonic time of its last clip event
        self.dirty: set[str] = set()
        self.unacked: list = []
        self.unmarked: set = set()
        self.offsets: dict = {}  # tp -> highest offset processed
        self.redo: dict = {}  # tp -> highest offset a stored head holds (see ``_process``)
        self.persisted_at = time.monotonic()
        self.loaded: set = set()  # partitions whose stored open rooms are known
        self.lock = asyncio.Lock()

    def _load(self, tp) -> None:
        """A partition new to this worker: its processed offset, and its rooms with
        open periods (idle from now on, should nothing new come)."""
        self.loaded.add(tp)
        done = self.store.processed_offset(tp.partition)
        if done is not None and self.offsets.get(tp, -1) < done:
            self.offsets[tp] = done  # what a previous owner processed is skipped when it comes again
        held = self.store.held_through(tp.partition)
        if held > (-1 if done is None else done):  # heads that landed without their processed offset
            self.redo[tp] = held
        now = time.monotonic()
        for room in self.store.open_rooms(tp.partition):
            if room not in self.core.rooms:
                self.partition_of[room] = tp.partition
                self.last_event.setdefault(room, now)

    def load_assigned(self) -> None:
        for tp in sorted(self.app.consumer.assignment()):
            if tp.topic == CLIP_EVENTS and tp not in self.loaded:
                self._load(tp)

    async def process_batch(self, messages: list) -> list:
        return await asyncio.shield(self._process(messages))

    async def _process(self, messages: list) -> list:
        async with self.lock:
            assigned = self.app.consumer.assignment()
            if any(m.tp not in assigned for m in messages):
                messages = [m for m in messages if m.tp in assigned]
            received = messages
            for tp in sorted({m.tp for m in messages if m.tp not in self.loaded}):
                self._load(tp)
            committed = self.app.consumer._committed_offset
            unseen = {m.tp for m in messages if m.tp not in self.offsets}
            gaps = offset_gaps(self.offsets, messages, {tp: committed.get(tp) for tp in unseen})
            if gaps:
                messages = await read_back(self.app, self.config, messages, gaps, "clip loop")
            now = time.monotonic()
            core, offsets, partitions = self.core, self.offsets, self.config.partitions
            for msg in messages:
                tp, offset, key = msg.tp, msg.offset, msg.key
                previous = offsets.get(tp)
                if previous is not None and offset <= previous:
                    continue  # re-delivered, and in the state already
                offsets[tp] = offset
                partition = tp.partition
                room = key_room(key)
                where = f"{CLIP_EVENTS}/{partition}@{offset}"
                wrong = misplaced(key, room, self.partition_of.get(room), partition, partitions)
                if wrong is not None:
                    core.reject_input(msg.value or b"", reason="wrong_partition", detail=wrong, where=where)
                    continue
                if self.redo and offset <= self.redo.get(tp, -1) and offset <= (
                        core.rooms[room].done if room in core.rooms else self.store.done_of(room)):
                    continue  # its room's head landed with it, the processed offset did not: held already
                core.feed(msg.value or b"", where, expect_room=room)
                if room in core.rooms:
                    self.partition_of[room] = partition
                    self.last_event[room] = now
                    self.dirty.add(room)
            for tp in [tp for tp, held in self.redo.items() if offsets.get(tp, -1) >= held]:
                del self.redo[tp]
            return await self._end_batch(received, messages)

    async def _publish(self) -> None:
        """Outputs first, flushed and checked (see ``RoomsRuntime._publish``)."""
        out = sender(self.app.producer)
        stats, promotions, dead = self.core.drain()
        for s in stats:
            await out.add(CLIP_STATS, s.room_id.encode(), _encode(s))
        for p in promotions:
            await out.add(PROMOTIONS, p.room_id.encode(), _encode(p))
        for d in dead:
            await out.add(DEAD_LETTERS, d.room_id.encode() if d.room_id else None, _encode(d))
        await self._written(await out.close(), "a clip loop output")

    async def _persist(self) -> list:
        rooms, journals = self.core.rooms, self.core.journals
        offsets = {tp.partition: offset for tp, offset in self.offsets.items()}
        for name in sorted(self.dirty):
            room, journal = rooms.get(name), journals.get(name)
            if room is not None and (journal or self.store.repairs.get(name)):
                partition = self.partition_of[name]
                room.done = max(room.done, offsets.get(partition, -1))  # its messages are held through here
                self.store.persist(room, journal, partition)
        self.dirty.clear()
        for tp in sorted(self.unmarked):
            if tp in self.offsets:
                self.store.mark_offset(tp.partition, self.offsets[tp])
        self.unmarked.clear()
        outbox, self.store.outbox = self.store.outbox, []
        await write_phases(self.app.producer, outbox, self._written, "a clip state record")
        acks, self.unacked = self.unacked, []
        self.persisted_at = time.monotonic()
        return acks

    async def _written(self, sent: list, what: str) -> None:
        await confirm(self.app.producer, sent, what, stats=self.stats, who="clip loop")

    async def flush_idle(self) -> None:
        """Rooms idle for ``idle_s`` (wall clock) with nothing of their partition
        waiting: their open periods are closed, as at the end of the input, and
        rooms with nothing open leave memory (their state is in the tables)."""
        app = self.app  # recovered: not between an assignment and the end of its recovery
        if not (getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False)) \
                and app.tables.recovery.completed.is_set():
            async with self.lock:
                self.load_assigned()
        now = time.monotonic()
        idle = [room for room, last in self.last_event.items() if now - last >= self.idle_s]
        if not idle:
            return
        tps = {tp for tp in self.app.consumer.assignment() if tp.topic == CLIP_EVENTS}
        by_partition = {tp.partition: tp for tp in tps}
        try:
            ends = await self.app.consumer.highwaters(*tps) if tps else {}
        except Exception as exc:  # noqa: BLE001 - broker unreachable: decide later
            log.info("clip loop: idle check skipped: %s", exc)
            return
        async with self.lock:
            flushed = released = 0
            for room in idle:
                last = self.last_event.get(room)
                if last is None or time.monotonic() - last < self.idle_s:
                    continue
                tp = by_partition.get(self.partition_of.get(room, -1))
                if tp is None:  # moved to another worker
                    self._release(room)
                    continue
                end = ends.get(tp)
                if end is None or self.offsets.get(tp, -1) + 1 < end:
                    continue  # events still wait: behind, not idle
                held = self.core.rooms.get(room)
                if held is None or held.open:  # not held: a stored room with open periods (after a restart)
                    self.core.flush_room(room)
                    self.dirty.add(room)
                    flushed += 1
            await self._publish()
            await self._persist_and_ack()
            for room in idle:  # written: rooms with nothing open leave memory
                held = self.core.rooms.get(room)
                if room in self.last_event and (held is None or not held.open) and \
                        now - self.last_event[room] >= self.idle_s:
                    self._release(room)
                    released += 1
            if flushed or released:
                log.info("clip loop: flushed %d idle room(s), %d let go from memory", flushed, released)

    def _release(self, room: str) -> None:
        self.core.release(room)
        self.partition_of.pop(room, None)
        self.last_event.pop(room, None)
        self.dirty.discard(room)

    def keep_only(self, assigned) -> None:
        kept = {tp.partition for tp in assigned if tp.topic == CLIP_EVENTS}
        for tp in [tp for tp in self.offsets if tp not in assigned]:
            del self.offsets[tp]
        for tp in [tp for tp in self.redo if tp not in assigned]:
            del self.redo[tp]
        self.loaded &= set(assigned)
        for room in [r for r, p in self.partition_of.items() if p not in kept]:
            self._release(room)
        self.store.stale()


def add_clip_loop(app: faust.App, config: KafkaConfig, loop: ClipLoopConfig, *, max_event_bytes: int = 65536,
                  dead_letter_max_raw: int = 65536, max_envelope_events: int = 1000,
                  max_envelope_bytes: int = 1 << 20, idle_s: float | None = None,
                  stats: WorkerStats | None = None) -> ClipsRuntime:
    """Subscribe the worker to ``liveroom.clip-events`` (the batch drain takes it)."""
    events = app.topic(CLIP_EVENTS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                       partitions=config.partitions)
    app.topics.add(events)
    tables = [app.Table(name, partitions=config.partitions, key_type=bytes, value_type=bytes)
              for name in (HEADS_TABLE, PARTS_TABLE, LEGACY_TABLE)]
    store = ClipStore(*tables, stats or WorkerStats())
    runtime = ClipsRuntime(app, store, loop, config, idle_s=idle_s, max_event_bytes=max_event_bytes,
                           dead_letter_max_raw=dead_letter_max_raw, max_envelope_events=max_envelope_events,
                           max_envelope_bytes=max_envelope_bytes, stats=store.stats)
    app.batch_runtimes[CLIP_EVENTS] = runtime  # type: ignore[attr-defined]
    app.clips_runtime = runtime  # type: ignore[attr-defined]

    @app.on_partitions_revoked.connect
    async def finish_clip_batch_before_rebalance(app, revoked, **kwargs):  # noqa: ARG001
        await runtime.barrier()

    @app.on_partitions_assigned.connect
    async def forget_moved_clip_partitions(app, assigned, **kwargs):  # noqa: ARG001
        runtime.keep_only(assigned)

    @app.timer(interval=max(0.5, min(runtime.idle_s, config.silence_s) / 4))
    async def flush_idle_clip_rooms():
        await runtime.flush_idle()

    @app.timer(interval=max(0.1, config.persist_s))
    async def persist_clip_state():
        await runtime.persist_due()

    return runtime
