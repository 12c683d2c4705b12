"""``liveroom record`` whatever stops it (issue: a record that survives Ctrl-C).
A live room never goes idle, so a signal is how a recording ends: the folder must
be a session ``replay`` accepts; an unreachable broker leaves nothing behind."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from kafka import KafkaProducer

from liveroom.kafka.topics import CAMPAIGNS, CLIP_EVENTS, EVENTS, KafkaConfig, create_topics

pytestmark = pytest.mark.kafka


def _cli(*args: str, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "liveroom.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **kwargs.pop("env", {})}, **kwargs)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_recording_stopped_by_a_signal_is_a_session_replay_accepts(broker, sample_session, tmp_path, sig):
    create_topics(KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=2))
    lines = gzip.decompress((sample_session / "events.jsonl.gz").read_bytes()).splitlines()
    live = [x for x in lines[: len(lines) // 2] if b'"room_end"' not in x]  # a room still live
    clip_lines = gzip.decompress((sample_session / "clip-events.jsonl.gz").read_bytes()).splitlines()[:50]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    info = json.loads((sample_session / "session.json").read_text())
    producer.send(CAMPAIGNS, key=b"room-001", value=json.dumps(info["campaign"]).encode())
    for raw in live:
        producer.send(EVENTS, key=b"room-001", value=raw)
    for raw in clip_lines:
        producer.send(CLIP_EVENTS, key=b"room-001", value=raw)
    producer.flush()
    out = tmp_path / "rec"
    proc = _cli("record", "--kafka", broker.bootstrap, "--room", "room-001", "--idle-timeout", "120", str(out))
    deadline = time.monotonic() + 60
    while not (out / "session.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (out / "session.json").exists(), proc.stderr.read() if proc.poll() is not None else "no session.json"
    time.sleep(2.0)  # a later batch, then the stop
    producer.send(EVENTS, key=b"room-001", value=lines[len(lines) // 2])
    producer.flush()
    producer.close()
    time.sleep(1.5)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert f"{len(live) + 1} events and {len(clip_lines)} clip events of room room-001" in stdout, stdout
    session = json.loads((out / "session.json").read_text())
    assert session["files"] == {"events": "events.jsonl", "clip_events": "clip-events.jsonl", "video": None,
                                "labels": None} and session["campaign"]["total_budget"] == 240.0
    assert not list(out.glob(".*"))  # no temporary file left
    replay = subprocess.run([sys.executable, "-m", "liveroom.cli", "replay", str(out), "--out", str(tmp_path / "o"),
                             "--no-report"], capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["inputs"] == len(live) + 1 and summary["dead_letters"] == 0
    assert (tmp_path / "o" / "clip-stats.jsonl").exists()


def test_an_unreachable_broker_leaves_nothing_behind(tmp_path):
    out = tmp_path / "rec"
    proc = _cli("record", "--kafka", "127.0.0.1:9", "--room", "r", str(out),
                env={"LIVEROOM_KAFKA_CONNECT_TIMEOUT_S": "2"})
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and stderr.startswith("Error: "), (proc.returncode, stderr)
    assert not out.exists()
