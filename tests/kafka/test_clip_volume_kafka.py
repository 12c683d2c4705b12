"""A busy clip hour on the real broker: tens of thousands of clip events for one
clip in one open hour, in envelopes, with a SIGKILL in the middle of the hour
and copies sent again after it. The hour's stats and the promotions are the
embedded core's exactly (nothing lost, nothing counted twice) and no state
record comes near the broker's message size."""

from __future__ import annotations

import random

import msgspec
import pytest

from cliploop.core import ClipLoopCore
from cliploop.events import ClipPublish
from cliploop.models import ClipLoopConfig, ClipStats, Promotion
from liveroom.kafka.clips import PARTS_TABLE
from liveroom.kafka.topics import CLIP_EVENTS, CLIP_STATS, DEAD_LETTERS, PROMOTIONS, KafkaConfig, create_topics

from .harness import Worker, committed_offsets, read_topic, wait_for

pytestmark = pytest.mark.kafka

ROOM = "room-busy"
T0 = 1_780_000_000.0 - 1_780_000_000.0 % 3600
EVENTS = 48_000
ENVELOPE = 200


def _busy_hour() -> tuple[list[bytes], list[bytes]]:
    """One room, two clips, the first very busy; then (the tail) a few events past
    the hour's grace: they close it by event time and open the next hour (closed
    by the idle flush)."""
    rng = random.Random(11)
    events = [msgspec.json.encode(ClipPublish(event_id=f"{c}-p", room_id=ROOM, clip_id=c, ts=T0 + 5 + i, score=4.0 + i,
                                              length_s=30.0, position=0.3)) for i, c in enumerate(("c1", "c2"))]
    kinds = ({"type": "clip_impression", "count": 5}, {"type": "clip_impression", "count": 2, "promoted": True},
             {"type": "clip_play", "user_id": "u"}, {"type": "clip_complete", "user_id": "u", "watch_ratio": 0.37},
             {"type": "clip_click", "user_id": "u"}, {"type": "enter", "user_id": "u", "source": "clip"},
             {"type": "clip_order", "user_id": "u", "amount": 19.99})
    for n in range(EVENTS):
        clip = "c1" if n % 10 else "c2"
        events.append(msgspec.json.encode({"event_id": f"e{n}", "room_id": ROOM, "clip_id": clip,
                                           "ts": T0 + 10 + 3500 * n / EVENTS, **rng.choice(kinds)}))
    tail = []
    for n in range(30):
        tail.append(msgspec.json.encode({"event_id": f"t{n}", "room_id": ROOM, "clip_id": "c1",
                                           "ts": T0 + 3600 + 310 + n, "type": "clip_play", "user_id": "u"}))
    return events, tail


def _envelopes(events: list[bytes]) -> list[bytes]:
    return [b"[" + b",".join(events[i:i + ENVELOPE]) + b"]" for i in range(0, len(events), ENVELOPE)]


def test_a_busy_clip_hour_survives_a_kill_and_restarts_exactly(broker, tmp_path):
    events, tail = _busy_hour()
    copies = _envelopes(random.Random(3).sample(events[:len(events) // 2], 2_000))  # sent again after the restart
    messages = _envelopes(events)
    ending = copies + _envelopes(tail)
    core = ClipLoopCore(ClipLoopConfig())
    for i, m in enumerate(messages + ending):
        core.feed(m, f"m{i}")
    core.flush()
    want_stats, want_promotions, dead = core.drain()
    assert not dead and core.accounting()["duplicates"] == 2_000 and len(want_stats) == 3

    from kafka import KafkaProducer

    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, max_request_size=4 << 20)
    key = ROOM.encode()
    first, second = len(messages) * 2 // 5, len(messages) * 3 // 5
    idle = {"LIVEROOM_KAFKA_BATCH_MAX": "20", "LIVEROOM_CLIP_IDLE_S": "20"}  # the pauses below are no end
    w1 = Worker(broker.bootstrap, tmp_path, "w1", **idle).start()
    w2 = None
    try:
        for m in messages[:first]:
            producer.send(CLIP_EVENTS, key=key, value=m)
        producer.flush()
        wait_for(lambda: sum(committed_offsets(broker.bootstrap, "liveroom", CLIP_EVENTS).values()) >= first, 90,
                 "the first part committed")
        for m in messages[first:second]:  # killed while these are being taken: some in the state, some not
            producer.send(CLIP_EVENTS, key=key, value=m)
        producer.flush()
        w1.kill()
        w2 = Worker(broker.bootstrap, tmp_path, "w2", **idle).start()
        for m in messages[second:] + ending:
            producer.send(CLIP_EVENTS, key=key, value=m)
        producer.flush()
        got: dict = {}

        def complete() -> bool:
            got["stats"] = [msgspec.json.decode(v, type=ClipStats) for _, v in
                            read_topic(broker.bootstrap, CLIP_STATS, idle_s=2.0)]
            return len({(s.clip_id, s.ts) for s in got["stats"]}) >= len(want_stats)

        wait_for(complete, 180, "the busy hour's stats", interval_s=2.0)
        promotions = [msgspec.json.decode(v, type=Promotion) for _, v in
                      read_topic(broker.bootstrap, PROMOTIONS, idle_s=1.0)]
        dead_letters = read_topic(broker.bootstrap, DEAD_LETTERS, idle_s=1.0)
        changelog = read_topic(broker.bootstrap, f"liveroom-{PARTS_TABLE}-changelog", idle_s=2.0)
    finally:
        producer.close()
        for w in (w1, w2):
            if w is not None:
                w.stop()
    # at least once: a batch redone after the kill repeats its outputs; the newest of each counts
    newest = {(s.clip_id, s.ts): s for s in got["stats"]}
    assert sorted(newest.values(), key=lambda s: (s.ts, s.clip_id)) == \
        sorted(want_stats, key=lambda s: (s.ts, s.clip_id))
    assert {p.seq: p for p in promotions} == {p.seq: p for p in want_promotions}
    assert dead_letters == []
    largest = max(len(k) + len(v or b"") for k, v in changelog)
    assert largest <= 128 * 1024 + 256, largest  # a full chunk of id hashes at most: far under 256 KB
    for w in (w1, w2):
        assert "Traceback" not in w.log() and "was not written" not in w.log()
