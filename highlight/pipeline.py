"""Find a broadcast's best moments and cut them: signals -> fusion -> clips -> files.

``find_highlights`` is the analysis (reads media, returns clips and why);
``cut_clips`` renders them: a stream copy without re-encoding when the picture
is not changed (fast), moviepy when a 9:16 vertical crop with fades is asked.
Every clip gets a cover image, chosen among its keyframes (``highlight/covers.py``);
``manifest.json`` says why each clip and each cover was chosen.
"""

from __future__ import annotations

import math
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import msgspec
import numpy as np

from .features import (VideoSignals, audio_signals, coarse_video, estimate_lag, fine_motion, frame_size,
                       interaction_curve, robust_z)
from .covers import choose_cover
from .media import MediaError, MediaInfo, ffmpeg_exe, keyframe_times, probe
from .select import Clip, FusionWeights, SelectionConfig, fuse, pause_edges, select_clips, smooth

MANIFEST = "manifest.json"
CHANGE_SMOOTH_S = 9
FINE_SHARE = 0.25  # the fine (motion) pass decodes at most this share of the video


@dataclass
class Analysis:
    media: MediaInfo
    clips: list[Clip]
    lag_s: int | None
    cut_times: list[float]
    pause_times: list[float]
    timings: dict[str, float] = field(default_factory=dict)
    video: VideoSignals | None = None
    start: float = 0.0  # the analysed part began here (whole seconds); the signals' second 0


def _change_evidence(*, levels: tuple[np.ndarray, ...], events: tuple[np.ndarray, ...],
                     partial: tuple[np.ndarray, ...] = (), high: bool = False) -> np.ndarray:
    """Per second, how strongly several measures of change agree that something
    changed: the length of the vector of their rises (robust z-scores above 0),
    back on one robust scale. One strong rise counts, and so do several moderate
    ones together; a moment may show in any one way, and an average would dilute
    it. Every series is smoothed over CHANGE_SMOOTH_S first (``high``: levels by
    a moving 80th percentile, which the silent seconds between phrases do not
    move): a moment lasts, a pause or one busy second does not. A *level*
    (brightness, texture, loudness) counts by its distance from the usual either
    way, since a moment can be darker or quieter than the room; an *event* rate
    (cuts, onsets, flux) or a distance (novelty, timbre) counts as it is. A
    *partial* series (motion: measured by the fine pass in candidate windows only,
    whose usual level is a moment's, not the room's) counts only as a rise over
    what was measured."""
    changes = []
    for x in levels:
        x = _moving_high(x, CHANGE_SMOOTH_S) if high else smooth(x, CHANGE_SMOOTH_S)
        changes.append(robust_z(np.abs(x - np.median(x))))
    changes += [robust_z(smooth(x, CHANGE_SMOOTH_S)) for x in events]
    for x in partial:  # measured in some seconds only: a rise against those, nothing elsewhere
        seen = ~np.isnan(x)
        if seen.any():
            x = smooth(np.where(seen, x, np.median(x[seen])), CHANGE_SMOOTH_S)
            changes.append(np.where(seen, robust_z(x, x[seen]), 0.0))
    rises = np.clip(changes, 0.0, None)
    return robust_z(np.sqrt((rises ** 2).sum(axis=0)))


def _moving_high(x: np.ndarray, width: int, q: float = 80.0) -> np.ndarray:
    """The ``q``th percentile over a moving window: how loud the room gets in it,
    which the silences between a host's phrases do not move (a median flips
    when half the seconds are pauses)."""
    if width <= 1 or len(x) == 0:
        return x
    left = (width - 1) // 2
    padded = np.pad(x, (left, width - 1 - left), mode="edge")
    return np.percentile(np.lib.stride_tricks.sliding_window_view(padded, width), q, axis=1)


