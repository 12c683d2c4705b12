"""Per-second signals of a broadcast: video (OpenCV), audio (librosa), interactions.

Every signal is an array with one value per second of the video. Video is read
in two passes: a coarse pass over keyframes only (brightness, sharpness, shot
cuts, and keyframe density: encoders put a keyframe at every scene cut; faces;
change region by region), then a fine pass at a few frames per second only
inside candidate windows (motion, and where across the picture it is). Frames
are scaled to a small size that keeps the picture's aspect (a portrait phone
stream stays portrait: a squeezed face is not found).

Change is measured against the room's own normal: a host who moves all the time
makes the whole picture's change ordinary, so the picture is also cut into
regions, each compared with its own usual content and its own usual variation,
and only change that lasts counts there (a product held up stays in the
picture; a hand to the face, a lean, a laugh pass).
Audio is read in chunks (constant memory). Interactions come from the session's
events, z-scored against the room's own baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .media import audio_chunks, gray_frames

COARSE_SIZE = (192, 108)  # large enough for a host's face (Haar finds faces from 18 px here)
FINE_SIZE = (64, 36)
FACE_EVERY_S = 3.5  # faces are looked for at most this often (keyframes may come every second or less)
STEADY_S = 4.0  # a region's new content counts once it has stayed alike this long (see ``regional_change``)
REGION_HOLD_S = 9  # change in a region counts once it lasts about this long (see ``regional_change``)


def frame_size(width: int, height: int, base: tuple[int, int] = COARSE_SIZE) -> tuple[int, int]:
    """``base``'s pixel count in the picture's own aspect (even sides): 192x108
    for 16:9, 108x192 for a 9:16 phone stream; ``base`` itself if unknown."""
    if width <= 0 or height <= 0:
        return base
    area = base[0] * base[1]
    w = max(2, int(round(np.sqrt(area * width / height) / 2)) * 2)
    return w, max(2, int(round(area / w / 2)) * 2)


def robust_z(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """(x - median) / (1.4826 MAD), the median and MAD of ``ref`` (default: ``x``).
    For sparse signals (shot cuts: mostly zero, so MAD = 0) half the standard
    deviation is the floor, so a lone event is not a spike."""
    ref = x if ref is None else ref
    med = float(np.median(ref))
    mad = float(np.median(np.abs(ref - med))) * 1.4826
    scale = max(mad, 0.5 * float(np.std(ref)), 1e-6)
    return (x - med) / scale


def _hist(frame: np.ndarray) -> np.ndarray:
    h = np.bincount((frame // 8).ravel(), minlength=32).astype(np.float64)
    return h / h.sum()


class FaceFinder:
    """OpenCV's frontal-face Haar cascade on small gray frames: the largest face's
    centre (0-1 across the picture) and its share of the picture."""

    def __init__(self) -> None:
        import cv2

        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self._cascade.empty():
            raise RuntimeError("OpenCV's frontal-face cascade is missing (opencv-python-headless < 5 ships it)")

    def largest(self, frame: np.ndarray) -> tuple[float, float] | None:
        box = self.box(frame)
        if box is None:
            return None
        h, w = frame.shape
        x, y, fw, fh = box
        return (x + fw / 2) / w, fw * fh / (w * h)

    def box(self, frame: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest face's ``(x, y, w, h)`` in ``frame``'s pixels (it may reach
        past the edges), or None. The frame is padded by a fifth of its short side
        first: a phone's close-up cuts the forehead or the chin off, and the
        cascade only finds a face it sees whole."""
        import cv2

        h, w = frame.shape
        pad = min(h, w) // 5
        padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        side = min(h, w) // 6
        found = self._cascade.detectMultiScale(padded, scaleFactor=1.15, minNeighbors=2, minSize=(side, side))
        if len(found) == 0:
            return None
        x, y, fw, fh = max(found, key=lambda r: r[2] * r[3])
        return int(x) - pad, int(y) - pad, int(fw), int(fh)


