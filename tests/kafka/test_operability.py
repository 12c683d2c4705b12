"""What a newcomer sees on a real broker, following the README: every topic from
``liveroom tail``, the worker's /healthz, /metrics and /rooms, its dashboard in
a real browser (Debian's headless chromium), and ``record`` with the campaign."""

from __future__ import annotations

import gzip
import json
import os

import msgspec
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from liveroom.cli import main
from liveroom.kafka.io import produce_session
from liveroom.kafka.topics import BID_DECISIONS, CLIPS, DEAD_LETTERS, EVENTS, KafkaConfig, create_topics
from streams.models import RoomMetrics
from liveroom.embedded.replay import read_jsonl
from sessions.folder import open_session

from ..browser import chromium
from .harness import Worker, http_get as _get, read_topic, wait_for
from .test_kafka_runtime import embedded, wait_for_metrics

pytestmark = pytest.mark.kafka


def _metrics(web: str) -> dict:
    """``/metrics`` parsed: {(name, labels...): value}."""
    out = {}
    for family in text_string_to_metric_families(_get(f"{web}/metrics")[1].decode()):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def _renamed(folder, out):
    """A copy of a synthetic session whose rooms are side-001, side-002...: other rooms than the sample's."""
    out.mkdir()
    for name in ("events.jsonl.gz", "session.json", "labels.json"):
        data = (folder / name).read_bytes()
        if name.endswith(".gz"):
            data = gzip.compress(gzip.decompress(data).replace(b"room-0", b"side-0"))
        else:
            data = data.replace(b"room-0", b"side-0")
        (out / name).write_bytes(data)
    return out


