"""The highlight worker on Kafka: cut a room's clips from its recording, while a
long broadcast runs and when the room ends.

It follows ``liveroom.events`` in its own consumer group and looks for each room's
recording in the recordings folder (a session folder ``ROOM/`` with a video, or a
plain ``ROOM.mp4``). Long broadcasts are analysed in parts while they run: once
the room's event time is ``segment_s`` (plus ``settle_s`` for late reactions)
past the last part, the next part is analysed; it starts ``2 x keep_margin``
seconds before the end of the last one, and keeps only clips that end at least
``keep_margin`` before its own end, so a moment on a boundary is seen whole by
the next part. On ``room_end`` the rest is analysed. Each part's clips go to
``CLIPS_DIR/<room>/part-NN/`` (written whole, then moved into place) and its
manifest is published on ``liveroom.clips`` keyed by room (``final`` true on the
last one, which also lists every clip). Heavy, blocking work, so a plain
kafka-python loop; offsets are committed after each poll's work is out. A room
whose recording is missing or unreadable gets a manifest with the error instead
of clips.

Room ids are data, never paths: ``<room>`` is :func:`~liveroom.embedded.output_folder.safe_name`
of the id (a slug and a hash), and a recording is looked up under that name, or
under the id itself only when the id is a plain file name (letters, digits,
``._-``, not starting with a dot). No message can crash the worker: a message
that does not decode is skipped (the streams workers dead-letter it), and an
analysis that fails in any way gives that room an error manifest.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from highlight.media import MediaError, probe
from highlight.pipeline import cut_clips, find_highlights
from highlight.select import SelectionConfig
from streams.events import EventDecoder, Rejected, RoomEnd, RoomStart
from liveroom.kafka.io import unpack
from liveroom.kafka.topics import CLIPS, EVENTS, KafkaConfig
from sessions.folder import SessionError, open_session

from liveroom.embedded.output_folder import atomic_folder, inside, safe_name
from liveroom.kafka.highlight_web import HighlightStats

log = logging.getLogger(__name__)
_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def recording_names(room_id: str) -> list[str]:
    """File names a room's recording may have: its safe name, and the id itself
    when that is a plain file name."""
    names = [safe_name(room_id)]
    if _PLAIN.fullmatch(room_id):
        names.append(room_id)
    return names


def recording_for(recordings: Path, room_id: str):
    """(video, events, t0) of a room's recording, or None. ``t0`` is the event time
    of the video's first second when the recording says so, else None."""
    for name in recording_names(room_id):
        folder = inside(recordings, name)
        if (folder / "session.json").is_file():
            session = open_session(folder)
            if session.video_path is not None:
                return session.video_path, session.events_path, session.info.start
        video = inside(recordings, f"{name}.mp4")
        if video.is_file():
            return video, None, None
    return None


@dataclass
class RoomProgress:
    """What the worker knows of one running room."""

    first_ts: float  # event time of the first event seen (the video's start when the recording does not say)
    analysed_to: float = 0.0  # seconds of the recording covered by finished parts
    parts: int = 0
    clips: list[dict] = field(default_factory=list)  # kept so far, with files relative to the room folder
    retry_ts: float = 0.0  # a part that could not be cut yet is tried again from this event time


def _overlaps(clip: dict, kept: list[dict]) -> bool:
    return any(min(clip["end"], k["end"]) > max(clip["start"], k["start"]) for k in kept)


def clip_part(room_id: str, recordings: Path, clips_dir: Path, progress: RoomProgress, *, end: float | None,
              keep_margin: float, selection: SelectionConfig = SelectionConfig()) -> dict | None:
    """Analyse the room's next part (to ``end`` seconds; None: to the end of the
    recording, the final part) and cut its clips. Returns the manifest to publish,
    or None when the recording has not reached ``end`` yet."""
    final = end is None
    try:
        found = recording_for(recordings, room_id)
        if found is None:
            if not final:
                return None  # the recording may show up later; the final part reports it missing
            return {"room_id": room_id, "final": True, "error": f"no recording of room {room_id} in {recordings}",
                    "clips": progress.clips}
        video, events, t0 = found
        if not final and probe(video).duration < end:
            return None
        start = max(0.0, progress.analysed_to - 2 * keep_margin)
        first_frame = t0 if t0 is not None else progress.first_ts
        analysis = find_highlights(video, events=events, room_id=room_id, t0=first_frame, selection=selection,
                                   start=start, end=end)
        limit = analysis.media.duration if final else end - keep_margin
        analysis.clips = [c for c in analysis.clips
                          if c.end <= limit and not _overlaps({"start": c.start, "end": c.end}, progress.clips)]
        part = f"part-{progress.parts + 1:02d}"
        room_dir = inside(clips_dir, safe_name(room_id))
        with atomic_folder(room_dir / part) as tmp:
            manifest = msgspec.json.decode(cut_clips(video, analysis, tmp, selection=selection,
                                                     t0=first_frame).read_bytes())
        progress.parts += 1
    except (MediaError, SessionError) as exc:
        if not final:
            log.info("room %r: part not analysed yet (%s)", room_id, exc)
            return None
        return {"room_id": room_id, "final": True, "error": str(exc), "clips": progress.clips}
    except Exception as exc:  # noqa: BLE001 - one room's failure must not stop the worker (or poison its restarts)
        log.exception("room %r: analysis failed", room_id)
        if not final:
            return None  # tried again after settle_s of event time; the final part reports it
        return {"room_id": room_id, "final": True, "error": f"analysis failed: {type(exc).__name__}: {exc}",
                "clips": progress.clips}
    covered_to = analysis.media.duration if final else end
    progress.analysed_to = covered_to
    new = [{**c, "file": f"{part}/{c['file']}", "cover": f"{part}/{c['cover']}" if c["cover"] else None}
           for c in manifest["clips"]]
    progress.clips.extend(new)
    # a part lists its own clips; the final one lists every clip of the broadcast
    return {"room_id": room_id, "folder": str(room_dir), "final": final, "part": progress.parts,
            "segment": [start, covered_to], **manifest, "clips": progress.clips if final else new}


