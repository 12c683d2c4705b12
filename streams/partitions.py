"""Rooms that share a partition share its clock: the rules that close a quiet
room's ticks and let an ended room go, as pure functions of a partition's
message order.

Why per message. A room's own events close its ticks (``streams/room.py``). A
room that goes quiet while the others on its partition keep going has its ticks
closed by the partition's event time instead (the newest event time of any room
on it), ``quiet_s`` past them; and a room is *finished* (its last ticks and open
surge published, its state let go) once that clock has passed its ``room_end``
by grace plus ``quiet_s``, or its newest event by ``idle_room_s``. Evaluated
once per fetched batch, as the Kafka runtime once did, these rules made the
outputs depend on where a fetch was cut. Evaluated after every message, in the
partition's order, they are a function of that order alone: the same whatever
the fetch sizes, the pacing, a rebalance or a restart (the clock and each room's
due time are derived from the stored room heads, see :meth:`PartitionClocks.load_head`).
The embedded replay runs the same rules over the same layout: each room's
partition by Kafka's default partitioner (:func:`partition_for`), and the
messages a producer sends (``sessions/envelopes.py``).

A finished room leaves a marker for ``finished_retention_s`` of its partition's
event time: an event for it in that time is a ``room_finished`` dead letter (a
late straggler, a copy re-delivered after a crash: never counted, never a new
room). After that the id is free: an event for it starts a new room.
"""

from __future__ import annotations

import heapq
import math
from typing import Callable

from .config import CoreConfig
from .room import RoomProcessor, RoomState
from .windows import tick_end

INF = math.inf
ROOM, MARKER = 0, 1  # what a due entry is for: a room's next close or finish, a finished room's marker


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``), as a signed 32-bit int."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length % 4
    tail = length - rest
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java and kafka-python) gives a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def room_due(state: RoomState, open_ticks, config: CoreConfig) -> float:
    """The partition event time at which something is next due for a room: its
    lowest open tick closes, or it is finished. ``open_ticks``: the ticks it
    holds events for (a stored head counts them in ``segments``)."""
    due = state.max_ts + config.idle_room_s
    if open_ticks:
        due = min(due, tick_end(min(open_ticks), config.tick_s) + config.grace_s + config.quiet_s)
    if not state.live and state.ended_at is not None:
        due = min(due, state.ended_at + config.grace_s + config.quiet_s)
    return due


def finishes(state: RoomState, clock: float, config: CoreConfig) -> bool:
    """Whether a room is finished at partition event time ``clock``."""
    if not state.live and state.ended_at is not None and clock >= state.ended_at + config.grace_s + config.quiet_s:
        return True
    return clock >= state.max_ts + config.idle_room_s


