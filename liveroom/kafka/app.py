"""Kafka runtime: the streams core inside a Faust app (faust-streaming).

Thin by design: the same :class:`~streams.core.StreamCore` as the embedded
replay; Faust keeps the group membership, the tables and their changelogs, and
recovery. Three choices make it hold at live-commerce scale.

**A batch drain for the events topic.** Faust's stream path costs about 80 us of
CPU per message (tasks and futures per message in ``Consumer._drain_messages``):
a Faust agent that does nothing tops out near 11k messages/s on two cores. The
worker's consumer replaces that drain with one that takes each fetched batch of
``liveroom.events`` whole (:class:`BatchDrainConsumer`); messages of every other
topic (changelog recovery, the bidding agent's topics) still go through Faust's
own per-message path. A batch is processed, its state changes and outputs are
sent and the producer flushed *before* its messages are acked, so a committed
offset never runs ahead of the changelog (at-least-once, and a crash repeats at
most what was not yet committed; the restored dedup memory drops the repeats).
Messages may also be envelopes (a JSON array of one room's events): one message,
many events, far less per-event cost.

**Room state in parts, written when it changes.** A room lives in memory while
its partition is ours (a :class:`~streams.room.RoomProcessor`, no decode/encode
per batch) and is persisted per batch as what changed (see
``streams/room_parts.py``): a small head in the ``room-state`` table and each
viewer, buffered segment and id list as its own key in ``room-parts``. Both are
written to the partition the room's events come from, so a worker that takes
over a partition restores exactly its rooms.

**Ticks close on event time, message by message.** A room's ticks close when
its own events pass them (as embedded), or by its partition's clock
(``streams/partitions.py``): evaluated after every message in the partition's
order, never per fetched batch, so outputs do not depend on where a fetch was
cut, and the embedded replay runs the same rules. The same clock finishes rooms
(after ``room_end``, or long idle): their last outputs go out, a tombstone on
``liveroom.room-metrics`` tells the bidding agent, their table keys are
tombstoned and only a small marker stays until the clock forgets it. One rule
uses the wall clock: a partition that has gone idle (no new events for
``silence_s`` and nothing waiting on the broker) has its rooms' open ticks
flushed, as the end of the input does embedded. An event for such a tick
*reopens* it (counted in the room's first open tick, totals exact, see
``streams/room.py``): a producer stall longer than ``silence_s`` is the one
case where the outputs can differ from the embedded replay's.
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
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP

from streams.config import CoreConfig
from streams.core import StreamCore
from liveroom.kafka.topics import DEAD_LETTERS, EVENTS, MOMENTS, ROOM_METRICS, KafkaConfig
from streams.partitions import PartitionClocks, partition_for
from streams.room import RoomProcessor, RoomState
from streams.room_parts import assemble, finish_records, finished_at, finished_marker, presence_key, split
from liveroom.kafka.records import HEADS, LAST, OFFSETS, PARTS, TOMBSTONES, confirm, sender, write_phases
from liveroom.kafka.stats import WorkerStats

log = logging.getLogger(__name__)
STATE_TABLE = "room-state"
PARTS_TABLE = "room-parts"

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.msgpack.Decoder().decode
_decode_head = msgspec.msgpack.Decoder(RoomState).decode
_encode_offset = msgspec.msgpack.Encoder().encode
OFFSET_PREFIX = b"\xffoffset/"  # not UTF-8: never a room id
# Clock moves kept for room heads between two persists, at most about this many (a
# persist comes sooner when they reach it): a head holds its room's, 15 bytes each.
MAX_MOVES = 2048


def key_room(key: bytes | None) -> str:
    """The room a message key names: "" for none, and a non-UTF-8 key names no
    room an event can have (its events are ``key_mismatch``)."""
    try:
        return key.decode() if key else ""
    except UnicodeDecodeError:
        return "\0not-utf-8"


def misplaced(key: bytes | None, room: str, held: int | None, partition: int, partitions: int) -> str | None:
    """Why a message on ``partition`` is not where its key's room lives (``held``:
    the partition of the room's state if this worker holds it, else Kafka's default
    partitioner decides), or None when it is. Another partitioner or partition
    count would split a room's state over two partitions: a ``wrong_partition``."""
    home = held if held is not None else (partition_for(key, partitions) if key else partition)
    if home == partition:
        return None
    return f"key {room!r} belongs on partition {home} of {partitions} (Kafka's default partitioner), not {partition}"


def offset_key(partition: int) -> bytes:
    """The head-table key of a partition's processed offset (see ``RoomStore.mark_offset``)."""
    return OFFSET_PREFIX + str(partition).encode()


