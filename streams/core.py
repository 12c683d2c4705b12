"""The streams core shared by both runtimes: decode, validate, route, account.

:class:`StreamCore` takes raw inputs one at a time (a JSONL line, a Kafka message
value), turns each into a typed event or a dead letter, and hands events to the
room's :class:`~streams.room.RoomProcessor`. Every input ends up counted exactly
once: processed, duplicate, blank (nothing in it: no event, no bytes worth keeping)
or dead letter (by reason).

Nothing an input contains can make it raise: decoding failures of any kind are
verdicts (see :class:`~streams.events.EventDecoder`), and a dead letter keeps at
most ``dead_letter_max_raw`` bytes of its input (plus the full length and hash).

Memory. With ``max_rooms`` set, at most that many rooms are held as live
processors; the rest are parked as their encoded state (a few hundred bytes for
a room that has ended) and restored, unchanged, when their next event comes.
Parking changes no result: it is the embedded runtime's equivalent of the Kafka
runtime keeping states in a table.

Envelopes. An input may be a JSON array of events (one Kafka message carrying a
batch of one room's events, to spare the per-message cost). Its events are taken
one by one, each counted as an input of its own and labelled ``where#i`` in a
dead letter; an envelope that is not a JSON array is one dead letter.

Lifecycle. A room is *finished* by its partition's clock (``streams/partitions.py``):
:meth:`StreamCore.finish` publishes what it still holds and lets it go, keeping
only a marker (``finished``: room id -> the event time it finished at) until the
clock forgets it; an event for a finished room is a ``room_finished`` dead letter.

Stores. ``restore`` (room id -> state, the event time it finished at, or None)
is asked for a room the core does not hold; with ``journal=True`` every room gets a
:class:`~streams.room_parts.Journal` of its changes, for a store that writes in
parts (the Kafka runtime).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Callable, Iterable, Iterator

import msgspec

from .config import CoreConfig
from .events import JSON_SPACE, AnyEvent, BlankLines, EventDecoder, LongInput, Rejected, encode_event
from .models import DeadLetter, Moment, RoomMetrics
from .room import DUPLICATE, LATE, SPEND_UNISSUED, Outputs, RoomProcessor, RoomState, decode_state, encode_state
from .room_parts import Journal


class StreamCore:
    """Multi-room front of the core. ``source`` prefixes where an input came from
    in dead letters (a file name, a topic); ``where`` (a line number, an offset)
    completes it, and is only formatted when a dead letter is made."""

    def __init__(
        self,
        config: CoreConfig,
        *,
        ts_bounds: tuple[float, float] | None = None,
        source: str = "",
        max_rooms: int | None = None,
        restore: Callable[[str], RoomState | float | None] | None = None,
        journal: bool = False,
    ) -> None:
        self.config = config
        self.source = source
        self.max_rooms = max_rooms
        self.restore = restore
        self.journal = journal
        self._envelope = msgspec.json.Decoder(list[msgspec.Raw]).decode
        self.decoder = EventDecoder(max_bytes=config.max_event_bytes, ts_bounds=ts_bounds)
        self._fast_decode = msgspec.json.Decoder(AnyEvent).decode
        self.out = Outputs()
        self.processors: dict[str, RoomProcessor] = {}
        self.parked: dict[str, bytes] = {}
        self.finished: dict[str, float] = {}  # finished rooms' markers: room -> event time it finished at
        self.dead_letters: list[DeadLetter] = []
        self.inputs = 0
        self.processed = 0
        self.duplicates = 0
        self.blank = 0
        self.rejected: Counter[str] = Counter()

    # -- rooms -----------------------------------------------------------

    def load(self, state: RoomState) -> RoomProcessor:
        """Put a stored room state (e.g. from a Kafka table) under this core."""
        proc = RoomProcessor(self.config, state, self.out, Journal() if self.journal else None)
        self.processors[state.room_id] = proc
        return proc

    def _room(self, room_id: str, *, new: bool = True) -> RoomProcessor | None:
        """The processor of a room not held live: restored if parked or stored,
        else new (with ``new``), else None. None too for a finished room."""
        if room_id in self.finished:
            return None
        if self.max_rooms is not None and len(self.processors) >= self.max_rooms:
            self._park()
        stored = self.parked.pop(room_id, None)
        if stored is not None:
            return self.load(decode_state(stored))
        restored = self.restore(room_id) if self.restore is not None else None
        if isinstance(restored, float):  # a finished room's marker
            self.finished[room_id] = restored
            return None
        if restored is None and not new:
            return None
        return self.load(restored if restored is not None else RoomState(room_id=room_id))

    def held(self, room_id: str) -> RoomProcessor | None:
        """A room's processor if the core holds it (live, parked or stored), else None."""
        proc = self.processors.get(room_id)
        return proc if proc is not None else self._room(room_id, new=False)

    def finish(self, room_id: str, at: float) -> RoomProcessor:
        """Let a held room go (see the module docstring): its buffered ticks and
        open surge are published, and only its marker stays. Returns its processor
        (final state and journal) for a store to delete it."""
        proc = self.held(room_id)
        if proc is None:
            raise KeyError(room_id)
        proc.flush()
        del self.processors[room_id]
        self.finished[room_id] = at
        return proc

    def _park(self) -> None:
        """Park the half of the live rooms whose newest event is oldest (ties by
        id, so the choice is deterministic). Sorting once per ``max_rooms / 2``
        new rooms keeps the cost per room logarithmic."""
        procs = self.processors
        order = sorted(procs.values(), key=lambda p: (p.state.max_ts, p.state.room_id))
        for proc in order[: max(1, len(order) // 2)]:
            room_id = proc.state.room_id
            self.parked[room_id] = encode_state(proc.state)
            del procs[room_id]

    def states(self) -> Iterator[RoomState]:
        """Every room's state, live or parked, in room id order (parked ones are
        decoded one at a time, so this streams)."""
        rooms = sorted({*self.processors, *self.parked})
        for room_id in rooms:
            proc = self.processors.get(room_id)
            yield proc.state if proc is not None else decode_state(self.parked[room_id])

    # -- inputs ----------------------------------------------------------

    def feed(self, raw: bytes, where: object = "") -> None:
        """Take one raw input. Never raises for bad input."""
        self.feed_many((raw,), where)

    def feed_many(self, raws: Iterable[bytes], where: object = 1, *, expect_room: str | None = None) -> None:
        """Take raw inputs in order. ``where`` labels them for dead letters: an int
        (a line number) counts up per input, a list gives one label per input,
        anything else labels all. With ``expect_room`` (the Kafka message key),
        an event of another room is refused as ``key_mismatch``: its state lives
        on another partition."""
        count = isinstance(where, int)
        labels = where if isinstance(where, list) else None
        lo, hi = self.decoder.ts_bounds or (float("-inf"), float("inf"))
        max_bytes = self.config.max_event_bytes
        decode = self._fast_decode
        procs = self.processors
        n = 0
        for raw in raws:
            n += 1
            # Fast path: valid events cost one C call; the slow path explains rejections.
            # Hostile bytes raise more than msgspec's own errors (invalid UTF-8, deep nesting).
            event = None
            if raw[:1] == b"[" and type(raw) is bytes:
                self._feed_envelope(raw, _label(where, n, count, labels), expect_room)
                continue
            if len(raw) <= max_bytes and type(raw) is bytes:
                try:
                    event = decode(raw)
                except Exception:  # noqa: BLE001 - explained by the slow path below
                    pass
            if event is None or not lo <= event.ts <= hi:
                if event is None and not raw.strip(JSON_SPACE):
                    # nothing to keep, nothing to decode: counted, not dead-lettered
                    k = raw.lines if type(raw) is BlankLines else 1
                    self.blank += k
                    n += k - 1
                    continue
                try:
                    event = self.decoder.decode(raw)
                except Rejected as rej:
                    self._reject(raw, rej.reason, rej.detail, _label(where, n, count, labels))
                    continue
            if expect_room is not None and event.room_id != expect_room:
                self._reject(raw, "key_mismatch", f"message key {expect_room!r} is not the event's room "
                             f"{event.room_id!r}", _label(where, n, count, labels), room_id=event.room_id)
                continue
            proc = procs.get(event.room_id)
            if proc is None:
                proc = self._room(event.room_id)
                if proc is None:
                    self._reject(raw, "room_finished", f"room {event.room_id!r} finished at event time "
                                 f"{self.finished[event.room_id]} (its partition's clock); events for it are not "
                                 f"counted until its marker is forgotten", _label(where, n, count, labels),
                                 room_id=event.room_id)
                    continue
            verdict = proc.accept(event)
            if verdict is None:
                self.processed += 1
            elif verdict is DUPLICATE:
                self.duplicates += 1
            else:
                self._reject_event(raw, event, proc, verdict, _label(where, n, count, labels))
        self.inputs += n

    def _feed_envelope(self, raw: bytes, where: object, expect_room: str | None) -> None:
        """Feed the events of an envelope, each an input of its own (the envelope
        itself is then not one); a bad envelope is one input, one dead letter."""
        limits = self.config
        if len(raw) > limits.max_envelope_bytes:
            self._reject(raw, "oversized", f"envelope of {len(raw)} bytes > limit {limits.max_envelope_bytes}", where)
            return
        try:
            items = [bytes(item) for item in self._envelope(raw)]
        except Exception:  # noqa: BLE001 - any failure is a verdict
            items = None
        if items is not None and len(items) > limits.max_envelope_events:
            # one verdict, not one dead letter per element: a small message must not fan out
            self._reject(raw, "oversized", f"envelope of {len(items)} events > limit {limits.max_envelope_events}",
                         where)
            return
        if items is None or any(item[:1] == b"[" for item in items):
            self._reject(raw, "malformed_envelope",
                         "an envelope (an input starting with '[') must be a JSON array of events", where)
            return
        if not items:
            self.blank += 1
            return
        self.inputs -= 1  # counted by the caller as one input: its events count instead
        self.feed_many(items, [f"{where}#{i}" for i in range(len(items))], expect_room=expect_room)

    def _reject_event(self, raw: bytes, event, proc: RoomProcessor, verdict: str, where: object) -> None:
        st = proc.state
        if verdict is LATE:
            detail = f"ts {event.ts} falls in a tick already published (room {st.room_id})"
        elif verdict is SPEND_UNISSUED:
            made = "none made yet" if st.next_tick is None else f"the newest that can exist is {st.next_tick}"
            detail = (f"covers decision {event.covers}, not made when the report arrived (room {st.room_id}: "
                      f"{made}; an honest report covers less)")
        else:
            detail = f"ts {event.ts} is over {self.config.max_future_s}s after the room's newest {st.max_ts}"
        self._reject(raw, verdict, detail, where, room_id=event.room_id)

    def reject_input(self, raw: bytes, reason: str, detail: str, where: object = "") -> None:
        """Count and dead-letter an input that never reached :meth:`feed`
        (a truncated file tail, a Kafka record with an unreadable value)."""
        self.inputs += 1
        self._reject(raw, reason, detail, where)

    def _reject(self, raw: bytes, reason: str, detail: str, where: object, *, room_id: str | None = None) -> None:
        self.rejected[reason] += 1
        self.dead_letters.append(dead_letter(raw, reason, detail, f"{self.source}{where}",
                                             max_raw=self.config.dead_letter_max_raw, room_id=room_id))

    def flush(self, room_id: str | None = None) -> None:
        """Close buffered ticks of one room, or of all rooms (end of input)."""
        if room_id is not None:
            self.processors[room_id].flush()
            return
        for _ in self.flush_rooms():
            pass

    def flush_rooms(self) -> Iterator[str]:
        """Flush every room, in id order, yielding each room's id once its outputs
        are out (drain them there, so they are never all held at once). Parked
        rooms are restored one at a time, flushed and parked again."""
        for room in sorted({*self.processors, *self.parked}):
            proc = self.processors.get(room)
            if proc is None:
                proc = RoomProcessor(self.config, decode_state(self.parked[room]), self.out)
                proc.flush()
                self.parked[room] = encode_state(proc.state)
            else:
                proc.flush()
            yield room

    def _settle_refused(self) -> None:
        """Events that were accepted and then refused when their tick closed (a
        spend report contradicting one already applied) become dead letters.
        Their bytes are gone by then (a tick holds decoded events): ``raw`` is the
        event re-encoded, which holds every field it had."""
        refused = self.out.refused
        if not refused:
            return
        self.out.refused = []
        for event, reason, detail in refused:
            self.processed -= 1
            self._reject(encode_event(event), reason, detail, f"event {event.event_id}", room_id=event.room_id)

    def drain(self) -> tuple[list[RoomMetrics], list[Moment], list[DeadLetter]]:
        self._settle_refused()
        metrics, moments = self.out.drain()
        dead, self.dead_letters = self.dead_letters, []
        return metrics, moments, dead

    # -- accounting ------------------------------------------------------

    @property
    def dead(self) -> int:
        self._settle_refused()
        return sum(self.rejected.values())

    def accounting(self) -> dict[str, object]:
        self._settle_refused()
        return {
            "inputs": self.inputs,
            "processed": self.processed,
            "duplicates": self.duplicates,
            "blank": self.blank,
            "dead_letters": self.dead,
            "dead_letter_reasons": dict(sorted(self.rejected.items())),
            "all_accounted_for": self.inputs == self.processed + self.duplicates + self.blank + self.dead,
        }


def dead_letter(raw: bytes, reason: str, detail: str, source: str, *, max_raw: int,
                room_id: str | None = None) -> DeadLetter:
    """A dead letter keeping at most ``max_raw`` bytes of ``raw``; a longer input
    (or a :class:`~streams.events.LongInput`) keeps its prefix, full length and sha256."""
    if isinstance(raw, LongInput):
        return DeadLetter(reason=reason, detail=detail, source=source, raw=bytes(raw[:max_raw]), room_id=room_id,
                          raw_bytes=raw.length, raw_sha256=raw.sha256)
    if len(raw) > max_raw:
        return DeadLetter(reason=reason, detail=detail, source=source, raw=bytes(raw[:max_raw]), room_id=room_id,
                          raw_bytes=len(raw), raw_sha256=hashlib.sha256(raw).hexdigest())
    return DeadLetter(reason=reason, detail=detail, source=source, raw=bytes(raw), room_id=room_id)


def _label(where: object, n: int, count: bool, labels: list | None) -> object:
    """Where the n-th input of a feed_many call came from (see its docstring)."""
    if labels is not None:
        return labels[n - 1]
    return where + n - 1 if count else where  # type: ignore[operator]
