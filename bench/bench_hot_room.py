"""One hot room on a real broker: 1M viewers online, 10k events/s offered.

Starts a broker (scripts/kafka.sh) and one ``liveroom worker``, then offers a
synthetic hot room (``sessions.synth.hot_room_session``: 1M distinct viewers
entering, 5% leaving, likes and comments) in real time, in envelopes. Samples
the consumer lag (events produced minus events committed) every half second.
Prints: events/s offered and processed, the worst lag and the lag once the
input ends, changelog bytes per event (keys and values of both state
changelogs, read back), the worker's peak RSS, and the ratio processed/offered
(the limit: what was offered, in the same run). Asserts nothing.

    python bench/bench_hot_room.py [--viewers 1000000 --rate 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.kafka_runs import fresh_broker, worker_process  # noqa: E402
from liveroom.kafka.io import produce_session  # noqa: E402
from liveroom.kafka.topics import EVENTS, ROOM_METRICS, KafkaConfig, create_topics  # noqa: E402
from sessions.folder import open_session  # noqa: E402
from sessions.synth import hot_room_session  # noqa: E402

CHANGELOGS = ("bench-room-state-changelog", "bench-room-parts-changelog")


def offsets(bootstrap: str, group: str) -> tuple[int, int]:
    """(end offsets summed, committed offsets summed) of the events topic."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(EVENTS, p) for p in consumer.partitions_for_topic(EVENTS) or ()]
        end = sum(consumer.end_offsets(parts).values())
        done = admin.list_group_offsets(group).get(group, {})  # kafka-python 3.x name and shape
        return end, sum(m.offset for tp, m in done.items() if tp.topic == EVENTS and m.offset > 0)
    finally:
        consumer.close()
        admin.close()


def newest_snapshot_ts(bootstrap: str) -> float | None:
    """Event time of the newest snapshot on the metrics topic."""
    newest = newest_snapshot(bootstrap)
    return newest["ts"] if newest is not None else None


def newest_snapshot(bootstrap: str) -> dict | None:
    """The newest snapshot on the metrics topic (the last record of each partition)."""
    import msgspec
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(ROOM_METRICS, p) for p in consumer.partitions_for_topic(ROOM_METRICS) or ()]
        consumer.assign(parts)
        ends = consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, max(0, ends[tp] - 1))
        newest = None
        for records in consumer.poll(timeout_ms=2000).values():
            for r in records:
                snapshot = msgspec.json.decode(r.value)
                if newest is None or snapshot["ts"] > newest["ts"]:
                    newest = snapshot
        return newest
    finally:
        consumer.close()


def topic_bytes(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             enable_auto_commit=False, fetch_max_bytes=64 << 20)
    total, last = 0, time.monotonic()
    try:
        while time.monotonic() - last < 5:
            for records in consumer.poll(timeout_ms=1000, max_records=100_000).values():
                total += sum(len(r.key or b"") + len(r.value or b"") for r in records)
                last = time.monotonic()
    finally:
        consumer.close()
    return total


