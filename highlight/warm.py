"""Compile librosa's numba code into the cache now (``python -m highlight.warm``),
so the first ``liveroom highlight`` of a new install or image does not pay it."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from .features import audio_signals
    from .synth_video import render_broadcast

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        video = render_broadcast(Path(tmp) / "warm.mp4", duration=3.0, moments=[(1.0, 2.0)], visual_decoys=[],
                                 audio_decoys=[], width=64, height=36, fps=5)
        audio_signals(video, 3)
    print(f"librosa's compiled code cached in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
