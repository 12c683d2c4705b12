"""Worker throughput on a real broker, next to raw aiokafka consumption of the
same topic in the same run (the limit), for single-event messages and for
envelopes (one message carrying up to 100 of a room's events).

For each message format, on a fresh broker (scripts/kafka.sh): produce a
synthetic multi-room session onto ``liveroom.events``, then measure
  1. raw: one AIOKafkaConsumer reading every message of the topic;
  2. (single-event only) Faust's own ceiling: a no-op Faust agent taking the
     same messages in batches (``take_events``) and doing nothing with them;
  3. pipeline: one ``liveroom worker`` process, from its group's first offset
     commit until the committed offsets cover every message (metrics, moments
     and state changelogs all written).
Prints events/s of each, the ratio pipeline/raw, and the goals (>= 20k events/s
per worker single-event, >= 100k with envelopes). Asserts nothing.

    python bench/bench_kafka.py [--rooms 20 --minutes 40] [--formats single,envelope]

``--formats rooms`` runs envelopes from 20, 2,000 and 10,000 concurrent rooms
(each printed over the same run's 20-room figure, the limit); ``many-single``
single-event messages from 10,000 small rooms; ``churn`` 20,000 one-minute rooms
about 300 live at once (the worker's rooms held and RSS after the first 1,000
rooms and at the end); ``clips`` clip events on ``liveroom.clip-events`` in
envelopes of 100 (goal >= 100k clip events/s per worker), next to raw consumption
of that topic.

Offsets are committed every few seconds, so the input must take the worker well
over that (the span is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.kafka_runs import fresh_broker, worker_process  # noqa: E402
from liveroom.kafka.io import produce_session  # noqa: E402
from liveroom.kafka.topics import EVENTS, KafkaConfig, create_topics  # noqa: E402
from sessions.folder import open_session  # noqa: E402
from sessions.synth import synth_session  # noqa: E402


async def raw_consume(bootstrap: str, total: int, topic: str = EVENTS) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
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


def committed(bootstrap: str, group: str, topic: str = EVENTS) -> int:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})  # kafka-python 3.x name and shape
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
    except Exception:
        return 0
    finally:
        admin.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_format(args, envelope_events: int, tmp: Path, *, rooms: int | None = None, minutes: float | None = None,
               session_folder: Path | None = None, sample=None) -> dict:
    """One message format on a fresh broker: produce, then raw, (no-op Faust), worker."""
    out: dict = {}
    rooms = args.rooms if rooms is None else rooms
    with fresh_broker(tmp / "broker") as bootstrap:
        config = KafkaConfig(bootstrap_servers=bootstrap, partitions=args.partitions,
                             envelope_linger_s=args.linger)
        create_topics(config)
        if session_folder is None:
            # envelopes go through so fast that the input is made longer, to span several offset commits
            if minutes is None:
                minutes = args.minutes * (args.envelope_scale if envelope_events > 1 else 1)
            session_folder = synth_session(tmp / "s", minutes=minutes, rooms=rooms, seed=1,
                                           peak_arrivals_per_s=args.peak)
        session = open_session(session_folder)
        produced = produce_session(session, config, envelope_events=envelope_events)
        total, messages = produced["sent"], produced["messages"]
        out.update(events=total, messages=messages)
        out["raw"] = asyncio.run(raw_consume(bootstrap, messages)) * total / messages
        if envelope_events == 1 and not args.skip_noop:
            out["noop"] = faust_ceiling(bootstrap, total, args.partitions, tmp)
        with worker_process(bootstrap, tmp, partitions=args.partitions) as (worker, log):
            if os.environ.get("BENCH_PROFILE"):
                subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-d", "25", "-o",
                                  os.environ["BENCH_PROFILE"], "-f", "raw", "-p", str(worker.pid)])
            started = None
            while True:
                done = committed(bootstrap, "bench")
                if started is None and done > 0:
                    started, first = time.perf_counter(), done
                if sample is not None:
                    sample(out, worker.pid, done, messages)
                if done >= messages:
                    break
                if worker.poll() is not None:
                    raise SystemExit(f"worker died:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            if sample is not None:
                time.sleep(3)  # the last batch's finishes
                sample(out, worker.pid, messages, messages)
            out["span"] = time.perf_counter() - started
            out["pipeline"] = (messages - first) / out["span"] * total / messages
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--noop-worker":
        bootstrap, total, partitions, datadir = sys.argv[2:6]
        sys.argv = [sys.argv[0], "worker"]
        noop_agent(bootstrap, int(total), KafkaConfig().batch_max, int(partitions), datadir)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--formats", default="single,envelope")
    ap.add_argument("--skip-noop", action="store_true", help="skip the no-op Faust agent")
    ap.add_argument("--envelope-scale", type=float, default=4.0, help="input length for envelopes, x --minutes")
    ap.add_argument("--peak", type=float, default=1.5, help="synthetic rooms' peak arrivals per second")
    ap.add_argument("--clip-rooms", type=int, default=200, help="clips: rooms sending clip events")
    ap.add_argument("--clip-events", type=int, default=2_000_000, help="clips: clip events in all")
    ap.add_argument("--linger", type=float, default=KafkaConfig().envelope_linger_s,
                    help="event time an event waits for others of its room in an envelope (60: envelopes fill up)")
    args = ap.parse_args()
    goals = {"single": (1, 20_000), "envelope": (100, 100_000)}
    results = {}
    names = args.formats.split(",")
    for name in [n for n in names if n in goals]:
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = run_format(args, goals[name][0], Path(tmp))
    if "rooms" in names:
        many_rooms(args)
    if "many-single" in names:
        with tempfile.TemporaryDirectory() as tmp:
            r = run_format(args, 1, Path(tmp), rooms=10_000, minutes=1.0)
        print(f"single-event messages from 10,000 small rooms: {r['events']:,} events, worker {r['pipeline']:,.0f} "
              f"events/s, raw {r['raw']:,.0f}; {r['pipeline'] / 20_000:.2f} of the 20k goal")
    if "churn" in names:
        churn(args)
    if "clips" in names:
        clips(args)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"broker, worker and bench share it")
    for name, r in results.items():
        size, goal = goals[name]
        print(f"{name} ({size} event(s) per message at most): {r['events']:,} events in {r['messages']:,} messages, "
              f"{args.rooms} rooms, {args.partitions} partitions")
        print(f"  raw aiokafka consume (limit): {r['raw']:10,.0f} events/s")
        if "noop" in r:
            print(f"  no-op Faust agent (ceiling):  {r['noop']:10,.0f} events/s  (Faust's stream path, nothing else)")
        print(f"  liveroom worker:              {r['pipeline']:10,.0f} events/s  (first to last offset commit, "
              f"{r['span']:.1f} s{'; too short to trust, use more --minutes' if r['span'] < 15 else ''})")
        print(f"  ratio worker/raw: {r['pipeline'] / r['raw']:.2f}")
        print(f"  per worker: {r['pipeline'] / goal:.2f} of the {goal // 1000}k events/s goal "
              f"({'met' if r['pipeline'] >= goal else 'NOT met'})")


def many_rooms(args) -> None:
    """Envelopes from 20, 2,000 and 10,000 rooms; each over the 20-room figure."""
    runs = {}
    for rooms, minutes in ((20, args.minutes * args.envelope_scale), (2000, 2.0), (10_000, 0.5)):
        with tempfile.TemporaryDirectory() as tmp:
            runs[rooms] = run_format(args, 100, Path(tmp), rooms=rooms, minutes=minutes)
    base = runs[20]["pipeline"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for rooms, r in runs.items():
        goal = 1.0 if rooms == 20 else 0.7 if rooms == 2000 else 0.5
        print(f"envelopes, {rooms:,} rooms: {r['events']:,} events in {r['messages']:,} messages "
              f"({r['events'] / r['messages']:.1f} per message), worker {r['pipeline']:,.0f} events/s "
              f"(raw {r['raw']:,.0f}); over 20 rooms {r['pipeline'] / base:.2f} (goal {goal}); "
              f"{r['pipeline'] / 100_000:.2f} of 100k")


def churn(args) -> None:
    """20,000 one-minute rooms, about 300 live: rooms held and RSS as they go."""
    from sessions.synth import churn_session

    def sample(out: dict, pid: int, done: int, messages: int) -> None:
        try:
            status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2).read())
        except Exception:  # noqa: BLE001 - not up yet
            return
        point = (done / messages, rss_mb(pid), status["rooms"])
        out.setdefault("points", []).append(point)

    with tempfile.TemporaryDirectory() as tmp:
        folder = churn_session(Path(tmp) / "churn", rooms=20_000, live=300, room_s=60.0, seed=1)
        port = 16066
        os.environ["LIVEROOM_KAFKA_WEB_PORT"] = str(port)
        r = run_format(args, 100, Path(tmp), session_folder=folder, sample=sample)
    points = r.get("points", [])
    early = next((p for p in points if p[0] >= 1000 / 20_000), None)
    last = points[-1] if points else None
    print(f"churn: 20,000 rooms of 60 s, ~300 live, {r['events']:,} events, worker {r['pipeline']:,.0f} events/s")
    if early and last:
        print(f"  after the first 1,000 rooms: RSS {early[1]:.0f} MB, {early[2]} rooms held")
        print(f"  at the end: RSS {last[1]:.0f} MB, {last[2]} rooms held (limit: 300 live + those within grace + "
              f"quiet of their end, ~{300 + 40 * 300 // 60}); RSS over the early figure {last[1] / early[1]:.2f} "
              f"(limit 1.20)")
        print(f"  most rooms held at any point: {max(p[2] for p in points)}")


def clip_messages(rooms: int, events: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """``(key, envelope)`` of ``events`` clip events from ``rooms`` rooms (two clips
    each, over two hours of event time), 100 of a room's events per message."""
    import random

    import msgspec

    rng = random.Random(seed)
    t0 = 1_780_000_000.0 - 1_780_000_000.0 % 3600
    kinds = ({"type": "clip_impression", "count": 3}, {"type": "clip_play", "user_id": "u"},
             {"type": "clip_complete", "user_id": "u", "watch_ratio": 0.5}, {"type": "clip_click", "user_id": "u"},
             {"type": "enter", "user_id": "u", "source": "clip"}, {"type": "clip_order", "user_id": "u", "amount": 9.9})
    per_room = events // rooms
    out = []
    for r in range(rooms):
        room = f"clip-room-{r:05d}"
        lines = [msgspec.json.encode({"type": "clip_publish", "event_id": f"{room}-{c}-p", "room_id": room,
                                      "clip_id": f"{room}-{c}", "ts": t0 + 1 + i, "score": 4.0, "length_s": 30.0,
                                      "position": 0.5}) for i, c in enumerate(("a", "b"))]
        for n in range(per_room - 2):
            lines.append(msgspec.json.encode({"event_id": f"{room}-{n}", "room_id": room,
                                              "clip_id": f"{room}-{'a' if n % 4 else 'b'}",
                                              "ts": t0 + 10 + 7200 * n / per_room, **rng.choice(kinds)}))
        out += [(room.encode(), b"[" + b",".join(lines[i:i + 100]) + b"]") for i in range(0, len(lines), 100)]
    rng.shuffle(out)  # rooms interleave; each room's messages stay in order below
    order: dict[bytes, list] = {}
    for key, value in out:
        order.setdefault(key, []).append(value)
    firsts = {key: iter(sorted(values, key=lambda v: msgspec.json.decode(v)[0]["ts"])) for key, values in order.items()}
    return [(key, next(firsts[key])) for key, _ in out]


