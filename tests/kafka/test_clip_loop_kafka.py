"""The clip loop's Faust agent on the real broker: a session's clip events give
the same clip stats and promotions as the embedded replay, byte for byte, and a
hostile message is a dead letter, not a crash."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from liveroom.embedded.clip_replay import CLIP_STATS_FILE, PROMOTIONS_FILE
from liveroom.cli import main
from liveroom.kafka.topics import CLIP_EVENTS, CLIP_STATS, DEAD_LETTERS, PROMOTIONS

from .harness import Worker, read_topic, wait_for

pytestmark = pytest.mark.kafka


def test_clip_loop_on_kafka_equals_embedded(broker, synth_factory, tmp_path):
    session = synth_factory(minutes=3, seed=4, clip_days=2)
    out = tmp_path / "embedded"
    assert CliRunner().invoke(main, ["replay", str(session), "--out", str(out), "--no-report"]).exit_code == 0
    want_stats = (out / CLIP_STATS_FILE).read_bytes().splitlines()
    want_promotions = (out / PROMOTIONS_FILE).read_bytes().splitlines()
    assert want_stats and want_promotions
    worker = Worker(broker.bootstrap, tmp_path, "w").start()
    try:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send(CLIP_EVENTS, key=b"room-001", value=b'{"type": "clip_like", "room_id": "room-001"}')
        producer.close()
        result = CliRunner().invoke(main, ["replay", str(session), "--kafka", broker.bootstrap])
        assert result.exit_code == 0 and "clip events to liveroom.clip-events" in result.output, result.output
        got: dict = {}

        def complete() -> bool:
            got["stats"] = [v for _, v in read_topic(broker.bootstrap, CLIP_STATS, idle_s=2.0)]
            got["promotions"] = [v for _, v in read_topic(broker.bootstrap, PROMOTIONS, idle_s=1.0)]
            return len(got["stats"]) >= len(want_stats) and len(got["promotions"]) >= len(want_promotions)

        wait_for(complete, 180, "the clip stats and promotions", interval_s=2.0)
        dead = [v for _, v in read_topic(broker.bootstrap, DEAD_LETTERS, idle_s=1.0)]
    finally:
        worker.stop()
    assert got["stats"] == want_stats  # one room: one partition, in order
    assert got["promotions"] == want_promotions
    assert len(dead) == 1 and b"invalid_event" in dead[0]
    assert "Traceback" not in worker.log()
