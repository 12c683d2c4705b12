"""The whole ``liveroom highlight`` command next to a full decode by the system's
ffmpeg, on camera-footage broadcasts (highlight/camera_set.py; ``--portrait``: a
phone stream of a moving host, highlight/portrait_set.py), cold start included.

For each length (default 6 and 20 minutes, 1280x720 at 30 fps, with sound) it times
  1. full decode (the limit): the system ffmpeg (Debian's, when installed; else
     the bundled one, and it says so) decoding every frame and the audio;
  2. the command, cold: a fresh process with an empty numba cache (what a new
     install pays once), then warm: a fresh process with the cache kept;
and prints each over the decode against the goals (<= 1.0 at 6 minutes, <= 0.5
at 20). Asserts nothing.

    python bench/bench_highlight_camera.py [--minutes 6 20] [--size 1280x720 --fps 30]
    python bench/bench_highlight_camera.py --portrait [--size 720x1280]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from highlight.camera_set import add_camera_video  # noqa: E402
from highlight.portrait_set import add_portrait_video  # noqa: E402
from highlight.media import ffmpeg_exe  # noqa: E402
from sessions.synth import synth_session  # noqa: E402

GOALS = {6.0: 1.0, 20.0: 0.5}


def _wall(cmd: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[6.0, 20.0])
    ap.add_argument("--size", default=None, help="WxH (default 1280x720; 720x1280 with --portrait)")
    ap.add_argument("--portrait", action="store_true", help="a portrait phone stream of a moving host")
    ap.add_argument("--fps", type=int, default=30)
    args = ap.parse_args()
    size = tuple(int(x) for x in (args.size or ("720x1280" if args.portrait else "1280x720")).split("x"))
    media = ROOT / ".cache" / "media"
    subprocess.run([str(ROOT / "scripts" / "fetch_media.sh"), str(media)], check=True)
    system = shutil.which("ffmpeg")
    decoder = system or ffmpeg_exe()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"decoder: {decoder} ({'system' if system else 'bundled: no system ffmpeg installed'})")
    for minutes in args.minutes:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            folder = synth_session(Path(tmp) / "s", minutes=minutes, seed=7, lag_s=6.0)
            if args.portrait:
                video = add_portrait_video(folder, media=media, seed=7, size=size, fps=args.fps)
            else:
                video = add_camera_video(folder, media=media, seed=7, variants=("darker", "quieter", "talking", "plain"),
                                         size=size, fps=args.fps)
            made = time.perf_counter() - started
            decode = _wall([decoder, "-v", "error", "-i", str(video), "-f", "null", "-"])
            command = [sys.executable, "-m", "liveroom.cli", "highlight", str(video), "--out", str(Path(tmp) / "out")]
            env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"))
            cold = _wall(command, env)
            warm = _wall(command, env)
        goal = GOALS.get(minutes)
        verdict = "" if goal is None else f" (goal <= {goal}: cold {'met' if cold / decode <= goal else 'NOT met'}, " \
                                          f"warm {'met' if warm / decode <= goal else 'NOT met'})"
        print(f"{minutes:.0f} min {size[0]}x{size[1]}@{args.fps} ({made:.0f} s to render): decode {decode:.1f} s, "
              f"command cold {cold:.1f} s = {cold / decode:.2f}, warm {warm:.1f} s = {warm / decode:.2f}{verdict}")


if __name__ == "__main__":
    main()
