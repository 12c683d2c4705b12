"""The Kafka runtime through a platform's day, on the real broker: outputs that
do not depend on where a fetch was cut, and rooms that are let go."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from liveroom.embedded.replay import read_jsonl, replay_session
from liveroom.embedded.run import run_embedded
from liveroom.kafka.io import produce_session
from liveroom.kafka.topics import BID_DECISIONS, MOMENTS, ROOM_METRICS, KafkaConfig, create_topics
from liveroom.settings import Settings
from sessions.folder import open_session
from sessions.synth import churn_session
from streams.config import CoreConfig
from streams.models import Moment, RoomMetrics
from streams.room_parts import finished_at, room_of

from .harness import Worker, by_room_and_tick, decode_all, http_get, read_topic, wait_for, wait_for_metrics

pytestmark = pytest.mark.kafka


def _decisions_by_room(lines) -> dict:
    out: dict = defaultdict(list)
    for line in lines:
        out[json.loads(line)["room_id"]].append(line)
    return dict(out)


def test_quiet_rooms_read_in_small_fetches_equal_the_embedded_replay(broker, synth_factory, tmp_path):
    """24 quiet rooms whose ticks their partitions' clocks close, produced at 120x
    while the worker reads them 7 messages a fetch: every snapshot key by key,
    every moment and every room's bid decisions are the embedded replay's."""
    session = open_session(synth_factory(rooms=24, minutes=6, seed=7, shape="quiet"))
    out = tmp_path / "embedded"
    run_embedded(session, out, Settings(), report=False)
    want = read_jsonl(out / "room-metrics.jsonl", RoomMetrics)
    want_moments = read_jsonl(out / "moments.jsonl", Moment)
    want_decisions = _decisions_by_room((out / "bid-decisions.jsonl").read_bytes().splitlines())
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    worker = Worker(broker.bootstrap, tmp_path, "w1", LIVEROOM_KAFKA_BATCH_MAX="7").start()
    try:
        produce_session(session, config, speed=120.0)  # consumed while it is produced, as live
        got = wait_for_metrics(broker.bootstrap, want, workers=(worker,))
        decisions: dict = {}

        def all_decisions() -> bool:
            decisions.update(_decisions_by_room(v for _, v in read_topic(broker.bootstrap, BID_DECISIONS, idle_s=2.0)))
            return sum(map(len, decisions.values())) >= sum(map(len, want_decisions.values()))

        wait_for(all_decisions, 90, "bid decisions", interval_s=2.0)
        moments = decode_all(read_topic(broker.bootstrap, MOMENTS, idle_s=2.0), Moment)
    finally:
        worker.stop()
    assert len(got) == len(want)  # no snapshot twice
    assert by_room_and_tick(got) == by_room_and_tick(want)
    assert sorted(moments, key=lambda m: (m.room_id, m.start)) == sorted(want_moments, key=lambda m: (m.room_id, m.start))
    assert decisions == want_decisions


def _latest(records) -> dict:
    out = {}
    for key, value in records:
        out[key] = value
    return out


def _bidding_left(broker, finished: set[str]) -> set[str]:
    """Finished rooms whose bidding state is still in its changelog."""
    states = _latest(read_topic(broker.bootstrap, "liveroom-bidding-state-changelog", idle_s=2.0))
    return {k.decode() for k, v in states.items() if v is not None} & finished


def test_a_churn_lets_its_rooms_go_and_a_restart_restores_only_live_ones(broker, tmp_path):
    """600 rooms of a minute, about 20 live at once: the worker holds the live
    ones (plus those within grace + quiet of their end), each finished room is a
    tombstone on the metrics, its parts and bidding state are deleted and its head
    is a marker; a restarted worker holds no more rooms than before."""
    folder = churn_session(tmp_path / "churn", rooms=600, live=20, room_s=60.0, seed=5)
    session = open_session(folder)
    summary = replay_session(session, tmp_path / "embedded", CoreConfig()).summary
    want = read_jsonl(tmp_path / "embedded" / "room-metrics.jsonl", RoomMetrics)
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    worker = Worker(broker.bootstrap, tmp_path, "w1", LIVEROOM_KAFKA_SILENCE_S="600").start()
    try:
        produce_session(session, config)
        finished: set[str] = set()

        def all_finished() -> bool:
            finished.update(k.decode() for k, v in read_topic(broker.bootstrap, ROOM_METRICS, idle_s=2.0)
                            if v is None)
            return len(finished) >= summary["rooms_finished"]

        wait_for(all_finished, 120, f"{summary['rooms_finished']} rooms finished", interval_s=2.0)
        leftover: set[str] = set()

        def bidding_let_go() -> bool:  # the bidding agent may lag the rooms: it catches up with their tombstones
            leftover.clear()
            leftover.update(_bidding_left(broker, finished))
            return not leftover

        wait_for(bidding_let_go, 120, "the bidding state of every finished room deleted", interval_s=3.0)
        status = json.loads(http_get(worker.web + "/status")[1])
        held = status["rooms"]
        worker.kill()
        worker = Worker(broker.bootstrap, tmp_path, "w2", LIVEROOM_KAFKA_SILENCE_S="3").start()
        got = wait_for_metrics(broker.bootstrap, want, workers=(worker,))  # the last rooms, flushed when idle
        wait_for(lambda: json.loads(http_get(worker.web + "/status")[1])["rooms"] > 0, 60, "live rooms restored")
        after = json.loads(http_get(worker.web + "/status")[1])["rooms"]
        print("finished rooms whose bidding state survived the restart:", len(_bidding_left(broker, finished)))
    finally:
        worker.stop()
    assert len(finished) == summary["rooms_finished"] >= 500
    assert held <= 20 + (10 + 30) / 3 + 8, held  # live, plus a room every 3 s within grace + quiet (per partition)
    assert after <= held
    assert by_room_and_tick(got) == by_room_and_tick(want)
    parts = _latest(read_topic(broker.bootstrap, "liveroom-room-parts-changelog", idle_s=2.0))
    assert not {room_of(k)[1] for k, v in parts.items() if v is not None} & finished
    heads = _latest(read_topic(broker.bootstrap, "liveroom-room-state-changelog", idle_s=2.0))
    # a marker, or past its retention (10 min of event time) a tombstone too; the recent ones are markers
    assert all(heads[room.encode()] is None or finished_at(heads[room.encode()]) is not None for room in finished)
    assert sum(heads[room.encode()] is not None for room in finished) >= 100
