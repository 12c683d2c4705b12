"""Recorded sessions in and out of Kafka, with kafka-python.

``produce_session`` replays a session's events onto ``liveroom.events`` keyed by
room, in file order (so each room's order is the recorded one), optionally paced
at ``speed`` times real time. Consecutive events of a room travel as envelopes
(``sessions/envelopes.py``: the same messages in the same order at any pacing,
the ones the embedded replay feeds its core). ``record_room`` captures one room's events back
into a session folder that ``liveroom replay`` accepts.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from streams.core import dead_letter
from streams.events import BlankLines, LongInput, decode_or_none
from liveroom.kafka.topics import CAMPAIGNS, DEAD_LETTERS, EVENTS, KafkaConfig
from streams.models import Campaign
from sessions.envelopes import Envelopes, routing
from sessions.folder import SESSION_FILE, LineReader, ReadLimits, Session, SessionFiles, SessionInfo


def produce_session(session: Session, config: KafkaConfig, *, speed: float = 0.0, topic: str = EVENTS,
                    progress: bool = False, limits: ReadLimits = ReadLimits(),
                    envelope_events: int | None = None) -> dict:
    """Produce the session's campaign, then every line of its events file (in
    envelopes of ``envelope_events``, default ``config.envelope_events``); returns counts.
    A line longer than ``limits.max_line_bytes`` is not produced as an event: its
    dead letter (prefix, length, sha256) goes to ``liveroom.dead-letters``."""
    from kafka import KafkaProducer
    from tqdm import tqdm

    producer = KafkaProducer(acks="all", linger_ms=20, batch_size=512 * 1024, enable_idempotence=True,
                             max_in_flight_requests_per_connection=5, **config.kafka_python_options())
    if session.info.campaign is not None:  # the room's settings first: bidding needs them from its first tick
        campaign = session.info.campaign
        producer.send(CAMPAIGNS, key=campaign.room_id.encode(), value=msgspec.json.encode(campaign))
        producer.flush()
    reader = LineReader(session.events_path, limits)
    envelopes = Envelopes(lambda key, value, _: producer.send(topic, key=key, value=value),
                          config.envelope_events if envelope_events is None else envelope_events,
                          linger_s=config.envelope_linger_s)
    sent = unkeyed = oversized = blank = 0
    first_ts: float | None = None
    started = time.monotonic()
    bar = tqdm(total=reader.size, unit="B", unit_scale=True, disable=not progress, leave=False)
    try:
        for lines in reader.chunks():
            for raw in lines:
                if isinstance(raw, LongInput):
                    oversized += 1
                    dead = dead_letter(raw, "oversized", f"{raw.length} bytes > limit {limits.max_line_bytes}",
                                       f"{reader.path.name}", max_raw=limits.keep_bytes)
                    producer.send(DEAD_LETTERS, key=None, value=msgspec.json.encode(dead))
                    continue
                if not raw.strip():
                    blank += raw.lines if isinstance(raw, BlankLines) else 1  # nothing to send
                    continue
                key, ts = routing(raw)
                if speed > 0 and ts is not None:
                    if first_ts is None:
                        first_ts = ts
                    wait = (ts - first_ts) / speed - (time.monotonic() - started)
                    while wait > 0:
                        # paced: the session's clock moves while we wait (what lingered long enough goes
                        # out, in the order it would at any pace: event time, never the wall clock)
                        envelopes.advance(min(ts, first_ts + (time.monotonic() - started) * speed))
                        time.sleep(min(wait, 0.05))
                        wait = (ts - first_ts) / speed - (time.monotonic() - started)
                unkeyed += key is None
                envelopes.add(key, raw, ts)
                sent += 1
            bar.update(reader.position - bar.n)
        envelopes.flush()
        producer.flush()
    finally:
        bar.close()
        producer.close()
    return {"sent": sent, "messages": envelopes.messages, "unkeyed": unkeyed, "oversized": oversized, "blank": blank, "file_error": reader.error,
            "seconds": round(time.monotonic() - started, 3)}


def produce_lines(path: Path, topic: str, config: KafkaConfig, *, limits: ReadLimits = ReadLimits(),
                  room: str | None = None) -> dict:
    """Produce every line of a JSON-lines file to ``topic``, one message each,
    keyed by ``room`` (the file is that room's: a line of another room is then
    the consumer's ``key_mismatch``, as the embedded replay has it) or else by
    its own ``room_id``, as fast as possible (a session's clip events: a week
    after the broadcast, not something to pace). An over-long line is a dead
    letter, as in :func:`produce_session`."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", linger_ms=20, batch_size=512 * 1024, enable_idempotence=True,
                             max_in_flight_requests_per_connection=5, **config.kafka_python_options())
    reader = LineReader(path, limits)
    sent = unkeyed = 0
    started = time.monotonic()
    try:
        for lines in reader.chunks():
            for raw in lines:
                if isinstance(raw, LongInput):
                    dead = dead_letter(raw, "oversized", f"{raw.length} bytes > limit {limits.max_line_bytes}",
                                       path.name, max_raw=limits.keep_bytes)
                    producer.send(DEAD_LETTERS, key=None, value=msgspec.json.encode(dead))
                    continue
                if not raw.strip():
                    continue
                key = room.encode() if room is not None else routing(raw)[0]
                unkeyed += key is None
                producer.send(topic, key=key, value=bytes(raw))
                sent += 1
        producer.flush()
    finally:
        producer.close()
    return {"sent": sent, "unkeyed": unkeyed, "file_error": reader.error, "seconds": round(time.monotonic() - started, 3)}


