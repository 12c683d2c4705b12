"""Hostile inputs: peak memory and time of `liveroom replay` on each, against the
same command on a one-event session measured in the same run (the limit).

    python bench/bench_hostile.py [--line-mb 200] [--bomb-gb 5] [--rooms 200000]

Each case runs in its own process; peak RSS is that process's maximum resident
set (``getrusage``). Prints one row per case: seconds, peak RSS, RSS over the
baseline's, and what the replay said about the input.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

T0 = 1_780_000_000.0


def session(folder: Path, name: str, write) -> Path:
    folder.mkdir(parents=True)
    with open(folder / name, "wb") as f:
        write(f)
    (folder / "session.json").write_text(json.dumps(
        {"room_id": "r", "start": T0, "end": T0 + 10_000_000, "files": {"events": name}}))
    return folder


def run(folder: Path, out: Path) -> tuple[float, int, dict]:
    started = time.perf_counter()
    code = ("import resource, sys; from liveroom.cli import main\n"
            "try:\n    main(standalone_mode=False)\nfinally:\n"
            "    sys.stderr.write('MAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", code, "replay", str(folder), "--out", str(out), "--no-report"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    rss_kb = int([line for line in proc.stderr.splitlines() if line.startswith("MAXRSS")][-1].split()[1])
    summary = json.loads((out / "summary.json").read_text())
    return wall, rss_kb * 1024, summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--line-mb", type=int, default=200)
    ap.add_argument("--bomb-gb", type=int, default=5)
    ap.add_argument("--rooms", type=int, default=200_000)
    args = ap.parse_args()
    event = b'{"event_id":"e%d","room_id":"%s","ts":%.1f,"type":"%s","user_id":"u"}\n'
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cases = {
            "baseline: one event": session(tmp / "base", "events.jsonl", lambda f: f.write(event % (0, b"r", T0, b"like"))),
            f"one {args.line_mb} MB line without a newline": session(
                tmp / "line", "events.jsonl", lambda f: [f.write(b"x" * (1 << 20)) for _ in range(args.line_mb)]),
            f"gzip bomb ({args.bomb_gb} GB of zeros)": session(tmp / "bomb", "events.jsonl.gz", lambda f: _bomb(f, args.bomb_gb)),
            "5 GB-style newlines (1 GB)": session(
                tmp / "newlines", "events.jsonl", lambda f: [f.write(b"\n" * (1 << 20)) for _ in range(1024)]),
            "2,000 events 3,599 s apart": session(tmp / "gap", "events.jsonl", lambda f: f.write(b"".join(
                event % (i, b"r", T0 + i * 3599, b"like") for i in range(2000)))),
            f"{args.rooms:,} rooms x 3 events": session(tmp / "rooms", "events.jsonl", lambda f: [f.write(b"".join(
                event % (3 * i + k, b"room-%d" % i, T0 + i * 0.01 + k, t) for k, t in
                enumerate((b"room_start", b"comment", b"room_end")))) for i in range(args.rooms)]),
        }
        base_rss = None
        print(f"{'case':44s} {'input':>10s} {'seconds':>8s} {'peak RSS':>10s} {'x baseline':>10s}  outcome")
        for name, folder in cases.items():
            size = sum(p.stat().st_size for p in folder.iterdir())
            wall, rss, s = run(folder, tmp / f"out-{folder.name}")
            base_rss = base_rss or rss
            out_size = sum(p.stat().st_size for p in (tmp / f"out-{folder.name}").iterdir() if p.is_file())
            outcome = (f"{s['processed']} processed, {s['blank']} blank, dead {s['dead_letter_reasons']}, "
                       f"{s['outputs']['room-metrics.jsonl']} snapshots, {out_size / 1e6:.1f} MB out")
            print(f"{name:44s} {size / 1e6:9.1f}M {wall:8.2f} {rss / 2**20:8.0f}MB {rss / base_rss:10.2f}  {outcome}")
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


def _bomb(f, gb: int) -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\x00" * (1 << 24)
    for _ in range(gb * 64):
        f.write(z.compress(block))
    f.write(z.flush())


if __name__ == "__main__":
    main()
