"""Test harness for the real broker: start/stop it with scripts/kafka.sh, run
workers as subprocesses (so they can be SIGKILLed), read topics back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import msgspec

from liveroom.kafka.topics import ROOM_METRICS
from streams.models import RoomMetrics

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "scripts" / "kafka.sh"


class Broker:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bootstrap = ""

    def start(self) -> str:
        out = subprocess.run([str(KAFKA_SH), "start", str(self.folder)], check=True, capture_output=True, text=True,
                             timeout=300)
        self.bootstrap = out.stdout.strip().splitlines()[-1]
        return self.bootstrap

    def restart(self) -> None:
        subprocess.run([str(KAFKA_SH), "restart", str(self.folder)], check=True, capture_output=True, timeout=300)

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SH), "stop", str(self.folder)], check=False, capture_output=True, timeout=120)


class Worker:
    """``liveroom worker`` in its own process, logging to a file."""

    def __init__(self, bootstrap: str, folder: Path, name: str, **env: str) -> None:
        self.log_path = folder / f"{name}.log"
        self.env = {
            **os.environ,
            "LIVEROOM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "LIVEROOM_KAFKA_DATA_DIR": str(folder / f"{name}-data"),
            "LIVEROOM_KAFKA_SILENCE_S": "2",
            "LIVEROOM_CLIP_IDLE_S": "2",  # recorded sessions: their last hour closes when they end
            "LIVEROOM_KAFKA_SESSION_TIMEOUT_S": "6",
            "LIVEROOM_KAFKA_PARTITIONS": "4",
            "LIVEROOM_KAFKA_WEB_PORT": str(free_port()),  # several workers share this host
            **env,
        }
        self.web = f"http://127.0.0.1:{self.env['LIVEROOM_KAFKA_WEB_PORT']}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 90.0) -> "Worker":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "liveroom.cli", "worker"], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: b"worker ready" in self.log_path.read_bytes() or self.proc.poll() is not None, timeout_s,
                 "worker ready")
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def http_get(url: str) -> tuple[int, bytes]:
    """``(status, body)`` of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def read_topic(bootstrap: str, topic: str, *, idle_s: float = 4.0, max_s: float = 120.0) -> list[tuple[bytes, bytes]]:
    """All (key, value) records of a topic, read from the beginning until quiet."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    out = []
    started = last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s and time.monotonic() - started < max_s:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                out.extend((r.key, r.value) for r in records)
                last = time.monotonic()
    finally:
        consumer.close()
    return out


def decode_all(records, type_, *, skip: bytes | None = None):
    """Decode every record's value (tombstones left out); ``skip`` is a value a test wrote there on purpose."""
    dec = msgspec.json.Decoder(type_)
    return [dec.decode(v) for _, v in records if v is not None and (skip is None or v != skip)]


def latest_per_room(metrics) -> dict:
    """The last snapshot per room (by tick), as a consumer keeping the newest would."""
    best: dict = {}
    for m in metrics:
        if m.room_id not in best or m.ts >= best[m.room_id].ts:
            best[m.room_id] = m
    return best


def by_room_and_tick(metrics) -> dict:
    out: dict = defaultdict(dict)
    for m in metrics:
        out[m.room_id][m.ts] = m
    return out


class CpuBurner:
    """Busy processes, one per core by default: the loaded machine production
    runs on (a broker restart or a SIGKILL must not cost events there either)."""

    def __init__(self, processes: int | None = None) -> None:
        self.n = processes or os.cpu_count() or 2
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "CpuBurner":
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()
            p.wait(10)



def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Partition -> committed offset of ``group`` on ``topic`` (absent: none committed)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})  # kafka-python 3.x name and shape
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}
    finally:
        admin.close()


def wait_for_metrics(bootstrap: str, want: int | list[RoomMetrics], timeout_s: float = 120.0,
                     skip: bytes | None = None, workers: tuple = ()) -> list[RoomMetrics]:
    """Read the metrics topic until every wanted (room, tick) has shown up. Given
    the wanted snapshots (not only their count), a timeout names the missing ones
    per room, with the tail of each worker's log: a CI failure says what was lost."""
    got: list[RoomMetrics] = []
    count = want if isinstance(want, int) else len({(m.room_id, m.ts) for m in want})

    def enough() -> bool:
        got[:] = decode_all(read_topic(bootstrap, ROOM_METRICS, idle_s=2.0), RoomMetrics, skip=skip)
        return len({(m.room_id, m.ts) for m in got}) >= count

    try:
        wait_for(enough, timeout_s, f"{count} room snapshots", interval_s=2.0)
    except AssertionError as e:
        lines = [str(e), f"got {len({(m.room_id, m.ts) for m in got})} distinct of {count}"]
        if not isinstance(want, int):
            seen = {(m.room_id, m.ts) for m in got}
            missing: dict[str, list[float]] = defaultdict(list)
            for m in want:
                if (m.room_id, m.ts) not in seen:
                    missing[m.room_id].append(m.ts)
            for room, ticks in sorted(missing.items()):
                lines.append(f"{room}: {len(ticks)} missing, ticks {min(ticks)}..{max(ticks)}")
        for w in workers:
            lines.append(f"--- {w.log_path.name} (last 4000 chars) ---\n{w.log()[-4000:]}")
        raise AssertionError("\n".join(lines)) from None
    return got
