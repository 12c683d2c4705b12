"""Highlights on portrait phone streams of a host who moves all the time, with
music under the voice and a fixed 2 s keyframe interval (highlight/portrait_set.py):
moments found with events and from the video alone, no decoy chosen, faces
found, covers chosen; and the pure parts (aspect, regional change, rotation)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from highlight.features import REGION_BINS, frame_size, regional_change
from highlight.media import ffmpeg_exe, keyframe_times, probe
from highlight.pipeline import cut_clips, find_highlights
from highlight.portrait_set import add_portrait_video
from sessions.folder import open_session
from sessions.synth import synth_session

from .conftest import found_without_decoys


@pytest.fixture(scope="module")
def portrait_broadcasts(media, tmp_path_factory):
    """Two 8-minute portrait broadcasts (two moments, a visual and an audio decoy
    each), audience lags 3 and 6 s, seeds the detector was not tuned on (seed 52
    was one too: see ``test_a_chain_of_the_hosts_moves_on_an_audio_decoy``)."""
    out = []
    for seed, lag in ((51, 3.0), (53, 6.0)):
        folder = synth_session(tmp_path_factory.mktemp(f"portrait{seed}"), minutes=8, seed=seed, lag_s=lag)
        add_portrait_video(folder, media=media, seed=seed)
        out.append(open_session(folder))
    return out


@pytest.mark.parametrize("with_events", [True, False], ids=["with events", "video only"])
def test_moments_found_no_decoy_and_a_face_on_every_clip(portrait_broadcasts, with_events):
    for session in portrait_broadcasts:
        a = found_without_decoys(session, with_events=with_events)
        for c in a.clips:
            assert any(r.startswith("a face on screen") for r in c.reasons), c.reasons  # a face fills the frame


@pytest.mark.xfail(strict=True, reason="known, not met (README, Highlight): a chain of the host's moves (two leans "
                   "into the camera, a hand, a laugh within 20 s) on an audio decoy passes as the picture's change")
def test_a_chain_of_the_hosts_moves_on_an_audio_decoy(media, tmp_path):
    """Seed 52: the whole picture's measures (brightness, texture, novelty,
    motion) see the host's own moves, which here fall on the audio decoy (the
    regional change stays at 0 there); the decoy is chosen, with events and from
    the video alone. Strict: when this passes, the README's figure changes."""
    folder = synth_session(tmp_path / "portrait52", minutes=8, seed=52, lag_s=9.0)
    add_portrait_video(folder, media=media, seed=52)
    found_without_decoys(open_session(folder), with_events=False)


def test_covers_show_the_face_and_not_a_hand_over_it(portrait_broadcasts, tmp_path):
    """The cover is a keyframe inside the clip, chosen with the face's eyes found,
    never while the host's hand is over the face (the generator's own record of
    when it is), and the manifest says why."""
    for session in portrait_broadcasts:
        a = find_highlights(session.video_path)
        manifest = json.loads(cut_clips(session.video_path, a, tmp_path / session.folder.name).read_text())
        hands = json.loads(session.video_path.with_suffix(".host.json").read_text())["hands"]
        keyframes = keyframe_times(session.video_path)
        assert manifest["clips"]
        for c in manifest["clips"]:
            t = c["cover_at"]
            assert c["start"] <= t <= c["end"] and min(abs(k - t) for k in keyframes) < 0.01
            assert not any(a0 <= t < b0 for a0, b0 in hands), (t, c["cover_reason"])
            assert c["cover_reason"].startswith("a face with both eyes open"), c["cover_reason"]


def test_frames_keep_the_pictures_aspect():
    assert frame_size(1280, 720) == (192, 108)
    assert frame_size(720, 1280) == (108, 192)
    assert frame_size(0, 0) == (192, 108)
    w, h = frame_size(1080, 1080)
    assert w == h and abs(w * h - 192 * 108) < 400


def _cells(seconds: int, regions: int, rng) -> np.ndarray:
    """Per second, per region, a histogram that varies a little around its own usual."""
    base = rng.dirichlet(np.ones(REGION_BINS), size=regions)
    noise = rng.normal(0, 0.004, size=(seconds, regions, REGION_BINS))
    cells = np.clip(base[None] + noise, 1e-4, None)
    return cells / cells.sum(axis=2, keepdims=True)


def test_regional_change_sees_a_new_object_that_stays_and_nothing_else():
    """Lasting change in a few regions stands out; the same change for a few
    seconds (a hand, a lean) does not, nor a change of every region (a new shot)."""
    rng = np.random.default_rng(3)
    seconds, regions = 240, 48
    cells = _cells(seconds, regions, rng)
    new = rng.dirichlet(np.ones(REGION_BINS))
    cells[100:140, 40:44] = new  # a product held up for 40 s in four lower regions
    cells[30:33, 10:14] = new  # a hand passing for 3 s
    other = _cells(seconds, regions, np.random.default_rng(4))
    cells[180:220] = other[180:220]  # a new shot: every region changes
    cells[1::2] = np.nan  # a keyframe every 2 s
    r = regional_change(cells)
    assert r[108:132].min() > 5 * max(np.abs(r[:90]).max(), 1e-6)
    assert r[108:132].min() > 3 * np.abs(r[185:215]).max()


def test_a_phone_recording_stored_sideways_is_read_upright(tmp_path):
    """A display matrix of 90 degrees: the decoded picture is portrait, and so are
    the analysis' frames."""
    flat = tmp_path / "flat.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=10", "-t", "2",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(flat)], check=True)
    turned = tmp_path / "turned.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-display_rotation", "90", "-i", str(flat), "-c", "copy",
                    str(turned)], check=True)
    info = probe(turned)
    assert (info.width, info.height) == (180, 320)
    assert frame_size(info.width, info.height) == (108, 192)