@dataclass
class VideoSignals:
    seconds: int
    brightness: np.ndarray
    sharpness: np.ndarray
    cuts: np.ndarray  # shot cuts per second
    face_share: np.ndarray  # the largest face's share of the picture (0 where none), per keyframe held
    face_x: np.ndarray  # its centre, 0-1 across the picture; NaN where no face was seen
    cut_times: list[float] = field(default_factory=list)
    novelty: np.ndarray | None = None  # how far the picture's histogram is from the broadcast's usual one
    motion: np.ndarray | None = None  # filled by the fine pass where it ran (NaN elsewhere)
    active_x: np.ndarray | None = None  # centre of the motion, 0-1 across; fine pass only (NaN elsewhere)
    regional: np.ndarray | None = None  # lasting change where the picture usually keeps still (portrait only)
    size: tuple[int, int] = COARSE_SIZE  # the analysed frames' width and height (the picture's aspect)


def _hold(values: np.ndarray, fill: float) -> np.ndarray:
    """Carry each keyframe's value forward to the next keyframe's second."""
    out = values.copy()
    last = fill
    for i, v in enumerate(out):
        if np.isnan(v):
            out[i] = last
        else:
            last = v
    return out


def coarse_video(path: Path, seconds: int, *, start: float = 0.0,
                 size: tuple[int, int] = COARSE_SIZE) -> VideoSignals:
    """Keyframes only: brightness, sharpness, shot cuts, faces, change by region,
    for ``seconds`` from ``start``, on frames of ``size`` (see :func:`frame_size`).
    Times in the result are seconds from ``start``."""
    import cv2

    w, h = size
    # Regional change on portrait (phone) streams only: on landscape broadcasts cut between
    # shots, a new shot that reframes the host passed for it (see highlight/pipeline.py).
    portrait = h > w
    rows, cols = 8, 6  # regions of about 18x24 px: a product held up fills some
    cells = np.full((seconds, rows * cols, REGION_BINS), np.nan) if portrait else None
    bright = np.full(seconds, np.nan)
    sharp = np.full(seconds, np.nan)
    share = np.full(seconds, np.nan)
    face_x = np.full(seconds, np.nan)
    cuts = np.zeros(seconds)
    hists = np.full((seconds, 64), np.nan)
    cut_times: list[float] = []
    finder = FaceFinder()
    prev_hist = None
    prev_t = None
    last_face = -np.inf
    for t, rgb in gray_frames(path, width=w, height=h, keyframes_only=True, start=start or None,
                              duration=seconds, color=True):
        frame = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        t -= start
        if not 0 <= t < seconds:
            continue
        s = int(t)
        bright[s] = float(frame.mean())
        sharp[s] = float(cv2.Laplacian(frame, cv2.CV_64F).var())
        if t - last_face >= FACE_EVERY_S:  # between two looks, the last one holds
            last_face = t
            face = finder.largest(frame)
            share[s] = face[1] if face else 0.0
            if face:
                face_x[s] = face[0]
        hist = _hist(frame)
        hists[s] = _colour_hist(rgb, hist)
        if cells is not None:
            cells[s] = _region_hists(rgb, rows, cols)
        if prev_hist is not None:
            chi = 0.5 * float(np.sum((hist - prev_hist) ** 2 / (hist + prev_hist + 1e-9)))
            # a jump in the picture, or a keyframe well inside the regular GOP: a cut
            if chi > 0.15 or (prev_t is not None and t - prev_t < 1.5):
                cuts[s] += 1
                cut_times.append(t)
        prev_hist, prev_t = hist, t
    idx = np.arange(seconds)
    for arr in (bright, sharp):
        ok = ~np.isnan(arr)
        arr[:] = np.interp(idx, idx[ok], arr[ok]) if ok.any() else 0.0
    # A face seen at a keyframe stays until the next keyframe says otherwise.
    seen = _hold(np.where(np.isnan(share), np.nan, np.where(share > 0, 1.0, 0.0)), 0.0) > 0
    face_x = np.where(seen, _hold(face_x, np.nan), np.nan)
    return VideoSignals(seconds, bright, sharp, cuts, _hold(share, 0.0), face_x, cut_times,
                        novelty=_novelty(hists), regional=regional_change(cells) if cells is not None else None, size=size)