def _credentials(config: KafkaConfig):
    context = ssl.create_default_context(cafile=config.ssl_cafile) if config.security_protocol.endswith("SSL") else None
    if config.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=config.sasl_username, password=config.sasl_password,
                                     mechanism=config.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class RoomStore:
    """The rooms of the partitions this worker owns: restored from the two
    tables on first use, persisted in parts (see ``streams/room_parts.py``)."""

    def __init__(self, heads, parts, stats: WorkerStats) -> None:
        self.heads = heads
        self.parts = parts
        self.stats = stats
        self.topic = {id(heads): heads.changelog_topic.get_topic_name(),
                      id(parts): parts.changelog_topic.get_topic_name()}
        self.name = {id(heads): STATE_TABLE, id(parts): PARTS_TABLE}
        # changelog records to send: (phase, topic, partition, key, value); see ``write_phases``
        self.outbox: list[tuple[int, str, int, bytes, bytes | None]] = []
        self._viewers: dict[str, list[tuple[str, bytes]]] | None = None  # room -> viewer records, after recovery
        self.repairs: list[tuple[bytes, bytes | None, int]] = []  # part records to write before anything else
        self.partition_of: dict[str, int] = {}  # room -> partition its state is written to
        self.late: dict[bytes, int] = {}  # head keys queued after the offsets phase -> that phase

    def stale(self) -> None:
        """A new assignment: the tables hold freshly recovered records."""
        self._viewers = None

    def _index(self, cached) -> dict[str, list[tuple[str, bytes]]]:
        """Viewer records per room, from one pass over the recovered parts. Records
        of rooms already held (a kept partition re-read) are dropped from the store."""
        viewers: dict[str, list[tuple[str, bytes]]] = {}
        drop = []
        for key, value in self.parts.data.items():
            try:
                kind, room, *rest = _decode_any(key)
            except Exception:  # noqa: BLE001 - not ours: leave it alone
                continue
            if room in cached:
                drop.append(key)
            elif kind == "P" and value is not None:
                viewers.setdefault(room, []).append((rest[0], value))
        self._forget(drop)
        return viewers

    def _forget(self, keys) -> None:
        data = self.parts.data
        partitions = getattr(data, "_key_partition", None) or getattr(self.parts, "_key_partition", None)
        for key in keys:
            data.pop(key, None)
            if partitions is not None:
                partitions.pop(key, None)

    def restore(self, room: str, cached) -> RoomState | float | None:
        head = self.heads.data.get(room.encode())
        if head is None:
            # viewer records of a first persist whose head never landed: the room's next
            # head (gen 1 again) would take them up as its own, so they are deleted first
            if self._viewers is None:
                self._viewers = self._index(cached)
            partition = self.partition_of.get(room)
            self.repairs.extend((presence_key(room, user), None, partition) for user, _ in self._viewers.pop(room, []))
            return None
        at = finished_at(head)
        if at is not None:
            return at
        if self._viewers is None:
            self._viewers = self._index(cached)
        viewers = self._viewers.pop(room, [])
        looked_up: list[bytes] = []

        def lookup(key: bytes):
            looked_up.append(key)
            return self.parts.data.get(key)

        state, repairs = assemble(head, lookup, viewers)
        partition = self.partition_of.get(room)
        self.repairs.extend((key, value, partition) for key, value in repairs)
        self._forget(looked_up + [presence_key(room, user) for user, _ in viewers])
        return state

    def persist(self, proc: RoomProcessor, partition: int, done: int = -1, marked: int = -1,
                moves: list | None = None) -> None:
        """Queue a room's changes. Its head says it holds the room's messages
        through offset ``done`` and keeps the clock ``moves`` its messages made
        after ``marked`` (the partition's processed offset last written): should
        the heads land and the offset not, a successor skips those messages for
        this room and replays their clock (see ``RoomsRuntime._process``)."""
        state = proc.state
        key = state.room_id.encode()
        if done > state.done:
            state.done = done
        kept = [m for m in state.moves if m[0] > marked] if state.moves else []
        state.moves = kept + moves if moves else kept
        parts, head, tombstones = split(state, proc.journal)
        for k, v in parts:
            self._send(self.parts, partition, k, v, PARTS)
        self.heads.data[key] = head
        self._send(self.heads, partition, key, head, HEADS)
        for k, v in tombstones:
            self._send(self.parts, partition, k, v, TOMBSTONES)

    def finish(self, proc: RoomProcessor, partition: int, at: float, done: int = -1, marked: int = -1,
               moves: list | None = None) -> None:
        """A finished room: its last changes, tombstones for every part it still
        has, then its head becomes a marker (see ``streams/room_parts.py``)."""
        self.write_repairs()
        self.persist(proc, partition, done, marked, moves)
        for k, v in finish_records(proc.state):
            self._send(self.parts, partition, k, v, TOMBSTONES)
        key = proc.state.room_id.encode()
        marker = finished_marker(at)
        self.heads.data[key] = marker
        self._send(self.heads, partition, key, marker, LAST)
        self.partition_of.pop(proc.state.room_id, None)

    def forget(self, room: str, partition: int) -> None:
        """A finished room's marker expired: its head key is tombstoned (after the
        processed offset: redone messages before it still meet the marker)."""
        key = room.encode()
        self.heads.data.pop(key, None)
        self._send(self.heads, partition, key, None, TOMBSTONES)

    def mark_offset(self, partition: int, offset: int, clock: float) -> None:
        """Written last in a batch: the partition's events up to ``offset`` are in
        the state before it. A new owner skips those when they come again, so a
        re-delivered message never meets a state that already took it (a verdict
        that depends on the state, such as ``spend_unissued``, could differ)."""
        key = offset_key(partition)
        value = _encode_offset((offset, clock))  # and the partition's clock, restored as it was
        self.heads.data[key] = value
        self._send(self.heads, partition, key, value, OFFSETS)  # once every head is written

    def processed_offset(self, partition: int) -> tuple[int | None, float | None]:
        """The stored processed offset and partition clock (None, None: none stored)."""
        value = self.heads.data.get(offset_key(partition))
        try:
            offset, clock = _decode_any(value) if value is not None else (None, None)
            return int(offset), float(clock)
        except Exception:  # noqa: BLE001 - none, or damaged: start from the group's commit, as before
            return None, None

    def heads_of(self, partition: int):
        """``(room, head bytes)`` of every recovered room head of ``partition``."""
        data = self.heads.data
        where = getattr(data, "_key_partition", None) or {}
        for key, p in list(where.items()):
            if p == partition and not key.startswith(OFFSET_PREFIX):
                value = data.get(key)
                if value is not None:
                    yield key.decode("utf-8", "replace"), value

    def write_repairs(self) -> None:
        for key, value, partition in self.repairs:
            if partition is not None:
                self._send(self.parts, partition, key, value, PARTS)
        self.repairs.clear()

    def _send(self, table, partition: int, key: bytes, value: bytes | None, phase: int) -> None:
        """Queue a changelog record. Sent by the runtime straight to the producer:
        Faust's ``send_changelog`` path costs several times more per record, and
        the memory store needs none of its bookkeeping."""
        topic = self.topic[id(table)]
        if table is self.heads:
            later = self.late.get(key)
            if later is not None and later > phase:
                # A head key queued for a later phase (a finish marker, an expired
                # marker's tombstone) and now a record of an earlier one (the id
                # came back as a new room, or its marker expired): the later-phase
                # record would land last and undo it. It goes.
                self.outbox = [r for r in self.outbox if not (r[3] == key and r[1] == topic and r[0] > phase)]
                del self.late[key]
            if phase > OFFSETS:
                self.late[key] = phase
        self.outbox.append((phase, topic, partition, key, value))
        self.stats.record_changelog(self.name[id(table)], key, value)

    def take_outbox(self) -> list:
        """The queued records, for one persist."""
        outbox, self.outbox = self.outbox, []
        self.late.clear()
        return outbox


