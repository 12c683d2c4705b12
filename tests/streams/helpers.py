"""Building blocks for tests: events as bytes, and running the core over them."""

from __future__ import annotations

import msgspec

from streams.config import CoreConfig
from streams.core import StreamCore

T0 = 1_780_000_000.0
_enc = msgspec.json.Encoder()


def ev(i: int | str, ts: float, etype: str, room: str = "r1", **fields) -> bytes:
    return _enc.encode({"event_id": f"e{i}", "room_id": room, "ts": ts, "type": etype, **fields})


def run(lines: list[bytes], config: CoreConfig | None = None, *, flush: bool = True, **kw):
    core = StreamCore(config or CoreConfig(), **kw)
    for n, raw in enumerate(lines, 1):
        core.feed(raw, n)
    if flush:
        core.flush()
    metrics, moments, dead = core.drain()
    return core, metrics, moments, dead