def video_change(vs: VideoSignals, motion: np.ndarray) -> np.ndarray:
    """How much the picture changes: brightness and texture away from the
    usual, a picture unlike the room's usual one, cut density, motion."""
    novelty = vs.novelty if vs.novelty is not None else np.zeros(vs.seconds)
    texture = np.log1p(np.maximum(vs.sharpness, 0.0))  # a smooth film scene against a busy street, or the reverse
    whole = _change_evidence(levels=(vs.brightness, texture), events=(novelty, smooth(vs.cuts, 10)), partial=(motion,))
    # Change in a few regions that lasts (a product held up while the host moves as ever) is
    # evidence of its own: mixed into the whole picture's measures, a moving host's noise drowns it.
    # Measured on portrait (phone) streams only (see ``coarse_video``).
    if vs.regional is None:
        return whole
    return np.maximum(whole, robust_z(smooth(vs.regional, CHANGE_SMOOTH_S)))


def audio_change(aud) -> np.ndarray:
    """How much the sound changes: loudness away from the usual either way, a
    timbre unlike the usual (music or claps instead of a voice), onsets,
    spectral flux, excited pitch."""
    timbre = aud.timbre if aud.timbre is not None else np.zeros(aud.seconds)
    # Digital silence (-120 dB) between two phrases is no deeper a change than 30 dB
    # under the usual, which a room gone quiet still reaches.
    loudness = np.maximum(aud.loudness, np.median(aud.loudness) - 30.0)
    return _change_evidence(levels=(loudness,), events=(timbre, aud.onset, aud.flux, aud.pitch_var), high=True)


def find_highlights(video: Path, *, events: Path | None = None, room_id: str | None = None, t0: float = 0.0,
                    weights: FusionWeights = FusionWeights(), selection: SelectionConfig = SelectionConfig(),
                    start: float = 0.0, end: float | None = None,
                    progress: Callable[[str], None] | None = None, pull_model=None) -> Analysis:
    """The best moments of ``video`` (or of its part from ``start`` to ``end`` seconds:
    a long broadcast is analysed segment by segment while it runs). ``events`` and
    ``room_id`` add the interaction curve; ``t0`` is the event time of the video's
    first second. Times in the result are seconds from the video's start.
    ``progress`` is told each stage as it begins (a progress bar's text).
    ``pull_model`` (a :class:`cliploop.learn.PullModel` fitted on what earlier
    clips drew after their broadcasts): the clips are chosen among three times
    as many candidates by the pull it predicts, not by the score alone."""
    say = progress or (lambda stage: None)
    info = probe(video)
    start = float(max(0, int(start)))  # whole seconds: signal arrays index seconds from here
    end = info.duration if end is None else min(end, info.duration)
    if end - start < 1.0:
        raise MediaError(f"{video}: nothing to analyse between {start:.0f} s and {end:.0f} s")
    seconds = max(1, int(math.ceil(end - start)))
    zeros = np.zeros(seconds)
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args, **kwargs):
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[name] = time.perf_counter() - began

    # The sound and the keyframes are decoded side by side (two ffmpeg processes;
    # librosa and OpenCV let go of the GIL): the two passes overlap on two cores.
    started = time.perf_counter()
    say("decoding the sound and the keyframes")
    with ThreadPoolExecutor(max_workers=1) as pool:
        audio_job = pool.submit(timed, "audio_s", audio_signals, video, seconds, start=start) \
            if info.has_audio else None
        vs = timed("video_coarse_s", coarse_video, video, seconds, start=start,
                   size=frame_size(info.width, info.height)) if info.has_video else None
        aud = audio_job.result() if audio_job is not None else None
    timings["coarse_and_audio_wall_s"] = time.perf_counter() - started
    audio_z = audio_change(aud) if aud is not None else zeros
    inter_z, lag = zeros, None
    if events is not None and room_id is not None:
        curve = interaction_curve(events, room_id, t0 + start, seconds)
        if curve.any():
            inter_z = robust_z(curve)
            reference = audio_z if aud is not None else (robust_z(vs.cuts) if vs is not None else zeros)
            lag = estimate_lag(reference, inter_z)
            inter_z = np.r_[inter_z[lag:], np.zeros(lag)]  # reactions moved back to what caused them
    video_z = zeros
    if vs is not None:
        started = time.perf_counter()
        say("measuring motion where something stirs")
        # Fine pass only where something else already stirs (decoding is the cost).
        hint = audio_z + inter_z + robust_z(vs.cuts) + (robust_z(vs.novelty) if vs.novelty is not None else 0.0)
        # At most FINE_SHARE of the video: on a short one, +-20 s around six peaks was two thirds of it.
        top = selection.top_k + 1
        half = int(max(4, min(20, FINE_SHARE * seconds / (2 * top))))
        windows = _candidate_windows(hint, seconds, top=top, half=half)
        fine_motion(video, vs, windows, start=start)
        timings["video_fine_s"] = time.perf_counter() - started
        timings["video_fine_share"] = sum(b - a for a, b in windows) / seconds
        motion = vs.motion if vs.motion is not None else np.full(seconds, np.nan)
        video_z = video_change(vs, motion)
    present = {"video": video_z if vs is not None else None, "audio": audio_z if aud is not None else None,
               "interactions": inter_z if lag is not None else None}
    say("choosing the clips")
    fused, parts = fuse({k: v for k, v in present.items() if v is not None}, weights, selection.smooth_s)
    pauses = pause_edges(aud.pause) if aud is not None else np.zeros(0)
    cuts = np.array(vs.cut_times) if vs is not None else np.zeros(0)
    wide = replace(selection, top_k=selection.top_k * 3) if pull_model is not None else selection
    clips = select_clips(fused, parts, wide, duration=end - start, pauses=pauses, cuts=cuts)
    if pull_model is not None:
        def predicted(c: Clip) -> float:
            lo, hi = int(c.start), max(int(c.start) + 1, int(math.ceil(c.end)))
            face = float(np.mean(vs.face_share[lo:hi] > 0)) if vs is not None else 0.0
            return pull_model.predict({"score": c.score, **c.signals, "face_share": face,
                                       "length_min": (c.end - c.start) / 60.0, "position": c.start / max(1.0, end - start)})
        chosen = set(map(id, sorted(clips, key=predicted, reverse=True)[:selection.top_k]))
        clips = [c for c in clips if id(c) in chosen]
        for c in clips:
            c.reasons.append(f"pull predicted {1000 * predicted(c):.1f} per 1000 impressions")
    for c in clips:
        if lag is not None:
            c.reasons.append(f"audience reacts {lag}s late (estimated)")
        if vs is not None:
            lo, hi = int(c.start), max(int(c.start) + 1, int(math.ceil(c.end)))
            on = float(np.mean(vs.face_share[lo:hi] > 0))
            if on > 0:
                c.reasons.append(f"a face on screen {on:.0%} of the clip")
        c.start, c.end = round(c.start + start, 2), round(c.end + start, 2)
    return Analysis(info, clips, lag, (cuts + start).tolist(), (pauses + start).tolist(), timings, vs, start)


