"""A clip's cover: the frame a shopper decides on, chosen, not taken.

The middle frame of a clip caught a moving host mid-grimace, a hand over the
eyes, 2 of 3 times. Here the candidates are the clip's keyframes (decoding
keyframes only costs about a hundredth of the clip's full decode, and a
keyframe is the encoder's sharpest picture, never a blend across a cut), and
each is scored on what a cover must have:

* a face whose two eyes are found (OpenCV's eye cascade, which finds open
  eyes: closed or covered ones it misses), when any candidate has a face;
* what the clip is about in view: the picture's lasting regional change there
  (a product held up; see ``highlight/features.py``);
* sharp (the variance of the Laplacian, against the clip's other candidates),
  and not within half a second of a shot cut.

``choose_cover`` returns the time and the reason, which goes in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import FaceFinder
from .media import gray_frames

COVER_SHORT_SIDE = 360  # candidates decoded at this short side: eyes are 10 px or more on a face that fills a tenth
MAX_CANDIDATES = 12  # keyframes looked at per clip, evenly spread (a 60 s clip at a 2 s interval has 30)


@dataclass(frozen=True)
class Cover:
    t: float  # seconds from the video's start
    reason: str


class EyeFinder:
    """OpenCV's eye cascade inside a face's upper half."""

    def __init__(self) -> None:
        import cv2

        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
        if self._cascade.empty():
            raise RuntimeError("OpenCV's eye cascade is missing (opencv-python-headless < 5 ships it)")

    def count(self, gray: np.ndarray, face: tuple[int, int, int, int]) -> int:
        """Eyes found in the upper half of ``face`` (x, y, w, h; clipped to the frame), at most 2."""
        x, y, w, h = face
        H, W = gray.shape
        x0, y0, x1, y1 = max(0, x), max(0, y + h // 8), min(W, x + w), min(H, y + h // 2 + h // 8)
        if x1 - x0 < 12 or y1 - y0 < 8:
            return 0
        side = max(6, w // 10)
        eyes = self._cascade.detectMultiScale(gray[y0:y1, x0:x1], scaleFactor=1.1, minNeighbors=4,
                                              minSize=(side, side), maxSize=(w // 2, w // 2))
        # two eyes side by side, not one eye found twice
        centres = sorted(ex + ew / 2 for ex, ey, ew, eh in eyes)
        if len(centres) >= 2 and centres[-1] - centres[0] >= w / 6:
            return 2
        return min(1, len(centres))


def choose_cover(video: Path, start: float, end: float, *, width: int, height: int,
                 regional: np.ndarray | None = None, cut_times: list[float] | tuple = (),
                 signal_start: float = 0.0) -> Cover:
    """The cover of the clip ``[start, end)`` (seconds from the video's start).
    ``regional``: per second from ``signal_start``, the lasting regional change
    (:attr:`VideoSignals.regional`); ``cut_times``: shot cuts, video seconds."""
    import cv2

    middle = (start + end) / 2
    if width <= 0 or height <= 0:
        width, height = 640, 360
    scale = min(1.0, COVER_SHORT_SIDE / min(width, height))
    w, h = max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)
    lo, hi = start + 0.5, end - 0.5
    candidates = []
    if hi > lo:
        faces, eyes = FaceFinder(), EyeFinder()
        frames = [(t, rgb) for t, rgb in gray_frames(video, width=w, height=h, keyframes_only=True, start=lo,
                                                     duration=hi - lo, color=True) if lo <= t < hi]
        if len(frames) > MAX_CANDIDATES:
            frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, MAX_CANDIDATES)]
        for t, rgb in frames:
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            half = faces.box(cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA))
            box = tuple(2 * v for v in half) if half is not None else None  # found at half size, eyes at full
            candidates.append({
                "t": float(t),
                "face": box is not None,
                "eyes": eyes.count(gray, box) if box is not None else 0,
                "sharp": float(cv2.Laplacian(gray, cv2.CV_64F).var()),
                "about": _at(regional, t - signal_start),
                "near_cut": any(abs(t - c) < 0.5 for c in cut_times),
            })
    if not candidates:
        return Cover(round(middle, 2), "the clip's middle frame (no keyframe inside the clip)")
    sharp = np.array([c["sharp"] for c in candidates])
    about = np.array([c["about"] for c in candidates])

    def rank(x: np.ndarray) -> np.ndarray:  # 0-1 within the clip; all alike (no regional signal): no say
        if len(x) < 2 or np.ptp(x) == 0:
            return np.zeros(len(x))
        return np.argsort(np.argsort(x)) / (len(x) - 1)

    # both eyes before a face, a face before the product in view (a tester's clip: no eyes found
    # anywhere, and the product's rank chose the keyframe with a hand over the face), then sharpness
    score = (3.0 * np.array([c["eyes"] == 2 for c in candidates]) + 2.0 * np.array([c["face"] for c in candidates])
             + 1.5 * rank(about) + 0.5 * rank(sharp) - 2.0 * np.array([c["near_cut"] for c in candidates])
             - 0.2 * np.abs(np.array([c["t"] for c in candidates]) - middle) / max(1.0, end - start))
    best = candidates[int(np.argmax(score))]
    said = []
    if best["eyes"] == 2:
        said.append("a face with both eyes open")
    elif best["face"]:
        said.append("a face (its eyes not found in any keyframe)" if not any(c["eyes"] == 2 for c in candidates)
                    else "a face")
    if len(candidates) > 1 and rank(about)[candidates.index(best)] >= 0.5 and best["about"] > 0:
        said.append("what the clip shows in view")
    if len(candidates) > 1 and rank(sharp)[candidates.index(best)] >= 0.5:
        said.append("sharper than most of the clip")
    reason = (", ".join(said) or "the best of the clip's keyframes") + \
        f" (keyframe at {best['t']:.1f} s, of {len(candidates)})"
    return Cover(round(best["t"], 3), reason)


def _at(series: np.ndarray | None, s: float) -> float:
    if series is None or len(series) == 0:
        return 0.0
    i = int(min(max(0, int(s)), len(series) - 1))
    v = float(series[i])
    return v if np.isfinite(v) else 0.0


__all__ = ["Cover", "EyeFinder", "choose_cover"]
