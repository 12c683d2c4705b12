"""The alert rules and the Grafana dashboard shipped in deploy/: the rules pass
promtool's own checks and unit tests (Debian's prometheus package, installed by
scripts/test.sh), and every metric they or the dashboard name is one a worker
exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMQL_FUNCS = {"sum", "by", "rate", "increase", "delta", "max", "histogram_quantile", "and", "up", "le"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: scripts/test.sh installs Debian's prometheus package for it")
    return found


def test_the_alert_rules_pass_promtools_checks_and_unit_tests(tmp_path):
    check = subprocess.run([promtool(), "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=DEPLOY / "prometheus",
                          capture_output=True, text=True, timeout=120)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr
    # the scrape config, with the rules where the container mounts them
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text().replace(
        "/etc/prometheus/alerts.yml", str(DEPLOY / "prometheus" / "alerts.yml"))
    (tmp_path / "prometheus.yml").write_text(config)
    checked = subprocess.run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_the_issue_asked_for_is_there():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    assert {"LiveroomWorkerDown", "LiveroomConsumerLagGrowing", "LiveroomDeadLetterRate", "LiveroomStateWriteFailed",
            "LiveroomLiveRoomSilent", "LiveroomBudgetRanOut"} <= names
    tested = (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    assert all(f"alertname: {n}" in tested for n in names), "every alert has a promtool unit test"


def _exported() -> set[str]:
    """Metric names the workers export (as Prometheus exposes them)."""
    names = set()
    for path in (ROOT / "liveroom" / "kafka" / "web.py", ROOT / "liveroom" / "kafka" / "highlight_web.py"):
        text = path.read_text()
        for kind, name in re.findall(r"(Counter|Gauge|Histogram)MetricFamily\(\s*\"(liveroom_\w+)\"", text):
            names |= {name + "_total"} if kind == "Counter" else (
                {name + s for s in ("_bucket", "_sum", "_count")} if kind == "Histogram" else {name})
    return names


def _used(expr: str) -> set[str]:
    return {n for n in re.findall(r"\b(liveroom_\w+)", expr)}


def test_the_rules_and_the_dashboard_name_only_metrics_the_workers_export():
    exported = _exported()
    assert {"liveroom_write_failures_total", "liveroom_live_rooms_silent", "liveroom_highlight_clips_published_total",
            "liveroom_consumer_lag", "liveroom_batch_seconds_bucket"} <= exported
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    used = set().union(*(_used(r["expr"]) for r in rules))
    dashboard = json.loads((DEPLOY / "grafana" / "liveroom.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used |= set().union(*(_used(e) for e in exprs))
    assert used and used <= exported, sorted(used - exported)
    assert all(p["datasource"]["uid"] == "prometheus" for p in dashboard["panels"])


def test_compose_runs_the_monitoring_services_on_request_with_the_shipped_files():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert compose[name]["profiles"] == ["monitoring"]  # optional: `docker compose --profile monitoring up`
        for volume in compose[name]["volumes"]:
            assert (ROOT / volume.split(":")[0]).exists(), volume
    assert compose["highlight-worker"]["environment"]["LIVEROOM_HIGHLIGHT_WEB_PORT"] == "6067"