class PersistCadence:
    """What the rooms and clip runtimes share about writing their state: at most
    every ``persist_s``, and a batch's messages acked only once the state they
    made is written (so a committed offset never runs ahead of the changelogs).
    A runtime has ``app``, ``config``, ``lock``, ``dirty``, ``unacked``,
    ``unmarked``, ``persisted_at``, ``_publish()`` and ``_persist()``."""

    pending_moves = 0  # the rooms runtime's clock moves waiting for a head: a persist is due at MAX_MOVES

    async def _end_batch(self, received: list, processed: list) -> list:
        """Publish the batch's outputs; write the state if it is due. Returns the
        messages that may be acked now."""
        self.unacked.extend(received)
        self.unmarked.update(m.tp for m in processed)
        await self._publish()
        if time.monotonic() - self.persisted_at >= self.config.persist_s or self.pending_moves >= MAX_MOVES:
            return await self._persist()
        return []

    async def _persist_and_ack(self) -> None:
        ack = self.app.consumer.ack
        for message in await self._persist():
            ack(message)

    async def persist_due(self) -> None:
        """The timer's part: state not written for ``persist_s`` (no batch came to
        write it) is written, and its messages acked."""
        if not (self.unacked or self.dirty) or time.monotonic() - self.persisted_at < self.config.persist_s:
            return
        async with self.lock:
            await self._persist_and_ack()

    async def barrier(self) -> None:
        """Called when partitions are revoked: wait for the batch in hand, write
        what is not written yet and ack its messages (a new owner skips what the
        written state holds, should the commit not make it)."""
        async with self.lock:
            await self._persist_and_ack()
            await self.app.producer.flush()