REGION_TOP = 4  # regions that give a second's value: about a held-up product's share of the picture
REGION_BINS = 40  # 32 colour (8 hues x 2 saturations x 2 brightnesses) + 8 edge strengths


def _region_hists(rgb: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Per region of a ``rows`` x ``cols`` grid: what it shows, as a colour
    histogram and a histogram of edge strengths (a printed box, a label, a
    bottle's outline against skin and cloth), each normalised, halved."""
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    colour = (hsv[..., 0] // 23).astype(np.int32) * 4 + (hsv[..., 1] // 128) * 2 + (hsv[..., 2] // 128)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    edges = np.minimum((np.log1p(mag) * (8 / np.log1p(2040.0))).astype(np.int32), 7)
    h, w = colour.shape
    out = np.empty((rows * cols, REGION_BINS))
    for r in range(rows):
        for c in range(cols):
            box = (slice(r * h // rows, (r + 1) * h // rows), slice(c * w // cols, (c + 1) * w // cols))
            a = np.bincount(colour[box].ravel(), minlength=32)[:32].astype(np.float64)
            b = np.bincount(edges[box].ravel(), minlength=8)[:8].astype(np.float64)
            out[r * cols + c] = np.r_[a / max(a.sum(), 1.0), b / max(b.sum(), 1.0)] / 2
    return out


def _chi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 0.5 * np.sum((a - b) ** 2 / (a + b + 1e-9), axis=-1)


def regional_change(cells: np.ndarray, *, hold_s: int = REGION_HOLD_S) -> np.ndarray:
    """Per second, lasting change where the picture usually keeps still.

    ``cells``: per second (NaN where no keyframe), per region, what it shows
    (see :func:`_region_hists`). A region counts as showing something *new and
    steady* at a keyframe when it is far from its usual content (its median
    over the broadcast) and close to what it showed at every keyframe of the
    ``STEADY_S`` seconds before: a product held up is the same box from one
    keyframe to the next; a hand passing, a laugh, a lean into the camera, even
    one after the other, are not. Each region is scored
    against its own usual variation (a robust z), so the regions a moving host
    keeps busy need far more than the ones that usually keep still. A low
    percentile over ``hold_s`` seconds keeps only change that lasts, and the
    four regions that changed most, over the regions' median, give the
    second's value: change in a few places, not a new shot."""
    seconds, regions = cells.shape[:2]
    seen = ~np.isnan(cells[:, 0, 0])
    if seen.sum() < 3:
        return np.zeros(seconds)
    kept = cells[seen]
    times = np.flatnonzero(seen)
    far = _chi(kept, np.median(kept, axis=0))  # keyframes x regions
    # steady: like every keyframe of the last STEADY_S seconds (a lean into the camera
    # then a hand then a laugh are each new, but not the same thing twice in a row)
    moved = np.zeros_like(far)
    looked = np.zeros(len(kept), dtype=bool)
    for i in range(1, len(kept)):
        j = i - 1
        while j >= 0 and times[i] - times[j] <= STEADY_S + 1e-6:
            moved[i] = np.maximum(moved[i], _chi(kept[i], kept[j]))
            looked[i] = True
            j -= 1
    steady = np.where(looked[:, None] & (moved < far / 2), far, 0.0)
    z = np.stack([robust_z(steady[:, k]) for k in range(regions)], axis=1)
    held = np.full((seconds, regions), np.nan)
    held[seen] = z
    for k in range(regions):
        held[:, k] = _hold(held[:, k], 0.0)
    lasting = np.stack([_moving_low(held[:, k], hold_s) for k in range(regions)], axis=1)
    # Over the regions' middle: a new shot or a camera moved changes them all, and that is
    # the whole picture's measures' to see (novelty, cuts); this one is for change in a few.
    return np.sort(lasting, axis=1)[:, -REGION_TOP:].mean(axis=1) - np.median(lasting, axis=1)


def _moving_low(x: np.ndarray, width: int, q: float = 25.0) -> np.ndarray:
    """The ``q``th percentile over a centred moving window: high only where ``x``
    stays high for most of the window."""
    if width <= 1 or len(x) == 0:
        return x
    left = (width - 1) // 2
    padded = np.pad(x, (left, width - 1 - left), mode="edge")
    return np.percentile(np.lib.stride_tricks.sliding_window_view(padded, width), q, axis=1)


def _colour_hist(rgb: np.ndarray, gray_hist: np.ndarray) -> np.ndarray:
    """Half gray levels (32 bins), half hue x saturation (8 x 4): a green cartoon
    and a gray street of the same brightness are told apart."""
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hs = np.bincount((hsv[..., 0] // 23).ravel() * 4 + (hsv[..., 1] // 64).ravel(), minlength=32)[:32]
    return np.r_[gray_hist, hs / max(hs.sum(), 1)] / 2


def _novelty(hists: np.ndarray) -> np.ndarray:
    """Chi-square distance of each second's picture histogram (held from its
    keyframe) to the broadcast's median histogram: a scene unlike the room's
    usual picture, brighter, darker or other, stands out."""
    seen = ~np.isnan(hists[:, 0])
    if not seen.any():
        return np.zeros(len(hists))
    usual = np.median(hists[seen], axis=0)
    d = np.full(len(hists), np.nan)
    d[seen] = 0.5 * np.sum((hists[seen] - usual) ** 2 / (hists[seen] + usual + 1e-9), axis=1)
    return _hold(d, float(np.nanmedian(d)))


def fine_motion(path: Path, signals: VideoSignals, windows: list[tuple[float, float]], *, fps: float = 4.0,
                start: float = 0.0) -> None:
    """Mean absolute frame difference per second inside ``windows`` (seconds from
    ``start``), and where across the picture that motion is (for a crop that follows it)."""
    w, h = frame_size(*signals.size, base=FINE_SIZE)
    motion = np.full(signals.seconds, np.nan)
    active = np.full(signals.seconds, np.nan)
    columns = (np.arange(w) + 0.5) / w
    for a, b in windows:
        prev = None
        acc: dict[int, list[np.ndarray]] = {}
        for t, frame in gray_frames(path, width=w, height=h, fps=fps, start=start + a, duration=b - a, fast=True):
            f = frame.astype(np.int16)
            if prev is not None:
                acc.setdefault(min(int(t - start), signals.seconds - 1), []).append(np.abs(f - prev).mean(axis=0))
            prev = f
        for s, cols in acc.items():
            energy = np.mean(cols, axis=0)
            motion[s] = float(energy.mean())
            centre = busiest_cluster(energy, columns)
            if centre is not None:
                active[s] = centre
    signals.motion = motion
    signals.active_x = active


def busiest_cluster(energy: np.ndarray, columns: np.ndarray, *, share: float = 0.5) -> float | None:
    """Centre (0-1 across) of the run of neighbouring columns with the most motion:
    columns at ``share`` of the busiest one or more, split where they fall below
    it. Two groups moving apart give the larger group, not the empty point
    between them (the centroid of all motion)."""
    if len(energy) == 0 or energy.max() <= 0:
        return None
    hot = energy >= share * energy.max()
    best, best_energy, i = None, -1.0, 0
    while i < len(hot):
        if hot[i]:
            j = i
            while j < len(hot) and hot[j]:
                j += 1
            total = float(energy[i:j].sum())
            if total > best_energy:
                best, best_energy = (i, j), total
            i = j
        else:
            i += 1
    a, b = best
    return float(np.dot(energy[a:b], columns[a:b]) / energy[a:b].sum())


@dataclass
class AudioSignals:
    seconds: int
    loudness: np.ndarray  # dB
    onset: np.ndarray
    flux: np.ndarray
    pitch_var: np.ndarray  # semitones std of f0 over voiced frames
    pause: np.ndarray  # per 0.1 s: True where nobody speaks
    timbre: np.ndarray | None = None  # distance of the second's mel spectrum to the broadcast's usual one


def audio_signals(path: Path, seconds: int, *, sr: int = 16_000, start: float = 0.0) -> AudioSignals:
    import librosa

    hop = sr // 10  # 0.1 s frames
    rms_all, onset_all, flux_all, f0_all, mel_all = [], [], [], [], []
    mel_basis = librosa.filters.mel(sr=sr, n_fft=1024, n_mels=32)
    for chunk in audio_chunks(path, sr=sr, chunk_s=60.0, start=start or None, duration=seconds):
        if len(chunk) < hop:
            continue
        S = np.abs(librosa.stft(chunk, n_fft=1024, hop_length=hop))
        rms_all.append(librosa.feature.rms(S=S, frame_length=1024, hop_length=hop)[0])
        onset_all.append(librosa.onset.onset_strength(S=librosa.amplitude_to_db(S), sr=sr, hop_length=hop))
        flux_all.append(np.r_[0.0, np.sqrt((np.diff(S, axis=1).clip(min=0) ** 2).sum(axis=0))])
        mel_all.append(np.log10(mel_basis @ (S ** 2) + 1e-10).T)
        f0 = librosa.yin(chunk, fmin=70, fmax=400, sr=sr, frame_length=2048, hop_length=hop)
        f0_all.append(f0[: S.shape[1]])
    n10 = seconds * 10

    def fit(parts: list[np.ndarray]) -> np.ndarray:
        x = np.concatenate(parts) if parts else np.zeros(0)
        return np.pad(x[:n10], (0, max(0, n10 - len(x))))

    rms, onset, flux, f0 = fit(rms_all), fit(onset_all), fit(flux_all), fit(f0_all)
    mel = np.concatenate(mel_all)[:n10] if mel_all else np.zeros((0, 32))
    mel = np.vstack([mel, np.full((n10 - len(mel), 32), -10.0)]) if len(mel) < n10 else mel
    per_second_mel = mel.reshape(seconds, 10, 32).mean(axis=1)
    timbre = np.linalg.norm(per_second_mel - np.median(per_second_mel, axis=0), axis=1)
    db = 20 * np.log10(rms + 1e-6)
    pause = db < max(float(np.percentile(db, 90)) - 25.0, -60.0)
    semis = 12 * np.log2(np.maximum(f0, 1.0) / 100.0)
    per_s = lambda x: x.reshape(seconds, 10)  # noqa: E731
    voiced = ~per_s(pause)
    pv = np.array([float(np.std(row[v])) if v.sum() > 3 else 0.0 for row, v in zip(per_s(semis), voiced)])
    return AudioSignals(seconds, per_s(db).max(axis=1), per_s(onset).mean(axis=1), per_s(flux).mean(axis=1), pv,
                        pause, timbre)


INTERACTION_WEIGHTS = {"comment": 1.0, "like": 0.3, "share": 2.0, "follow": 1.0, "gift": 1.0, "cart_add": 2.0,
                       "order": 3.0}


def interaction_curve(events_path: Path, room_id: str, t0: float, seconds: int) -> np.ndarray:
    """Weighted interactions per second of the room, from its events file."""
    from streams.events import EventDecoder, Rejected
    from sessions.folder import LineReader

    dec = EventDecoder()
    curve = np.zeros(seconds)
    for lines in LineReader(events_path).chunks():
        for raw in lines:
            try:
                ev = dec.decode(raw)
            except Rejected:
                continue
            if ev.room_id != room_id or ev.kind_index < 0:
                continue
            s = int(ev.ts - t0)
            if 0 <= s < seconds:
                kind = type(ev).__struct_config__.tag
                curve[s] += INTERACTION_WEIGHTS.get(kind, 1.0) * (getattr(ev, "count", 1) if kind == "like" else 1)
    return curve


def estimate_lag(audio_z: np.ndarray, inter_z: np.ndarray, *, max_lag: int = 25) -> int:
    """Seconds the audience reacts after the sound: the lag that best lines up
    the interaction curve with the audio curve (cross-correlation)."""
    best, best_lag = -np.inf, 0
    a = audio_z - audio_z.mean()
    for lag in range(0, max_lag + 1):
        x, y = a[: len(a) - lag], inter_z[lag:] - inter_z[lag:].mean()
        if len(x) < 10:
            break
        c = float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-9))
        if c > best:
            best, best_lag = c, lag
    return best_lag
