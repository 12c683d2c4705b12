"""The Kafka runtime at live-commerce scale, on the real broker: a hot room, and
losing nothing to a broker restart under a CPU burner."""

from __future__ import annotations

import time

import pytest

from liveroom.kafka.topics import DEAD_LETTERS, ROOM_METRICS, KafkaConfig, create_topics
from streams.models import DeadLetter, RoomMetrics
from sessions.folder import open_session
from sessions.synth import hot_room_session

from .harness import CpuBurner, Worker, by_room_and_tick, decode_all, latest_per_room, read_topic, wait_for
from .test_kafka_runtime import _produce_in_background, _summary_totals, _totals, embedded, wait_for_metrics

pytestmark = pytest.mark.kafka

CHANGELOGS = ("liveroom-room-state-changelog", "liveroom-room-parts-changelog")


def test_a_hot_room_keeps_its_audience_through_a_sigkill(broker, tmp_path):
    """200k distinct viewers in one room (its whole state was one 2+ MB table
    value, past Kafka's message size: the worker died at every restart). The
    worker is SIGKILLed mid-stream and restarted; every snapshot, the online
    count included, is the embedded replay's, and the changelog grows with the
    events, not with the room."""
    session = open_session(hot_room_session(tmp_path / "hot", viewers=200_000, events_per_s=10_000))
    want_metrics, _, summary = embedded(session, tmp_path)
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    worker = Worker(broker.bootstrap, tmp_path, "w").start()
    try:
        thread, produced = _produce_in_background(session, config, speed=2.0)  # 26 s of events in ~13 s
        wait_for(lambda: "processing partition" in worker.log(), 60, "the worker processing")
        time.sleep(4)
        worker.kill()
        time.sleep(2)
        worker.start()
        thread.join(180)
        got = wait_for_metrics(broker.bootstrap, want_metrics, timeout_s=240, workers=(worker,))
    finally:
        worker.stop()
    want_last = want_metrics[-1]
    assert want_last.online >= 190_000  # the generator's audience, still in the room
    assert latest_per_room(got)["hot-001"].online == want_last.online
    want = by_room_and_tick(want_metrics)
    for m in got:  # snapshots may repeat after the crash, each with the embedded values
        assert want[m.room_id][m.ts] == m
    events = summary["inputs"]
    changelog = sum(len(k or b"") + len(v or b"") for topic in CHANGELOGS for k, v in read_topic(broker.bootstrap, topic))
    print(f"hot room: {events} events, {produced['messages']} messages, changelog {changelog:,} bytes, "
          f"{changelog / events:.0f} bytes/event (with the SIGKILL's repeats)")
    assert changelog / events < 400  # the whole-state design wrote 2.3 KB per event at 10k viewers


def test_broker_restart_under_a_cpu_burner_loses_nothing(broker, synth_factory, tmp_path):
    """A broker restart stalls the producer for seconds while both cores are
    busy. The wall clock used to flush the stalled rooms and turn their next
    events late (2 of 2 runs on a loaded machine). Now only a room's own events
    make anything late, and idle partitions flush after 2 s here on purpose."""
    session = open_session(synth_factory(minutes=5, seed=22, rooms=4))
    _, _, summary = embedded(session, tmp_path)
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    with CpuBurner():
        worker = Worker(broker.bootstrap, tmp_path, "w", LIVEROOM_KAFKA_SILENCE_S="2").start()
        try:
            thread, produced = _produce_in_background(session, config, speed=15.0)
            time.sleep(6)
            broker.restart()  # same port and data; producer and worker must reconnect on their own
            thread.join(240)
            assert produced["sent"] > 0
            got = []

            def complete() -> bool:
                got[:] = decode_all(read_topic(broker.bootstrap, ROOM_METRICS, idle_s=2.0), RoomMetrics)
                latest = latest_per_room(got)
                return all(r in latest and _totals(latest[r]) == _summary_totals(t)
                           for r, t in summary["rooms"].items())

            try:
                wait_for(complete, 240, "every room's totals", interval_s=3.0)
            except AssertionError:
                pass  # reported room by room below
            assert worker.proc.poll() is None, "the worker died with the broker"
        finally:
            worker.stop()
    dead = decode_all(read_topic(broker.bootstrap, DEAD_LETTERS, idle_s=1.0), DeadLetter)
    assert [d.reason for d in dead if d.reason == "late"] == []
    latest = latest_per_room(got)
    for room, totals in summary["rooms"].items():
        assert _totals(latest[room]) == _summary_totals(totals), room


CLIP_EVENTS_50 = b"[" + b",".join(
    b'{"event_id":"c%d","room_id":"r1","clip_id":"k","ts":%d,"type":"clip_play","user_id":"u"}' % (i, 1_780_000_000 + i)
    for i in range(50)) + b"]"
ROOM_EVENTS_50 = b"[" + b",".join(
    b'{"event_id":"e%d","room_id":"r1","ts":%d,"type":"comment","user_id":"u"}' % (i, 1_780_000_000 + i)
    for i in range(50)) + b"]"


@pytest.mark.parametrize("topic,changelog,events", [
    ("liveroom.events", "liveroom-room-parts-changelog", ROOM_EVENTS_50),
    ("liveroom.clip-events", "liveroom-clip-parts-changelog", CLIP_EVENTS_50),
], ids=["rooms", "clips"])
def test_a_batch_whose_state_write_fails_is_never_committed(broker, tmp_path, topic, changelog, events):
    """The whole-state design committed a batch's offsets even when its state
    write failed (too large), so each restart moved the partition on by losing
    events. Here the parts changelog refuses records over 300 bytes: the worker
    says so, fails its health check and stops, and no offset of that batch is
    committed. The same for the clip loop's parts."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from .harness import committed_offsets, http_get

    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(changelog, 4, 1,
                                  topic_configs={"cleanup.policy": "compact", "max.message.bytes": "300"})])
    admin.close()
    worker = Worker(broker.bootstrap, tmp_path, "w").start()
    try:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send(topic, key=b"r1", value=events).get(30)
        producer.close()
        wait_for(lambda: "was not written" in worker.log(), 90, "the failed write reported")
        status = None
        try:  # while it is still up, it is not healthy
            status = http_get(f"{worker.web}/healthz")[0]
        except OSError:
            pass  # stopped already
        wait_for(lambda: worker.proc.poll() is not None, 60, "the worker stopped (for its supervisor to restart)")
        time.sleep(3)
        assert sum(committed_offsets(broker.bootstrap, "liveroom", topic).values()) == 0
        assert status in (None, 503), status
    finally:
        worker.stop()
