"""Money and control messages (issue: no single message may switch the budget
guard off, delete a campaign without stopping it, or take the process down).
Each case was a wrong answer, a traceback or a hang on the landed main."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from cliploop.core import ClipLoopCore
from cliploop.models import ClipLoopConfig
from liveroom.kafka.tail import format_message
from liveroom.kafka.topics import CAMPAIGNS, DEAD_LETTERS, EVENTS

from .test_cli_errors import assert_user_error, liveroom, small_session

FORGED = {"event_id": "forged-1", "room_id": "room-001", "type": "spend", "amount": 0,
          "covers": 4503599627370496, "total": 0}


def _events_only(sample: Path, folder: Path, extra: list[dict] | None = None, at: float = 0.4,
                 campaign: object = "keep") -> Path:
    """The sample session without its video (no highlights: seconds, not minutes),
    with ``extra`` events inserted at ``at`` of the room."""
    folder.mkdir()
    info = json.loads((sample / "session.json").read_text())
    lines = gzip.decompress((sample / "events.jsonl.gz").read_bytes()).splitlines()
    cut = int(len(lines) * at)
    ts = json.loads(lines[cut])["ts"]
    added = [json.dumps({**e, "ts": ts}).encode() for e in extra or []]
    (folder / "events.jsonl").write_bytes(b"\n".join(lines[:cut] + added + lines[cut:]) + b"\n")
    info["files"] = {"events": "events.jsonl"}
    if campaign != "keep":
        info["campaign"] = campaign
    (folder / "session.json").write_text(json.dumps(info))
    return folder


def _committed_under_honest_reports(out: Path, budget: float) -> float:
    """The most the honest ad server may have spent or may still spend, over the
    budget, at any decision: its newest honest report's total plus every cap
    issued after the decision that report covers (the measure of the issue)."""
    decisions = [json.loads(x) for x in (out / "bid-decisions.jsonl").read_text().splitlines()]
    metrics = [json.loads(x) for x in (out / "room-metrics.jsonl").read_text().splitlines()]
    cover = {round(m["ts"] / 5): (m["spend_covered_seq"], m["spend_covered_total"]) for m in metrics}
    worst = 0.0
    for i, d in enumerate(decisions):
        seq, total = cover.get(d["seq"], (None, 0.0))
        caps = sum(e["spend_cap"] for e in decisions[:i + 1] if seq is None or e["seq"] > seq)
        worst = max(worst, (total or 0.0) + caps)
    return worst / budget


def test_one_forged_spend_report_is_a_dead_letter_and_the_guard_stays_on(sample_session, tmp_path):
    honest = _events_only(sample_session, tmp_path / "honest")
    forged = _events_only(sample_session, tmp_path / "forged", [FORGED])
    for folder in (honest, forged):
        proc = liveroom("replay", str(folder), "--out", str(folder / "out"), "--no-report")
        assert proc.returncode == 0, proc.stderr
    dead = [json.loads(x) for x in (forged / "out" / "dead-letters.jsonl").read_text().splitlines()]
    assert [d["reason"] for d in dead] == ["spend_unissued"]
    assert (honest / "out" / "bid-decisions.jsonl").read_bytes() == (forged / "out" / "bid-decisions.jsonl").read_bytes()
    budget = json.loads((sample_session / "session.json").read_text())["campaign"]["total_budget"]
    assert _committed_under_honest_reports(forged / "out", budget) <= 1.0 + 1e-9  # it was 8.2x


def test_a_spend_report_whose_total_goes_down_is_a_dead_letter(sample_session, tmp_path):
    """A newer cover with a lower total (it was taken, and lowered what counts as spent)."""
    lines = gzip.decompress((sample_session / "events.jsonl.gz").read_bytes()).splitlines()
    before = [json.loads(x) for x in lines[:int(len(lines) * 0.8)] if b'"covers"' in x]
    last = before[-1]
    down = {**last, "event_id": "down-1", "covers": last["covers"] + 1, "total": last["total"] / 2}
    folder = _events_only(sample_session, tmp_path / "s", [down], at=0.8)
    proc = liveroom("replay", str(folder), "--out", str(folder / "out"), "--no-report")
    assert proc.returncode == 0, proc.stderr
    dead = [json.loads(x) for x in (folder / "out" / "dead-letters.jsonl").read_text().splitlines()]
    assert [d["reason"] for d in dead] == ["spend_total_down"]
    assert json.loads(__import__("base64").b64decode(dead[0]["raw"]))["event_id"] == "down-1"


def test_without_a_campaign_the_decisions_say_budget_zero(sample_session, tmp_path):
    """Every live decision, even when reports stop coming (an ad server that gets only
    zero caps may stop answering: it said "spend reports 13 decisions behind")."""
    folder = _events_only(sample_session, tmp_path / "s", campaign=None)
    events = folder / "events.jsonl"
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    for e in lines:
        e.pop("covers", None), e.pop("total", None)
    events.write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    proc = liveroom("replay", str(folder), "--out", str(folder / "out"), "--no-report")
    assert proc.returncode == 0, proc.stderr
    decisions = [json.loads(x) for x in (folder / "out" / "bid-decisions.jsonl").read_text().splitlines()]
    assert all(d["spend_cap"] == 0 for d in decisions)
    live = [d for d in decisions if "room not live" not in d["reason"] and "nothing to buy" not in d["reason"]]
    assert live and all("budget 0: no campaign" in d["reason"] for d in live), {d["reason"][:40] for d in live}


@pytest.mark.parametrize("setting", ["TICK_S=0", "TICK_S=-5", "TICK_S=inf", "TICK_S=nan", "TICK_S=1e-9",
                                     "RATE_WINDOW_S=0", "CLIP_SLOTS=0", "CLIP_PERIOD_S=0", "CLIP_BUDGET=-1",
                                     "CLIP_HALF_LIFE_H=nan", "SURGE_Z_ON=nan", "GRACE_S=1e308",
                                     "RATE_WINDOW_S=600000", "SURGE_Z_OFF=9", "BIDDING_STRATEGY=yolo"])
def test_a_setting_out_of_its_range_is_one_error_line(setting, tmp_path):
    name, value = setting.split("=")
    s = small_session(tmp_path / "s")
    proc = liveroom("replay", str(s), "--out", str(tmp_path / "out"), "--no-report",
                    env={f"LIVEROOM_{name}": value}, timeout=60)
    assert_user_error(proc, f"LIVEROOM_{name}={value}", "out of range")
    assert not (tmp_path / "out").exists()


def test_a_bad_setting_is_echoed_on_one_line_with_nothing_a_terminal_acts_on(tmp_path):
    s = small_session(tmp_path / "s")
    proc = liveroom("replay", str(s), "--out", str(tmp_path / "out"), env={"LIVEROOM_TICK_S": "abc\n\x1b[2Jdef"})
    assert_user_error(proc, "LIVEROOM_TICK_S=abc\\u000a\\u001b[2Jdef")


def test_the_clip_loop_settings_bound_its_work(sample_session, tmp_path):
    """A 60 s period with 10,000 slots did not end in 120 s on the sample's week of clip
    events; the extremes of the ranges now do, in seconds."""
    folder = _events_only(sample_session, tmp_path / "s")
    shutil.copy(sample_session / "clip-events.jsonl.gz", folder)
    info = json.loads((folder / "session.json").read_text())
    info["files"]["clip_events"] = "clip-events.jsonl.gz"
    (folder / "session.json").write_text(json.dumps(info))
    proc = liveroom("replay", str(folder), "--out", str(tmp_path / "out"), "--no-report", timeout=60,
                    env={"LIVEROOM_CLIP_PERIOD_S": "300", "LIVEROOM_CLIP_SLOTS": "1000",
                         "LIVEROOM_CLIP_BUDGET": "1000000000"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, value in (("CLIP_PERIOD_S", "60"), ("CLIP_SLOTS", "10000")):
        assert_user_error(liveroom("replay", str(folder), "--out", str(tmp_path / "o2"), env={f"LIVEROOM_{name}": value}),
                          f"LIVEROOM_{name}={value}")


def test_the_configuration_page_is_rendered_from_the_settings():
    from liveroom.settings import Settings, markdown_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    assert markdown_table() in page, "run: python -m liveroom.settings > docs/configuration.md"
    assert all(f"`LIVEROOM_{name.upper()}`" in page for name in Settings.model_fields)


@pytest.mark.parametrize("change", [{"scale": [0.0]}, {"names": None}, {"mean": [float("nan")]},
                                    {"weights": [1.0, 2.0]}, {"conversion": 0}])
def test_a_bad_pull_model_is_one_error_line(change, sample_session, tmp_path):
    model = {"names": ["score"], "mean": [1.0], "scale": [1.0], "weights": [0.5], "intercept": -5.0, "clips": 9,
             "conversion": 0.4, **change}
    path = tmp_path / "pull-model.json"
    path.write_text(json.dumps(model))
    proc = liveroom("highlight", str(sample_session), "--out", str(tmp_path / "clips"), "--pull-model", str(path))
    assert_user_error(proc, "is not a pull model")


def test_simulate_scores_a_zero_budget_as_zero_spend(sample_session, tmp_path):
    folder = _events_only(sample_session, tmp_path / "s")
    info = json.loads((folder / "session.json").read_text())
    info["campaign"]["total_budget"] = 0
    info["campaign"]["ramp"]["budget"] = 0
    (folder / "session.json").write_text(json.dumps(info))
    proc = liveroom("simulate", str(folder), "--seeds", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = json.loads(proc.stdout)
    assert all(row["spend"] == 0 and row["budget_used"] == 0 for row in table.values())


def test_simulate_on_a_session_without_events_of_its_room_is_one_error_line(sample_session, tmp_path):
    folder = _events_only(sample_session, tmp_path / "s")
    (folder / "events.jsonl").write_text(json.dumps({"event_id": "x", "room_id": "elsewhere", "ts": 1780000001.0,
                                                     "type": "like", "user_id": "u"}) + "\n")
    assert_user_error(liveroom("simulate", str(folder), "--seeds", "1"), "no snapshots of room room-001")


def test_tail_escapes_what_a_terminal_would_act_on():
    nasty = "\x1b]0;owned\x07\x1b[2J\u202eevil\u2066\x9b31m\r"
    comment = msgspec.json.encode({"event_id": "e1", "room_id": "r" + nasty, "ts": 1_780_000_000.0,
                                   "type": "comment", "user_id": "u", "text": nasty})
    dead = msgspec.json.encode({"reason": "late", "detail": nasty, "source": nasty, "raw": "", "room_id": nasty})
    for line in format_message(EVENTS, comment) + format_message(DEAD_LETTERS, dead):
        assert not any(c in line for c in "\x1b\x07\u202e\u2066\x9b\r"), line
        assert "\\u001b" in line
    assert format_message(CAMPAIGNS, None, b"room-1") == [
        "room-1 campaign deleted (tombstone): budget 0 from its next decision"]


def test_clips_honour_max_on_a_one_frame_per_second_video(tmp_path):
    from highlight.media import ffmpeg_exe, probe

    assert liveroom("synth", str(tmp_path / "s"), "--minutes", "3", "--seed", "3", "--video", "--fps", "1",
                    "--size", "320x180").returncode == 0
    shutil.copytree(tmp_path / "s", tmp_path / "sparse")  # a frame every 3.3 s: longer than --max 2
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(tmp_path / "s" / "video.mp4"), "-r", "0.3", "-c:v",
                    "libx264", "-c:a", "copy", str(tmp_path / "sparse" / "video.mp4")], check=True)
    for session, longest, extra in (("s", 8, []), ("sparse", 2, []), ("sparse", 2, ["--vertical"])):
        out = tmp_path / f"clips-{session}{len(extra)}"
        proc = liveroom("highlight", str(tmp_path / session), "--out", str(out), "--max", str(longest), "--min",
                        str(longest // 2), *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["clips"]
        for clip in manifest["clips"]:
            assert clip["end"] - clip["start"] <= longest + 1e-6, clip  # it was 10.5 at 1 fps
            duration = probe(out / clip["file"]).duration
            assert duration <= longest + 0.05, clip["file"]  # the file was 10.04 s at 1 fps, 3.33 s at 0.3 fps
            assert abs(duration - (clip["end"] - clip["start"])) < 0.1, (clip, duration)  # the manifest says so


def _clip_line(**fields) -> bytes:
    return msgspec.json.encode({"room_id": "r", "clip_id": "c1", "ts": 1_780_000_000.0, **fields})


def test_clip_stats_ratios_are_bounded_per_impression():
    core = ClipLoopCore(ClipLoopConfig())
    core.feed(_clip_line(type="clip_publish", event_id="p", score=4.0, length_s=30.0, position=0.5), "f:1")
    core.feed(_clip_line(type="clip_impression", event_id="i", ts=1_780_000_010.0, count=1), "f:2")
    for i in range(3000):
        core.feed(_clip_line(type="clip_click", event_id=f"k{i}", ts=1_780_000_020.0, user_id="u", target="room"),
                  f"f:{i + 3}")
        core.feed(_clip_line(type="enter", event_id=f"e{i}", ts=1_780_000_030.0, user_id=f"u{i}", source="clip"),
                  f"g:{i}")
    core.flush()
    stats, _, dead = core.drain()
    assert not dead and stats[0].clicks_room == 3000 and stats[0].entries == 3000  # counts as reported
    assert stats[0].ctr == 1.0 and stats[0].pull == 1000.0  # ratios per impression at most 1 (it said 3000)


def test_the_embedded_clip_loop_refuses_another_rooms_clip_events(sample_session, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(sample_session, folder)
    info = json.loads((folder / "session.json").read_text())
    del info["files"]["video"]
    (folder / "session.json").write_text(json.dumps(info))
    lines = gzip.decompress((folder / "clip-events.jsonl.gz").read_bytes()).splitlines()
    other = json.loads(lines[0])
    other.update(room_id="room-999", event_id="stray-1")
    (folder / "clip-events.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines + [json.dumps(other).encode()])))
    proc = liveroom("replay", str(folder), "--out", str(tmp_path / "out"), "--no-report")
    assert proc.returncode == 0, proc.stderr
    dead = [json.loads(x) for x in (tmp_path / "out" / "clip-dead-letters.jsonl").read_text().splitlines()]
    assert [(d["reason"], d["room_id"]) for d in dead] == [("key_mismatch", "room-999")]


def test_decay_compares_whole_days_not_the_day_just_begun():
    """The report's decay column was 0.00 for every clip: the newest day had just
    begun, with impressions and no entries yet."""
    core = ClipLoopCore(ClipLoopConfig())
    t0 = 1_780_000_000.0
    core.feed(_clip_line(type="clip_publish", event_id="p", ts=t0, score=4.0, length_s=30.0, position=0.5), "f:1")
    n = 0
    for hour in range(3 * 24 + 2):  # three whole days at one pull, then two hours of impressions only
        n += 1
        ts = t0 + hour * 3600 + 60
        core.feed(_clip_line(type="clip_impression", event_id=f"i{n}", ts=ts, count=100), f"f:{n}")
        if hour < 72:
            core.feed(_clip_line(type="enter", event_id=f"e{n}", ts=ts + 1, user_id=f"u{n}", source="clip"), f"g:{n}")
    core.flush()
    stats, _, _ = core.drain()
    assert stats[-1].decay == pytest.approx(1.0)


def test_the_report_header_gives_the_rooms_own_start_and_end(sample_session, tmp_path):
    from liveroom.kafka.tail import clock

    folder = _events_only(sample_session, tmp_path / "s")
    proc = liveroom("replay", str(folder), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((sample_session / "session.json").read_text())
    html = (tmp_path / "out" / "report.html").read_text()
    assert f"{clock(info['start'])} to {clock(info['end'])}" in html  # it was 5 s late at both ends


@pytest.mark.parametrize("args", [("replay", "SESSION", "--kafka", "127.0.0.1:1", "--speed", "nan"),
                                  ("record", "--kafka", "127.0.0.1:1", "--room", "r", "OUT", "--idle-timeout", "nan"),
                                  ("tail", "events", "--kafka", "127.0.0.1:1", "--idle-timeout", "inf")])
def test_a_number_option_that_is_not_finite_is_refused(args, tmp_path):
    s = small_session(tmp_path / "s")
    proc = liveroom(*[{"SESSION": str(s), "OUT": str(tmp_path / "rec")}.get(a, a) for a in args])
    assert proc.returncode == 2 and "is not a finite number" in proc.stderr, proc.stderr


def test_python_m_liveroom_is_the_cli():
    proc = subprocess.run([sys.executable, "-m", "liveroom", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("liveroom, version"), proc.stderr


def test_replay_onto_kafka_says_out_is_not_for_it(tmp_path):
    s = small_session(tmp_path / "s")
    assert_user_error(liveroom("replay", str(s), "--kafka", "127.0.0.1:1", "--out", str(tmp_path / "o")),
                      "--out is for the embedded replay")


@pytest.mark.parametrize("server", [":::", "host", "h:0", "h:99999"])
def test_a_malformed_kafka_address_names_the_option(server):
    proc = liveroom("topics", "--kafka", server)
    assert proc.returncode == 2 and "Invalid value for '--kafka'" in proc.stderr, proc.stderr
