"""The messages a recorded session becomes on Kafka: a pure function of its lines.

Consecutive events of a room travel as envelopes (one message holding a JSON
array of up to ``size`` of them; 1 sends one event per message): a consumer's
cost is mostly per message, not per byte. An envelope goes out when it is full,
when it nears the broker's message size, or once the session's event time
(the newest ``ts`` read so far) is ``linger_s`` past its first event, so a quiet
room's events are not held back behind the busy ones.

Every rule is in event time, never the wall clock: ``liveroom replay --kafka``
sends the same messages in the same order at any pacing, and the embedded replay
feeds the core exactly those messages (``liveroom/embedded/replay.py``). The
rules that close ticks by a partition's clock are functions of that order
(``streams/partitions.py``), so both give the same outputs.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import msgspec

from streams.events import decode_or_none

ENVELOPE_MAX_BYTES = 512 * 1024  # an envelope is sent once this full, below Kafka's 1 MB default message size
ENVELOPE_LINGER_S = 2.0  # event time an event waits, at most, for others of its room


class _Routing(msgspec.Struct):
    """The two fields a producer needs: the key, and event time."""

    room_id: str
    ts: float = 0.0


_routing = msgspec.json.Decoder(_Routing).decode


def routing(raw: bytes) -> tuple[bytes | None, float | None]:
    """``(key, ts)`` of a raw event; ``(None, None)`` when it has none (it is
    sent anyway, unkeyed, and the workers dead-letter it)."""
    r = decode_or_none(_routing, raw)
    if r is None:
        return None, None
    return r.room_id.encode(), r.ts


class Envelopes:
    """Events per room key, sent as messages by the rules in the module docstring.
    ``send(key, value, items)`` gets each message, with the raw events it holds."""

    def __init__(self, send: Callable[[bytes | None, bytes, list[bytes]], None], size: int, *,
                 linger_s: float = ENVELOPE_LINGER_S) -> None:
        self.send = send
        self.size = size
        self.linger_s = linger_s
        self.pending: dict[bytes, list[bytes]] = {}
        self.bytes: dict[bytes, int] = {}
        self.opened: deque[tuple[float, int, bytes]] = deque()  # (clock when an envelope opened, its number, key)
        self.number: dict[bytes, int] = {}  # key -> number of its open envelope
        self.clock = -float("inf")
        self.messages = 0
        self._count = 0

    def advance(self, ts: float) -> None:
        """The session's event time is ``ts`` (a paced producer waiting for its next
        event, whose time is at least ``ts``): send what lingered long enough."""
        if ts > self.clock:
            self.clock = ts
            self._expire()

    def add(self, key: bytes | None, raw: bytes, ts: float | None = None) -> None:
        if ts is not None:
            self.advance(ts)
        if key is None or self.size <= 1 or raw[:1] == b"[":
            self._send(key, raw, [raw])  # unkeyed, single-event mode, or already an envelope: as it is
            return
        batch = self.pending.get(key)
        if batch is None:
            batch = self.pending[key] = []
            self._count += 1
            self.number[key] = self._count
            self.opened.append((self.clock, self._count, key))
        batch.append(raw)
        self.bytes[key] = self.bytes.get(key, 0) + len(raw) + 1
        if len(batch) >= self.size or self.bytes[key] >= ENVELOPE_MAX_BYTES:
            self._flush(key)

    def _expire(self) -> None:
        """Send the envelopes opened ``linger_s`` or more before the clock, oldest first."""
        opened = self.opened
        while opened and opened[0][0] <= self.clock - self.linger_s:
            _, number, key = opened.popleft()
            if self.number.get(key) == number:
                self._flush(key)

    def flush(self) -> None:
        """Send everything pending (the end of the input), oldest envelope first."""
        while self.opened:
            _, number, key = self.opened.popleft()
            if self.number.get(key) == number:
                self._flush(key)

    def _flush(self, key: bytes) -> None:
        batch = self.pending.pop(key)
        self.bytes.pop(key, None)
        self.number.pop(key, None)
        self._send(key, batch[0] if len(batch) == 1 else b"[" + b",".join(batch) + b"]", batch)

    def _send(self, key: bytes | None, value: bytes, items: list[bytes]) -> None:
        self.messages += 1
        self.send(key, value, items)
