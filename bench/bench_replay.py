"""Embedded replay throughput next to its limit, measured in the same run.

The limit is reading and decoding the same file (LineReader + EventDecoder, no
core): the core cannot beat it. Prints events/s of both, and their ratio against
the goal (>= 0.5 of decode-only, and >= 300k events/s). Not a test: it asserts
nothing, it reports.

    python bench/bench_replay.py [--rooms 20 --minutes 30 --repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from streams.config import CoreConfig
import msgspec

from streams.events import AnyEvent
from liveroom.embedded.replay import replay_session
from sessions.folder import LineReader, open_session
from sessions.synth import synth_session


def decode_only(path: Path) -> tuple[int, float]:
    """The tightest read-and-decode loop: chunked lines, one msgspec call each."""
    dec = msgspec.json.Decoder(AnyEvent).decode
    n = 0
    started = time.perf_counter()
    for lines in LineReader(path).chunks():
        n += len(lines)
        for raw in lines:
            try:
                dec(raw)
            except msgspec.MsgspecError:
                pass
    return n, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gzip", action="store_true", help="bench the compressed file instead of plain JSONL")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = synth_session(Path(tmp) / "s", minutes=args.minutes, rooms=args.rooms, seed=1, compress=args.gzip)
        session = open_session(folder)
        size = session.events_path.stat().st_size
        best_dec, best_core, n = float("inf"), float("inf"), 0
        for i in range(args.repeat):
            n, t = decode_only(session.events_path)
            best_dec = min(best_dec, t)
            result = replay_session(session, Path(tmp) / f"out{i}", CoreConfig())
            best_core = min(best_core, result.wall_s)
        dec_rate, core_rate = n / best_dec, n / best_core
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"input: {n:,} events, {args.rooms} rooms x {args.minutes:g} min, {size / 1e6:.1f} MB "
              f"({'gzip' if args.gzip else 'plain'}), best of {args.repeat}")
        print(f"decode-only (limit): {dec_rate:12,.0f} events/s")
        print(f"full core replay:    {core_rate:12,.0f} events/s  (writes metrics, moments, dead letters, summary)")
        ratio = core_rate / dec_rate
        print(f"ratio core/decode:   {ratio:.2f}  (goal >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")
        print(f"absolute:            {core_rate / 300_000:.2f} of 300k events/s "
              f"(goal >= 1.00: {'met' if core_rate >= 300_000 else 'NOT met'})")


if __name__ == "__main__":
    main()
