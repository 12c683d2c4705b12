"""Per-second signals of a broadcast: video (OpenCV), audio (librosa), interactions.

Every signal is an array with one value per second of the video. Video is read
in two passes: a coarse pass over keyframes only (brightness, sharpness, shot
cuts, and keyframe density: encoders put a keyframe at every scene cut; faces),
then a fine pass at a few frames per second only inside candidate windows
(motion, and where across the picture it is). Frames are scaled to a fixed 16:9
size, so a portrait (phone) picture is squeezed: fine for differences and
histograms, but faces in it are found less often.
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
        h, w = frame.shape
        found = self._cascade.detectMultiScale(frame, scaleFactor=1.15, minNeighbors=4, minSize=(h // 6, h // 6))
        if len(found) == 0:
            return None
        x, y, fw, fh = max(found, key=lambda r: r[2] * r[3])
        return (x + fw / 2) / w, fw * fh / (w * h)


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


def coarse_video(path: Path, seconds: int, *, start: float = 0.0) -> VideoSignals:
    """Keyframes only: brightness, sharpness, shot cuts, faces, for ``seconds``
    from ``start``. Times in the result are seconds from ``start``."""
    import cv2

    w, h = COARSE_SIZE
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
    for t, rgb in gray_frames(path, width=w, height=h, keyframes_only=True, start=start or None,
                              duration=seconds, color=True):
        frame = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        t -= start
        if not 0 <= t < seconds:
            continue
        s = int(t)
        bright[s] = float(frame.mean())
        sharp[s] = float(cv2.Laplacian(frame, cv2.CV_64F).var())
        face = finder.largest(frame)
        share[s] = face[1] if face else 0.0
        if face:
            face_x[s] = face[0]
        hist = _hist(frame)
        hists[s] = _colour_hist(rgb, hist)
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
                        novelty=_novelty(hists))


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
    w, h = FINE_SIZE
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