_envelope = msgspec.json.Decoder(list[msgspec.Raw]).decode


def unpack(value: bytes) -> list[bytes]:
    """The events of a message: an envelope's elements, else the message itself
    (kept as it is, bad or not: the core decides)."""
    if value[:1] != b"[":
        return [value]
    items = decode_or_none(_envelope, value)
    return [bytes(item) for item in items] if items is not None else [value]


@dataclass(frozen=True)
class Recording:
    """What ``record_room`` wrote: the folder, its event count, and the room's
    campaign as found on ``liveroom.campaigns`` (None, with ``campaign_note``
    saying why, when there was none or it was not valid)."""

    folder: Path
    events: int
    campaign: Campaign | None
    campaign_note: str
    clip_events: int = 0


def read_campaign(config: KafkaConfig, room_id: str, *, topic: str = CAMPAIGNS,
                  timeout_s: float = 15.0) -> tuple[Campaign | None, str]:
    """The room's newest campaign on the compacted campaigns topic, read up to
    its end as it is now: ``(campaign, "")``, or ``(None, why)``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **config.kafka_python_options())
    key = room_id.encode()
    newest: bytes | None = None
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return None, f"no topic {topic}"
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    if rec.key == key:
                        newest = rec.value  # a tombstone (None) withdraws the campaign
    finally:
        consumer.close()
    if newest is None:
        return None, f"no campaign for room {room_id!r} on {topic}"
    try:
        campaign = msgspec.json.decode(newest, type=Campaign)
    except Exception as exc:  # noqa: BLE001 - hostile bytes raise more than msgspec's errors (deep nesting, bad UTF-8)
        return None, f"the campaign for room {room_id!r} on {topic} is not valid ({type(exc).__name__}: {exc})"
    if campaign.room_id != room_id:
        return None, f"the campaign under key {room_id!r} on {topic} names room {campaign.room_id!r}"
    return campaign, ""


def record_room(config: KafkaConfig, room_id: str, out: str | Path, *, topic: str = EVENTS,
                from_beginning: bool = True, idle_timeout_s: float = 10.0,
                max_seconds: float | None = None) -> Recording:
    """Capture one room's events and clip events, and its campaign from
    ``liveroom.campaigns``, into a session folder. Stops at the room's
    ``room_end`` once nothing more arrives, after ``idle_timeout_s`` without a
    message, after ``max_seconds``, or on ``KeyboardInterrupt`` (Ctrl-C; the CLI
    turns SIGTERM into one too): whatever stops it, the folder is a session
    ``liveroom replay`` accepts. ``session.json`` is written as soon as the first
    event is in and rewritten (atomically: a whole file or the previous one) as
    the recording grows; the events are flushed with it. A room without a
    (valid) campaign is recorded without one: replaying it bids with a zero
    budget, never a default one. Nothing is left behind when nothing was
    recorded (an unreachable broker, a room with no events): the folder is
    removed if this call made it."""
    from kafka import KafkaConsumer

    from liveroom.kafka.topics import CLIP_EVENTS

    folder = Path(out)
    campaign, note = read_campaign(config, room_id)  # an unreachable broker fails here, before any file
    consumer = KafkaConsumer(topic, CLIP_EVENTS, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest" if from_beginning else "latest",
                             **config.kafka_python_options())
    made = not folder.exists()
    key = room_id.encode()
    span = [float("inf"), float("-inf")]
    counts = {"events": 0, "clip_events": 0}
    started = last = time.monotonic()
    written = 0.0
    ended = False
    files: dict[str, object] = {}  # opened at their first line: a kill before any leaves no folder behind

    def write(name: str, line: bytes) -> None:
        f = files.get(name)
        if f is None:
            folder.mkdir(parents=True, exist_ok=True)
            f = files[name] = open(folder / name, "wb")  # noqa: SIM115 - closed in the finally below
        f.write(line)

    def flush() -> None:
        for f in files.values():
            f.flush()

    def write_info() -> None:
        if not counts["events"]:
            return
        names = SessionFiles(events="events.jsonl", clip_events="clip-events.jsonl" if counts["clip_events"] else None)
        info = SessionInfo(room_id=room_id, start=span[0], end=span[1], title=f"recorded from {topic}", files=names,
                           campaign=campaign)
        tmp = folder / f".{SESSION_FILE}.tmp"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
        tmp.replace(folder / SESSION_FILE)

    try:
        try:
            while True:
                batch = consumer.poll(timeout_ms=500)
                now = time.monotonic()
                for records in batch.values():
                    for rec in records:
                        last = now
                        if rec.key != key or not rec.value:
                            continue
                        is_clip = rec.topic == CLIP_EVENTS
                        for raw in unpack(rec.value) if not is_clip else [rec.value]:
                            # JSON has newlines only as whitespace: one event stays one line.
                            write("clip-events.jsonl" if is_clip else "events.jsonl", raw.replace(b"\n", b" ") + b"\n")
                            counts["clip_events" if is_clip else "events"] += 1
                            _, ts = routing(raw)
                            if ts is not None and not is_clip:
                                span[0], span[1] = min(span[0], ts), max(span[1], ts)
                        ended = ended or (not is_clip and b'"room_end"' in rec.value)
                if batch and now - written >= 1.0:  # the folder stays a session as it grows
                    flush()
                    write_info()
                    written = now
                if (ended and not batch) or now - last > idle_timeout_s:
                    break
                if max_seconds is not None and now - started > max_seconds:
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C or SIGTERM: what is in is kept, below
        flush()
        if counts["events"]:
            campaign, note = read_campaign(config, room_id)  # the newest, as the room ended
            write_info()
    finally:
        for f in files.values():
            f.close()
        consumer.close()
        if not counts["events"]:
            for name in ("events.jsonl", "clip-events.jsonl", SESSION_FILE):
                (folder / name).unlink(missing_ok=True)
            if made:
                shutil.rmtree(folder, ignore_errors=True)
    if not counts["events"]:
        raise ValueError(f"no events of room {room_id!r} on {topic}")
    return Recording(folder=folder, events=counts["events"], campaign=campaign, campaign_note=note,
                     clip_events=counts["clip_events"])
