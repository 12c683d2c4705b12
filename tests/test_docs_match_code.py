"""The README and docs/contracts.md say what the code does: the topics, the
output files of the main command, what the walkthrough leaves in the tree."""

from __future__ import annotations

import re
from pathlib import Path

from liveroom.embedded import clip_replay, replay, report, run
from liveroom.kafka.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
WORDS = {7: "seven", 8: "eight", 9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}


def test_the_readme_and_the_contracts_name_every_topic_and_count_them_right():
    assert f"{WORDS[len(ALL_TOPICS)]} topics, all keyed by" in README
    listed = re.search(r"topics, all keyed by\s+`room_id` \(([^)]*)\)", README).group(1)
    names = {"liveroom" + n if n.startswith(".") else n for n in re.findall(r"`([^`]+)`", listed)}
    assert names == set(ALL_TOPICS)
    contracts = (ROOT / "docs" / "contracts.md").read_text()
    assert all(f"| `{t}`" in contracts for t in ALL_TOPICS)
    tail_list = re.search(r"reads any contract topic: ([^.(]*)", README).group(1)
    assert {t.removeprefix("liveroom.") for t in ALL_TOPICS} <= set(re.findall(r"[a-z-]+", tail_list))


def test_the_readme_lists_every_output_of_the_main_command():
    files = {getattr(m, name) for m in (replay, run, report, clip_replay) for name in dir(m)
             if name.endswith("_FILE") and isinstance(getattr(m, name), str)}
    intro = README.split("Whole test suite")[0]
    missing = [f for f in sorted(files) if f"`out/{f}`" not in intro]
    assert not missing, f"outputs the README's main command section does not list: {missing}"


def test_the_walkthrough_leaves_nothing_git_would_track_and_says_how_to_stop():
    block = README.split("## On Apache Kafka")[1].split("```bash")[1].split("```")[0]
    ignored = (ROOT / ".gitignore").read_text().split()
    for folder in ("recordings", "clips"):
        assert f"--{folder} {folder}" in block or f"{folder}/" in block
        assert f"/{folder}/" in ignored
    assert "kill $WORKER $HIGHLIGHT" in block and "scripts/kafka.sh stop" in block
    assert "cp -r examples/sample-session/. recordings/room-001/" in block  # a second run copies into the same folder
