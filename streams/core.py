"""The streams core shared by both runtimes: decode, validate, route, account.

:class:`StreamCore` takes raw inputs one at a time (a JSONL line, a Kafka message
value), turns each into a typed event or a dead letter, and hands events to the
room's :class:`~streams.room.RoomProcessor`. Every input ends up counted exactly
once: processed, duplicate, or dead letter (by reason).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from .config import CoreConfig
import msgspec

from .events import AnyEvent, EventDecoder, Rejected
from .models import DeadLetter, Moment, RoomMetrics
from .room import DUPLICATE, LATE, Outputs, RoomProcessor, RoomState


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
    ) -> None:
        self.config = config
        self.source = source
        self.decoder = EventDecoder(max_bytes=config.max_event_bytes, ts_bounds=ts_bounds)
        self._fast_decode = msgspec.json.Decoder(AnyEvent).decode
        self.out = Outputs()
        self.processors: dict[str, RoomProcessor] = {}
        self.dead_letters: list[DeadLetter] = []
        self.inputs = 0
        self.processed = 0
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()

    # -- rooms -----------------------------------------------------------

    def load(self, state: RoomState) -> RoomProcessor:
        """Put a stored room state (e.g. from a Kafka table) under this core."""
        proc = RoomProcessor(self.config, state, self.out)
        self.processors[state.room_id] = proc
        return proc

    def states(self) -> Iterable[RoomState]:
        return (p.state for p in self.processors.values())

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
            event = None
            if len(raw) <= max_bytes:
                try:
                    event = decode(raw)
                except msgspec.MsgspecError:
                    pass
            if event is None or not lo <= event.ts <= hi:
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
                proc = self.load(RoomState(room_id=event.room_id))
            verdict = proc.accept(event)
            if verdict is None:
                self.processed += 1
            elif verdict is DUPLICATE:
                self.duplicates += 1
            else:
                self._reject_event(raw, event, proc, verdict, _label(where, n, count, labels))
        self.inputs += n

    def _reject_event(self, raw: bytes, event, proc: RoomProcessor, verdict: str, where: object) -> None:
        st = proc.state
        if verdict is LATE:
            detail = f"ts {event.ts} falls in a tick already published (room {st.room_id})"
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
        self.dead_letters.append(
            DeadLetter(reason=reason, detail=detail, source=f"{self.source}{where}", raw=bytes(raw), room_id=room_id)
        )

    def flush(self, room_id: str | None = None) -> None:
        """Close buffered ticks of one room, or of all rooms (end of input)."""
        rooms = [room_id] if room_id is not None else sorted(self.processors)
        for room in rooms:
            self.processors[room].flush()

    def drain(self) -> tuple[list[RoomMetrics], list[Moment], list[DeadLetter]]:
        metrics, moments = self.out.drain()
        dead, self.dead_letters = self.dead_letters, []
        return metrics, moments, dead

    # -- accounting ------------------------------------------------------

    @property
    def dead(self) -> int:
        return sum(self.rejected.values())

    def accounting(self) -> dict[str, object]:
        return {
            "inputs": self.inputs,
            "processed": self.processed,
            "duplicates": self.duplicates,
            "dead_letters": self.dead,
            "dead_letter_reasons": dict(sorted(self.rejected.items())),
            "all_accounted_for": self.inputs == self.processed + self.duplicates + self.dead,
        }


def _label(where: object, n: int, count: bool, labels: list | None) -> object:
    """Where the n-th input of a feed_many call came from (see its docstring)."""
    if labels is not None:
        return labels[n - 1]
    return where + n - 1 if count else where  # type: ignore[operator]