def clips(args) -> None:
    """Clip events in envelopes: the worker's clip events/s over raw consumption."""
    from kafka import KafkaProducer

    from liveroom.kafka.topics import CLIP_EVENTS

    messages = clip_messages(args.clip_rooms, args.clip_events)
    total = sum(v.count(b'"event_id"') for _, v in messages)
    with tempfile.TemporaryDirectory() as tmp, fresh_broker(Path(tmp) / "broker") as bootstrap:
        create_topics(KafkaConfig(bootstrap_servers=bootstrap, partitions=args.partitions))
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20,
                                 max_request_size=4 << 20)
        for key, value in messages:
            producer.send(CLIP_EVENTS, key=key, value=value)
        producer.flush()
        producer.close()
        raw = asyncio.run(raw_consume(bootstrap, len(messages), CLIP_EVENTS)) * total / len(messages)
        with worker_process(bootstrap, Path(tmp), partitions=args.partitions) as (worker, log):
            started = None
            while True:
                done = committed(bootstrap, "bench", CLIP_EVENTS)
                if started is None and done > 0:
                    started, first = time.perf_counter(), done
                if done >= len(messages):
                    break
                if worker.poll() is not None:
                    raise SystemExit(f"worker died:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            span = time.perf_counter() - started
            rate = (len(messages) - first) / span * total / len(messages)
            rss = rss_mb(worker.pid)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"clip events: {total:,} in {len(messages):,} envelopes from {args.clip_rooms:,} rooms; worker {rate:,.0f} "
          f"clip events/s ({span:.1f} s), raw consume (limit) {raw:,.0f}; ratio {rate / raw:.2f}; "
          f"{rate / 100_000:.2f} of the 100k goal; worker RSS at the end {rss:.0f} MB")


if __name__ == "__main__":
    main()
