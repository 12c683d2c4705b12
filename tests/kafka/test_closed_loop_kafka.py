"""The budget guarantee on the real broker: the rooms and bidding agents in a
worker process, an ad server in this process that reads ``liveroom.bid-decisions``
and writes its spend reports and the viewers it buys back to ``liveroom.events``,
and the worker SIGKILLed mid-room and restarted from its changelogs."""

from __future__ import annotations

import heapq
import random
import threading
import time

import msgspec
import pytest

from bidding.models import BidDecision
from liveroom.kafka.topics import BID_DECISIONS, CAMPAIGNS, DEAD_LETTERS, EVENTS, KafkaConfig, create_topics
from streams.models import Campaign, McbSettings, RampSettings, ScheduledMoment

from bidding.closed_loop import T0, AdServer, room_events
from .harness import Worker, read_topic

pytestmark = pytest.mark.kafka


# The hostile run is the steady one too (its first 40% are the steady room, and it checks
# everything the steady run checked): two runs of about 45 s, not three.
@pytest.mark.parametrize("kill, hostile", [(True, False), (False, True)],
                         ids=["sigkill-mid-room", "steady-then-forged-report-then-deleted"])
def test_spend_stays_within_budget_through_kafka(broker, tmp_path, kill, hostile):
    """With ``hostile``: at 40% of the room a forged spend report (covers 2^52,
    total 0: it switched the guard off), at 70% the campaign deleted (a tombstone:
    the room kept bidding on it)."""
    from kafka import KafkaConsumer, KafkaProducer

    room, budget, duration = "room-k", 3.0, 150.0
    in_force = [budget]  # the budget the ad server checks caps against (raised once with ``hostile``)
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    campaign = Campaign(room_id=room, total_budget=budget,
                        ramp=RampSettings(window_s=60.0, budget=1.0, target_paid_entries=20, max_cost_per_entry=1.0),
                        mcb=McbSettings(duration_s=duration),
                        # a run of show, one moment planned mid-room: the plan weighs ticks by it
                        run_of_show=[ScheduledMoment(at=T0 + 60.0, duration_s=40.0, kind="flash_sale")])
    producer.send(CAMPAIGNS, key=room.encode(), value=msgspec.json.encode(campaign)).get(30)
    worker = Worker(broker.bootstrap, tmp_path, "w").start()
    rnd = random.Random(7)
    # Viewers cheap enough that the bidder's first, exploring caps (3% of the budget
    # before paid viewers' interactions show value) buy some: at 0.2 a cap of 0.09 buys
    # none, nothing is ever worth buying, and the room rightly stops at its allowance.
    ad = AdServer(room, rnd, price=0.02)
    clock = {"now": T0}  # the stream's event time, as the producer has sent it
    violations: list[str] = []
    applied: list[tuple[float, BidDecision]] = []  # (stream time when applied, decision)
    bought: list[tuple[float, bytes]] = []  # the paid viewers' events, sent when the stream reaches them
    lock = threading.Lock()
    stop = threading.Event()

    def serve() -> None:
        consumer = KafkaConsumer(BID_DECISIONS, bootstrap_servers=broker.bootstrap, group_id=None,
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        dec = msgspec.json.Decoder(BidDecision)
        try:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for r in records:
                        d = dec.decode(r.value)
                        if d.room_id != room or d.seq <= ad.applied:
                            continue  # not newer: ignored (the contract)
                        if d.spend_cap > 0 and ad.spent + d.spend_cap > in_force[0] + 1e-6:
                            violations.append(f"{d.seq}: {ad.spent} + {d.spend_cap} > {in_force[0]}")
                        now = clock["now"]
                        producer.send(EVENTS, key=room.encode(), value=ad.report(now, d.seq))
                        with lock:  # the viewers it buys come with the stream's time
                            for item in ad.apply(d, now):
                                heapq.heappush(bought, item)
                        applied.append((now, d))
        finally:
            consumer.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        events = room_events(room, rnd, duration)
        started = time.monotonic()
        killed = False
        sent: dict[str, float] = {}
        for ts, raw in events:  # 5x real time: decisions come back well within the grace period
            wait = (ts - T0) / 5.0 - (time.monotonic() - started)
            if wait > 0:
                time.sleep(wait)
            clock["now"] = ts
            with lock:
                while bought and bought[0][0] <= ts:
                    producer.send(EVENTS, key=room.encode(), value=heapq.heappop(bought)[1])
            producer.send(EVENTS, key=room.encode(), value=raw)
            if hostile and "forged" not in sent and ts - T0 > 0.4 * duration:
                sent["forged"] = ts
                producer.send(EVENTS, key=room.encode(), value=msgspec.json.encode(
                    {"event_id": "forged-1", "room_id": room, "ts": ts, "type": "spend", "amount": 0.0,
                     "covers": 1 << 52, "total": 0.0}))
            if hostile and "raised" not in sent and ts - T0 > 0.5 * duration:
                sent["raised"] = ts  # money to spend after the forged report: the budget raised by 3
                in_force[0] = 2 * budget
                producer.send(CAMPAIGNS, key=room.encode(), value=msgspec.json.encode(
                    msgspec.structs.replace(campaign, total_budget=2 * budget)))
            if hostile and "deleted" not in sent and ts - T0 > 0.7 * duration:
                sent["deleted"] = ts
                producer.send(CAMPAIGNS, key=room.encode(), value=None)
            if kill and not killed and ts - T0 > duration / 2:
                producer.flush()
                worker.kill()
                killed = True
                worker = Worker(broker.bootstrap, tmp_path, "w").start()
        producer.flush()
        time.sleep(10)  # the last ticks close on the silence timer; their decisions come back
    finally:
        stop.set()
        server.join(10)
        producer.close()
        worker.stop()
    assert not violations, violations
    assert ad.spent <= in_force[0] + 1e-6
    caps = [d for _, d in applied if d.spend_cap > 0]
    assert len(caps) >= 3, [d.reason for _, d in applied][:10]
    assert applied[-1][1].strategy == "paused"  # the room ended
    if kill:  # the restarted worker carried on from its changelogs
        assert any(t - T0 > duration / 2 + 10 for t, _ in applied)
    if hostile:
        dead = [msgspec.json.decode(v) for _, v in read_topic(broker.bootstrap, DEAD_LETTERS, idle_s=2.0)]
        assert [d["reason"] for d in dead] == ["spend_unissued"], dead
        # the guard kept taking the honest reports after the forged one (never "N decisions behind")
        assert not any("behind" in d.reason for t, d in applied if t > sent["forged"]), \
            [(round(t - T0), d.reason) for t, d in applied]
        # and it went on buying on them with the raised budget, until ...
        assert any(d.spend_cap > 0 for t, d in applied if sent["raised"] < t < sent["deleted"])
        # ... it stopped with the deletion: nothing but zero caps from a few ticks after it
        after = [d for t, d in applied if t > sent["deleted"] + 15]
        assert after and all(d.spend_cap == 0 for d in after)
        assert any("budget 0: no campaign" in d.reason for d in after), [d.reason for d in after]