class RoomsRuntime(PersistCadence):
    """What the batch drain and the idle timer do; holds no Faust magic of its own."""

    fills_gaps = True  # reads skipped offsets back itself (room events must not go missing)

    def __init__(self, app: faust.App, heads, parts, core_config: CoreConfig, config: KafkaConfig) -> None:
        self.app = app
        self.config = config
        self.stats = WorkerStats()
        self.store = RoomStore(heads, parts, self.stats)
        self.core = StreamCore(core_config, source=f"{EVENTS}/", journal=True,
                               restore=lambda room: self.store.restore(room, self.core.processors))
        self.clocks = PartitionClocks(self.core, core_config, on_finish=self._finished, on_forget=self.store.forget,
                                      on_move=self._moved)
        self.at = -1  # offset of the message being processed
        self.moves: dict[str, list[tuple[int, float]]] = {}  # room -> clock moves of its messages since its last persist
        self.marked: dict[int, int] = {}  # partition -> the processed offset last written
        self.redo: dict = {}  # tp -> highest offset a stored head holds (messages up to it may be held already)
        self.finished_now: list[str] = []  # rooms finished in the batch at hand (a tombstone each on the metrics)
        self.dirty: dict[str, int] = {}  # rooms changed since the last persist -> their partition
        self.unacked: list = []  # messages processed since the last persist (acked once their state is written)
        self.unmarked: set = set()  # partitions processed since the last persist
        self.persisted_at = time.monotonic()
        self.offsets: dict = {}  # highest offset processed, per topic-partition
        self.loaded: set = set()  # partitions whose stored clock and rooms are loaded
        self.last_input: dict = {}  # tp -> monotonic time of its last message (or of its loading)
        self.lock = asyncio.Lock()
        self._progress = (time.monotonic(), 0)  # when the last progress line was computed, and the inputs then
        self._said = ""  # the last progress line logged

    def _finished(self, proc: RoomProcessor, partition: int) -> None:
        room = proc.state.room_id
        self.store.finish(proc, partition, self.core.finished[room], self.at, self.marked.get(partition, -1),
                          self.moves.pop(room, None))
        self.finished_now.append(room)

    def _moved(self, partition: int, room: str, clock: float) -> None:
        """The partition clock moved with ``room``'s message at ``self.at``: kept
        with the room's next head, so that a successor that skips the message (its
        head already holds it) still moves the clock there."""
        self.pending_moves += 1
        moves = self.moves.get(room)
        if moves is None:
            self.moves[room] = [(self.at, clock)]
        else:
            moves.append((self.at, clock))

    def load_assigned(self) -> None:
        """Load every assigned partition not loaded yet (call once the tables are
        recovered): one that gets no new message after a restart still has its
        rooms' open ticks flushed when it is idle."""
        for tp in sorted(self.app.consumer.assignment()):
            if tp.topic == EVENTS and tp not in self.loaded:
                self._load(tp)

    def _load(self, tp) -> None:
        self.loaded.add(tp)
        self.last_input.setdefault(tp, time.monotonic())  # idle from now on, should nothing new come
        done, clock = self.store.processed_offset(tp.partition)
        if clock is not None and clock > self.clocks.clock.get(tp.partition, float("-inf")):
            self.clocks.clock[tp.partition] = clock
        rooms, held = self._load_partition(tp.partition, clock_known=clock is not None)
        if done is not None and self.offsets.get(tp, -1) < done:
            self.offsets[tp] = done  # what a previous owner processed is skipped when it comes again
        self.marked[tp.partition] = -1 if done is None else done
        if held > self.marked[tp.partition]:  # heads written after the last processed offset that landed
            self.redo[tp] = held
        log.info("rooms agent: processing partition %s[%d] (%d stored room(s), events up to offset %s processed)",
                 tp.topic, tp.partition, rooms, done)

    def _load_partition(self, partition: int, *, clock_known: bool = False) -> tuple[int, int]:
        """A partition new to this worker: its clock, its rooms' due times and its
        finished rooms' markers, from the recovered heads (rooms themselves are
        restored when something is due for them or an event comes). Returns how
        many rooms it found, and the highest offset a head holds."""
        procs = self.core.processors
        loaded = 0
        held = -1
        for room, head in self.store.heads_of(partition):
            if room in procs:
                continue
            at = finished_at(head)
            if at is not None:
                self.clocks.load_marker(partition, room, at, clock_known=clock_known)
                continue
            try:
                state = _decode_head(head)
            except Exception:  # noqa: BLE001 - not a head of ours: leave it alone
                continue
            self.store.partition_of[room] = partition
            # A head that says which offset it holds (this version's) was written by a worker that
            # writes processed offsets: with none stored, the clock is rebuilt from the partition's
            # start as its messages come again, not taken from the newest head (the end of them).
            self.clocks.load_head(partition, state, clock_known=clock_known or state.done >= 0)
            loaded += 1
            held = max(held, state.done)
        return loaded, held

    async def process_batch(self, messages: list) -> list:
        """One fetched batch of ``liveroom.events``: process, persist, publish,
        flush; returns the messages processed, for the caller to ack. Shielded:
        once begun, a batch is finished even if the fetcher is cancelled by a
        rebalance."""
        return await asyncio.shield(self._process(messages))

    async def _process(self, messages: list) -> list:
        started = time.perf_counter()
        async with self.lock:
            # A batch fetched before a rebalance may hold partitions that have moved
            # since: another worker owns their rooms now, and must be the only writer.
            assigned = self.app.consumer.assignment()
            if any(m.tp not in assigned for m in messages):
                messages = [m for m in messages if m.tp in assigned]
            received = messages
            # A partition new to us starts where the group committed: a fetcher that
            # resumed past that point (seen in Faust after a rebalance) leaves a hole.
            fresh = {m.tp for m in messages if m.tp not in self.loaded}
            for tp in sorted(fresh):
                self._load(tp)
            committed = self.app.consumer._committed_offset  # Faust's, set by its seek to committed
            unseen = {m.tp for m in messages if m.tp not in self.offsets}
            gaps = offset_gaps(self.offsets, messages, {tp: committed.get(tp) for tp in unseen})
            if gaps:
                messages = await self._fill(messages, gaps)
            acks = []
            for start in range(0, len(messages), MAX_MOVES):
                self._feed(messages[start:start + MAX_MOVES])
                if self.pending_moves >= MAX_MOVES and start + MAX_MOVES < len(messages):
                    await self._publish()  # heads keep their clock moves: a few KB, not a batch's worth
                    acks += await self._persist()
            acks += await self._end_batch(received, messages)
        self.stats.record_batch(time.perf_counter() - started)
        return acks

    def _feed(self, messages: list) -> None:
        """Feed messages to the core, one at a time in each partition's order (see
        the module docstring); the rooms they change become dirty."""
        core = self.core
        now = time.monotonic()
        touched: dict[str, int] = {}
        procs = core.processors
        partition_of = self.store.partition_of
        after_message = self.clocks.after_message
        feed = core.feed_many
        offsets = self.offsets
        redo = self.redo
        for msg in messages:  # one at a time, in each partition's order: see the module docstring
            tp, offset, key = msg.tp, msg.offset, msg.key
            previous = offsets.get(tp)
            if previous is not None and offset <= previous:
                continue  # re-delivered after a rebalance and processed already
            offsets[tp] = offset
            self.at = offset
            partition = tp.partition
            room = key_room(key)
            fresh_room = room not in procs
            wrong = misplaced(key, room, None if fresh_room else partition_of.get(room, partition), partition,
                              self.config.partitions)
            if wrong is not None:
                core.reject_input(msg.value or b"", reason="wrong_partition", detail=wrong,
                                  where=f"{partition}@{offset}")
                self.last_input[tp] = now
                continue
            if fresh_room:
                partition_of[room] = partition  # a restore writes its repairs there
            if redo and offset <= redo.get(tp, -1) and self._held_already(room, partition, offset):
                self.last_input[tp] = now
                continue
            feed((msg.value or b"",), [f"{partition}@{offset}"], expect_room=room)
            if room in procs:
                touched[room] = partition
            elif fresh_room and room not in self.clocks.partition_of:
                partition_of.pop(room, None)  # no room came of it (dead letters only)
            after_message(partition, room)
            self.last_input[tp] = now
        changed = self.clocks.changed
        for room in changed:
            if room in procs:
                touched.setdefault(room, partition_of[room])
        changed.clear()
        self.dirty.update(touched)
        self.unmarked.update(m.tp for m in messages)  # a persist forced before the batch ends writes their offsets
        for tp in [tp for tp, held in redo.items() if offsets.get(tp, -1) >= held]:
            del redo[tp]

    def _held_already(self, room: str, partition: int, offset: int) -> bool:
        """Whether a re-delivered message is held by its room's restored state
        already: its head landed, the partition's processed offset did not (a
        crash between the two, or among the heads). Such a message is not fed
        again (its events would count twice, a verdict such as ``spend_unissued``
        could change); the partition clock takes the value it gave it the first
        time, kept in the head, so the other rooms' ticks close where they did."""
        proc = self.core.held(room)
        if proc is None or proc.state.done < offset:
            return False
        clock = None
        for at, value in proc.state.moves:
            if at == offset:
                clock = value
                break
        self.clocks.after_held_message(partition, clock)
        return True

    async def _persist(self) -> list:
        """Write what changed since the last persist (each dirty room once, however
        many batches touched it: the cost follows rooms per ``persist_s``, not
        rooms per batch), then each partition's processed offset; returns the
        messages that may now be acked. Their outputs went out with their batches."""
        self.store.write_repairs()
        procs = self.core.processors
        offsets = {tp.partition: offset for tp, offset in self.offsets.items()}
        marked, moves = self.marked, self.moves
        for room, partition in self.dirty.items():
            proc = procs.get(room)
            if proc is not None:
                self.store.persist(proc, partition, offsets.get(partition, -1), marked.get(partition, -1),
                                   moves.pop(room, None))
        self.dirty.clear()
        written = {}
        for tp in sorted(self.unmarked):
            if tp in self.offsets:
                written[tp.partition] = self.offsets[tp]
                self.store.mark_offset(tp.partition, self.offsets[tp], self.clocks.clock.get(tp.partition, 0.0))
        self.unmarked.clear()
        await self._write_state()
        marked.update(written)
        self.pending_moves = 0
        acks, self.unacked = self.unacked, []
        self.persisted_at = time.monotonic()
        return acks

    async def _fill(self, messages: list, gaps: list[tuple]) -> list:
        return await read_back(self.app, self.config, messages, gaps, "rooms agent")

    def keep_only(self, assigned) -> None:
        """A new assignment: forget partitions that moved away, and the rooms of
        them (another worker may change them now; should one come back, it is
        restored from the tables). Should a partition come back later, its old
        offset must not make it look caught up while the events its other owner
        left uncommitted are re-delivered. Rooms of kept partitions stay as they
        are: re-delivered events are ones we processed."""
        for tp in [tp for tp in self.offsets if tp not in assigned]:
            del self.offsets[tp]
        for tp in [tp for tp in self.last_input if tp not in assigned]:
            del self.last_input[tp]
        self.loaded &= set(assigned)
        kept = {tp.partition for tp in assigned if tp.topic == EVENTS}
        for partition in [p for p in self.clocks.clock if p not in kept] + \
                [p for p in self.clocks.members if p not in kept]:
            self.clocks.forget_partition(partition)
        procs = self.core.processors
        for room in [r for r in procs if self.store.partition_of.get(r) not in kept]:
            del procs[room]
            self.store.partition_of.pop(room, None)
            self.moves.pop(room, None)
        for tp in [tp for tp in self.redo if tp not in assigned]:
            del self.redo[tp]
        for partition in [p for p in self.marked if p not in kept]:
            del self.marked[partition]
        self.stats.forget_rooms(procs)
        self.store.stale()

    async def flush_idle(self) -> None:
        """Flush the rooms of partitions idle for ``silence_s`` (wall clock) with
        nothing waiting in them: the end of a session, a lone room's partition.
        Events that come later reopen the flushed ticks (nothing is lost)."""
        app = self.app  # recovered: not between an assignment and the end of its recovery
        if not (getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False)) \
                and app.tables.recovery.completed.is_set():
            async with self.lock:
                self.load_assigned()
        now = time.monotonic()
        idle = [tp for tp, last in self.last_input.items()
                if now - last >= self.config.silence_s and self.clocks.waiting(tp.partition)]
        if not idle:
            return
        try:  # a partition is only idle if nothing of it waits on the broker
            ends = await self.app.consumer.highwaters(*idle)
        except Exception as exc:  # noqa: BLE001 - broker unreachable: not the moment to decide anything
            log.info("idle check skipped: %s", exc)
            return
        async with self.lock:
            assigned = self.app.consumer.assignment()
            flushed = 0
            for tp in idle:
                end = ends.get(tp)
                if tp not in assigned or end is None or self.offsets.get(tp, -1) + 1 < end:
                    continue  # moved away, or events still wait: behind, not idle
                if time.monotonic() - self.last_input.get(tp, 0.0) < self.config.silence_s:
                    continue  # events arrived meanwhile
                for room in self.clocks.flush_partition(tp.partition):
                    self.dirty[room] = tp.partition
                    flushed += 1
            await self._publish()
            await self._persist_and_ack()
            if flushed:
                log.info("flushed %d room(s) of idle partitions", flushed)

    async def _publish(self) -> None:
        """Send the core's outputs (and a tombstone per room finished), flush and
        check them. They go before the state they come from is written (see
        :meth:`_persist`): a crash or a refused record in between leaves the state
        as it was, so the batch is done again and its outputs repeated, never lost
        (with the state first, a refused snapshot was lost for good: the restored
        state took the redone events for duplicates). A batch whose writes failed
        is not acked: the worker stops instead, and its successor redoes it."""
        out = sender(self.app.producer)
        metrics, moments, dead = self.core.drain()
        for m in metrics:
            await out.add(ROOM_METRICS, m.room_id.encode(), _encode(m))
        for m in moments:
            await out.add(MOMENTS, m.room_id.encode(), _encode(m))
        for d in dead:
            await out.add(DEAD_LETTERS, d.room_id.encode() if d.room_id else None, _encode(d))
        finished, self.finished_now = self.finished_now, []
        for room in finished:  # after its last snapshots: the room is finished (the bidding agent lets it go)
            await out.add(ROOM_METRICS, room.encode(), None)
        outputs = await out.close()
        await self._written(outputs, "an output record")
        self.stats.record_outputs(metrics, moments)
        self.stats.forget_finished(finished)

    async def _write_state(self) -> None:
        """Send the queued changelog records (one partition's records keep their
        order), flush and check them."""
        outbox = self.store.take_outbox()
        await write_phases(self.app.producer, outbox, self._written, "a state record")

    async def _written(self, sent: list, what: str) -> None:
        await confirm(self.app.producer, sent, what, stats=self.stats, who="rooms agent")

    async def progress(self) -> None:
        """Every ``progress_s``: events per second and consumer lag for the pages,
        and one progress line in the log when anything moved since the last."""
        now, inputs = time.monotonic(), self.core.inputs
        then, before = self._progress
        self._progress = (now, inputs)
        self.stats.events_per_s = (inputs - before) / (now - then) if now > then else 0.0
        consumer = self.app.consumer
        sources = [tp for tp in consumer.assignment() if not tp.topic.endswith("-changelog")
                   and "__assignor" not in tp.topic]
        if sources:
            try:
                ends = await consumer.highwaters(*sources)
            except Exception as exc:  # noqa: BLE001 - broker away: keep the last figures
                log.debug("lag not measured: %s", exc)
            else:
                read = consumer._read_offset  # Faust's own: the newest offset handed on, per partition
                lag = {}
                for tp in sources:
                    done = read.get(tp)
                    position = done + 1 if done is not None else await consumer.position(tp)
                    lag[(tp.topic, tp.partition)] = max(0, ends.get(tp, 0) - (position or 0))
                self.stats.lag = lag
        a = self.core.accounting()
        line = (f"{a['inputs']:,} events ({a['processed']:,} processed, {a['duplicates']:,} duplicates, "
                f"{a['dead_letters']:,} dead letters), {len(self.core.processors)} room(s), "
                f"{sum(self.stats.decisions_by_strategy.values()):,} bid decisions; "
                f"lag {sum(v for (t, _), v in self.stats.lag.items() if t == EVENTS):,} on {EVENTS}")
        if line != self._said:
            self._said = line
            log.info("progress: %s; %.0f events/s", line, self.stats.events_per_s)


class BatchDrainConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer with a drain that hands ``liveroom.events`` to
    the rooms runtime, and ``liveroom.clip-events`` to the clip loop's, a
    fetched batch at a time (see the module docstring). Everything else, and
    every other topic, is Faust's own."""

    async def _drain_messages(self, fetcher) -> None:  # pragma: no cover - runs in the worker
        runtimes = self.app.batch_runtimes  # type: ignore[attr-defined] # topic -> its runtime
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                await self.sleep(0)
                if self.should_stop:
                    break
                batches: dict[str, list] = {}
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue
                    if tp.topic in runtimes:
                        if r_offset and offset - r_offset > 1 and not runtimes[tp.topic].fills_gaps and \
                                acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)  # as on Faust's own path
                        batches.setdefault(tp.topic, []).append(message)
                        set_read_offset(tp, offset)
                        continue
                    if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                ack = self.ack
                for topic, batch in batches.items():
                    for message in await runtimes[topic].process_batch(batch):
                        ack(message)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


def offset_gaps(processed: dict, messages, committed: dict | None = None) -> list[tuple]:
    """``(tp, start, end)`` for each run of offsets skipped in ``messages``: after
    the highest offset already ``processed`` in that partition, or, in a
    partition not processed yet, after the group's ``committed`` offset (the
    next one to read: where a newly assigned partition must start), or between
    two messages. Lower offsets (re-delivered after a rebalance) are not gaps.
    The events topic is not compacted, so only transaction markers leave holes
    of their own (reading them back returns nothing)."""
    following = {tp: offset for tp, offset in (committed or {}).items() if offset is not None and offset >= 0}
    following.update({tp: offset + 1 for tp, offset in processed.items()})
    gaps = []
    for m in messages:
        expected = following.get(m.tp)
        if expected is not None and m.offset > expected:
            gaps.append((m.tp, expected, m.offset))
        if expected is None or m.offset >= expected:
            following[m.tp] = m.offset + 1
    return gaps