def crop_track(analysis: Analysis, clip: Clip) -> np.ndarray:
    """Per second of ``clip``: where a vertical crop centres (0-1 across the picture).
    The largest face where one is seen, else the centre of the motion, else the
    middle; smoothed over 3 s so the crop glides instead of jumping."""
    lo = int(math.floor(clip.start))
    n = max(1, int(math.ceil(clip.end)) - lo)
    vs = analysis.video
    x = np.full(n, np.nan)
    if vs is not None:
        first = max(0, lo - int(analysis.start))
        span = slice(first, first + n)
        for source in (vs.face_x, vs.active_x):
            if source is not None:
                part = np.full(n, np.nan)
                got = source[span]
                part[: len(got)] = got
                x = np.where(np.isnan(x), part, x)
    x = np.where(np.isnan(x), np.nanmedian(x) if np.isfinite(x).any() else 0.5, x)
    padded = np.r_[x[:1], x, x[-1:]]
    return np.convolve(padded, np.ones(3) / 3, mode="valid")


def _candidate_windows(hint: np.ndarray, seconds: int, *, top: int, half: int = 20) -> list[tuple[float, float]]:
    """Merged windows of +-``half`` seconds around the ``top`` strongest seconds."""
    order = np.argsort(-hint, kind="stable")
    spans: list[list[int]] = []
    for s in order:
        if len(spans) >= top:
            break
        if any(a <= s < b for a, b in spans):
            continue
        spans.append([max(0, s - half), min(seconds, s + half)])
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(float(a), float(b)) for a, b in merged]


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MediaError(f"{what} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")


