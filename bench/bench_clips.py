"""The clip loop's core at a popular clip's volume, in-process: one clip, one
hour, a million clip events (impressions, plays, completes, clicks, entries,
orders), fed as envelopes of 100 and persisted in parts every 10,000 events.

Prints the core's clip events/s next to decoding alone (the limit, measured in
the same run: msgspec validating the same envelopes), the largest state record
next to 256 KB (the issue's limit; Kafka's default is 1 MB), and the records and
bytes written. Asserts nothing.

    python bench/bench_clips.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cliploop.core import ClipLoopCore  # noqa: E402
from cliploop.events import AnyClipEvent  # noqa: E402
from cliploop.models import ClipLoopConfig  # noqa: E402
from cliploop.parts import split  # noqa: E402

T0 = 1_780_000_000.0 - 1_780_000_000.0 % 3600
KINDS = ({"type": "clip_impression", "count": 3}, {"type": "clip_play", "user_id": "u"},
         {"type": "clip_complete", "user_id": "u", "watch_ratio": 0.5}, {"type": "clip_click", "user_id": "u"},
         {"type": "enter", "user_id": "u", "source": "clip"}, {"type": "clip_order", "user_id": "u", "amount": 9.9})


def envelopes(events: int) -> list[bytes]:
    lines = [msgspec.json.encode({"type": "clip_publish", "event_id": "p", "room_id": "r", "clip_id": "c",
                                  "ts": T0 + 1, "score": 4.0, "length_s": 30.0, "position": 0.5})]
    lines += [msgspec.json.encode({"event_id": f"e{n}", "room_id": "r", "clip_id": "c", "ts": T0 + 2 + 3500 * n / events,
                                   **KINDS[n % len(KINDS)]}) for n in range(events - 1)]
    return [b"[" + b",".join(lines[i:i + 100]) + b"]" for i in range(0, len(lines), 100)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    messages = envelopes(args.events)

    decode = msgspec.json.Decoder(list[AnyClipEvent]).decode
    started = time.perf_counter()
    for m in messages:
        decode(m)
    decode_s = time.perf_counter() - started

    core = ClipLoopCore(ClipLoopConfig(), journal=True)
    largest, head_largest, records, written = 0, 0, 0, 0
    every = max(1, 10_000 // 100)
    started = time.perf_counter()
    for i, m in enumerate(messages):
        core.feed(m, f"m{i}", expect_room="r")
        if i % every == every - 1 or i == len(messages) - 1:
            parts, head, tombstones = split(core.rooms["r"], core.journals["r"])
            for key, value in parts + [(b"r", head)]:
                size = len(key) + len(value or b"")
                largest = max(largest, size)
                records += 1
                written += size
            head_largest = max(head_largest, len(head))
            core.drain()
    core_s = time.perf_counter() - started
    a = core.accounting()
    assert a["processed"] == args.events and a["all_accounted_for"], a
    rate, limit = args.events / core_s, args.events / decode_s
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{args.events:,} clip events for one clip in one hour, {len(messages):,} envelopes of 100")
    print(f"  decode only (limit): {limit:12,.0f} events/s")
    print(f"  core with persists:  {rate:12,.0f} events/s  ratio {rate / limit:.2f}")
    print(f"  largest record {largest / 1024:.1f} KB (limit 256 KB: {'met' if largest <= 256 * 1024 else 'NOT met'}), "
          f"largest head {head_largest} bytes; {records:,} records, {written / 2**20:.1f} MB written "
          f"({written / args.events:.1f} bytes per event)")


if __name__ == "__main__":
    main()