def run(config: KafkaConfig, recordings: Path, clips_dir: Path, *, segment_s: float = 1800.0,
        settle_s: float = 60.0, max_rooms: int | None = None, idle_timeout_s: float | None = None,
        stats: HighlightStats | None = None) -> int:
    """Serve until stopped (or ``max_rooms`` rooms ended, or idle for ``idle_timeout_s``).
    ``segment_s`` 0 analyses a room only when it ends. ``stats`` (the pages') learns
    every poll and every manifest published."""
    import time

    stats = stats if stats is not None else HighlightStats()

    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(EVENTS, group_id=f"{config.app_id}-highlight", enable_auto_commit=False,
                             auto_offset_reset="earliest", **config.kafka_python_options())
    producer = KafkaProducer(acks="all", **config.kafka_python_options())
    decode = EventDecoder(max_bytes=1 << 20).decode
    keep_margin = SelectionConfig().max_s + 10.0  # a clip, plus its padding and snapping
    rooms: dict[str, RoomProgress] = {}
    ended: dict[str, None] = {}  # rooms cut at their room_end (the newest 10,000): later events do not reopen them
    done = 0
    last = time.monotonic()
    log.info("highlight worker ready: recordings from %s, clips to %s, %s", recordings, clips_dir,
             f"running broadcasts cut every {segment_s:g} s" if segment_s > 0 else "rooms cut when they end")

    def publish(room_id: str, manifest: dict) -> None:
        producer.send(CLIPS, key=room_id.encode(), value=msgspec.json.encode(manifest))
        producer.flush()
        stats.published(manifest)
        log.info("room %r: part %s, %d clip(s)%s%s", room_id, manifest.get("part"), len(manifest["clips"]),
                 " (final)" if manifest.get("final") else "", f" ({manifest['error']})" if "error" in manifest else "")

    try:
        while max_rooms is None or done < max_rooms:
            batch = consumer.poll(timeout_ms=1000)
            stats.last_poll = time.time()
            stats.rooms_open = len(rooms)
            if batch:
                last = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                break
            for raw in (item for records in batch.values() for rec in records for item in unpack(rec.value or b"")):
                try:
                    event = decode(raw)
                except Rejected:
                    continue  # the streams workers dead-letter it
                if type(event) is RoomStart:
                    ended.pop(event.room_id, None)  # live again: a new broadcast to cut
                elif event.room_id in ended:
                    continue  # a late event of a room already cut
                progress = rooms.setdefault(event.room_id, RoomProgress(first_ts=event.ts))
                if type(event) is RoomEnd:
                    publish(event.room_id, clip_part(event.room_id, recordings, clips_dir, progress, end=None,
                                                     keep_margin=keep_margin))
                    del rooms[event.room_id]
                    ended[event.room_id] = None
                    if len(ended) > 10_000:
                        del ended[next(iter(ended))]
                    done += 1
                elif (segment_s > 0 and event.ts >= progress.retry_ts
                      and event.ts - progress.first_ts >= progress.analysed_to + segment_s + settle_s):
                    manifest = clip_part(event.room_id, recordings, clips_dir, progress,
                                         end=progress.analysed_to + segment_s, keep_margin=keep_margin)
                    if manifest is not None:
                        publish(event.room_id, manifest)
                    else:  # the recording is not there yet: not again for every event
                        progress.retry_ts = event.ts + settle_s
            consumer.commit()
    finally:
        consumer.close()
        producer.close()
    return done
