import shutil

import pytest

from .harness import Broker


@pytest.fixture
def broker(tmp_path):
    """A fresh single-node KRaft Apache Kafka broker on loopback for one test."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the real-broker tests need {' and '.join(missing)} on PATH (see scripts/kafka.sh)")
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
