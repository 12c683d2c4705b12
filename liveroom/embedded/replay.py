"""Embedded runtime: replay a recorded session through the core, outputs to files.

Reads the session's events in file order, groups them into the messages
``liveroom replay --kafka`` would send (``sessions/envelopes.py``), feeds them to
the same :class:`StreamCore` the Kafka runtime uses, message by message, with the
same partition clocks over the same partition layout (``streams/partitions.py``),
and writes JSON lines: a session gives the same outputs here as on Kafka.
Everything written here is a pure function of the input and the configuration;
wall-clock figures go to ``run.json`` alone, so the other files are
byte-identical on every run.
"""

from __future__ import annotations

import heapq
import os
import platform
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import msgspec

from streams.config import CoreConfig
from streams.core import StreamCore
from streams.partitions import PartitionClocks, partition_for
from streams.models import DeadLetter, Moment, RoomMetrics
from streams.room import N_KINDS, ORGANIC, PAID
from streams.events import INTERACTION_KINDS, BlankLines
from sessions.envelopes import ENVELOPE_LINGER_S, Envelopes, routing
from sessions.folder import LineReader, ReadLimits, Session

METRICS_FILE = "room-metrics.jsonl"
MOMENTS_FILE = "moments.jsonl"
DEAD_LETTERS_FILE = "dead-letters.jsonl"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
ROOMS_FILE = "rooms.jsonl"
SUMMARY_ROOMS = 1000  # rooms listed in summary.json; every room's totals are in rooms.jsonl

# Called with each batch of snapshots, in order; later stages (bidding) hook in here.
MetricsObserver = Callable[[list[RoomMetrics]], None]
# Called with a room's id once it is finished (after its last snapshots were observed).
FinishObserver = Callable[[str], None]


@dataclass(frozen=True)
class ReplayResult:
    out_dir: Path
    summary: dict
    wall_s: float
    events_per_s: float


