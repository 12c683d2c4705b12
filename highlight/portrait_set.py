"""Portrait phone broadcasts of a host who moves, with music under the voice,
for testing the highlight finder on what live commerce really streams.

What makes them hard, on purpose (each is what a phone stream has and the
landscape set in ``highlight/camera_set.py`` does not):

* **Portrait 9:16**, a real face (``carphone.mp4``) filling the frame.
* **A host who moves all the time**: the host leans and sways, laughs (the picture
  shakes), and puts a hand to the face now and then. The room's usual picture
  changes as much as a product held up does, so change has to be measured
  against the room's own normal and where the picture usually keeps still.
* **Music under the voice the whole time** (the film's soundtrack, low), and
  the host's recorded phrases with pauses over it.
* **A fixed 2 s keyframe interval** and no keyframe at scene changes, as a live
  encoder writes it.
* **Moments**: a product (a picture from the film, in a white frame) held up
  into the lower half of the picture, with an excited voice (faster, higher,
  louder) and a short cheer. **Decoys in one signal only**: a product shown
  with a calm voice (video only), an excited voice and a cheer with no product
  (sound only).

Frames are composed in numpy/OpenCV and piped to ffmpeg; the events, labels and
timings are a synthetic session's (:func:`sessions.synth.synth_session`), so the
audience reacts with its lag. Same seed, same broadcast.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import msgspec
import numpy as np

from .camera_set import SR, Span, _claps, _sound, _voice_track
from .media import ffmpeg_exe

WIDTH, HEIGHT, FPS = 360, 640, 25
GOP_S = 2.0


def _frames(path: Path, size: tuple[int, int] | None = None, limit: int | None = None) -> np.ndarray:
    """A video's frames as RGB (``size``: scaled to it), at most ``limit``."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while limit is None or len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        out.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if size else frame)
    cap.release()
    if not out:
        raise RuntimeError(f"{path}: no frames")
    return np.stack(out)


def _host_frames(media: Path, size: tuple[int, int]) -> np.ndarray:
    """The host: the face footage cut to 9:16 around the face, a little larger
    than the picture (the host leans and sways inside it), looped forward then back."""
    import cv2

    raw = _frames(media / "carphone.mp4")
    h, w = raw.shape[1:3]
    cw = int(h * 9 / 16)
    x0 = (w - cw) // 2
    W, H = size
    big = (int(W * 1.25), int(H * 1.25))
    frames = []
    for f in raw:  # upscaled, then sharpened back to a phone camera's detail (an upscale alone is smooth)
        up = cv2.resize(f[:, x0:x0 + cw], big, interpolation=cv2.INTER_CUBIC)
        frames.append(cv2.addWeighted(up, 2.2, cv2.GaussianBlur(up, (0, 0), 3.0), -1.2, 0))
    frames = np.stack(frames)
    return np.concatenate([frames, frames[::-1]])