async def read_back(app, config: KafkaConfig, messages: list, gaps: list[tuple], who: str) -> list:
    """Read the skipped offsets from the broker and put them in their place.

    A rebalance can drop messages the consumer had fetched (a generation
    change in the middle of a fetched batch) while its position moved past
    them; a kept partition then resumes after a hole. Events must not go
    missing, so a runtime notices offsets that jump forward within a partition
    it kept and reads them itself, then marks them done for Faust's commit.
    Transaction markers also leave such jumps; they read back as nothing."""
    fetched = []
    for tp, start, end in gaps:
        got = await asyncio.to_thread(fetch_range, config, tp, start, end)
        if got:
            log.warning("%s: %s[%d] offsets %d-%d were not delivered; read %d event(s) back from the broker", who,
                        tp.topic, tp.partition, start, end - 1, len(got))
        fetched.extend(got)
        await app.consumer._add_gap(tp, start, end - 1)  # processed by the caller: committable
    return sorted(messages + fetched, key=lambda m: (m.tp, m.offset))


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


class RoomsApp(faust.App):
    """A Faust app whose consumer drains ``liveroom.events`` in batches."""

    def _new_consumer(self):
        transport = self.transport
        return BatchDrainConsumer(transport, callback=self.topics.on_message, loop=transport.loop,
                                  on_partitions_revoked=self._on_partitions_revoked,
                                  on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon)


