"""The ``liveroom`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from liveroom.cli import main


def test_replay_sample_writes_outputs_and_report(sample_session, tmp_path):
    result = CliRunner().invoke(main, ["replay", str(sample_session), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "dead letters" in result.output
    for name in ("room-metrics.jsonl", "moments.jsonl", "dead-letters.jsonl", "summary.json", "run.json", "report.html",
                 "bid-decisions.jsonl", "campaign.json", "clip-stats.jsonl", "promotions.jsonl", "pull-model.json"):
        assert (tmp_path / name).is_file(), name
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") == 3 and "room-001" in html  # room plots, bidding plots, the clips' pull curves
    # the campaign's run of show: in both plots' titles, and a table matching each planned moment to a detected one
    assert html.count("purple bars") == 2 and html.count("<table class='run-of-show'>") == 1
    assert "no moment detected" not in html.split("class='run-of-show'")[1].split("</table>")[0]
    loop = json.loads((tmp_path / "clip-summary.json").read_text())
    assert loop["all_accounted_for"] and loop["dead_letters"] == 0 and loop["clips"] == 21
    decisions = [json.loads(line) for line in (tmp_path / "bid-decisions.jsonl").read_text().splitlines()]
    metrics = [json.loads(line) for line in (tmp_path / "room-metrics.jsonl").read_text().splitlines()]
    # one decision per room per tick while it is live, and one pause when it ends
    assert len(decisions) == sum(m["live"] for m in metrics) + (not metrics[-1]["live"])
    assert [d["seq"] for d in decisions] == sorted({d["seq"] for d in decisions})
    assert {"fast_ramp", "interaction_mcb"} <= {d["strategy"] for d in decisions}
    assert json.loads((tmp_path / "run.json").read_text())["inputs_per_s"] > 0


def test_report_and_decisions_are_byte_identical(sample_session, tmp_path):
    for run in ("a", "b"):
        assert CliRunner().invoke(main, ["replay", str(sample_session), "--out", str(tmp_path / run)]).exit_code == 0
    for name in ("report.html", "bid-decisions.jsonl", "clip-stats.jsonl", "promotions.jsonl", "pull-model.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_simulate_prints_every_strategy(sample_session):
    result = CliRunner().invoke(main, ["simulate", str(sample_session), "--seeds", "2", "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    assert set(table) == {"ramp+mcb", "mcb", "pid", "fixed"}
    for row in table.values():
        assert row["episodes"] == 2 and 0 < row["ratio_to_hindsight"] <= 1.0 and row["budget_used"] <= 1.0


def test_synth_then_replay(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["synth", str(tmp_path / "s"), "--minutes", "2", "--seed", "4", "--rooms", "2"]).exit_code == 0
    result = runner.invoke(main, ["replay", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "o" / "summary.json").read_text())["rooms"]) == {"room-001", "room-002"}


def test_bad_session_folder_is_one_clear_message_not_a_traceback(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "session.json").write_text("{broken")
    proc = subprocess.run([sys.executable, "-m", "liveroom.cli", "replay", str(tmp_path / "s")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Error: " in proc.stderr and "not valid JSON" in proc.stderr
