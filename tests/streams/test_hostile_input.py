"""Hostile input, embedded: poison bytes, unbounded lines, gzip bombs and damage,
silent gaps, many rooms. Each case was a crash, a blow-up or a loss on the
landed main before the bounds were added."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tracemalloc
from pathlib import Path

import msgspec
import pytest

from streams.config import CoreConfig
from streams.core import StreamCore
from streams.models import DeadLetter, RoomMetrics
from liveroom.embedded.replay import read_jsonl, replay_session
from sessions.folder import LineReader, ReadLimits, SessionError, open_session

T0 = 1_780_000_000.0
enc = msgspec.json.encode


def event(i: int, room: str = "r", ts: float | None = None, type_: str = "comment") -> bytes:
    return enc({"event_id": f"e{i}", "room_id": room, "ts": T0 + i if ts is None else ts, "type": type_,
                "user_id": f"u{i % 7}"})


def session_folder(folder: Path, lines: list[bytes] | bytes, *, gz: bool = False, start: float = T0,
                   end: float = T0 + 10_000_000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    blob = lines if isinstance(lines, bytes) else b"\n".join(lines) + b"\n"
    name = "events.jsonl.gz" if gz else "events.jsonl"
    (folder / name).write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    (folder / "session.json").write_bytes(enc({"room_id": "r", "start": start, "end": end, "files": {"events": name}}))
    return folder


POISON = [
    (b'{"event_id":"a\xff","room_id":"r","ts":1780000200,"type":"comment","user_id":"u"}', "invalid_utf8"),
    (b'{"pad":' + b"[" * 5000 + b"]" * 5000 + b"}", "too_deep"),
    (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "too_deep"),  # 60 KB: under the size limit
    (b'{"event_id":"e","room_id":"r","ts":1780000200,"type":"comment","user_id":"\xed\xa0\x80"}', "invalid_utf8"),
]


@pytest.mark.parametrize("raw, reason", POISON)
def test_poison_bytes_are_dead_letters_and_the_rest_goes_on(raw, reason):
    core = StreamCore(CoreConfig())
    lines = [event(i) for i in range(20)] + [raw] + [event(i) for i in range(20, 100)]
    core.feed_many(lines)
    core.flush()
    acc = core.accounting()
    assert acc["processed"] == 100 and acc["dead_letter_reasons"] == {reason: 1} and acc["all_accounted_for"]
    assert core.drain()[2][0].raw == raw


def test_poison_bytes_in_a_session_replay_complete_with_a_summary(tmp_path):
    lines = [event(i) for i in range(50)] + [raw for raw, _ in POISON] + [event(i) for i in range(50, 130)]
    result = replay_session(open_session(session_folder(tmp_path / "s", lines)), tmp_path / "out", CoreConfig())
    s = result.summary
    assert s["processed"] == 130 and s["dead_letter_reasons"] == {"invalid_utf8": 2, "too_deep": 2}
    assert (tmp_path / "out" / "summary.json").is_file()


def test_a_line_longer_than_the_limit_is_read_in_constant_memory(tmp_path):
    big = b'{"event_id":"x","pad":"' + b"y" * (20 << 20) + b'"}'
    path = tmp_path / "events.jsonl"
    path.write_bytes(event(1) + b"\n" + big + b"\n" + event(2) + b"\n")
    tracemalloc.start()
    lines = list(LineReader(path, ReadLimits(max_line_bytes=65536, keep_bytes=1000)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 6 << 20  # 1 MiB chunks; the 20 MiB line is never held
    assert [bytes(x) for x in (lines[0], lines[2])] == [event(1), event(2)]
    long = lines[1]
    assert long.length == len(big) and long.sha256 == hashlib.sha256(big).hexdigest() and long == big[:1000]


def test_an_oversized_line_is_a_bounded_dead_letter_with_length_and_hash(tmp_path):
    big = b"z" * (3 << 20)
    folder = session_folder(tmp_path / "s", [event(1), big, event(2)])
    replay_session(open_session(folder), tmp_path / "out", CoreConfig(dead_letter_max_raw=4096))
    [dead] = read_jsonl(tmp_path / "out" / "dead-letters.jsonl", DeadLetter)
    assert dead.reason == "oversized" and dead.raw == big[:4096] and dead.raw_bytes == len(big)
    assert dead.raw_sha256 == hashlib.sha256(big).hexdigest() and dead.source == "events.jsonl:2"
    assert (tmp_path / "out" / "dead-letters.jsonl").stat().st_size < 10_000


def test_a_gzip_bomb_stops_at_the_ratio_limit_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        for _ in range(256):
            f.write(b"\x00" * (1 << 20))  # 256 MiB of zeros, about 256 KB of gzip
    tracemalloc.start()
    reader = LineReader(path, ReadLimits(ratio_after_bytes=8 << 20, max_ratio=200))
    lines = list(reader)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reader.error is not None and reader.error[0] == "decompression_limit"
    assert len(lines) == 1 and lines[0].length <= 16 << 20  # stopped soon after 8 MiB, not at 256 MiB
    assert peak < 8 << 20


def test_a_file_past_the_decompressed_size_limit_stops_there(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(event(i) for i in range(100_000))))
    reader = LineReader(path, ReadLimits(max_decompressed_bytes=1 << 20))
    lines = list(reader)
    assert reader.error[0] == "decompression_limit" and 0 < len(lines) < 30_000  # within 1 MiB past it


def test_newlines_are_counted_not_dead_lettered(tmp_path):
    folder = session_folder(tmp_path / "s", b"\n" * (4 << 20) + event(1) + b"\n" + b" \r\n" * 1000)
    result = replay_session(open_session(folder), tmp_path / "out", CoreConfig())
    assert result.summary["blank"] == (4 << 20) + 1000 and result.summary["dead_letters"] == 0
    assert (tmp_path / "out" / "dead-letters.jsonl").stat().st_size == 0


def test_gzip_damaged_mid_stream_keeps_every_line_before_the_damage(sample_session, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(sample_session, folder)
    gz = folder / "events.jsonl.gz"
    blob = bytearray(gz.read_bytes())
    blob[2000:2500] = bytes((i * 37 + 11) % 256 for i in range(500))
    gz.write_bytes(bytes(blob))
    # the lines a streaming decompressor yields before it meets the damage
    d = __import__("zlib").decompressobj(31)
    whole = b""
    for i in range(0, 2000, 16):
        whole += d.decompress(bytes(blob[i:i + 16]))
    intact = whole.count(b"\n")
    assert intact >= 100
    result = replay_session(open_session(folder), tmp_path / "out", CoreConfig())
    s = result.summary
    assert s["processed"] >= intact and s["dead_letter_reasons"]["truncated_input"] == 1 and s["all_accounted_for"]


def test_a_silent_gap_gives_a_bounded_number_of_snapshots():
    config = CoreConfig()
    lines = [event(i, ts=T0 + i * 3599) for i in range(2000)]
    core = StreamCore(config)
    core.feed_many(lines)
    core.flush()
    metrics, _, _ = core.drain()
    # each event's own tick, then silent_snapshots empty ticks; the rest of each gap is skipped
    assert len(metrics) == 1999 * (1 + config.silent_snapshots) + 1  # the last event has no gap after it


def test_skipping_a_settled_gap_changes_no_snapshot_it_keeps(synth_factory):
    session = open_session(synth_factory(minutes=4, seed=9, rooms=2))
    # the same session with both rooms silent for 50 minutes after its second minute
    events = [msgspec.json.decode(line) for line in LineReader(session.events_path)]
    for ev in events:
        if ev["ts"] > session.info.start + 120:
            ev["ts"] += 3000  # under max_future_s
    shifted = [enc(ev) for ev in events]
    outputs = []
    for cfg in (CoreConfig(), CoreConfig(silent_snapshots=10**9)):
        core = StreamCore(cfg)
        core.feed_many(shifted)
        core.flush()
        outputs.append(core.drain())
    (bounded, moments_b, _), (every, moments_e, _) = outputs
    kept = {(m.room_id, m.ts) for m in bounded}
    assert len(every) > len(bounded) + 1000
    assert bounded == [m for m in every if (m.room_id, m.ts) in kept]
    assert moments_b == moments_e


def test_parked_rooms_change_nothing_and_bound_the_rooms_held():
    lines = []
    for i in range(3000):
        room = f"room-{i % 1500}"
        lines.append(event(i, room=room, ts=T0 + i * 0.5, type_="room_start" if i < 1500 else "room_end"))
    outs = []
    for max_rooms in (None, 100):
        core = StreamCore(CoreConfig(), max_rooms=max_rooms)
        held = 0
        for k in range(0, len(lines), 50):
            core.feed_many(lines[k:k + 50])
            held = max(held, len(core.processors))
        core.flush()
        outs.append((core.drain(), [msgspec.structs.asdict(s) for s in core.states()], core.accounting()))
        if max_rooms:
            assert held <= max_rooms and len(core.parked) > 1000
    assert outs[0] == outs[1]


def test_session_json_limits_and_damage_are_one_clear_error(tmp_path):
    folder = session_folder(tmp_path / "s", [event(1)])
    meta = folder / "session.json"
    cases = [
        (b'{"room_id":"r","start":1,"end":2,"pad":"' + b"x" * (2 << 20) + b'"}', "larger than"),
        (b'{"room_id":"\xff","start":1,"end":2}', "not valid JSON"),
        (b'{"x":' * 20_000 + b"1" + b"}" * 20_000, "not valid JSON"),
        (enc({"room_id": "r" * 1000, "start": 1, "end": 2}), "length"),
        (enc({"room_id": "r", "start": 1, "end": 2, "files": {"events": "a\x00b"}}), "relative path"),
        (enc({"room_id": "r", "start": 1, "end": 2, "files": {"events": "n" * 300}}), "cannot"),
        (enc({"room_id": "r", "start": 1, "end": 2, "files": {"events": "loop"}}), "cannot be resolved"),
        (enc({"room_id": "r", "start": float("nan"), "end": 2}), "start"),
    ]
    (folder / "loop").symlink_to(folder / "loop")
    for blob, message in cases:
        meta.write_bytes(blob)
        with pytest.raises(SessionError, match=message):
            open_session(folder)


def test_room_ids_never_become_paths_in_the_embedded_replay(tmp_path):
    from liveroom.embedded.run import run_embedded
    from liveroom.settings import Settings

    hostile = ["../../victim", "/tmp/victim", "a\x00b", "..", "x" * 128]
    lines = [event(i, room=room, ts=T0 + i) for i, room in enumerate(hostile * 4)]
    lines.append(event(99, room="y" * 1000))  # over the id bound: a dead letter
    folder = session_folder(tmp_path / "work" / "s", lines)
    out = tmp_path / "work" / "out"
    before = set(tmp_path.rglob("*"))
    victim_existed = Path("/tmp/victim").exists()
    result = run_embedded(open_session(folder), out, Settings())
    assert set(result.summary["rooms"]) == set(hostile)
    assert result.summary["dead_letter_reasons"] == {"invalid_event": 1}
    new = set(tmp_path.rglob("*")) - before
    assert new and all(out in p.parents or p == out for p in new), sorted(map(str, new))
    assert Path("/tmp/victim").exists() == victim_existed
    assert read_jsonl(out / "room-metrics.jsonl", RoomMetrics)