def cover_image(video: Path, t: float, out: Path) -> Path:
    _run([ffmpeg_exe(), "-y", "-v", "error", "-ss", f"{t:.2f}", "-i", str(video), "-frames:v", "1", "-q:v", "3",
          str(out)], "cover image")
    return out


def copy_span(start: float, end: float, keyframes: tuple[float, ...], *, min_s: float,
              max_s: float) -> tuple[float, float] | None:
    """Where a stream copy of ``[start, end)`` can begin, and its end; None when no
    keyframe allows it within the length bounds (the clip is then re-encoded).

    Why: a copy can only begin on a keyframe. ffmpeg seeks to the one before
    ``start`` and keeps everything from there, so a clip chosen as 58 s came out
    63.4 s long past ``--max 60``, and began earlier than the manifest said. The
    keyframe at or before ``start`` is taken when the clip stays within ``max_s``;
    else the first one after ``start``, when at least ``min_s`` is left."""
    before = [k for k in keyframes if k <= start + 1e-3]
    if before and min_s - 1e-6 <= end - before[-1] <= max_s + 1e-6:
        return before[-1], end
    after = [k for k in keyframes if k > start + 1e-3]
    if after and end - after[0] >= min_s - 1e-6:
        return after[0], min(end, after[0] + max_s)
    return None


