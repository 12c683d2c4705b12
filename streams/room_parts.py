"""A room's state written in parts: what changed, not the whole room.

Why: a hot room holds hundreds of thousands of online viewers and a second or
two of event ids; writing its whole state after every batch costs megabytes per
batch (the changelog grew by 2.3 KB per event at 10k viewers) and, past the
broker's message size, kills the worker. Here each batch writes only its
changes, so changelog bytes follow what happened, not the room's size.

The parts, each its own key (keys and values are msgpack):

* head, key ``room_id``: everything but the sets below (counters, rate window,
  surge, clocks, ``gen`` and ``segments``); a few KB at most.
* ``("P", room, user)``: a viewer online, ``(gen, new, old)`` presence
  (:data:`~streams.room.VIEWER` or :data:`~streams.room.PAID_VIEWER`).
* ``("B", room, tick, n)``: events a persist buffered in an open tick,
  ``(gen, [event, ...])``; ``segments[tick]`` in the head counts them.
* ``("D", room, tick, n)``: the event ids of a closed tick, ``(gen, [id, ...])``,
  while the dedup memory holds them.

No record outgrows Kafka's message size (1 MB by default): buffered events are
cut into segments of at most ``SEGMENT_EVENTS`` events and ``CHUNK_BYTES``
encoded, a tick's ids into chunks of at most ``CHUNK_BYTES`` (a hot room buffers
tens of thousands of events per tick).

Writes go in one order per persist: new parts, then the head, then tombstones
(a closed tick's segments, a forgotten tick's ids, a viewer who left). Kafka
keeps that order within a partition, so what a restore reads is a prefix of it,
and :func:`assemble` rebuilds exactly the state of the last head it finds:

* a part newer than that head (``gen`` above the head's) is undone: a segment or
  id list it does not count is ignored, a viewer takes the ``old`` presence;
* a tombstone that did not make it leaves a part the head no longer counts
  (ignored) or a ``(gen, ABSENT, old)`` viewer (absent).

Such leftovers come back from :func:`assemble` as repair records, to be written
before the room's next persist: a later head with a higher ``gen`` must never
make an undone part count.

Nothing here does I/O: :func:`split` turns a journal into records, and
:func:`assemble` takes a lookup function and a room's viewer records.
"""

from __future__ import annotations

from typing import Callable, Iterable

import msgspec

from .events import AnyEvent
from .room import ABSENT, PAID_VIEWER, RoomState

_encode = msgspec.msgpack.Encoder().encode
SEGMENT_EVENTS = 500
CHUNK_BYTES = 256 * 1024
_events = msgspec.msgpack.Decoder(tuple[int, list[AnyEvent]]).decode
_ids = msgspec.msgpack.Decoder(tuple[int, list[str]]).decode
_presence = msgspec.msgpack.Decoder(tuple[int, int, int]).decode
_key = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode
_str = msgspec.msgpack.Decoder(str).decode
_head = msgspec.msgpack.Decoder(RoomState).decode


class Journal:
    """What a :class:`~streams.room.RoomProcessor` changed since the last persist."""

    __slots__ = ("added", "closed_ids", "forgotten", "users")

    def __init__(self) -> None:
        self.added: dict[int, list] = {}  # tick -> events buffered in it
        self.closed_ids: dict[int, list[str]] = {}  # tick closed -> its event ids
        self.forgotten: dict[int, list[str]] = {}  # ticks whose ids were forgotten -> those ids
        self.users: dict[str, tuple[int, int]] = {}  # viewer -> (presence now, presence at the last persist)

    def buffered(self, tick: int, event) -> None:
        bucket = self.added.get(tick)
        if bucket is None:
            self.added[tick] = [event]
        else:
            bucket.append(event)

    def closed(self, tick: int, ids: list[str]) -> None:
        self.closed_ids[tick] = ids

    def forgot(self, tick: int, ids: list[str]) -> None:
        self.forgotten[tick] = ids

    def presence(self, user: str, new: int, old: int) -> None:
        before = self.users.get(user)
        self.users[user] = (new, old if before is None else before[1])


def presence_key(room: str, user: str) -> bytes:
    return _encode(("P", room, user))


def segment_key(room: str, tick: int, n: int) -> bytes:
    return _encode(("B", room, tick, n))


def ids_key(room: str, tick: int, n: int) -> bytes:
    return _encode(("D", room, tick, n))


def id_chunks(ids: list[str]) -> list[list[str]]:
    """A closed tick's ids cut into records of at most ``CHUNK_BYTES`` (about):
    a pure function of the ids, so forgetting them finds the same keys."""
    chunks: list[list[str]] = []
    start = size = 0
    for i, eid in enumerate(ids):
        n = len(eid.encode()) + 5  # bytes, not characters: an id may be all 4-byte characters
        size += n
        if size > CHUNK_BYTES and i > start:
            chunks.append(ids[start:i])
            start, size = i, n
    chunks.append(ids[start:])
    return chunks


def _segments(gen: int, events: list) -> list[bytes]:
    """Buffered events as record values of at most ``SEGMENT_EVENTS`` events and
    about ``CHUNK_BYTES`` each (a long run of large events is halved until it fits)."""
    out = []
    for i in range(0, len(events), SEGMENT_EVENTS):
        pending = [events[i:i + SEGMENT_EVENTS]]
        while pending:
            chunk = pending.pop(0)
            value = _encode((gen, chunk))
            if len(value) > CHUNK_BYTES and len(chunk) > 1:
                half = len(chunk) // 2
                pending[:0] = [chunk[:half], chunk[half:]]
                continue
            out.append(value)
    return out


