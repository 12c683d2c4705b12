"""The streams core as Faust workers on a real Apache Kafka broker."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

from streams.config import CoreConfig
from liveroom.kafka.io import produce_session
from liveroom.embedded.run import run_embedded
from liveroom.embedded.output_folder import safe_name
from liveroom.settings import Settings
from liveroom.kafka.app import FetchedMessage, fetch_range, offset_gaps
from liveroom.kafka.topics import BID_DECISIONS, DEAD_LETTERS, EVENTS, MOMENTS, ROOM_METRICS, KafkaConfig, create_topics
from streams.models import DeadLetter, Moment, RoomMetrics
from liveroom.embedded.replay import read_jsonl, replay_session
from sessions.folder import open_session

from .harness import Worker, by_room_and_tick, decode_all, latest_per_room, read_topic, wait_for, wait_for_metrics

pytestmark = pytest.mark.kafka


def embedded(session, tmp_path):
    out = tmp_path / "embedded"
    result = replay_session(session, out, CoreConfig())
    return (read_jsonl(out / "room-metrics.jsonl", RoomMetrics), read_jsonl(out / "moments.jsonl", Moment),
            result.summary)


def embedded_decisions(session, tmp_path) -> bytes:
    out = tmp_path / "embedded-cli"
    run_embedded(session, out, Settings(), report=False)
    return (out / "bid-decisions.jsonl").read_bytes()


def test_kafka_replay_matches_embedded(broker, sample_session, tmp_path):
    session = open_session(sample_session)
    want_metrics, want_moments, _ = embedded(session, tmp_path)
    want_decisions = embedded_decisions(session, tmp_path)
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    worker = Worker(broker.bootstrap, tmp_path, "w1").start()
    try:
        produce_session(session, config)
        got = wait_for_metrics(broker.bootstrap, want_metrics, workers=(worker,))
        moments = decode_all(read_topic(broker.bootstrap, MOMENTS, idle_s=2.0), Moment)
        decisions: list[bytes] = []

        def all_decisions() -> bool:
            decisions[:] = [v for _, v in read_topic(broker.bootstrap, BID_DECISIONS, idle_s=2.0)]
            return len(decisions) >= want_decisions.count(b"\n")

        wait_for(all_decisions, 60, "bid decisions", interval_s=1.0)
    finally:
        worker.stop()
    assert len(got) == len(want_metrics)  # no snapshot twice
    assert by_room_and_tick(got) == by_room_and_tick(want_metrics)  # same values per room and tick
    assert sorted(moments, key=lambda m: m.start) == want_moments
    # the decision log is byte-identical to the embedded replay's (one room: one partition, in order)
    assert b"\n".join(decisions) + b"\n" == want_decisions


def _totals(m: RoomMetrics) -> tuple:
    return (m.interactions_total, m.organic_entries_total, m.paid_entries_total, m.orders_total, m.gmv_total,
            m.spend_total, m.gift_value_total)


def _summary_totals(room: dict) -> tuple:
    return (room["interactions"], room["organic_entries"], room["paid_entries"], room["orders"], room["gmv"],
            room["spend"], room["gift_value"])


def _produce_in_background(session, config, speed):
    result = {}
    thread = threading.Thread(target=lambda: result.update(produce_session(session, config, speed=speed)))
    thread.start()
    return thread, result


def test_two_workers_split_partitions_and_survive_sigkill(broker, synth_factory, tmp_path):
    session = open_session(synth_factory(minutes=6, seed=21, rooms=8))
    want_metrics, _, summary = embedded(session, tmp_path)
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    # silence_s well above the rebalance pauses a SIGKILL causes (session timeout 6 s)
    a = Worker(broker.bootstrap, tmp_path, "a", LIVEROOM_KAFKA_SILENCE_S="10").start()
    b = Worker(broker.bootstrap, tmp_path, "b", LIVEROOM_KAFKA_SILENCE_S="10").start()
    try:
        thread, _ = _produce_in_background(session, config, speed=15.0)  # 6 min of events in ~25 s
        wait_for(lambda: "processing partition" in a.log() and "processing partition" in b.log(), 60,
                 "both workers processing")
        time.sleep(5)
        b.kill()  # SIGKILL mid-stream: no goodbye to the group, no flush
        time.sleep(4)
        b.start()
        thread.join(120)
        got = wait_for_metrics(broker.bootstrap, want_metrics, timeout_s=180, workers=(a, b))
    finally:
        a.stop()
        b.stop()
    assert a.log().count("processing partition") >= 1 and b.log().count("processing partition") >= 1
    dead = decode_all(read_topic(broker.bootstrap, DEAD_LETTERS, idle_s=1.0), DeadLetter)
    print("dead letters:", sorted((d.reason, d.room_id) for d in dead)[:20], len(dead))
    latest = latest_per_room(got)
    assert set(latest) == set(summary["rooms"])
    for room, totals in summary["rooms"].items():
        assert _totals(latest[room]) == _summary_totals(totals), room  # nothing lost, nothing counted twice
    # snapshots may repeat after the crash (at-least-once), but each tick's values are the embedded ones
    want = by_room_and_tick(want_metrics)
    for m in got:
        assert want[m.room_id][m.ts] == m


BAD_METRICS = b'{"room_id":"\xff"}'


def test_malformed_and_oversized_messages_become_dead_letters(broker, tmp_path):
    """Poison bytes mid-batch (invalid UTF-8, JSON nested thousands deep) once
    crashed the rooms agent and lost the rest of its batch; bad campaigns and
    snapshots reach the bidding agent too. Every one is a dead letter, every
    valid event around them is processed, and the worker keeps running."""
    import hashlib

    from kafka import KafkaProducer

    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    worker = Worker(broker.bootstrap, tmp_path, "w").start()
    t0 = 1_780_000_000.0
    enc = msgspec.json.encode
    oversized = enc({"event_id": "x3", "room_id": "r1", "ts": t0, "type": "comment", "user_id": "u", "text": "y" * 4000,
                     "pad": "z" * 70_000})
    bad = [
        ("liveroom.events", b"r1", b"{definitely not json", "malformed_json"),
        ("liveroom.events", b"r1", enc({"event_id": "x1", "room_id": "r1", "ts": t0, "type": "order", "user_id": "u",
                                        "sku": "s", "amount": -5}), "invalid_event"),
        ("liveroom.events", b"r1", enc({"event_id": "x2", "room_id": "r1", "ts": t0, "type": "levitate"}),
         "unknown_type"),
        ("liveroom.events", b"r1", oversized, "oversized"),
        ("liveroom.events", b"r2", enc({"event_id": "x4", "room_id": "r1", "ts": t0, "type": "like", "user_id": "u"}),
         "key_mismatch"),
        ("liveroom.events", None, enc({"event_id": "x5", "room_id": "r1", "ts": t0, "type": "like", "user_id": "u"}),
         "key_mismatch"),
        ("liveroom.events", b"r1", b'{"event_id":"a\xff","room_id":"r1","ts":1780000020,"type":"comment","user_id":"u"}',
         "invalid_utf8"),
        ("liveroom.events", b"r1", b'{"pad":' + b"[" * 20_000 + b"]" * 20_000 + b"}", "too_deep"),
        ("liveroom.events", b"\xff\xfe", b'{"event_id":"x6","room_id":"r1","ts":1780000021,"type":"share",'
                                         b'"user_id":"u"}', "key_mismatch"),
        ("liveroom.campaigns", b"r1", b'{"room_id":"r1","total_budget":"\xff"}', "invalid_campaign"),
        ("liveroom.campaigns", b"r1", b'{"room_id":' + b"[" * 20_000 + b"]" * 20_000 + b"}", "invalid_campaign"),
        ("liveroom.campaigns", b"r9", enc({"room_id": "r1", "total_budget": 10.0}), "key_mismatch"),
        ("liveroom.campaigns", b"r1", enc({"room_id": "r1", "total_budget": 10.0,
                                           "run_of_show": [{"at": 1780000000.0, "duration_s": -60.0}]}),
         "invalid_campaign"),
        ("liveroom.room-metrics", b"r1", BAD_METRICS, "invalid_metrics"),
    ]
    good = [enc({"event_id": f"g{i}", "room_id": "r1", "ts": t0 + i, "type": "comment", "user_id": "u"})
            for i in range(100)]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=2_000_000, linger_ms=200)
    try:
        # poison in the middle of what the agent takes as one batch
        for value in good[:20]:
            producer.send("liveroom.events", key=b"r1", value=value)
        for topic, key, value, _ in bad:
            producer.send(topic, key=key, value=value)
        for value in good[20:]:
            producer.send("liveroom.events", key=b"r1", value=value)
        producer.flush()
        got: list[DeadLetter] = []

        def all_dead() -> bool:
            got[:] = decode_all(read_topic(broker.bootstrap, DEAD_LETTERS, idle_s=1.5), DeadLetter)
            return len(got) >= len(bad)

        wait_for(all_dead, 90, "dead letters", interval_s=1.0)
        metrics = wait_for_metrics(broker.bootstrap, 20, timeout_s=60, skip=BAD_METRICS)
        assert worker.proc.poll() is None, worker.log()[-3000:]
        assert "Traceback" not in worker.log(), worker.log()[-3000:]
    finally:
        producer.close()
        worker.stop()
    assert sorted(d.reason for d in got) == sorted(r for *_, r in bad)
    kept = {d.raw for d in got}
    assert {v for _, _, v, _ in bad if v is not oversized} <= kept  # raw bytes kept whole
    [long] = [d for d in got if d.reason == "oversized"]  # past dead_letter_max_raw: prefix, length, hash
    assert long.raw == oversized[:65536] and long.raw_bytes == len(oversized)
    assert long.raw_sha256 == hashlib.sha256(oversized).hexdigest()
    assert all(d.source.startswith(("liveroom.events/", "liveroom.campaigns/", "liveroom.room-metrics/"))
               for d in got)
    assert latest_per_room(metrics)["r1"].interactions_total["comment"] == 100


def _highlight_worker(broker, sample_session, tmp_path, *args: str, recording: bool = True, before=(),
                      rooms: int = 1):
    """The sample session's events on the broker (after the raw messages ``before``),
    its folder as the room's recording (unless not ``recording``), and one
    ``liveroom highlight-worker`` run until ``rooms`` rooms ended. Returns the
    session and the manifests published on liveroom.clips."""
    import os
    import shutil
    import subprocess
    import sys

    from kafka import KafkaProducer

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    if recording:
        shutil.copytree(sample_session, recordings / "room-001")
    session = open_session(recordings / "room-001" if recording else sample_session)
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    if before:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for key, value in before:
            producer.send(EVENTS, key=key, value=value)
        producer.close()
    produce_session(session, config)  # ends with the room's room_end
    proc = subprocess.run([sys.executable, "-m", "liveroom.cli", "highlight-worker", "--kafka", broker.bootstrap,
                           "--recordings", str(recordings), "--clips", str(tmp_path / "clips"), "--max-rooms",
                           str(rooms), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LIVEROOM_HIGHLIGHT_WEB_PORT": "0"})  # no pages: tests may overlap
    assert proc.returncode == 0, proc.stderr[-2000:]
    return session, [msgspec.json.decode(v) for _, v in read_topic(broker.bootstrap, "liveroom.clips", idle_s=2.0)]


def test_highlight_worker_cuts_clips_when_a_room_ends(broker, sample_session, tmp_path):
    _, manifests = _highlight_worker(broker, sample_session, tmp_path)
    assert len(manifests) == 1 and manifests[0]["room_id"] == "room-001" and "error" not in manifests[0]
    assert manifests[0]["final"] and len(manifests[0]["clips"]) >= 2
    for clip in manifests[0]["clips"]:
        assert (tmp_path / "clips" / safe_name("room-001") / clip["file"]).stat().st_size > 0


def test_highlight_worker_never_crashes_on_messages_and_never_uses_room_ids_as_paths(broker, sample_session,
                                                                                     tmp_path):
    """A poison message once made the highlight worker exit at every restart, and
    room ids like ``/abs/victim`` or ``../../victim`` made it read ``victim.mp4``
    and write ``victim/part-01`` outside its folders."""
    import shutil

    victim = tmp_path / "x" / "victim"
    victim.parent.mkdir()
    shutil.copy(sample_session / "video.mp4", victim.parent / "victim.mp4")
    enc = msgspec.json.encode
    t0 = 1_780_000_000.0
    hostile = [str(victim), "../../x/victim", "../x/victim"]
    before = [(b"r", b'{"event_id":"a\xff","room_id":"r","ts":1780000200,"type":"room_end","user_id":"u"}'),
              (b"r", b'{"pad":' + b"[" * 20_000 + b"]" * 20_000 + b"}")]
    for i, room in enumerate(hostile):
        before += [(room.encode(), enc({"event_id": f"s{i}", "room_id": room, "ts": t0, "type": "room_start"})),
                   (room.encode(), enc({"event_id": f"e{i}", "room_id": room, "ts": t0 + 60, "type": "room_end"}))]
    _, manifests = _highlight_worker(broker, sample_session, tmp_path, before=before, rooms=len(hostile) + 1)
    by_room = {m["room_id"]: m for m in manifests}
    for room in hostile:
        assert by_room[room]["final"] and by_room[room]["clips"] == [] and "no recording" in by_room[room]["error"]
    assert not victim.exists() and sorted(p.name for p in victim.parent.iterdir()) == ["victim.mp4"]
    real = by_room["room-001"]
    assert "error" not in real and len(real["clips"]) >= 2
    clips = tmp_path / "clips"
    assert sorted(p.name for p in clips.iterdir()) == [safe_name("room-001")]
    for clip in real["clips"]:
        assert (clips / safe_name("room-001") / clip["file"]).stat().st_size > 0


def test_highlight_worker_without_a_recording_says_so_once(broker, sample_session, tmp_path):
    _, manifests = _highlight_worker(broker, sample_session, tmp_path, "--segment-s", "180", recording=False)
    assert len(manifests) == 1 and manifests[0]["final"] and manifests[0]["clips"] == []
    assert "no recording of room room-001" in manifests[0]["error"]


def test_highlight_worker_cuts_a_running_broadcast_in_parts(broker, sample_session, tmp_path):
    from highlight.pipeline import iou

    # 8 minutes in parts of 3: parts end at 180 and 360 s while the room runs, then the rest at room_end
    session, manifests = _highlight_worker(broker, sample_session, tmp_path, "--segment-s", "180")
    assert [m["final"] for m in manifests] == [False, False, True]
    assert [m["segment"][1] for m in manifests[:2]] == [180.0, 360.0]
    live = [c for m in manifests[:2] for c in m["clips"]]
    final = manifests[-1]["clips"]
    assert live and all(c in final for c in live)  # clips cut while the room ran are part of the final list
    spans = sorted((c["start"], c["end"]) for c in final)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no clip twice, no overlaps
    labels = msgspec.json.decode(session.labels_path.read_bytes())
    t0 = session.info.start
    for moment in labels["moments"]:  # every planted moment, whichever part it fell in
        assert any(iou((c["start"], c["end"]), (moment["start"] - t0, moment["end"] - t0)) >= 0.5 for c in final)
    for decoy in labels["decoys"]:
        assert not any(min(c["end"], decoy["end"] - t0) > max(c["start"], decoy["start"] - t0) for c in final)
    for clip in final:
        assert (tmp_path / "clips" / safe_name("room-001") / clip["file"]).stat().st_size > 0


def test_offsets_faust_skipped_are_found_and_read_back(broker):
    """The runtime's guard against a message Faust passes over around a rebalance."""
    from faust.types import TP
    from kafka import KafkaProducer

    tp = TP(EVENTS, 1)
    msg = lambda offset: FetchedMessage(tp, b"r", b"", 1, offset)  # noqa: E731
    assert offset_gaps({tp: 9}, [msg(10), msg(11)]) == []
    assert offset_gaps({tp: 9}, [msg(4), msg(5), msg(6)]) == []  # re-delivered after a rebalance
    assert offset_gaps({tp: 9}, [msg(12), msg(13), msg(16)]) == [(tp, 10, 12), (tp, 14, 16)]
    assert offset_gaps({}, [msg(30), msg(31)]) == []  # a new partition starts where the group committed
    # ... and one that resumes past the group's committed offset has a hole to read back
    assert offset_gaps({}, [msg(30), msg(31)], {tp: 30}) == []
    assert offset_gaps({}, [msg(30), msg(31)], {tp: 25}) == [(tp, 25, 30)]
    assert offset_gaps({}, [msg(30)], {tp: None}) == []  # nothing committed: no start to hold it to
    assert offset_gaps({tp: 40}, [msg(41)], {tp: 25}) == []  # what we processed is newer than the commit
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    producer = KafkaProducer(**config.kafka_python_options())
    for i in range(20):
        producer.send(EVENTS, key=b"r", value=f"{i}".encode(), partition=1)
    producer.flush()
    got = fetch_range(config, tp, 5, 9)
    assert [(m.offset, m.value) for m in got] == [(o, f"{o}".encode()) for o in range(5, 9)]
    assert all(m.tp == tp and m.key == b"r" for m in got)
