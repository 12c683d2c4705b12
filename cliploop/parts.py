"""A room's clip state written in parts: what changed, not the whole room.

Why: a popular clip draws millions of impressions an hour. Kept as one record
(its open hour's events and ids), a room's state passed the broker's message
size at about 30,000 events, the write was refused and the hour's events were
lost on the next restart. Here no record grows with the hour's volume:

* head, key ``room_id`` (the clip heads table): the room's clock and totals,
  its ``gen``, and how many event ids each open period holds (a few hundred bytes);
* ``("c", room, clip)``: one clip's long-lived state, ``(gen, new, old)``;
* ``("a", room, period, clip)``: one clip's counts in an open period, ``(gen, new, old)``;
* ``("i", room, period, n)``: the ``n``-th chunk of an open period's 8-byte id
  hashes (at most :data:`CHUNK_IDS`, 128 KB); chunks only grow, so a prefix of
  the period's ids is always a prefix of the chunks.

Writes go in one order per persist, as the rooms' parts (``streams/room_parts.py``):
new parts, then the head, then tombstones (a closed period's counts and ids, a
forgotten clip). :func:`assemble` rebuilds exactly the state of the head it
finds: a part newer than the head (``gen`` above it) takes its ``old`` value, an
id chunk past the head's count is ignored, a part the head no longer counts is
ignored; each such leftover comes back as a repair record, to be written before
the room's next persist. Parts of a room with no head at all are deleted the
same way (:func:`restore`). Pure: no I/O.
"""

from __future__ import annotations

from typing import Iterable

import msgspec

from .models import ClipState, PeriodCounts, RoomClips

CHUNK_IDS = 16_384  # id hashes per record: 128 KB
_NIL = msgspec.msgpack.encode(None)
_pack = msgspec.msgpack.Encoder().encode
_key = msgspec.msgpack.Decoder(list).decode
_versioned = msgspec.msgpack.Decoder(tuple[int, msgspec.Raw, msgspec.Raw]).decode
_clip = msgspec.msgpack.Decoder(ClipState).decode
_counts = msgspec.msgpack.Decoder(PeriodCounts).decode


class ClipHead(msgspec.Struct, array_like=True):
    room_id: str
    gen: int
    max_ts: float
    closed_through: int
    entries: int
    room_clicks: int
    ids: dict[int, int]  # open period -> how many id hashes its chunks hold
    done: int = -1  # the partition offset the room's messages are held through (written by the Kafka runtime)


_head = msgspec.msgpack.Decoder(ClipHead).decode


class ClipJournal:
    """What changed in a room since its last persist (kept by the core)."""

    __slots__ = ("clips", "counts", "ids_from", "closed", "closed_counts")

    def __init__(self) -> None:
        self.clips: dict[str, bytes | None] = {}  # clip -> its encoded state at the last persist (None: none)
        self.counts: dict[tuple[int, str], bytes | None] = {}  # (period, clip) -> encoded counts then
        self.ids_from: dict[int, int] = {}  # period -> id hashes it held at the last persist
        self.closed: dict[int, int] = {}  # period closed -> id hashes it held (its chunks go)
        self.closed_counts: list[tuple[int, str]] = []  # counts of closed periods (their records go)

    def __bool__(self) -> bool:
        return bool(self.clips or self.counts or self.ids_from or self.closed or self.closed_counts)


def clip_key(room: str, clip: str) -> bytes:
    return _pack(("c", room, clip))


def counts_key(room: str, period: int, clip: str) -> bytes:
    return _pack(("a", room, period, clip))


def ids_key(room: str, period: int, n: int) -> bytes:
    return _pack(("i", room, period, n))


def room_of(key: bytes) -> str | None:
    """The room a part's key belongs to (None: not a part of ours)."""
    try:
        kind, room, *_ = _key(key)
    except Exception:  # noqa: BLE001 - not ours
        return None
    return room if kind in ("c", "a", "i") and isinstance(room, str) else None