class PartitionClocks:
    """Each partition's event time, and what is due for its rooms by it.

    ``core`` is a :class:`~streams.core.StreamCore`; call :meth:`after_message`
    after feeding it each message of a partition, in the partition's order.
    ``on_finish(proc, partition)`` is called with a finished room's processor
    (its final state and journal; its outputs are in the core's outputs), ``on_forget(room, partition)`` when
    its marker expires, ``on_move(partition, room, clock)`` when a room's message
    moved the clock (before what that makes due runs). Rooms whose ticks were
    closed by the clock are collected in :attr:`changed` for a runtime that
    persists them.
    """

    def __init__(self, core, config: CoreConfig, *,
                 on_finish: Callable[[RoomProcessor, int], None] | None = None,
                 on_forget: Callable[[str, int], None] | None = None,
                 on_move: Callable[[int, str, float], None] | None = None) -> None:
        self.core = core
        self.config = config
        self.on_finish = on_finish
        self.on_forget = on_forget
        self.on_move = on_move
        self.clock: dict[int, float] = {}
        self.heaps: dict[int, list[tuple[float, int, str]]] = {}
        self.due: dict[str, float] = {}  # room -> its entry's due time (older entries are stale)
        self.partition_of: dict[str, int] = {}
        self.members: dict[int, set[str]] = {}  # partition -> its rooms not finished
        self.changed: set[str] = set()
        self.stored_open: set[str] = set()  # rooms loaded from a head with open ticks, not restored yet
        self.finished_count = 0

    # -- per message -----------------------------------------------------

    def after_message(self, partition: int, room: str) -> None:
        """A message of ``partition`` carrying ``room``'s events was fed to the core."""
        proc = self.core.processors.get(room)
        if proc is not None:
            st = proc.state
            if self.partition_of.get(room) != partition:
                self.partition_of[room] = partition
                self.members.setdefault(partition, set()).add(room)
            clock = self.clock.get(partition, -INF)
            # One room's event far ahead (a wrong upstream clock) must not move the
            # partition's clock by hours and finish every other room on it: the
            # clock moves at most ``max_future_s`` at a time (the room keeps its own).
            if clock < st.max_ts <= clock + self.config.max_future_s or clock == -INF:
                self.clock[partition] = st.max_ts
                if self.on_move is not None:
                    self.on_move(partition, room, st.max_ts)
            self._schedule(partition, room, room_due(st, st.buckets, self.config))
        heap = self.heaps.get(partition)
        if heap and heap[0][0] <= self.clock.get(partition, -INF):
            self._run(partition)

    def after_held_message(self, partition: int, clock: float | None) -> None:
        """A message re-delivered to a room whose stored state already holds it
        (see the Kafka runtime): it is not fed again, but the partition's clock
        takes the value the message gave it the first time (``clock``, kept with
        the room; None: it did not move), and what that makes due runs, so the
        other rooms' ticks close where they did."""
        if clock is not None and clock > self.clock.get(partition, -INF):
            self.clock[partition] = clock
        heap = self.heaps.get(partition)
        if heap and heap[0][0] <= self.clock.get(partition, -INF):
            self._run(partition)

    def _schedule(self, partition: int, room: str, due: float) -> None:
        if self.due.get(room) == due:
            return
        self.due[room] = due
        if due < INF:
            heapq.heappush(self.heaps.setdefault(partition, []), (due, ROOM, room))

    def _run(self, partition: int) -> None:
        heap = self.heaps[partition]
        clock = self.clock[partition]
        config = self.config
        core = self.core
        stuck = []
        while heap and heap[0][0] <= clock:
            due, kind, room = heapq.heappop(heap)
            if kind == MARKER:
                at = core.finished.get(room)
                if at is not None and at + config.finished_retention_s == due:
                    del core.finished[room]
                    if self.on_forget is not None:
                        self.on_forget(room, partition)
                continue
            if self.due.get(room) != due:
                continue  # superseded
            proc = core.held(room)
            if proc is None:  # gone (moved away, or finished by the end of input)
                self._drop(room)
                continue
            st = proc.state
            before = (st.next_tick, st.live)
            if finishes(st, clock, config):
                proc.flush()  # what it still holds (a room_start among it: the broadcast goes on)
                if finishes(st, clock, config):
                    self._finish(partition, room, clock)
                    continue
            elif st.buckets:
                proc.close_through(clock - config.quiet_s)
            self.changed.add(room)
            nxt = room_due(st, st.buckets, config)
            self.due[room] = nxt
            if nxt <= clock and (st.next_tick, st.live) == before:
                stuck.append((nxt, ROOM, room))  # no progress at this clock (float edge): try at the next message
            elif nxt < INF:
                heapq.heappush(heap, (nxt, ROOM, room))  # due again now (an end just applied) or later
        for entry in stuck:
            heapq.heappush(heap, entry)

    def _finish(self, partition: int, room: str, clock: float) -> None:
        proc = self.core.finish(room, clock)
        self._drop(room)
        self.changed.discard(room)
        self.finished_count += 1
        heapq.heappush(self.heaps.setdefault(partition, []), (clock + self.config.finished_retention_s, MARKER, room))
        if self.on_finish is not None:
            self.on_finish(proc, partition)

    def _drop(self, room: str) -> None:
        self.due.pop(room, None)
        self.stored_open.discard(room)
        partition = self.partition_of.pop(room, None)
        if partition is not None:
            self.members.get(partition, set()).discard(room)

    # -- restore and idleness -------------------------------------------

    def load_head(self, partition: int, state: RoomState, *, clock_known: bool = False) -> None:
        """A stored room head of ``partition`` (its open ticks in ``segments``):
        its due time, without decoding the room's parts; and, unless the
        partition's clock was stored (``clock_known``), the clock as the newest
        head's (the fallback for state written before the clock was stored)."""
        room = state.room_id
        self.partition_of[room] = partition
        self.members.setdefault(partition, set()).add(room)
        if not clock_known and state.max_ts > self.clock.get(partition, -INF):
            self.clock[partition] = state.max_ts
        if state.segments or state.surge.active:
            self.stored_open.add(room)
        self._schedule(partition, room, room_due(state, state.segments, self.config))

    def load_marker(self, partition: int, room: str, at: float, *, clock_known: bool = False) -> None:
        """A stored finished room's marker."""
        self.core.finished[room] = at
        if not clock_known and at > self.clock.get(partition, -INF):
            self.clock[partition] = at
        heapq.heappush(self.heaps.setdefault(partition, []), (at + self.config.finished_retention_s, MARKER, room))

    def flush_partition(self, partition: int) -> list[str]:
        """Close every open tick of the partition's rooms now (the partition went
        idle on the wall clock: the end of the input, or a stall). Later events
        for those ticks reopen them. Returns the rooms flushed."""
        flushed = []
        for room in sorted(self.members.get(partition, ())):
            proc = self.core.processors.get(room)
            if proc is None and room in self.stored_open:
                proc = self.core.held(room)
            self.stored_open.discard(room)
            if proc is not None and (proc.state.buckets or proc.state.surge.active):
                proc.flush()  # an open surge ends too, as at the end of the input embedded
                self._schedule(partition, room, room_due(proc.state, proc.state.buckets, self.config))
                flushed.append(room)
        return flushed

    def waiting(self, partition: int) -> bool:
        """Whether any room of the partition holds events in open ticks."""
        procs = self.core.processors
        return any(r in self.stored_open or ((p := procs.get(r)) is not None
                                             and (p.state.buckets or p.state.surge.active))
                   for r in self.members.get(partition, ()))

    def forget_partition(self, partition: int) -> None:
        """The partition moved away: its clock, rooms and markers go."""
        for room in self.members.pop(partition, set()):
            self.due.pop(room, None)
            self.stored_open.discard(room)
            self.partition_of.pop(room, None)
        for _, kind, room in self.heaps.pop(partition, []):
            if kind == MARKER:
                self.core.finished.pop(room, None)
        self.clock.pop(partition, None)


__all__ = ["PartitionClocks", "partition_for", "murmur2", "room_due", "finishes"]