def _products(media: Path, rng: np.random.Generator, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n`` products, in turn: a box printed with a street picture (the grays and
    browns of the room itself: the picture's colours hardly change when it is
    held up), and a plain box in one muted colour with a small label (little
    texture). In a thin dark frame."""
    import cv2

    street = _frames(media / "city.mpg", limit=300)
    W, _ = size
    out = []
    for k in range(n):
        pw = int(W * rng.uniform(0.45, 0.6))
        ph = int(pw * rng.uniform(0.6, 1.1))
        if k % 2 == 0:
            f = street[int(rng.integers(len(street)))]
            fh, fw = f.shape[:2]
            cw = int(fw * rng.uniform(0.3, 0.6))
            ch = min(fh, int(cw * ph / pw))
            x, y = int(rng.integers(0, fw - cw + 1)), int(rng.integers(0, fh - ch + 1))
            pic = cv2.resize(f[y:y + ch, x:x + cw], (pw - 8, ph - 8), interpolation=cv2.INTER_AREA)
        else:
            colour = tuple(int(c) for c in rng.integers(60, 200, 3))
            pic = np.full((ph - 8, pw - 8, 3), colour, dtype=np.uint8)
            lw, lh = (pw - 8) // 2, (ph - 8) // 5
            lx, ly = (pw - 8 - lw) // 2, (ph - 8) // 2
            cv2.rectangle(pic, (lx, ly), (lx + lw, ly + lh), (235, 235, 230), -1)
            cv2.putText(pic, "NEW", (lx + 4, ly + lh - 4), cv2.FONT_HERSHEY_SIMPLEX, lh / 30, (40, 40, 40), 1)
        out.append(cv2.copyMakeBorder(pic, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=(40, 36, 34)))
    return out


def _busy_spans(duration: float, rng: np.random.Generator, every_s: float, length: tuple[float, float]) -> list:
    spans, t = [], float(rng.uniform(2, every_s))
    while t < duration:
        d = float(rng.uniform(*length))
        spans.append((t, t + d))
        t += d + float(rng.exponential(every_s))
    return spans


def _inside(t: float, spans) -> float | None:
    for a, b in spans:
        if a <= t < b:
            return t - a
    return None


def _excited(speech: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """The host excited: the phrases faster and higher (resampled by 1.3), loud, with short pauses."""
    out = np.zeros(n, dtype=np.float32)
    pos = 0
    while pos < n:
        clip = speech[int(rng.integers(len(speech)))]
        fast = np.interp(np.arange(0, len(clip), 1.3), np.arange(len(clip)), clip).astype(np.float32)
        fast = fast[: n - pos]
        out[pos:pos + len(fast)] += fast * 0.9 / max(float(np.abs(fast).max()), 1e-6)
        pos += len(fast) + int(rng.uniform(0.1, 0.3) * SR)
    return out


def render_portrait(out: Path, *, duration: float, spans: list[Span], media: Path, seed: int = 0,
                    size: tuple[int, int] = (WIDTH, HEIGHT), fps: int = FPS, still: bool = False) -> Path:
    """An mp4 of ``duration`` seconds: the moving host, with ``spans`` (seconds from
    the start: ``moment``, ``visual_decoy``, ``audio_decoy``). ``still``: a host
    who keeps still (no sway, laughs or hands), for comparison."""
    import cv2

    rng = np.random.default_rng([seed, 31])
    W, H = size
    host = _host_frames(media, size)
    hh, hw = host.shape[1:3]
    shown = [s for s in spans if s.kind in ("moment", "visual_decoy")]
    products = _products(media, rng, max(1, len(shown)), size)
    laughs = [] if still else _busy_spans(duration, rng, 25.0, (2.0, 4.0))
    hands = [] if still else _busy_spans(duration, rng, 18.0, (1.5, 3.5))
    close = [] if still else _busy_spans(duration, rng, 30.0, (2.0, 5.0))  # leans into the camera
    away = [] if still else _busy_spans(duration, rng, 35.0, (1.5, 4.0))  # leans out of the picture
    phase = rng.uniform(0, 2 * np.pi, 4)
    out.with_suffix(".host.json").write_bytes(msgspec.json.encode(  # what the host does when: for a reader of the tests
        {"laughs": laughs, "hands": hands, "close": close, "away": away}))

    # -- sound: music under the voice throughout; excitement and a cheer at moments and audio decoys
    speech = [_sound(p) for p in sorted((media / "speech").glob("*.wav"))]
    claps = [_sound(p) for p in sorted((media / "claps").glob("*.wav"))]
    music = _sound(media / "bunny.mp4")
    n = int(duration * SR)
    sound = _voice_track(n, speech, rng) + np.resize(music, n) * 0.18 / max(float(np.abs(music).max()), 1e-6)
    for s in spans:
        if s.kind not in ("moment", "audio_decoy"):
            continue
        a, b = int(s.start * SR), min(int(s.end * SR), n)
        sound[a:b] *= 0.5
        sound[a:b] += _excited(speech, b - a, rng)
        cheer = min(b - a, int(2.5 * SR))
        sound[a:a + cheer] += _claps(cheer, claps, rng, rate=8.0) * 0.6

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "sound.f32"
        wav.write_bytes(np.clip(sound, -1, 1).astype(np.float32).tobytes())
        cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
               "-r", str(fps), "-i", "-", "-f", "f32le", "-ar", str(SR), "-ac", "1", "-i", str(wav),
               "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "27",
               "-g", str(int(GOP_S * fps)), "-keyint_min", str(int(GOP_S * fps)), "-sc_threshold", "0",
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-shortest", "-movflags", "+faststart", str(out)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for i in range(int(round(duration * fps))):
                t = i / fps
                frame = _host_at(host, i, t, W, H, hw, hh, phase, (laughs, hands, close, away), still)
                for k, s in enumerate(shown):
                    if s.start <= t < s.end:
                        _hold_up(frame, products[k], t - s.start, s.end - t, W, H)
                proc.stdin.write(frame.tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed: {proc.stderr.read().decode(errors='replace')[-400:]}")
    return out


def _host_at(host: np.ndarray, i: int, t: float, W: int, H: int, hw: int, hh: int, phase, busy,
             still: bool) -> np.ndarray:
    """The host's picture at frame ``i``: swaying, shaking with laughter, leaning
    into the camera (the exposure drops) or out of the picture, a hand up to the
    face now and then."""
    laughs, hands, close, away = busy
    import cv2

    src = host[i % len(host)]
    if still:
        x, y, zoom = (hw - W) / 2, (hh - H) / 2, 1.0
    else:
        x = (hw - W) / 2 + 0.4 * (hw - W) / 2 * np.sin(2 * np.pi * t / 7.0 + phase[0])
        y = (hh - H) / 2 + 0.4 * (hh - H) / 2 * np.sin(2 * np.pi * t / 5.0 + phase[1])
        zoom = 1.0 + 0.08 * np.sin(2 * np.pi * t / 11.0 + phase[2])
        laugh = _inside(t, laughs)
        if laugh is not None:  # shaking with laughter, leaning back
            x += 18 * np.sin(2 * np.pi * 3.1 * t)
            y += 14 * np.sin(2 * np.pi * 2.3 * t + 1.0) - 20 * np.sin(np.pi * min(1.0, laugh / 1.5))
        lean = _inside(t, close)
        if lean is not None:
            zoom *= 1.0 + 0.6 * min(1.0, lean / 0.5)
        out = _inside(t, away)
        if out is not None:
            x += (0.45 * W if phase[3] > np.pi else -0.45 * W) * min(1.0, out / 0.5)
    m = np.float32([[zoom, 0, -x * zoom - (zoom - 1) * W / 2], [0, zoom, -y * zoom - (zoom - 1) * H / 2]])
    frame = cv2.warpAffine(src, m, (W, H), borderMode=cv2.BORDER_REFLECT)
    if not still and _inside(t, close) is not None:
        frame = cv2.convertScaleAbs(frame, alpha=0.8, beta=-10)  # the phone's exposure follows the face up close
    hand = None if still else _inside(t, hands)
    if hand is not None:  # a hand up to the face: a skin-coloured palm rising over the lower face
        rise = min(1.0, hand / 0.4)
        cx, cy = int(W * (0.42 + 0.1 * np.sin(phase[3] + t))), int(H * (0.62 - 0.22 * rise))
        cv2.ellipse(frame, (cx, cy), (int(W * 0.2), int(H * 0.14)), 15, 0, 360, (224, 172, 150), -1)
        cv2.rectangle(frame, (cx - int(W * 0.1), cy), (cx + int(W * 0.1), H), (210, 160, 140), -1)
    return frame


def _hold_up(frame: np.ndarray, product: np.ndarray, since: float, left: float, W: int, H: int) -> None:
    """A product held up into the lower half: it rises in, wobbles in the host's hand, and goes down again."""
    ph, pw = product.shape[:2]
    up = min(1.0, since / 0.6, max(0.0, left) / 0.6)
    top = int(H - up * (H * 0.22 + ph * 0.5))
    left_x = int((W - pw) / 2 + 10 * np.sin(2 * np.pi * 0.7 * since))
    y0, y1 = max(0, top), min(H, top + ph)
    x0, x1 = max(0, left_x), min(W, left_x + pw)
    if y1 > y0 and x1 > x0:
        frame[y0:y1, x0:x1] = product[y0 - top:y1 - top, x0 - left_x:x1 - left_x]


def add_portrait_video(folder: Path, *, media: Path, seed: int = 0, still: bool = False,
                       size: tuple[int, int] = (WIDTH, HEIGHT), fps: int = FPS) -> Path:
    """Render ``video.mp4`` for a synthetic session folder from its labels and
    name it in ``session.json`` (see :func:`highlight.camera_set.add_camera_video`)."""
    from sessions.folder import SESSION_FILE, SessionInfo

    folder = Path(folder)
    info = msgspec.json.decode((folder / SESSION_FILE).read_bytes(), type=SessionInfo)
    labels = msgspec.json.decode((folder / "labels.json").read_bytes())
    t0, room = info.start, info.room_id
    spans = [Span(m["start"] - t0, m["end"] - t0, "moment") for m in labels["moments"] if m["room_id"] == room]
    spans += [Span(d["start"] - t0, d["end"] - t0, d["kind"]) for d in labels["decoys"] if d["room_id"] == room]
    render_portrait(folder / "video.mp4", duration=info.end - info.start, spans=spans, media=media, seed=seed,
                    size=size, fps=fps, still=still)
    files = msgspec.structs.replace(info.files, video="video.mp4")
    info = msgspec.structs.replace(info, files=files)
    (folder / SESSION_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    return folder / "video.mp4"


__all__ = ["render_portrait", "add_portrait_video"]
