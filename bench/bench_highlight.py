"""Highlight analysis time next to a full decode of the same video, in the same run.

Renders a synthetic broadcast (default 10 minutes, 1280x720, 30 fps, with sound
and events), then times
  1. full decode: ffmpeg decoding every frame and the audio, output discarded (the limit);
  2. analysis: find_highlights (keyframe pass, fine pass in candidate windows,
     audio features, interaction curve, fusion, selection), no rendering;
  3. the audio part alone, scaled to one hour of audio.
Prints the ratios against the goals (analysis <= 0.5 of full decode; audio
< 15 s per hour). Asserts nothing.

    python bench/bench_highlight.py [--minutes 10 --size 1280x720 --fps 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from highlight.features import audio_signals
from highlight.media import ffmpeg_exe, probe
from highlight.pipeline import find_highlights
from highlight.synth_video import add_video
from sessions.folder import open_session
from sessions.synth import synth_session


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=int, default=30)
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        folder = synth_session(Path(tmp) / "s", minutes=args.minutes, seed=3)
        add_video(folder, seed=3, width=width, height=height, fps=args.fps)
        made = time.perf_counter() - started
        session = open_session(folder)
        video = session.video_path
        info = probe(video)
        audio_signals(video, 10)  # librosa's one-time numba compilation, kept out of the timings
        started = time.perf_counter()
        subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "null", "-"], check=True)
        decode = time.perf_counter() - started
        started = time.perf_counter()
        analysis = find_highlights(video, events=session.events_path, room_id=session.info.room_id,
                                   t0=session.info.start)
        total = time.perf_counter() - started
        started = time.perf_counter()
        audio_signals(video, int(info.duration) + 1)
        audio = time.perf_counter() - started
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"input: {info.duration:.0f} s, {width}x{height} @ {args.fps} fps with audio ({made:.0f} s to render)")
    print(f"full ffmpeg decode (limit): {decode:7.2f} s  ({info.duration / decode:.1f}x real time)")
    print(f"highlight analysis:         {total:7.2f} s  {dict((k, round(v, 2)) for k, v in analysis.timings.items())}")
    print(f"ratio analysis/decode: {total / decode:.2f}  (goal <= 0.50: {'met' if total / decode <= 0.5 else 'NOT met'})")
    per_hour = audio / info.duration * 3600
    print(f"audio analysis: {per_hour:.1f} s per hour of audio (goal < 15: {'met' if per_hour < 15 else 'NOT met'})")
    print(f"clips chosen: {len(analysis.clips)}, reaction lag {analysis.lag_s} s")


if __name__ == "__main__":
    main()
