"""Recorded sessions, the embedded replay, and damaged input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import msgspec
import pytest

from streams.config import CoreConfig
from streams.models import DeadLetter, Moment, RoomMetrics
from liveroom.embedded.replay import read_jsonl, replay_session
from sessions.folder import LineReader, SessionError, open_session

OUTPUTS = ("room-metrics.jsonl", "moments.jsonl", "dead-letters.jsonl", "summary.json")


def test_sample_session_replays_with_everything_accounted_for(sample_session, tmp_path):
    result = replay_session(open_session(sample_session), tmp_path, CoreConfig())
    s = result.summary
    assert s["all_accounted_for"] and s["inputs"] > 1000 and s["dead_letters"] == 0
    assert s["inputs"] == s["processed"] + s["duplicates"]
    metrics = read_jsonl(tmp_path / "room-metrics.jsonl", RoomMetrics)
    assert metrics and all(m.room_id == "room-001" for m in metrics)
    room = s["rooms"]["room-001"]
    assert metrics[-1].interactions_total == room["interactions"] and metrics[-1].spend_total == room["spend"]
    assert read_jsonl(tmp_path / "moments.jsonl", Moment)


def test_replay_is_byte_identical_on_every_run(synth_factory, tmp_path):
    session = open_session(synth_factory(minutes=6, seed=3, rooms=2))
    for run in ("a", "b"):
        replay_session(session, tmp_path / run, CoreConfig())
    for name in OUTPUTS:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_plain_and_gzip_sessions_give_the_same_outputs(synth_factory, tmp_path):
    gz = open_session(synth_factory(minutes=3, seed=5))
    plain = open_session(synth_factory(minutes=3, seed=5, compress=False))
    replay_session(gz, tmp_path / "gz", CoreConfig())
    replay_session(plain, tmp_path / "plain", CoreConfig())
    for name in OUTPUTS[:3]:
        assert (tmp_path / "gz" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()


def _corrupt_copy(src: Path, dst: Path) -> tuple[int, int]:
    """A copy whose events have garbage lines, wrong types and a truncated gzip
    tail; returns (lines kept intact, lines damaged)."""
    shutil.copytree(src, dst)
    lines = gzip.decompress((src / "events.jsonl.gz").read_bytes()).split(b"\n")[:-1]
    bad = [b"\x00\x01 binary junk", b'{"event_id": 5, "room_id": "room-001", "ts": "soon", "type": "like"}',
           b"{\"event_id\": \"x\", \"room_id\": \"room-001\", \"ts\": 1780000100.0, \"type\": \"order\", "
           b"\"user_id\": \"u\", \"sku\": \"s\", \"amount\": -20}", b"not json at all", b""]
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line)
        if i % 400 == 7:
            mixed.append(bad[(i // 400) % len(bad)])
    blob = gzip.compress(b"\n".join(mixed) + b"\n", mtime=0)
    (dst / "events.jsonl.gz").write_bytes(blob[: int(len(blob) * 0.8)])  # cut the tail off
    return len(lines), sum(1 for i in range(len(lines)) if i % 400 == 7)


def test_corrupted_session_replays_to_completion(sample_session, tmp_path):
    _, n_bad = _corrupt_copy(sample_session, tmp_path / "broken")
    result = replay_session(open_session(tmp_path / "broken"), tmp_path / "out", CoreConfig())
    s = result.summary
    assert s["all_accounted_for"]
    reasons = s["dead_letter_reasons"]
    assert reasons.pop("truncated_input") == 1
    # every garbage line read before the cut, plus the half line at the cut
    assert sum(reasons.values()) >= n_bad * 0.7
    assert {"malformed_json", "invalid_event"} <= set(reasons)
    assert s["blank"] >= 1  # blank lines are counted, not dead-lettered
    dead = read_jsonl(tmp_path / "out" / "dead-letters.jsonl", DeadLetter)
    assert len(dead) == s["dead_letters"]
    assert any(d.raw == b"\x00\x01 binary junk" for d in dead)
    assert all(d.source.startswith("events.jsonl.gz:") for d in dead)
    assert read_jsonl(tmp_path / "out" / "room-metrics.jsonl", RoomMetrics)


def test_line_reader_streams_lines_without_loading_the_file(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as f:
        for i in range(300_000):
            f.write(b'{"n": %d}\n' % i)
    reader = LineReader(path)
    it = iter(reader)
    assert next(it) == b'{"n": 0}'
    assert 0 < reader.position <= 1 << 20 < reader.size  # one chunk read, not the file
    assert sum(1 for _ in it) == 299_999 and reader.error is None


def _session_json(folder: Path, **files) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    info = {"room_id": "r", "start": 1.0, "end": 2.0, "files": files}
    (folder / "session.json").write_bytes(msgspec.json.encode(info))
    return folder


@pytest.mark.parametrize(
    "files, message",
    [
        ({"events": "../outside.jsonl"}, "outside the session folder"),
        ({"events": "/etc/passwd"}, "relative path"),
        ({"events": "missing.jsonl"}, "is missing"),
        ({"events": "events.jsonl", "video": "../../v.mp4"}, "outside the session folder"),
    ],
)
def test_bad_session_folders_get_one_clear_message(tmp_path, files, message):
    folder = _session_json(tmp_path / "s", **files)
    (folder / "events.jsonl").write_bytes(b"")
    (tmp_path / "outside.jsonl").write_bytes(b"")
    with pytest.raises(SessionError, match=message):
        open_session(folder)


def test_symlink_escaping_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.jsonl").write_bytes(b"")
    folder = _session_json(tmp_path / "s", events="events.jsonl")
    (folder / "events.jsonl").symlink_to(tmp_path / "secret.jsonl")
    with pytest.raises(SessionError, match="outside"):
        open_session(folder)


def test_missing_or_malformed_session_json(tmp_path):
    with pytest.raises(SessionError, match="does not exist"):
        open_session(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SessionError, match="no session.json"):
        open_session(tmp_path / "empty")
    (tmp_path / "empty" / "session.json").write_text("{oops")
    with pytest.raises(SessionError, match="not valid JSON"):
        open_session(tmp_path / "empty")
    (tmp_path / "empty" / "session.json").write_text('{"room_id": "r"}')
    with pytest.raises(SessionError, match="start"):
        open_session(tmp_path / "empty")
