"""The clip loop over a recorded session's clip events file (the file adapter).

Reads ``clip-events.jsonl[.gz]`` in file order with the session reader (bounded
lines, damaged gzip read as far as it goes), feeds the pure core, flushes at the
end of the input, and writes ``clip-stats.jsonl``, ``promotions.jsonl`` and
``clip-dead-letters.jsonl``; fits the pull model from the outcomes when there
are enough clips (``pull-model.json``).
"""

from __future__ import annotations

from pathlib import Path

from liveroom.embedded.replay import JsonLinesWriter
from sessions.folder import LineReader, ReadLimits

from cliploop.core import ClipLoopCore
from cliploop.learn import fit
from cliploop.models import ClipLoopConfig

CLIP_STATS_FILE = "clip-stats.jsonl"
PROMOTIONS_FILE = "promotions.jsonl"
CLIP_DEAD_LETTERS_FILE = "clip-dead-letters.jsonl"
PULL_MODEL_FILE = "pull-model.json"


def replay_clip_events(path: Path, out: Path, config: ClipLoopConfig, *, limits: ReadLimits,
                       room: str | None = None, max_envelope_events: int = 1000,
                       max_envelope_bytes: int = 1 << 20) -> dict:
    """Run the loop over one clip events file; returns its accounting. With
    ``room`` (the session's), the file is that room's: an event of another room
    is a ``key_mismatch`` dead letter, as the same line is on Kafka, where
    ``replay --kafka`` keys the file's lines by the session's room."""
    reader = LineReader(path, limits)
    core = ClipLoopCore(config, max_event_bytes=limits.max_line_bytes, dead_letter_max_raw=limits.keep_bytes,
                        max_envelope_events=max_envelope_events, max_envelope_bytes=max_envelope_bytes)
    writers = [JsonLinesWriter(out / name) for name in (CLIP_STATS_FILE, PROMOTIONS_FILE, CLIP_DEAD_LETTERS_FILE)]

    def drain() -> None:
        for writer, items in zip(writers, core.drain()):
            writer.write(items)

    line = 0
    try:
        for lines in reader.chunks():
            for raw in lines:
                line += getattr(raw, "lines", 1)
                core.feed(raw, f"{path.name}:{line}", expect_room=room)
            drain()
        if reader.error is not None:
            reason, detail = reader.error
            core.inputs += 1
            core._reject(b"", reason, detail, f"{path.name}:{line + 1}", None)
        core.flush()
        drain()
    finally:
        for w in writers:
            w.close()
    model = fit([c for room in core.rooms.values() for c in room.clips.values()])
    if model is not None:
        (out / PULL_MODEL_FILE).write_bytes(model.to_json())
    return {**core.accounting(), "clips": sum(len(r.clips) for r in core.rooms.values()),
            "promotions": writers[1].count, "pull_model": model is not None}