def room_of(part_key: bytes) -> tuple[str, str] | None:
    """``(kind, room)`` of a part key; None for anything else."""
    try:
        fields = _key(part_key)
        return _str(fields[0]), _str(fields[1])
    except (msgspec.DecodeError, ValueError, IndexError):
        return None


Record = tuple[bytes, "bytes | None"]  # (key, value); value None: a tombstone


def split(state: RoomState, journal: Journal) -> tuple[list[Record], bytes, list[Record]]:
    """The records of one persist: ``(parts, head, tombstones)``, to be written in
    that order (parts table, head table, parts table). Advances ``state.gen`` and
    ``state.segments`` and clears the journal."""
    room = state.room_id
    gen = state.gen + 1
    parts: list[Record] = []
    tombstones: list[Record] = []
    segments = state.segments
    for tick, events in journal.added.items():
        if tick in journal.closed_ids:
            continue  # buffered and closed between two persists: never stored
        n = segments.get(tick, 0)
        for value in _segments(gen, events):
            parts.append((segment_key(room, tick, n), value))
            n += 1
        segments[tick] = n
    for tick, ids in journal.closed_ids.items():
        for n in range(segments.pop(tick, 0)):
            tombstones.append((segment_key(room, tick, n), None))
        if tick not in journal.forgotten:
            for n, chunk in enumerate(id_chunks(ids)):
                parts.append((ids_key(room, tick, n), _encode((gen, chunk))))
    for tick, ids in journal.forgotten.items():
        if tick not in journal.closed_ids:
            for n in range(len(id_chunks(ids))):
                tombstones.append((ids_key(room, tick, n), None))
    for user, (new, old) in journal.users.items():
        if new == old:
            continue  # in and out again between two persists
        key = presence_key(room, user)
        parts.append((key, _encode((gen, new, old))))
        if new == ABSENT:
            tombstones.append((key, None))
    state.gen = gen
    head = msgspec.structs.replace(state, buckets={}, seen=set(), seen_log=[], online=set(), paid=set())
    journal.__init__()
    return parts, _encode(head), tombstones


def assemble(head: bytes, lookup: Callable[[bytes], "bytes | None"],
             viewers: Iterable[tuple[str, bytes]]) -> tuple[RoomState, list[Record]]:
    """A room's state from its head, its parts (``lookup`` by key) and its viewer
    records ``(user, value)``. Returns the state and the repair records for parts
    the head does not count (leftovers of an interrupted persist)."""
    state = _head(head)
    room, gen = state.room_id, state.gen
    repairs: list[Record] = []
    for tick, count in sorted(state.segments.items()):
        bucket = state.buckets.setdefault(tick, [])
        for n in range(count):
            value = lookup(segment_key(room, tick, n))
            if value is None:
                raise ValueError(f"room {room!r}: segment {tick}/{n} of the head's {count} is missing")
            bucket.extend(_events(value)[1])
        stale_n = count
        while lookup(segment_key(room, tick, stale_n)) is not None:  # written by a persist whose head was lost
            repairs.append((segment_key(room, tick, stale_n), None))
            stale_n += 1
    for events in state.buckets.values():
        state.seen.update(e.event_id for e in events)
    if state.recall_from is not None and state.next_tick is not None:
        for tick in range(state.recall_from, state.next_tick):
            ids: list[str] = []
            n = 0
            while (value := lookup(ids_key(room, tick, n))) is not None:
                written, chunk = _ids(value)
                if written > gen:
                    repairs.append((ids_key(room, tick, n), None))
                else:
                    ids.extend(chunk)
                n += 1
            if ids:
                state.seen_log.append((tick, ids))
                state.seen.update(ids)
    for user, value in viewers:
        written, new, old = _presence(value)
        now = new if written <= gen else old
        if now == ABSENT:
            repairs.append((presence_key(room, user), None))
            continue
        if written > gen:
            repairs.append((presence_key(room, user), _encode((gen, now, now))))
        state.online.add(user)
        if now == PAID_VIEWER:
            state.paid.add(user)
    return state, repairs


# A finished room's head: ("finished", event time it finished at). A room head is
# a msgpack map, so the two never read as each other.
_marker = msgspec.msgpack.Decoder(tuple[str, float]).decode


def finished_marker(at: float) -> bytes:
    """The head record that stands for a finished room (see ``streams/partitions.py``)."""
    return _encode(("finished", at))


def finished_at(head: bytes) -> float | None:
    """The event time a head's room finished at, or None for a room's head."""
    if head[:1] != b"\x92":  # a 2-array; a head is a map
        return None
    try:
        kind, at = _marker(head)
    except (msgspec.DecodeError, ValueError):
        return None
    return at if kind == "finished" else None


def finish_records(state: RoomState) -> list[Record]:
    """Tombstones for every part a flushed, persisted room still has (its id
    lists, its viewers), to be written before its head becomes a marker: after
    them a restore reads nothing of it, and compaction forgets it."""
    room = state.room_id
    out: list[Record] = [(ids_key(room, tick, n), None) for tick, ids in state.seen_log
                         for n in range(len(id_chunks(ids)))]
    out.extend((presence_key(room, user), None) for user in sorted(state.online))
    return out
