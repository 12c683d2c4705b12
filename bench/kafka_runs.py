"""What the Kafka benchmarks share: a fresh broker (scripts/kafka.sh) and one
``liveroom worker`` process on it, both stopped however the run ends."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = str(REPO / "scripts" / "kafka.sh")


@contextlib.contextmanager
def fresh_broker(folder: Path):
    """Yields the bootstrap address of a new single-node broker in ``folder``."""
    bootstrap = subprocess.run([KAFKA_SH, "start", str(folder)], check=True, capture_output=True,
                               text=True).stdout.split()[-1]
    try:
        yield bootstrap
    finally:
        subprocess.run([KAFKA_SH, "stop", str(folder)], check=False, capture_output=True)


@contextlib.contextmanager
def worker_process(bootstrap: str, tmp: Path, *, partitions: int, app_id: str = "bench"):
    """Yields ``(process, log path)`` of one ``liveroom worker`` (group ``app_id``)."""
    env = {**os.environ, "LIVEROOM_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LIVEROOM_KAFKA_APP_ID": app_id,
           "LIVEROOM_KAFKA_PARTITIONS": str(partitions), "LIVEROOM_KAFKA_DATA_DIR": str(tmp / "data"),
           "LIVEROOM_KAFKA_WEB_PORT": os.environ.get("LIVEROOM_KAFKA_WEB_PORT", "0")}
    log = tmp / "worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "liveroom.cli", "worker", "--loglevel", "warning"], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        yield proc, log
    finally:
        proc.terminate()
        proc.wait(60)