def expected_last(session):
    """The embedded replay's last snapshot of the same session."""
    from streams.config import CoreConfig
    from streams.core import StreamCore
    from sessions.folder import LineReader

    core = StreamCore(CoreConfig())
    for lines in LineReader(session.events_path).chunks():
        core.feed_many(lines, 1)
        core.drain()
    core.flush()
    return core.drain()[0][-1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--viewers", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=10_000.0, help="events/s offered")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--speed", type=float, default=1.0, help="x real time; 0: as fast as the producer goes")
    ap.add_argument("--kill-at", type=float, default=None, metavar="S",
                    help="SIGKILL the worker S seconds into the offer and start another at once")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        session = open_session(hot_room_session(tmp / "hot", viewers=args.viewers, events_per_s=args.rate))
        want = expected_last(session)
        with fresh_broker(tmp / "broker") as bootstrap:
            config = KafkaConfig(bootstrap_servers=bootstrap, partitions=args.partitions)
            create_topics(config)
            with contextlib.ExitStack() as workers:
                worker, log = workers.enter_context(worker_process(bootstrap, tmp, partitions=args.partitions))
                killed = resumed = None
                time.sleep(15)  # the worker joins its group before the room opens
                produced: dict = {}
                offered_at = time.perf_counter()
                thread = threading.Thread(target=lambda: produced.update(
                    produce_session(session, config, speed=args.speed)), daemon=True)
                thread.start()
                worst = 0
                delays = []  # event time offered minus the newest snapshot's, less the grace a tick waits
                wait_s = 10.0
                while thread.is_alive():
                    end, done = offsets(bootstrap, "bench")
                    worst = max(worst, end - done)
                    if args.kill_at is not None and killed is None and time.perf_counter() - offered_at >= args.kill_at:
                        worker.kill()  # SIGKILL: no goodbye, no flush
                        worker.wait()
                        killed, killed_done = time.perf_counter(), done
                        (tmp / "after-kill").mkdir()
                        worker, log = workers.enter_context(
                            worker_process(bootstrap, tmp / "after-kill", partitions=args.partitions))
                    if killed is not None and resumed is None and done > killed_done:
                        resumed = time.perf_counter()
                    newest = newest_snapshot_ts(bootstrap)
                    if newest is not None and args.speed > 0:  # unpaced, offered time means nothing
                        offered_ts = session.info.start + (time.perf_counter() - offered_at) * (args.speed or 1e9)
                        delays.append(max(0.0, min(offered_ts, session.info.end) - newest - wait_s))
                    if worker.poll() is not None:
                        raise SystemExit(f"worker died:\n{log.read_text()[-3000:]}")
                    time.sleep(0.5)
                offered_s = time.perf_counter() - offered_at
                end, done = offsets(bootstrap, "bench")
                lag_at_end = end - done
                while done < end:
                    if worker.poll() is not None:
                        raise SystemExit(f"worker died:\n{log.read_text()[-3000:]}")
                    time.sleep(0.2)
                    end, done = offsets(bootstrap, "bench")
                    if killed is not None and resumed is None and done > killed_done:
                        resumed = time.perf_counter()
                processed_s = time.perf_counter() - offered_at
                rss = peak_rss_mb(worker.pid)
                last = newest_snapshot(bootstrap)
                deadline = time.monotonic() + 120  # the last ticks close once the partition is idle (SILENCE_S)
                while (last is None or last["ts"] < want.ts) and time.monotonic() < deadline:
                    time.sleep(2)
                    last = newest_snapshot(bootstrap)
            events, messages = produced["sent"], produced["messages"]
            changelog = sum(topic_bytes(bootstrap, t) for t in CHANGELOGS)
    per_message = events / messages
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"broker, worker and producer share it")
    print(f"hot room: {args.viewers:,} viewers, {events:,} events in {messages:,} messages "
          f"({per_message:.1f} per message), offered at {args.rate:,.0f} events/s"
          + (f" x {args.speed:g}" if args.speed != 1 else ""))
    print(f"offered:   {events / offered_s:10,.0f} events/s over {offered_s:.1f} s")
    print(f"processed: {events / processed_s:10,.0f} events/s (all committed {processed_s - offered_s:.1f} s "
          f"after the last was offered)")
    if delays:
        delays.sort()
        print(f"snapshot delay past the grace: median {delays[len(delays) // 2]:.1f} s, worst {delays[-1]:.1f} s "
              f"({len(delays)} samples; up to one tick, 5 s, is tick alignment, not lag)")
    print(f"committed-offset lag: worst {worst:,} messages (~{worst * per_message / args.rate:.1f} s of input), "
          f"{lag_at_end:,} when the input ended")
    print(f"changelog: {changelog:,} bytes, {changelog / events:.0f} bytes/event (goal <= 200: "
          f"{'met' if changelog / events <= 200 else 'NOT met'})")
    print(f"worker peak RSS: {rss:,.0f} MB" + (" (the worker started after the SIGKILL)" if killed else ""))
    if killed:
        print(f"SIGKILL at {killed - offered_at:.1f} s: commits resumed {resumed - killed:.1f} s later "
              f"(restart, rebalance, restore from the changelogs)" if resumed else "SIGKILL: commits never resumed")
    print(f"last snapshot: tick {last['ts'] if last else None}, online {last['online'] if last else None:,}; "
          f"embedded replay: tick {want.ts}, online {want.online:,}")
    print(f"ratio processed/offered: {processed_s and (events / processed_s) / (events / offered_s):.2f} "
          f"(1.00: kept up)")


if __name__ == "__main__":
    main()
