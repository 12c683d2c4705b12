"""Highlights on real footage and recorded sound (scripts/fetch_media.sh brings
them from packages), with events and from the video file alone; and the fusion
rules when signals are missing."""

from __future__ import annotations

import numpy as np
import pytest

from highlight.camera_set import add_camera_video
from highlight.select import FusionWeights, SelectionConfig, fuse, select_clips
from sessions.folder import open_session
from sessions.synth import synth_session

from .conftest import found_without_decoys


@pytest.fixture(scope="module")
def camera_broadcasts(media, tmp_path_factory):
    """Two 8-minute broadcasts: moments darker than the room and quieter (the
    host stops), then one with the host talking through it and a plain one;
    audience lags 0 and 8 s; a visual and an audio decoy in each."""
    out = []
    for seed, lag, variants in ((21, 0.0, ("darker", "quieter")), (22, 8.0, ("talking", "plain"))):
        folder = synth_session(tmp_path_factory.mktemp(f"cam{seed}"), minutes=8, seed=seed, lag_s=lag)
        add_camera_video(folder, media=media, seed=seed, variants=variants)
        out.append(open_session(folder))
    return out


@pytest.mark.parametrize("with_events", [True, False], ids=["with events", "video only"])
def test_camera_footage_moments_found_and_no_decoy(camera_broadcasts, with_events):
    for session in camera_broadcasts:
        a = found_without_decoys(session, with_events=with_events)
        assert set(a.clips[0].signals) == ({"video", "audio", "interactions"} if with_events else {"video", "audio"})


def test_fusion_counts_only_the_signals_present():
    n = 120
    quiet = np.zeros(n)
    up = quiet.copy()
    up[50:70] = 3.0
    config = SelectionConfig(smooth_s=1)
    # two signals present, both move: chosen, scored on the two (not diluted by a missing third)
    fused, parts = fuse({"video": up, "audio": up}, FusionWeights(), 1)
    assert fused[60] == pytest.approx(3.0)
    assert len(select_clips(fused, parts, config, duration=n, pauses=np.zeros(0), cuts=np.zeros(0))) == 1
    # two present, one moves: a decoy
    fused, parts = fuse({"video": up, "audio": quiet}, FusionWeights(), 1)
    assert select_clips(fused, parts, config, duration=n, pauses=np.zeros(0), cuts=np.zeros(0)) == []
    # one present (a silent video, no events): it must clear the single-signal bar
    fused, parts = fuse({"video": up}, FusionWeights(), 1)
    assert select_clips(fused, parts, config, duration=n, pauses=np.zeros(0), cuts=np.zeros(0)) == []
    fused, parts = fuse({"video": up * 2}, FusionWeights(), 1)
    assert len(select_clips(fused, parts, config, duration=n, pauses=np.zeros(0), cuts=np.zeros(0))) == 1


def test_the_crop_follows_the_larger_group_not_the_gap_between():
    """Two groups moving: a small one on the left, a larger one on the right.
    The centroid of all motion falls in the empty middle."""
    from highlight.features import busiest_cluster

    columns = (np.arange(64) + 0.5) / 64
    energy = np.zeros(64)
    energy[4:10] = 5.0  # small group, left
    energy[44:58] = 6.0  # larger group, right
    centroid = float(np.dot(energy, columns) / energy.sum())
    assert 0.4 < centroid < 0.7  # the old crop: between the two
    assert busiest_cluster(energy, columns) == pytest.approx(51 / 64, abs=0.02)
    assert busiest_cluster(np.zeros(64), columns) is None
