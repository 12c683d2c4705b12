"""What a user gets for a mistake (one ``Error:`` line, exit status 2, never a
traceback), and what a killed or repeated run leaves in ``--out``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

REPO = Path(__file__).resolve().parents[1]
T0 = 1_780_000_000.0


def liveroom(*args: str, env: dict | None = None, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liveroom.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, **kwargs)


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def small_session(folder: Path, n: int = 200, events_name: str = "events.jsonl") -> Path:
    folder.mkdir(parents=True)
    lines = [msgspec.json.encode({"event_id": f"e{i}", "room_id": "r", "ts": T0 + i, "type": "comment",
                                  "user_id": "u"}) for i in range(n)]
    (folder / events_name).write_bytes(b"\n".join(lines) + b"\n")
    (folder / "session.json").write_bytes(msgspec.json.encode(
        {"room_id": "r", "start": T0, "end": T0 + n, "files": {"events": events_name}}))
    return folder


def test_out_that_is_the_session_folder_or_holds_it_is_refused(tmp_path):
    # the repro: an input named like an output, --out the session folder itself
    s = small_session(tmp_path / "s", events_name="room-metrics.jsonl")
    before = (s / "room-metrics.jsonl").read_bytes()
    assert_user_error(liveroom("replay", str(s), "--out", str(s), "--no-report"), "input")
    assert_user_error(liveroom("replay", str(s), "--out", str(tmp_path), "--no-report"), "input")
    assert (s / "room-metrics.jsonl").read_bytes() == before


def test_out_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path):
    s = small_session(tmp_path / "s")
    (tmp_path / "file").write_text("x")
    assert_user_error(liveroom("replay", str(s), "--out", str(tmp_path / "file")), "not a folder")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert_user_error(liveroom("replay", str(s), "--out", str(tmp_path / "mine")), "other files")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_rerun_replaces_the_folder_and_leaves_nothing_of_the_last_run(tmp_path):
    s = small_session(tmp_path / "s")
    out = tmp_path / "out"
    assert liveroom("replay", str(s), "--out", str(out), "--no-report").returncode == 0
    (out / "clips").mkdir()
    (out / "clips" / "clip-09.mp4").write_bytes(b"from an earlier run")
    assert liveroom("replay", str(s), "--out", str(out), "--no-report").returncode == 0
    assert not (out / "clips" / "clip-09.mp4").exists()
    assert json.loads((out / "summary.json").read_text())["processed"] == 200
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary folder left


def test_a_run_killed_midway_leaves_the_previous_outputs_whole(tmp_path):
    s = small_session(tmp_path / "s")
    out = tmp_path / "out"
    assert liveroom("replay", str(s), "--out", str(out), "--no-report").returncode == 0
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    # a second, long session (2M events, a few seconds) into the same --out, killed while it runs
    big = tmp_path / "big"
    big.mkdir()
    with gzip_writer(big / "events.jsonl.gz") as f:
        for k in range(0, 2_000_000, 10_000):
            f.write(b"".join(b'{"event_id":"e%d","room_id":"r","ts":%.3f,"type":"like","user_id":"u%d"}\n'
                             % (i, T0 + i * 0.005, i % 5000) for i in range(k, k + 10_000)))
    (big / "session.json").write_bytes(msgspec.json.encode(
        {"room_id": "r", "start": T0, "end": T0 + 10_000, "files": {"events": "events.jsonl.gz"}}))
    proc = subprocess.Popen([sys.executable, "-m", "liveroom.cli", "replay", str(big), "--out", str(out),
                             "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once the new run is writing its outputs
        partial = list(tmp_path.glob(".out.partial-*/room-metrics.jsonl"))
        if partial:
            time.sleep(0.3)
            break
        time.sleep(0.005)
    assert partial and proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    # the next run clears the killed run's temporary folder
    assert liveroom("replay", str(s), "--out", str(out), "--no-report").returncode == 0
    assert not list(tmp_path.glob(".out.partial-*"))


def gzip_writer(path: Path):
    import gzip

    return gzip.open(path, "wb", compresslevel=1)


@pytest.mark.parametrize("meta, needle", [
    (b'{"room_id":"\xff\xfe","start":1,"end":2}', "not valid JSON"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "not valid JSON"),
    (b'{"room_id":"r","start":1780000000,"end":1780000001,"files":{"events":"loop"}}', "cannot be resolved"),
    (b'{"room_id":"r","start":1780000000,"end":1780000001,"files":{"events":"a\\u0000b"}}', "relative path"),
    (b'{"room_id":"r","start":1780000000,"end":1780000001,"files":{"events":"' + b"n" * 300 + b'"}}', "cannot"),
    (b'{"room_id":"r","start":1,"end":2,"pad":"' + b"x" * (2 << 20) + b'"}', "larger than"),
])
def test_bad_session_json_is_one_error_line(tmp_path, meta, needle):
    s = tmp_path / "s"
    s.mkdir()
    (s / "loop").symlink_to(s / "loop")
    (s / "session.json").write_bytes(meta)
    assert_user_error(liveroom("replay", str(s), "--out", str(tmp_path / "o")), needle)


def test_a_bad_setting_is_one_error_line(tmp_path):
    s = small_session(tmp_path / "s")
    assert_user_error(liveroom("replay", str(s), "--out", str(tmp_path / "o"), env={"LIVEROOM_TICK_S": "soon"}),
                      "LIVEROOM_TICK_S")


@pytest.mark.parametrize("args", [("replay", "SESSION", "--kafka", "127.0.0.1:1"), ("worker", "--kafka", "127.0.0.1:1"),
                                  ("topics", "--kafka", "127.0.0.1:1"), ("highlight-worker", "--kafka", "127.0.0.1:1"),
                                  ("record", "--kafka", "127.0.0.1:1", "--room", "r", "OUT"),
                                  ("tail", "events", "--kafka", "127.0.0.1:1", "--idle-timeout", "1")])
def test_an_unreachable_broker_is_one_error_line_naming_it_in_bounded_time(tmp_path, args):
    s = small_session(tmp_path / "s")
    started = time.monotonic()
    paths = {"SESSION": str(s), "OUT": str(tmp_path / "rec")}
    proc = liveroom(*[paths.get(a, a) for a in args], env={"LIVEROOM_KAFKA_CONNECT_TIMEOUT_S": "3"}, timeout=60)
    assert_user_error(proc, "127.0.0.1:1")
    assert time.monotonic() - started < 45  # bounded by the connect timeout, not a hang


def test_an_unwritable_out_folder_is_one_error_line(tmp_path):
    """A folder nobody may write in: read-only for a user, immutable for root
    (root writes through permission bits, not through ``chattr +i``)."""
    s = small_session(tmp_path / "s")
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(locked)]).returncode != 0:
            pytest.skip("running as root without chattr +i: no folder is unwritable to root")  # printed with -ra
    else:
        locked.chmod(0o555)
    try:
        proc = liveroom("replay", str(s), "--out", str(locked / "out"), "--no-report")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)])
        locked.chmod(0o755)
    assert_user_error(proc, str(locked))


def test_a_damaged_output_folder_is_one_error_line_for_report(sample_session, tmp_path):
    out = tmp_path / "out"
    assert liveroom("replay", str(sample_session), "--out", str(out), "--no-report").returncode == 0
    (out / "campaign.json").unlink()  # as an older version wrote it: the report says so, and draws
    assert liveroom("report", str(out)).returncode == 0
    assert "an older version wrote them" in (out / "report.html").read_text()
    with open(out / "moments.jsonl", "ab") as f:
        f.write(b'{"room_id": 5}\n')
    assert_user_error(liveroom("report", str(out)), "cannot read")