def render_clip(video: Path, clip: Clip, out: Path, *, vertical: bool = False, fade_s: float = 0.5,
                track: np.ndarray | None = None, copy_from: float | None = None) -> Path:
    """One clip file. ``copy_from``: a keyframe at which the picture is copied
    as it is (no re-encoding; see :func:`copy_span`). Otherwise it is re-encoded:
    exact cuts; ``vertical`` makes it a 9:16 crop with short fades, its centre
    following ``track`` (per second of the clip, 0-1 across; see :func:`crop_track`),
    the middle when none is given."""
    # A clip is a whole number of frames: at a sparse frame rate (1 fps) the frame
    # that starts just before the end would run a second past it, and past --max.
    # Below 1 fps (a frame longer than a second, maybe longer than --max) the clip
    # is re-encoded at 1 fps, each source frame repeated: its length stays exact.
    fps = probe(video).fps
    out_fps = max(fps, 1.0) if fps > 0 else 0.0
    if fps and fps < 1.0:
        copy_from = None
    length = clip.end - clip.start
    if out_fps > 0 and length * out_fps - math.floor(length * out_fps + 1e-6) > 1e-6:
        length = max(math.floor(length * out_fps + 1e-6) / out_fps, 1.0 / out_fps)
    rate = ["-r", f"{out_fps:g}"] if fps and fps < 1.0 else []
    if not vertical:
        if copy_from is not None:
            _run([ffmpeg_exe(), "-y", "-v", "error", "-ss", f"{copy_from:.3f}", "-i", str(video),
                  "-t", f"{length:.3f}", "-c", "copy", "-avoid_negative_ts", "make_zero", str(out)],
                 "clip copy")
            if probe(out).duration <= length + 0.25:  # an audio frame and the video's start offset past it
                return out
            # The copy ran past its span (ffmpeg kept frames from before the keyframe, as
            # it does on some sparse or odd streams): cut it exactly instead.
        _run([ffmpeg_exe(), "-y", "-v", "error", "-ss", f"{clip.start:.3f}", "-i", str(video),
              "-t", f"{length:.3f}", *rate, "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac",
              str(out)], "clip encode")
        return out
    from moviepy import VideoFileClip, vfx

    with VideoFileClip(str(video)) as source:
        sub = source.subclipped(clip.start, clip.start + length)
        w, h = sub.size
        target_w = min(w, int(round(h * 9 / 16)) // 2 * 2)
        offset = clip.start - math.floor(clip.start)
        xs = np.asarray(track if track is not None else [0.5], dtype=float)

        def left(t: float) -> int:
            centre = float(np.interp(t + offset - 0.5, np.arange(len(xs)), xs)) * w
            return int(min(max(centre - target_w / 2, 0), w - target_w))

        sub = sub.transform(lambda get_frame, t: get_frame(t)[:, left(t):left(t) + target_w])
        sub = sub.with_effects([vfx.FadeIn(fade_s), vfx.FadeOut(fade_s)])
        sub.write_videofile(str(out), codec="libx264", audio_codec="aac", preset="ultrafast", logger=None,
                            fps=out_fps or None)
    return out


def cut_clips(video: Path, analysis: Analysis, out_dir: Path, *, vertical: bool = False,
              weights: FusionWeights = FusionWeights(), selection: SelectionConfig = SelectionConfig(),
              t0: float | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """Cut the analysis' clips into ``out_dir`` with covers and ``manifest.json``.

    Each clip's ``start``/``end`` in the manifest are those of the file as cut
    (video seconds), and ``t0``, when known, is the epoch second of the video's
    first frame: a report then puts clips, moments and bids on one clock."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keyframes = keyframe_times(video) if analysis.media.has_video and not vertical else ()
    entries = []
    for i, clip in enumerate(analysis.clips, 1):
        if progress is not None:
            progress(f"cutting clip {i} of {len(analysis.clips)}")
        name = f"clip-{i:02d}.mp4"
        if analysis.media.has_video:
            span = copy_span(clip.start, clip.end, keyframes, min_s=selection.min_s, max_s=selection.max_s) \
                if not vertical else None
            if span is not None:
                clip = replace(clip, start=round(span[0], 3), end=round(span[1], 3))
            render_clip(video, clip, out_dir / name, vertical=vertical,
                        track=crop_track(analysis, clip) if vertical else None,
                        copy_from=span[0] if span is not None else None)
            cut = probe(out_dir / name).duration
            if cut < clip.end - clip.start - 0.05:  # whole frames of a sparse stream: the file is the truth
                clip = replace(clip, end=round(clip.start + cut, 3))
            vs = analysis.video
            cover = choose_cover(video, clip.start, clip.end, width=analysis.media.width,
                                 height=analysis.media.height, regional=vs.regional if vs is not None else None,
                                 cut_times=analysis.cut_times, signal_start=analysis.start)
            cover_image(video, cover.t, out_dir / f"clip-{i:02d}.jpg")
        else:
            name = f"clip-{i:02d}.m4a"
            _run([ffmpeg_exe(), "-y", "-v", "error", "-ss", f"{clip.start:.2f}", "-i", str(video), "-t",
                  f"{clip.end - clip.start:.2f}", "-vn", "-c", "copy", str(out_dir / name)], "audio clip")
        entries.append({"file": name, "cover": f"clip-{i:02d}.jpg" if analysis.media.has_video else None,
                        **({"cover_at": cover.t, "cover_reason": cover.reason} if analysis.media.has_video else {}),
                        **asdict(clip)})
    manifest = {"video": str(video.name), "duration": analysis.media.duration, "t0": t0,
                "reaction_lag_s": analysis.lag_s, "weights": asdict(weights), "clips": entries}
    path = out_dir / MANIFEST
    path.write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
    return path


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def score_clips(clips: list[Clip], truth: list[tuple[float, float]], *, cuts: list[float], pauses: list[float],
                threshold: float = 0.5) -> dict:
    """Precision, recall, F1 (a match is temporal IoU >= threshold), boundary error
    of matches, and the share of clip edges within 0.5 s of a cut or a pause."""
    matched_truth: set[int] = set()
    hits, errors = 0, []
    for c in clips:
        best = max(range(len(truth)), key=lambda i: iou((c.start, c.end), truth[i]), default=None)
        if best is not None and best not in matched_truth and iou((c.start, c.end), truth[best]) >= threshold:
            matched_truth.add(best)
            hits += 1
            errors.append((abs(c.start - truth[best][0]) + abs(c.end - truth[best][1])) / 2)
    precision = hits / len(clips) if clips else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    anchors = np.array(sorted(cuts + pauses))
    edges = [t for c in clips for t in (c.start, c.end)]
    on = sum(1 for t in edges if len(anchors) and np.min(np.abs(anchors - t)) <= 0.5)
    return {"clips": len(clips), "moments": len(truth), "precision": precision, "recall": recall, "f1": f1,
            "boundary_error_s": float(np.mean(errors)) if errors else None,
            "edges_on_cut_or_pause": on / len(edges) if edges else None}
