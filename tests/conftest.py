"""Shared fixtures: small synthetic sessions built once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessions.synth import synth_session

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample-session"


@pytest.fixture(scope="session")
def sample_session() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def synth_factory(tmp_path_factory):
    """Build (and cache) synthetic sessions by parameters."""
    cache: dict[tuple, Path] = {}

    def make(**kwargs) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            clip_days = kwargs.pop("clip_days", 0)
            cache[key] = synth_session(tmp_path_factory.mktemp("synth"), **kwargs)
            if clip_days:
                from cliploop.simulate import add_clip_events

                add_clip_events(cache[key], seed=kwargs.get("seed", 0), days=clip_days)
        return cache[key]

    return make


def pytest_collection_modifyitems(config, items):
    """Two workers (scripts/test.sh runs pytest-xdist with ``--dist loadgroup``):
    the real-broker tests run one after another on one worker, as they do alone
    (each starts its own broker and times its own waits), while every other
    module runs whole on the other, so a module's fixtures (minutes of synthetic
    camera footage) are built once."""
    for item in items:
        group = "kafka" if item.get_closest_marker("kafka") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
