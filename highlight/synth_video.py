"""A video track with sound for synthetic sessions, drawn from their labels.

Planted moments show on screen (fast cuts, a product swinging across, brighter
light) and in the sound (louder, excited pitch, claps); the audience's reaction
is already in the events, a few seconds later. Decoys fire one signal only: a
``visual_decoy`` is busy on screen in a quiet room, an ``audio_decoy`` is loud
applause over a calm picture. The rest is a host talking in phrases with pauses
between them, with a cut every 20-30 s.

Same seed, same pixels and samples (encoded with the bundled ffmpeg).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .media import ffmpeg_exe

SAMPLE_RATE = 16_000


def _busy(t: float, spans: list[tuple[float, float]]) -> bool:
    return any(a <= t < b for a, b in spans)


def synth_audio(duration: float, *, moments: list[tuple[float, float]], audio_decoys: list[tuple[float, float]],
                seed: int, variants: tuple[str, ...] = ()) -> np.ndarray:
    """Mono float32 at 16 kHz: phrases of 'speech' with pauses, excited at moments, applause at decoys.
    A ``quieter`` moment: the host nearly stops and the claps are faint; ``talking``:
    the host talks on at the usual level, excited, under the claps."""
    rng = np.random.default_rng([seed, 7])
    n = int(duration * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    # phrases 2-5 s long, pauses 0.4-0.9 s
    env = np.zeros(n, dtype=np.float32)
    pos = 0.0
    while pos < duration:
        length = rng.uniform(2.0, 5.0)
        a, b = int(pos * SAMPLE_RATE), int(min(pos + length, duration) * SAMPLE_RATE)
        env[a:b] = 1.0
        pos += length + rng.uniform(0.4, 0.9)
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    excited = np.zeros(n, dtype=bool)
    gain = np.full(n, 0.1, dtype=np.float32)
    clap_amp = []
    for k, (a, b) in enumerate(moments):
        i, j = int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)
        excited[i:j] = True
        variant = variants[k % len(variants)] if variants else "plain"
        gain[i:j] = {"quieter": 0.01, "talking": 0.1}.get(variant, 0.35)
        clap_amp.append(0.04 if variant == "quieter" else 0.3)
    pitch = 140.0 + 15.0 * np.sin(2 * np.pi * 0.3 * t) + np.where(excited, 70.0 * np.sin(2 * np.pi * 1.7 * t), 0.0)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = 0.6 * np.sin(phase) + 0.25 * np.sin(2 * phase) + 0.15 * rng.standard_normal(n)
    audio = (voice * syllables * env * gain).astype(np.float32)
    # claps in moments, applause at audio decoys: short noise bursts
    for spans, rate, amps in ((moments, 5.0, clap_amp), (audio_decoys, 8.0, [0.45] * len(audio_decoys))):
        for (a, b), amp in zip(spans, amps):
            for onset in np.arange(a, b, 1.0 / rate) + rng.uniform(0, 0.05, int(np.ceil((b - a) * rate))):
                i = int(onset * SAMPLE_RATE)
                burst = rng.standard_normal(800) * np.exp(-np.arange(800) / 150.0) * amp
                audio[i:i + 800] += burst[: max(0, min(800, n - i))].astype(np.float32)
    return np.clip(audio, -1.0, 1.0)


FACE = Path(__file__).with_name("assets") / "host_face.jpg"


def host_x(t: float, shot: int) -> float:
    """Where the host's face is centred (0-1 across): each shot frames them
    somewhere between 0.3 and 0.7, and they sway a little as they talk."""
    return 0.3 + 0.4 * ((shot * 0.618) % 1.0) + 0.03 * float(np.sin(2 * np.pi * 0.25 * t))


def _face(h: int) -> np.ndarray:
    import cv2

    face = cv2.imread(str(FACE))
    fh = max(24, int(h * 0.5))
    return cv2.resize(face, (int(fh * face.shape[1] / face.shape[0]), fh), interpolation=cv2.INTER_AREA)


def _frame(t: float, shot: int, busy: bool, w: int, h: int, palette: np.ndarray, face: np.ndarray,
           light: float = 1.35) -> np.ndarray:
    import cv2

    base = palette[shot % len(palette)]
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = np.clip(base * (light if busy else 1.0), 0, 255).astype(np.uint8)
    # the host: a real face (public-domain photo), framed per shot, swaying
    fh, fw = face.shape[:2]
    left = min(max(int(w * host_x(t, shot) - fw / 2), 0), w - fw)
    top = int(h * 0.42 - fh / 2)
    img[top:top + fh, left:left + fw] = face
    if busy:  # a product swinging fast across the frame
        px = int(w * (0.5 + 0.4 * np.sin(2 * np.pi * 0.9 * t)))
        py = int(h * (0.75 + 0.1 * np.cos(2 * np.pi * 1.3 * t)))
        cv2.rectangle(img, (px - w // 12, py - h // 10), (px + w // 12, py + h // 10), (30, 200, 250), -1)
    return img


def render_broadcast(out: str | Path, *, duration: float, moments: list[tuple[float, float]],
                     visual_decoys: list[tuple[float, float]], audio_decoys: list[tuple[float, float]],
                     seed: int = 0, width: int = 320, height: int = 180, fps: int = 10, crf: int = 30,
                     variants: tuple[str, ...] = ()) -> Path:
    """Write ``out`` (H.264 + AAC mp4). Spans are seconds from the video's start.
    ``variants`` (in turn over the moments): ``darker`` (the light drops instead
    of rising), ``quieter``, ``talking`` (see :func:`synth_audio`), ``plain``."""
    out = Path(out)
    rng = np.random.default_rng([seed, 11])
    palette = rng.integers(40, 200, size=(24, 3)).astype(np.float64)
    busy_spans = list(moments) + list(visual_decoys)
    audio = synth_audio(duration, moments=list(moments), audio_decoys=list(audio_decoys), seed=seed,
                        variants=variants)
    dark = [m for k, m in enumerate(moments) if variants and variants[k % len(variants)] == "darker"]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio.f32"
        wav.write_bytes(audio.tobytes())
        cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
               "-r", str(fps), "-i", "-", "-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", str(wav),
               "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-g", str(fps * 2), "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-b:a", "48k", "-shortest", "-movflags", "+faststart", str(out)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        shot, next_cut = 0, float(rng.uniform(20, 30))
        face = _face(height)
        assert proc.stdin is not None
        for f in range(int(duration * fps)):
            t = f / fps
            busy = _busy(t, busy_spans)
            if t >= next_cut:
                shot += 1
                next_cut = t + (float(rng.uniform(1.5, 3.0)) if busy else float(rng.uniform(20, 30)))
            elif busy and next_cut - t > 3.0:
                next_cut = t + float(rng.uniform(1.5, 3.0))
            light = 0.5 if _busy(t, dark) else 1.35
            proc.stdin.write(_frame(t, shot, busy, width, height, palette, face, light).tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {out}")
    return out


def add_video(folder: str | Path, *, seed: int = 0, width: int = 320, height: int = 180, fps: int = 10,
              variants: tuple[str, ...] = ()) -> Path:
    """Render ``video.mp4`` for a synthetic session folder from its labels and
    name it in ``session.json``."""
    import msgspec

    from sessions.folder import SESSION_FILE, SessionInfo

    folder = Path(folder)
    info = msgspec.json.decode((folder / SESSION_FILE).read_bytes(), type=SessionInfo)
    labels = msgspec.json.decode((folder / "labels.json").read_bytes())
    t0 = info.start
    room = info.room_id

    def spans(items, kind=None):
        return [(x["start"] - t0, x["end"] - t0) for x in items if x["room_id"] == room and kind in (None, x["kind"])]

    render_broadcast(folder / "video.mp4", duration=info.end - info.start, moments=spans(labels["moments"]),
                     visual_decoys=spans(labels["decoys"], "visual_decoy"),
                     audio_decoys=spans(labels["decoys"], "audio_decoy"), seed=seed, width=width, height=height,
                     fps=fps, variants=variants)
    files = msgspec.structs.replace(info.files, video="video.mp4")
    info = msgspec.structs.replace(info, files=files)
    (folder / SESSION_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    return folder / "video.mp4"
