"""Synthetic sessions are reproducible, and surge detection finds what was planted."""

from __future__ import annotations

import json

import pytest

from streams.config import CoreConfig
from streams.models import Moment
from liveroom.embedded.replay import read_jsonl, replay_session
from sessions.folder import open_session
from sessions.synth import synth_session


def test_same_seed_same_bytes(tmp_path):
    a = synth_session(tmp_path / "a", minutes=3, seed=11)
    b = synth_session(tmp_path / "b", minutes=3, seed=11)
    c = synth_session(tmp_path / "c", minutes=3, seed=12)
    for name in ("events.jsonl.gz", "session.json", "labels.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "events.jsonl.gz").read_bytes() != (c / "events.jsonl.gz").read_bytes()


def test_synth_session_is_a_valid_session(tmp_path):
    folder = synth_session(tmp_path / "s", minutes=4, seed=2, rooms=3)
    session = open_session(folder)
    labels = json.loads(session.labels_path.read_text())
    assert {m["room_id"] for m in labels["moments"]} == {"room-001", "room-002", "room-003"}
    assert all(session.info.start <= m["start"] < m["end"] <= session.info.end for m in labels["moments"])


def _overlap(a0, a1, b0, b1) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_planted_moments_are_detected(synth_factory, tmp_path, seed):
    session = open_session(synth_factory(minutes=12, seed=seed, lag_s=4.0))
    replay_session(session, tmp_path, CoreConfig())
    found = read_jsonl(tmp_path / "moments.jsonl", Moment)
    planted = json.loads(session.labels_path.read_text())["moments"]
    assert len(planted) >= 2
    for p in planted:
        start, end = p["start"] + p["lag_s"], p["end"] + p["lag_s"]
        hits = [m for m in found if _overlap(m.start, m.end, start, end) > 0.5 * (end - start)]
        assert hits, f"planted {p} not found in {found}"
        assert abs(hits[0].start - start) <= 10.0
    # no surge called where nothing was planted
    assert len(found) == len(planted)