def _tail(bootstrap: str, *args: str) -> list[str]:
    result = CliRunner().invoke(main, ["tail", *args, "--kafka", bootstrap, "--from-beginning", "--idle-timeout", "3"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_a_newcomer_sees_every_output(broker, sample_session, synth_factory, tmp_path):
    sample = open_session(sample_session)
    second = open_session(_renamed(synth_factory(minutes=2, seed=5, rooms=2), tmp_path / "side"))  # side-002: no campaign
    want_metrics, want_moments, summary = embedded(sample, tmp_path)
    config = KafkaConfig(bootstrap_servers=broker.bootstrap, partitions=4)
    create_topics(config)
    worker = Worker(broker.bootstrap, tmp_path, "w", LIVEROOM_KAFKA_PROGRESS_S="1").start()
    web = worker.web
    try:
        assert _get(f"{web}/healthz") == (200, b'{"status":"ok"}')
        produce_session(sample, config)
        got = wait_for_metrics(broker.bootstrap, want_metrics, workers=(worker,))
        wait_for(lambda: len(read_topic(broker.bootstrap, BID_DECISIONS, idle_s=1.0)) >= len(got), 60, "decisions")
        # a hostile message: a dead letter, visible from the CLI and the metrics
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send(EVENTS, key=b"room-001", value=b"{not json")
        producer.flush()
        producer.close()
        wait_for(lambda: len(read_topic(broker.bootstrap, DEAD_LETTERS, idle_s=1.0)) >= 1, 60, "the dead letter")

        # -- the CLI shows every topic, readable
        lines = _tail(broker.bootstrap, "room-metrics", "--room", "room-001")
        assert len(lines) == len(want_metrics)
        last = want_metrics[-1]
        assert lines[-1].startswith("20") and f"room-001 online {last.online} (peak {last.peak_online})" in lines[-1]
        assert len(_tail(broker.bootstrap, "liveroom.events", "--room", "room-001")) == 6548 + 1
        moments = _tail(broker.bootstrap, "moments")
        assert len(moments) == len(want_moments) and all("moment: z" in m for m in moments)
        decisions = _tail(broker.bootstrap, "bid-decisions")
        assert len(decisions) == len(got) and any("interaction_mcb" in d for d in decisions)
        assert _tail(broker.bootstrap, "campaigns") == [
            "room-001 campaign: budget 240 CNY, max cost per interaction 0.5, planned 480 s, "
            "run of show: 2 moment(s), first at 2026-05-28 20:28:57Z"]
        dead = _tail(broker.bootstrap, "dead-letters")
        assert len(dead) == 1 and "malformed_json" in dead[0] and "not json" in dead[0]

        # -- the worker's pages agree with the topics
        status = json.loads(_get(f"{web}/status")[1])
        wait_for(lambda: json.loads(_get(f"{web}/status")[1])["lag"] and all(
            row["messages"] == 0 for row in json.loads(_get(f"{web}/status")[1])["lag"]), 30, "lag 0", interval_s=1.0)
        m = _metrics(web)
        assert m[("liveroom_inputs_total", ("outcome", "processed"))] == summary["processed"]
        assert m[("liveroom_inputs_total", ("outcome", "duplicate"))] == summary["duplicates"]
        assert m[("liveroom_inputs_total", ("outcome", "dead_letter"))] == 1
        assert m[("liveroom_dead_letters_total", ("reason", "malformed_json"))] == 1
        assert sum(v for k, v in m.items() if k[0] == "liveroom_bid_decisions_total") == len(decisions)
        assert all(v == 0 for k, v in m.items() if k[0] == "liveroom_consumer_lag")
        assert m[("liveroom_batch_seconds_count",)] >= 1
        assert m[("liveroom_state_bytes", ("table", "room-state"))] > 0
        assert m[("liveroom_changelog_bytes_total", ("table", "room-parts"))] > 0
        # what deploy/prometheus/alerts.yml reads: nothing failed, no live room silent (the room ended)
        assert m[("liveroom_write_failures_total",)] == 0 and m[("liveroom_live_rooms_silent",)] == 0
        assert ("liveroom_live_rooms_out_of_budget",) in m and ("liveroom_highlight_clips",) in m
        # money by currency: CNY and USD rooms never add up
        assert m[("liveroom_spend_reported", ("currency", "CNY"))] == round(last.spend_total, 2)
        assert status["health"] == "ok"
        room = json.loads(_get(f"{web}/rooms/room-001")[1])
        assert msgspec.convert(room["metrics"], RoomMetrics) == last
        assert room["currency"] == "CNY" and len(room["history"]) == 60 and room["history"][-1][0] == last.ts
        assert room["decision"]["room_id"] == "room-001" and len(room["moments"]) == len(want_moments)
        assert _get(f"{web}/rooms/nobody")[0] == 404

        # -- the dashboard, in a real browser, shows the rooms and refreshes by itself
        with chromium() as browser:
            browser.get(f"{web}/dashboard")
            row = 'tr[data-room="room-001"] td[data-field="online"]'
            wait_for(lambda: browser.find_elements("css selector", row), 20, "the room on the dashboard")
            assert browser.find_element("css selector", row).text == f"{last.online:,}"
            assert browser.find_element("id", "health").text == "ok"
            assert browser.find_element("id", "events").text == "6,549"
            assert browser.find_element("id", "dead").text == "1"
            # history, money with its currency, a link to the room's JSON
            spark = browser.find_element("css selector", 'tr[data-room="room-001"] td[data-field="online-history"] '
                                                         "polyline")
            assert len(spark.get_attribute("points").split()) == 60
            cells = {f: browser.find_element("css selector", f'tr[data-room="room-001"] td[data-field="{f}"]').text
                     for f in ("budget-total", "spent", "committed", "gmv")}
            assert cells["budget-total"] == "240 CNY" and cells["spent"].endswith(" CNY"), cells
            link = browser.find_element("css selector", 'tr[data-room="room-001"] td[data-field="room"] a')
            assert link.get_attribute("href") == f"{web}/rooms/room-001"
            # the highlight worker's state, as liveroom.clips shows it
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
            producer.send(CLIPS, key=b"room-001", value=msgspec.json.encode(
                {"room_id": "room-001", "final": True, "part": 1, "clips": [{"file": "1/clip-01.mp4"}] * 2}))
            producer.send(CLIPS, key=b"side-001", value=msgspec.json.encode(
                {"room_id": "side-001", "final": True, "error": "analysis failed: MediaError: no video", "clips": []}))
            producer.flush()
            producer.close()
            wait_for(lambda: browser.find_element("id", "highlight").text == "2 room(s) cut, 2 clip(s)", 30,
                     "the highlight worker's state on the dashboard", interval_s=1.0)
            assert "side-001: analysis failed" in browser.find_element("id", "highlight-error").text
            browser.save_screenshot(str(tmp_path / "dashboard.png"))
            if os.environ.get("LIVEROOM_SCREENSHOTS"):
                browser.save_screenshot(os.path.join(os.environ["LIVEROOM_SCREENSHOTS"], "dashboard.png"))
            produce_session(second, config)  # two more rooms, while the page stays open
            wait_for(lambda: len(browser.find_elements("css selector", "tr[data-room]")) == 3, 60,
                     "the new rooms on the open dashboard", interval_s=1.0)
            budget = 'tr[data-room="side-002"] td[data-field="budget"]'
            wait_for(lambda: browser.find_element("css selector", budget).text == "0", 30, "side-002's decision")

        # -- record: the campaign comes along; a room without one says so
        runner = CliRunner()
        out = runner.invoke(main, ["record", str(tmp_path / "rec1"), "--kafka", broker.bootstrap, "--room", "room-001",
                                   "--idle-timeout", "3"])
        assert out.exit_code == 0, out.output
        assert "campaign: budget 240 CNY, from liveroom.campaigns" in out.output
        assert open_session(tmp_path / "rec1").campaign() == sample.campaign()
        out = runner.invoke(main, ["record", str(tmp_path / "rec2"), "--kafka", broker.bootstrap, "--room", "side-002",
                                   "--idle-timeout", "3"])
        assert out.exit_code == 0, out.output
        assert "campaign: none (no campaign for room 'side-002' on liveroom.campaigns)" in out.output
        assert open_session(tmp_path / "rec2").campaign() is None
    finally:
        worker.stop()
    assert "ERROR" not in worker.log() and "Traceback" not in worker.log(), worker.log()[-3000:]
    assert f"worker ready: group liveroom on {broker.bootstrap}" in worker.log()  # the port too
    # a replay of the campaign-less recording bids nothing, and its report says why
    out = CliRunner().invoke(main, ["replay", str(tmp_path / "rec2"), "--out", str(tmp_path / "rec2-out")])
    assert out.exit_code == 0, out.output
    from bidding.models import BidDecision

    decided = read_jsonl(tmp_path / "rec2-out" / "bid-decisions.jsonl", BidDecision)
    assert decided and all(d.budget_left == 0 and d.spend_cap == 0 for d in decided)
    assert "has no campaign" in (tmp_path / "rec2-out" / "report.html").read_text()
    # and the worker printed little: a ready line, progress lines, the partitions it took
    assert len(worker.log().splitlines()) < 40, worker.log()
