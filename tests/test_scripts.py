"""The scripts a newcomer runs say what they do in plain text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_kafka_fetch_prints_no_terminal_escapes_when_it_resolves_the_jars(tmp_path):
    scripts = tmp_path / "scripts"
    (scripts / "kafka").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "kafka.sh", scripts / "kafka.sh")
    shutil.copy(ROOT / "scripts" / "kafka" / "pom.xml", scripts / "kafka" / "pom.xml")  # no .classpath: Maven runs
    proc = subprocess.run(["bash", str(scripts / "kafka.sh"), "fetch"], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert b"\x1b" not in proc.stdout + proc.stderr, proc.stderr[:200]
    assert (scripts / "kafka" / ".classpath").stat().st_size > 0