class JsonLinesWriter:
    """Appends msgspec structs as JSON lines, one file per output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb")
        self._encode = msgspec.json.Encoder().encode_into
        self._buf = bytearray()
        self.count = 0

    def write(self, items: Sequence[msgspec.Struct]) -> None:
        buf = self._buf
        for item in items:
            self._encode(item, buf, -1)
            buf.append(10)
        self.count += len(items)
        if len(buf) > 1 << 20:
            self._file.write(buf)
            buf.clear()

    def close(self) -> None:
        self._file.write(self._buf)
        self._buf.clear()
        self._file.close()


def session_ts_bounds(session: Session, margin_s: float) -> tuple[float, float]:
    return (session.info.start - margin_s, session.info.end + margin_s)


def replay_session(
    session: Session,
    out_dir: str | Path,
    config: CoreConfig,
    *,
    ts_margin_s: float = 300.0,
    progress: bool = False,
    observers: Sequence[MetricsObserver] = (),
    limits: ReadLimits | None = None,
    max_rooms: int | None = 10_000,
    partitions: int = 4,
    envelope_events: int = 100,
    envelope_linger_s: float = ENVELOPE_LINGER_S,
    on_finish: Sequence[FinishObserver] = (),
) -> ReplayResult:
    """Replay ``session`` embedded; writes metrics, moments, dead letters, summary
    (last). Memory stays bounded: lines by ``limits`` (by default the event size
    limit), rooms held live by ``max_rooms`` (the rest parked, encoded), finished
    rooms let go. ``partitions`` and ``envelope_events`` are the Kafka layout the
    outputs equal (``LIVEROOM_KAFKA_PARTITIONS``, ``LIVEROOM_KAFKA_ENVELOPE_EVENTS``,
    ``LIVEROOM_KAFKA_ENVELOPE_LINGER_S``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if limits is None:
        limits = ReadLimits(max_line_bytes=config.max_event_bytes, keep_bytes=config.dead_letter_max_raw)
    reader = LineReader(session.events_path, limits)
    core = StreamCore(config, ts_bounds=session_ts_bounds(session, ts_margin_s), source=f"{reader.path.name}:",
                      max_rooms=max_rooms)
    writers = {
        "metrics": JsonLinesWriter(out / METRICS_FILE),
        "moments": JsonLinesWriter(out / MOMENTS_FILE),
        "dead": JsonLinesWriter(out / DEAD_LETTERS_FILE),
    }

    finished: dict[str, bytes] = {}  # finished rooms' totals, encoded (their state is gone)
    just_finished: list[str] = []

    def room_done(proc, partition: int) -> None:
        st = proc.state
        finished[st.room_id] = msgspec.json.encode({"room_id": st.room_id, **room_totals(st)})
        just_finished.append(st.room_id)

    clocks = PartitionClocks(core, config, on_finish=room_done)

    def drain() -> None:
        metrics, moments, dead = core.drain()
        if metrics:
            writers["metrics"].write(metrics)
            for observe in observers:
                observe(metrics)
        writers["moments"].write(moments)
        writers["dead"].write(dead)
        if just_finished:
            for room in just_finished:
                for told in on_finish:
                    told(room)
            just_finished.clear()

    labels: dict[bytes | None, deque[int]] = defaultdict(deque)  # line numbers of the events each key has pending

    def deliver(key: bytes | None, value: bytes, items: list[bytes]) -> None:
        lines_of = labels[key]
        # unkeyed (a line that is an envelope itself): the worker finds its events under no room's key
        core.feed_many(items, [lines_of.popleft() for _ in items], expect_room=None if key is not None else "")
        if not lines_of:
            del labels[key]  # one entry per room with events pending, not per room ever seen
        if key is not None:
            room = key.decode("utf-8", "replace")
            partition = clocks.partition_of.get(room)  # murmur2 once per room while it is held
            clocks.after_message(partition_for(key, partitions) if partition is None else partition, room)
        if len(core.out.metrics) >= 512:
            drain()

    envelopes = Envelopes(deliver, envelope_events, linger_s=envelope_linger_s)
    bar = _progress(reader, enabled=progress)
    started = time.perf_counter()
    line = 0
    try:
        for lines in reader.chunks():
            for raw in lines:
                if type(raw) is BlankLines:
                    core.feed_many([raw], line + 1)
                    line += raw.lines
                    continue
                line += 1
                if type(raw) is not bytes or not raw.strip():
                    core.feed_many([raw], line)  # too long, or blank: the core counts it (no message)
                    continue
                key, ts = routing(raw)
                labels[key].append(line)
                envelopes.add(key, raw, ts)
            drain()
            bar.update(reader.position - bar.n)
        envelopes.flush()
        drain()
        if reader.error is not None:
            reason, detail = reader.error
            core.reject_input(b"", reason, detail, line + 1)
        for _ in core.flush_rooms():
            drain()
        bar.update(reader.size - bar.n)
    finally:
        bar.close()
        for w in writers.values():
            w.close()
    wall = time.perf_counter() - started
    summary = {
        "session": session.name,
        "room_id": session.info.room_id,
        "events_file": reader.path.name,
        "config": {"tick_s": config.tick_s, "grace_s": config.grace_s, "rate_window_s": config.rate_window_s},
        **core.accounting(),
        "outputs": {
            METRICS_FILE: writers["metrics"].count,
            MOMENTS_FILE: writers["moments"].count,
            DEAD_LETTERS_FILE: writers["dead"].count,
        },
        "rooms": {},
    }
    summary["rooms_finished"] = clocks.finished_count
    with open(out / ROOMS_FILE, "wb") as rooms_file:  # streamed: a room's totals at a time, in id order
        n_rooms = 0
        held = ((st.room_id, msgspec.json.encode({"room_id": st.room_id, **room_totals(st)})) for st in core.states())
        for room, line_ in heapq.merge(held, ((room, finished[room]) for room in sorted(finished))):
            rooms_file.write(line_ + b"\n")
            if n_rooms < SUMMARY_ROOMS:
                summary["rooms"][room] = {k: v for k, v in msgspec.json.decode(line_).items() if k != "room_id"}
            n_rooms += 1
    summary["rooms_count"] = n_rooms
    summary["outputs"][ROOMS_FILE] = n_rooms
    _write_json(out / SUMMARY_FILE, summary)
    rate = core.inputs / wall if wall > 0 else 0.0
    _write_json(out / RUN_FILE, {
        "wall_s": round(wall, 4),
        "inputs_per_s": round(rate, 1),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    })
    return ReplayResult(out, summary, wall, rate)


def room_totals(st) -> dict:
    """Cumulative totals of one room's state (what the summary reports per room)."""
    t = st.totals
    return {
        "organic_entries": t[ORGANIC],
        "paid_entries": t[PAID],
        "interactions": {k: t[i] for i, k in enumerate(INTERACTION_KINDS)},
        "orders": t[N_KINDS - 1],
        "gmv": round(st.gmv, 6),
        "gift_value": round(st.gift_value, 6),
        "spend": round(st.spend, 6),
        "peak_online": st.peak_online,
        "started_at": st.started_at,
        "ended_at": st.ended_at,
    }


def _write_json(path: Path, obj: object) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n")


def _progress(reader: LineReader, *, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=reader.size, unit="B", unit_scale=True, desc=f"events ({reader.path.name})", disable=not enabled)


def read_jsonl(path: str | Path, type: type) -> list:
    """Read back one of the output files (for reports and tests)."""
    dec = msgspec.json.Decoder(type)
    with open(path, "rb") as f:
        return [dec.decode(line) for line in f if line.strip()]


__all__ = [
    "replay_session", "ReplayResult", "read_jsonl", "room_totals", "METRICS_FILE", "MOMENTS_FILE",
    "DEAD_LETTERS_FILE", "SUMMARY_FILE", "RUN_FILE", "ROOMS_FILE", "DeadLetter", "Moment", "RoomMetrics",
]
