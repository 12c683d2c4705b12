"""Fusion of the per-second signals and the choice of clips. Pure functions.

The fused score is a weighted mean of three robust z-scores (video, audio, the
interactions shifted back by the audience's lag), smoothed over a few seconds.
A moment worth a clip moves at least two of the three: a decoy that only moves
the picture or only the sound is never chosen, however strong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FusionWeights:
    """Documented, configurable weights of the fused score."""

    video: float = 1.0
    audio: float = 1.0
    interactions: float = 1.5


@dataclass(frozen=True)
class SelectionConfig:
    top_k: int = 5
    min_s: float = 10.0
    max_s: float = 60.0
    pad_s: float = 1.0
    snap_s: float = 3.0  # boundaries move at most this far to a pause or a cut
    smooth_s: int = 5
    min_score: float = 1.0  # fused z at the peak
    min_signal: float = 1.5  # a signal counts as "moved" at this smoothed z (1.0 let noise pass as a second signal)
    min_signals: int = 2
    extent: float = 0.4  # a clip spans the seconds where the score stays above this share of its peak


@dataclass
class Clip:
    start: float
    end: float
    score: float
    signals: dict[str, float]
    reasons: list[str] = field(default_factory=list)


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    kernel = np.ones(width) / width
    return np.convolve(x, kernel, mode="same")


def fuse(video: np.ndarray, audio: np.ndarray, inter: np.ndarray, weights: FusionWeights,
         smooth_s: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    parts = {"video": smooth(video, smooth_s), "audio": smooth(audio, smooth_s),
             "interactions": smooth(inter, smooth_s)}
    w = {"video": weights.video, "audio": weights.audio, "interactions": weights.interactions}
    total = sum(w.values()) or 1.0
    fused = sum(w[k] * parts[k] for k in parts) / total
    return fused, parts


def _snap(t: float, anchors: np.ndarray, reach: float) -> tuple[float, bool]:
    if len(anchors) == 0:
        return t, False
    i = int(np.argmin(np.abs(anchors - t)))
    return (float(anchors[i]), True) if abs(anchors[i] - t) <= reach else (t, False)


def pause_edges(pause: np.ndarray) -> np.ndarray:
    """Times (s) in the middle of each pause in speech (``pause`` is per 0.1 s)."""
    out, i, n = [], 0, len(pause)
    while i < n:
        if pause[i]:
            j = i
            while j < n and pause[j]:
                j += 1
            out.append((i + j) / 2 / 10.0)
            i = j
        else:
            i += 1
    return np.array(out)


def select_clips(fused: np.ndarray, parts: dict[str, np.ndarray], config: SelectionConfig, *, duration: float,
                 pauses: np.ndarray, cuts: np.ndarray) -> list[Clip]:
    """Top-K non-overlapping clips around the fused score's peaks."""
    taken = np.zeros(len(fused), dtype=bool)
    clips: list[Clip] = []
    order = np.argsort(-fused, kind="stable")
    for peak in order:
        if len(clips) >= config.top_k or fused[peak] < config.min_score:
            break
        if taken[peak]:
            continue
        moved = {k: float(v[peak]) for k, v in parts.items()}
        if sum(v >= config.min_signal for v in moved.values()) < config.min_signals:
            continue
        level = config.extent * fused[peak]
        a = b = int(peak)
        while a > 0 and fused[a - 1] >= level and not taken[a - 1] and b - a + 1 < config.max_s:
            a -= 1
        while b < len(fused) - 1 and fused[b + 1] >= level and not taken[b + 1] and b - a + 1 < config.max_s:
            b += 1
        start, end = a - config.pad_s, b + 1 + config.pad_s
        if end - start < config.min_s:
            grow = (config.min_s - (end - start)) / 2
            start, end = start - grow, end + grow
        reasons = [f"{k} z {v:.1f}" for k, v in sorted(moved.items(), key=lambda kv: -kv[1]) if v >= config.min_signal]
        start, on_pause = _snap(start, pauses, config.snap_s)
        if not on_pause:
            start, _ = _snap(start, cuts, config.snap_s)
        end, end_pause = _snap(end, pauses, config.snap_s)
        if not end_pause:
            end, _ = _snap(end, cuts, config.snap_s)
        start, end = max(0.0, start), min(duration, end)
        lo, hi = int(max(0, np.floor(start))), int(min(len(fused), np.ceil(end)))
        if end - start < config.min_s * 0.5 or taken[lo:hi].any():
            continue
        taken[lo:hi] = True
        reasons.append("starts in a pause" if on_pause else "starts on a cut or at the peak's edge")
        clips.append(Clip(start=round(start, 2), end=round(end, 2), score=round(float(fused[peak]), 3),
                          signals={k: round(v, 2) for k, v in moved.items()}, reasons=reasons))
    return sorted(clips, key=lambda c: c.start)