def _chunks(held: int) -> int:
    return -(-held // CHUNK_IDS)


def _raw(value: bytes | None) -> msgspec.Raw:
    return msgspec.Raw(value if value is not None else _NIL)


def split(room: RoomClips, journal: ClipJournal) -> tuple[list, bytes, list]:
    """``(parts, head, tombstones)`` of what ``journal`` says changed: written in
    that order. Bumps ``room.gen`` and clears the journal."""
    gen = room.gen + 1
    name = room.room_id
    parts: list[tuple[bytes, bytes | None]] = []
    tombstones: list[tuple[bytes, None]] = []
    for clip_id, old in journal.clips.items():
        clip = room.clips.get(clip_id)
        key = clip_key(name, clip_id)
        parts.append((key, _pack((gen, _raw(_pack(clip) if clip is not None else None), _raw(old)))))
        if clip is None:
            tombstones.append((key, None))
    for (period, clip_id), old in journal.counts.items():
        c = room.open.get(period, {}).get(clip_id)
        if c is not None:
            parts.append((counts_key(name, period, clip_id), _pack((gen, _raw(_pack(c)), _raw(old)))))
    for period, start in journal.ids_from.items():
        seen = room.seen.get(period)
        if seen is None:
            continue
        for n in range(start // CHUNK_IDS, _chunks(len(seen) // 8)):
            parts.append((ids_key(name, period, n), bytes(seen[n * CHUNK_IDS * 8:(n + 1) * CHUNK_IDS * 8])))
    for period, clip_id in journal.closed_counts:
        tombstones.append((counts_key(name, period, clip_id), None))
    for period, held in journal.closed.items():
        tombstones.extend((ids_key(name, period, n), None) for n in range(_chunks(held)))
    head = _pack(ClipHead(room_id=name, gen=gen, max_ts=room.max_ts, closed_through=room.closed_through,
                          entries=room.entries, room_clicks=room.room_clicks,
                          ids={p: len(s) // 8 for p, s in room.seen.items()}, done=room.done))
    room.gen = gen
    journal.__init__()
    return parts, head, tombstones


def assemble(head_bytes: bytes, records: Iterable[tuple[bytes, bytes]]) -> tuple[RoomClips, list]:
    """A room's state from its head and its part records (any order), and the
    repair records that make the store agree with it (see the module docstring)."""
    head = _head(head_bytes)
    room = RoomClips(room_id=head.room_id, max_ts=head.max_ts, closed_through=head.closed_through,
                     entries=head.entries, room_clicks=head.room_clicks, gen=head.gen, done=head.done)
    repairs: list[tuple[bytes, bytes | None]] = []
    chunks: dict[int, dict[int, bytes]] = {}
    for key, value in records:
        kind, _, *rest = _key(key)
        if kind == "i":
            period, n = rest
            if period in head.ids and n < _chunks(head.ids[period]):
                chunks.setdefault(period, {})[n] = value
            else:
                repairs.append((key, None))
            continue
        gen, new, old = _versioned(value)
        use = bytes(new if gen <= head.gen else old)
        if use == _NIL or (kind == "a" and rest[0] not in head.ids):
            repairs.append((key, None))
            continue
        if kind == "c":
            room.clips[rest[0]] = _clip(use)
        else:
            room.open.setdefault(rest[0], {})[rest[1]] = _counts(use)
        if gen > head.gen:
            repairs.append((key, _pack((head.gen, _raw(use), _raw(use)))))
    for period, held in head.ids.items():
        got = chunks.get(period, {})
        data = b"".join(got.get(n, b"") for n in range(_chunks(held)))
        room.seen[period] = bytearray(data[:held * 8])
    room.clips = dict(sorted(room.clips.items()))
    return room, repairs


def restore(head_bytes: bytes | None, records: list[tuple[bytes, bytes]]) -> tuple[RoomClips | None, list]:
    """:func:`assemble`, and for a room with no head (None) the deletion of any
    parts it has: they are from a first persist whose head never landed, and the
    room's next head (gen 1 again) would take them up as its own."""
    if head_bytes is None:
        return None, [(key, None) for key, _ in sorted(records)]
    return assemble(head_bytes, records)