def create_app(config: KafkaConfig, core_config: CoreConfig) -> faust.App:
    """The Faust app of the streams side: the events topic, two tables, one timer."""
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)  # Faust does not create datadir parents
    app = RoomsApp(
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
        # The bidding agent's stream: finish what it holds before a rebalance goes on.
        stream_wait_empty=True,
        web_enabled=config.web_port > 0,
        web_port=config.web_port or 6066,
        web_bind=config.web_bind,
        web_host=config.web_bind if config.web_bind not in ("0.0.0.0", "::") else "localhost",
        table_cleanup_interval=3600.0,
        # A restore reads a moved partition's changelog from the start; standby
        # copies of other workers' rooms would double the memory of hot rooms.
        table_standby_replicas=0,
        broker_max_poll_records=config.batch_max,
        consumer_max_fetch_size=8 * 1024 * 1024,
        producer_max_request_size=8 * 1024 * 1024,
        producer_max_batch_size=256 * 1024,  # records per request: see ``liveroom/kafka/records.py``
        producer_linger_ms=5,
    )
    events = app.topic(EVENTS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                       partitions=config.partitions)
    app.topics.add(events)  # subscribed; its messages go to the batch drain, not to an agent
    # Values are msgpack bytes: ``bytes`` makes Faust use its raw codec in the
    # store, the changelog and recovery alike.
    heads = app.Table(STATE_TABLE, partitions=config.partitions, key_type=bytes, value_type=bytes)
    parts = app.Table(PARTS_TABLE, partitions=config.partitions, key_type=bytes, value_type=bytes)
    runtime = RoomsRuntime(app, heads, parts, core_config, config)
    app.rooms_runtime = runtime  # type: ignore[attr-defined]
    app.batch_runtimes = {EVENTS: runtime}  # type: ignore[attr-defined] # topics the batch drain takes

    @app.on_partitions_revoked.connect
    async def finish_batch_before_rebalance(app, revoked, **kwargs):  # noqa: ARG001 (Faust's signal signature)
        await runtime.barrier()

    @app.on_partitions_assigned.connect
    async def forget_moved_partitions(app, assigned, **kwargs):  # noqa: ARG001 (Faust's signal signature)
        runtime.keep_only(assigned)

    @app.timer(interval=max(0.5, config.silence_s / 4))
    async def flush_idle_partitions():
        await runtime.flush_idle()

    @app.timer(interval=max(0.1, config.persist_s))
    async def persist_pending_state():
        await runtime.persist_due()

    @app.timer(interval=config.progress_s)
    async def report_progress():
        await runtime.progress()

    return app
