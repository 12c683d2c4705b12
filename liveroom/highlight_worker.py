"""The highlight worker on Kafka: when a room ends, cut its clips from the recording.

It follows ``liveroom.events`` in its own consumer group and, on a room's
``room_end``, looks for the room's recording in the recordings folder (a session
folder ``ROOM/`` with a video, or a plain ``ROOM.mp4``), runs the highlight
pipeline with the recorded events when there are any, writes the clips under
``CLIPS_DIR/ROOM/`` and publishes the manifest on ``liveroom.clips``, keyed by
room. Heavy and blocking work, so a plain kafka-python loop that commits an
event's offset only once its clips are out; a room whose recording is missing or
unreadable gets a manifest with the error instead of clips.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from highlight.media import MediaError
from highlight.pipeline import cut_clips, find_highlights
from streams.events import EventDecoder, Rejected, RoomEnd
from streams.kafka_topics import CLIPS, EVENTS, KafkaConfig
from streams.session import SessionError, open_session

log = logging.getLogger(__name__)


def recording_for(recordings: Path, room_id: str):
    """(video, events, t0) of a room's recording, or None."""
    folder = recordings / room_id
    if (folder / "session.json").is_file():
        session = open_session(folder)
        if session.video_path is not None:
            return session.video_path, session.events_path, session.info.start
    video = recordings / f"{room_id}.mp4"
    return (video, None, 0.0) if video.is_file() else None


def clip_room(room_id: str, recordings: Path, clips_dir: Path) -> dict:
    """Cut one room's clips; returns the manifest to publish."""
    try:
        found = recording_for(recordings, room_id)
        if found is None:
            return {"room_id": room_id, "error": f"no recording of room {room_id} in {recordings}", "clips": []}
        video, events, t0 = found
        analysis = find_highlights(video, events=events, room_id=room_id, t0=t0)
        manifest_path = cut_clips(video, analysis, clips_dir / room_id)
    except (MediaError, SessionError) as exc:
        return {"room_id": room_id, "error": str(exc), "clips": []}
    manifest = msgspec.json.decode(manifest_path.read_bytes())
    return {"room_id": room_id, "folder": str(clips_dir / room_id), **manifest}


def run(config: KafkaConfig, recordings: Path, clips_dir: Path, *, max_rooms: int | None = None,
        idle_timeout_s: float | None = None) -> int:
    """Serve until stopped (or ``max_rooms`` rooms, or idle for ``idle_timeout_s``)."""
    import time

    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(EVENTS, group_id=f"{config.app_id}-highlight", enable_auto_commit=False,
                             auto_offset_reset="earliest", **config.kafka_python_options())
    producer = KafkaProducer(acks="all", **config.kafka_python_options())
    decode = EventDecoder(max_bytes=1 << 20).decode
    done = 0
    last = time.monotonic()
    try:
        while max_rooms is None or done < max_rooms:
            batch = consumer.poll(timeout_ms=1000)
            if batch:
                last = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                break
            for records in batch.values():
                for rec in records:
                    try:
                        event = decode(rec.value or b"")
                    except Rejected:
                        continue  # the streams workers dead-letter it
                    if type(event) is not RoomEnd:
                        continue
                    manifest = clip_room(event.room_id, recordings, clips_dir)
                    producer.send(CLIPS, key=event.room_id.encode(), value=msgspec.json.encode(manifest))
                    producer.flush()
                    log.info("room %s: %d clip(s)%s", event.room_id, len(manifest["clips"]),
                             f" ({manifest['error']})" if "error" in manifest else "")
                    done += 1
            consumer.commit()
    finally:
        consumer.close()
        producer.close()
    return done
