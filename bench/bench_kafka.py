"""Faust pipeline throughput on a real broker, next to raw aiokafka consumption
of the same topic in the same run (the limit).

Starts a broker with scripts/kafka.sh, produces a synthetic multi-room session
onto ``liveroom.events``, then measures
  1. raw: one AIOKafkaConsumer reading every message of the topic;
  2. Faust's own ceiling: a no-op Faust agent taking the same batches
     (``take_events``) and doing nothing with them;
  3. pipeline: one ``liveroom worker`` process, from its group's first offset
     commit until the committed offsets cover every message (metrics, moments
     and state changelog all written).
Prints events/s of each and the ratios against the goal (>= 0.5 of raw, and
>= 20k events/s per worker). Asserts nothing.

    python bench/bench_kafka.py [--rooms 20 --minutes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streams.kafka_io import produce_session  # noqa: E402
from streams.kafka_topics import EVENTS, KafkaConfig, create_topics  # noqa: E402
from streams.session import open_session  # noqa: E402
from streams.synth import synth_session  # noqa: E402


async def raw_consume(bootstrap: str, total: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(EVENTS, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        n = first = 0
        started = 0.0
        while n < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                n += len(records)
            if not first and n:
                started, first = time.perf_counter(), n  # rate from the first batch on, like the pipeline's
        return (total - first) / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def noop_agent(bootstrap: str, total: int, batch_max: int, partitions: int, datadir: str) -> None:
    """Run in a subprocess: a Faust app whose agent only counts; prints its rate."""
    import faust

    app = faust.App("bench-noop", broker=f"kafka://{bootstrap}", web_enabled=False, datadir=datadir,
                    topic_partitions=partitions, consumer_auto_offset_reset="earliest",
                    broker_max_poll_records=batch_max * 2, stream_buffer_maxsize=batch_max * 4,
                    consumer_max_fetch_size=4 * 1024 * 1024)
    topic = app.topic(EVENTS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                      partitions=partitions)
    seen = {"n": 0, "first": 0, "t0": 0.0}

    @app.agent(topic)
    async def count(stream):
        async for batch in stream.take_events(batch_max, within=0.25):
            seen["n"] += len(batch)
            if not seen["first"]:
                seen["first"], seen["t0"] = seen["n"], time.perf_counter()
            if seen["n"] >= total:
                rate = (total - seen["first"]) / (time.perf_counter() - seen["t0"])
                os.write(1, f"NOOP_RATE {rate:.1f}\n".encode())  # fd 1: Faust redirects sys.stdout to its log
                os._exit(0)

    faust.Worker(app, loglevel="error", quiet=True).execute_from_commandline()


def faust_ceiling(bootstrap: str, total: int, partitions: int, tmp: Path) -> float:
    out = subprocess.run([sys.executable, __file__, "--noop-worker", bootstrap, str(total), str(partitions),
                          str(tmp / "noop")], capture_output=True, text=True, timeout=600)
    match = re.search(r"NOOP_RATE ([0-9.]+)", out.stdout)
    if not match:
        raise SystemExit(f"no-op agent failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return float(match.group(1))


def committed(bootstrap: str, group: str) -> int:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})  # kafka-python 3.x name and shape
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == EVENTS and meta.offset > 0)
    except Exception:
        return 0
    finally:
        admin.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--noop-worker":
        bootstrap, total, partitions, datadir = sys.argv[2:6]
        sys.argv = [sys.argv[0], "worker"]
        noop_agent(bootstrap, int(total), KafkaConfig().batch_max, int(partitions), datadir)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bootstrap = subprocess.run([str(REPO / "scripts" / "kafka.sh"), "start", str(tmp / "broker")], check=True,
                                   capture_output=True, text=True).stdout.split()[-1]
        worker = None
        try:
            config = KafkaConfig(bootstrap_servers=bootstrap, partitions=args.partitions)
            create_topics(config)
            session = open_session(synth_session(tmp / "s", minutes=args.minutes, rooms=args.rooms, seed=1))
            total = produce_session(session, config)["sent"]
            raw_rate = asyncio.run(raw_consume(bootstrap, total))
            noop_rate = faust_ceiling(bootstrap, total, args.partitions, tmp)
            log = tmp / "worker.log"
            env = {**os.environ, "LIVEROOM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                   "LIVEROOM_KAFKA_PARTITIONS": str(args.partitions), "LIVEROOM_KAFKA_DATA_DIR": str(tmp / "data"),
                   "LIVEROOM_KAFKA_APP_ID": "bench"}
            worker = subprocess.Popen([sys.executable, "-m", "liveroom.cli", "worker", "--loglevel", "warning"],
                                      env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
            if os.environ.get("BENCH_PROFILE"):
                subprocess.Popen(["py-spy", "record", "-d", "25", "-o", os.environ["BENCH_PROFILE"], "-f", "raw",
                                  "-p", str(worker.pid)])
            started = None
            while True:
                done = committed(bootstrap, "bench")
                if started is None and done > 0:
                    started, first = time.perf_counter(), done
                if done >= total:
                    break
                if worker.poll() is not None:
                    raise SystemExit(f"worker died:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            pipe_rate = (total - first) / (time.perf_counter() - started)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            subprocess.run([str(REPO / "scripts" / "kafka.sh"), "stop", str(tmp / "broker")], check=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"broker, worker and bench share it")
    print(f"input: {total:,} events, {args.rooms} rooms x {args.minutes:g} min, {args.partitions} partitions")
    print(f"raw aiokafka consume (limit): {raw_rate:10,.0f} events/s")
    print(f"no-op Faust agent (ceiling):  {noop_rate:10,.0f} events/s  (take_events, nothing else)")
    print(f"Faust pipeline, 1 worker:     {pipe_rate:10,.0f} events/s  (measured between first and last offset commit)")
    print(f"ratio pipeline/no-op Faust: {pipe_rate / noop_rate:.2f}")
    ratio = pipe_rate / raw_rate
    print(f"ratio pipeline/raw: {ratio:.2f}  (goal >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")
    print(f"per worker: {pipe_rate / 20_000:.2f} of 20k events/s (goal >= 1.00: {'met' if pipe_rate >= 20_000 else 'NOT met'})")


if __name__ == "__main__":
    main()
