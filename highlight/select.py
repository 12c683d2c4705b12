"""Fusion of the per-second signals and the choice of clips. Pure functions.

The fused score is a weighted mean of the robust z-scores of change that are
present (video, audio, the interactions shifted back by the audience's lag),
smoothed over a few seconds. A moment worth a clip moves at least two of them:
a decoy that only moves the picture or only the sound is never chosen, however
strong. With one signal only (a silent video and no events), it must clear
``min_single_signal``.

Weights (``FusionWeights``): video 1, audio 1, interactions 1.5 (the audience
is the most direct evidence that a moment mattered), renormalised over the
signals present.
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
    min_signals: int = 2  # of the signals present
    min_single_signal: float = 4.0  # the bar when only one signal is present
    min_signal_held: float = 1.0  # a moved signal's mean over the clip's extent
    extent: float = 0.4  # a clip spans the seconds where the score stays above this share of its peak


@dataclass
class Clip:
    start: float
    end: float
    score: float
    signals: dict[str, float]
    reasons: list[str] = field(default_factory=list)


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` seconds, the edges padded with their own
    values (zeros there would make the first and last seconds look like a drop)."""
    if width <= 1 or len(x) == 0:
        return x
    left = (width - 1) // 2
    padded = np.pad(x, (left, width - 1 - left), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def fuse(signals: dict[str, np.ndarray], weights: FusionWeights, smooth_s: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Weighted mean of the signals that are present (a video without sound, or
    without events, is scored on what it has: the weights of the missing ones
    are left out, not counted as zeros), each smoothed over ``smooth_s`` seconds."""
    parts = {k: smooth(v, smooth_s) for k, v in signals.items()}
    w = {k: getattr(weights, k) for k in parts}
    total = sum(w.values())
    if not parts or total <= 0:
        n = len(next(iter(signals.values()))) if signals else 0
        return np.zeros(n), parts
    return sum(w[k] * parts[k] for k in parts) / total, parts


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
        # Two of the signals present must move; a broadcast with only one signal
        # (a silent video, no events) needs it to move much more.
        need = min(config.min_signals, len(parts))
        bar = config.min_signal if len(parts) > 1 else config.min_single_signal
        if sum(v >= bar for v in moved.values()) < need:
            continue
        level = config.extent * fused[peak]
        a = b = int(peak)
        while a > 0 and fused[a - 1] >= level and not taken[a - 1] and b - a + 1 < config.max_s:
            a -= 1
        while b < len(fused) - 1 and fused[b + 1] >= level and not taken[b + 1] and b - a + 1 < config.max_s:
            b += 1
        # ... and stay moved over the moment, not for a few seconds of noise at its peak.
        held = {k: float(np.mean(v[a:b + 1])) for k, v in parts.items()}
        if sum(v >= config.min_signal_held for v in held.values()) < need:
            continue
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
        if end - start > config.max_s:  # padding and snapping may not take it past --max:
            over = end - start - config.max_s  # trim the tail past the moment first, then the lead-in
            cut = min(over, max(0.0, end - (b + 1)))
            end -= cut
            start += over - cut
        lo, hi = int(max(0, np.floor(start))), int(min(len(fused), np.ceil(end)))
        if end - start < config.min_s * 0.5 or taken[lo:hi].any():
            continue
        taken[lo:hi] = True
        reasons.append("starts in a pause" if on_pause else "starts on a cut or at the peak's edge")
        clips.append(Clip(start=round(start, 2), end=round(end, 2), score=round(float(fused[peak]), 3),
                          signals={k: round(v, 2) for k, v in moved.items()}, reasons=reasons))
    return sorted(clips, key=lambda c: c.start)
