"""docker-compose.yml exercised without Docker: each of our services' commands runs
as a process with the file's environment, against the real broker. ``kafka:9092``
is mapped to the test broker, each volume to a temporary folder (a read-only one
made read-only), the worker's web port to a free port, and the healthcheck is
the file's own command. Two settings are overridden, as ``docker compose run -e``
would, only to keep the test short: the replay's pacing (``LIVEROOM_REPLAY_SPEED=0``;
real time would take the sample's eight minutes) and the worker's idle flush
(``LIVEROOM_KAFKA_SILENCE_S=2``; the file's 30 s would only be waited out).

What the image's user rights mean here: the services run as a non-root user in
the image, and ``test_compose.py`` checks that every folder they write is one the
image creates and gives that user. These processes run as the test's user: the
interpreter lives under a home folder other users cannot enter."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from liveroom.kafka.topics import BID_DECISIONS, CLIPS, ROOM_METRICS
from sessions.folder import open_session

from .harness import free_port, read_topic, wait_for
from .test_kafka_runtime import embedded

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


class Service:
    """One compose service as a process: its command, its environment, its volumes."""

    def __init__(self, name: str, bootstrap: str, tmp: Path, overrides: dict[str, str] | None = None) -> None:
        self.name = name
        svc = COMPOSE["services"][name]
        self.port = str(free_port())
        self.mounts: dict[str, Path] = {}
        for volume in svc.get("volumes", []):
            source, target, *mode = volume.split(":")
            folder = tmp / f"{name}-{source.strip('./') or 'vol'}"
            folder.mkdir(parents=True, exist_ok=True)
            self.mounts[target] = folder
            if mode == ["ro"]:
                self.readonly = folder
        env = {k: self._map(str(v), bootstrap) for k, v in svc["environment"].items()}
        self.env = {**os.environ, **env, **(overrides or {}), "HOME": os.environ.get("HOME", str(tmp))}
        self.command = [self._map(a, bootstrap) for a in svc["command"]]
        self.healthcheck = [self._map(a, bootstrap) for a in svc.get("healthcheck", {}).get("test", [])]
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def _map(self, value: str, bootstrap: str) -> str:
        value = value.replace("kafka:9092", bootstrap)
        for target, folder in self.mounts.items():
            if value == target or value.startswith(target + "/"):
                value = str(folder) + value[len(target):]
        if value in ("6066", "6067"):  # a web port, as a container port: a free host port here
            return self.port
        return value.replace(":6066/", f":{self.port}/").replace(":6067/", f":{self.port}/")

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "liveroom.cli", *self.command]

    def run(self, timeout_s: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(), env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)

    def start(self) -> "Service":
        self.proc = subprocess.Popen(self.argv(), env=self.env, cwd=REPO, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def healthy(self) -> bool:
        test = self.healthcheck
        argv = [sys.executable, *test[2:]] if test[:2] == ["CMD", "python"] else test[1:]
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)


def test_compose_services_run_together_as_processes(broker, sample_session, tmp_path):
    want_metrics, _, summary = embedded(open_session(sample_session), tmp_path)
    topic_init = Service("topic-init", broker.bootstrap, tmp_path)
    done = topic_init.run()
    assert done.returncode == 0, done.stderr[-2000:]
    worker = Service("worker", broker.bootstrap, tmp_path, {"LIVEROOM_KAFKA_SILENCE_S": "2"}).start()
    highlight = Service("highlight-worker", broker.bootstrap, tmp_path)
    shutil.copytree(sample_session, highlight.readonly / "room-001")  # ./recordings/room-001 on the host
    for p in [highlight.readonly, *highlight.readonly.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))  # mounted :ro
    highlight.start()
    try:
        wait_for(worker.healthy, 90, "the worker's compose healthcheck", interval_s=1.0)
        assert worker.env["LIVEROOM_KAFKA_DATA_DIR"] == str(worker.mounts["/data"])
        replay = Service("replay", broker.bootstrap, tmp_path, {"LIVEROOM_REPLAY_SPEED": "0"}).run()
        assert replay.returncode == 0, replay.stderr[-2000:]
        assert "produced 6548 events" in replay.stdout
        wait_for(lambda: len(read_topic(broker.bootstrap, ROOM_METRICS, idle_s=1.0)) >= len(want_metrics), 120,
                 "the room's snapshots")
        wait_for(lambda: len(read_topic(broker.bootstrap, BID_DECISIONS, idle_s=1.0)) >= len(want_metrics), 60,
                 "its bid decisions")
        wait_for(lambda: read_topic(broker.bootstrap, CLIPS, idle_s=1.0), 240, "the clips manifest", interval_s=2.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/status", timeout=10) as r:
            status = json.loads(r.read())
        assert highlight.healthy()  # its compose healthcheck: /healthz of the highlight worker
        with urllib.request.urlopen(f"http://127.0.0.1:{highlight.port}/metrics", timeout=10) as r:
            assert "liveroom_highlight_rooms_cut_total 1.0" in r.read().decode()
        assert status["accounting"]["processed"] == summary["processed"]
        assert sum(status["bid_decisions"].values()) == len(want_metrics)
    finally:
        highlight.stop()
        worker.stop()
    manifest = json.loads(read_topic(broker.bootstrap, CLIPS, idle_s=1.0)[-1][1])
    assert manifest["final"] and manifest["clips"] and "error" not in manifest
    clips = highlight.mounts["/clips"]
    for c in manifest["clips"]:  # the clips are in the clips volume, the recordings untouched
        assert (Path(manifest["folder"]) / c["file"]).is_file() and Path(manifest["folder"]).is_relative_to(clips)
    assert sorted(p.name for p in (highlight.readonly / "room-001").iterdir()) == sorted(
        p.name for p in sample_session.iterdir())
    assert "Traceback" not in worker.log.read_text() and "ERROR" not in worker.log.read_text()
