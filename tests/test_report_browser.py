"""report.html in a real browser (Debian's headless chromium): what a reader sees
comes first, on one clock, and the clips play."""

from __future__ import annotations

import json
import os

import msgspec
from click.testing import CliRunner

from liveroom.cli import main
from liveroom.embedded.report import clock
from streams.models import Moment
from liveroom.embedded.replay import read_jsonl

from .browser import chromium


def _replay(session, out):
    result = CliRunner().invoke(main, ["replay", str(session), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result.output


def _rooms(out) -> dict:
    return {r["room_id"]: r for r in map(json.loads, (out / "rooms.jsonl").read_text().splitlines())}


def test_the_sample_report_reads_at_a_glance(sample_session, tmp_path):
    out = tmp_path / "out"
    _replay(sample_session, out)
    room = _rooms(out)["room-001"]
    moments = read_jsonl(out / "moments.jsonl", Moment)
    manifest = json.loads((out / "clips" / "manifest.json").read_text())
    decisions = (out / "bid-decisions.jsonl").read_text().count("\n")
    with chromium() as b:
        b.get((out / "report.html").as_uri())
        css = lambda q: b.find_elements("css selector", q)  # noqa: E731
        # headline figures first, in the campaign's currency, with ROI
        assert [h.text for h in css("h2")][0] == "Headline"
        figures = {c.get_attribute("data-figure"): c.find_element("tag name", "b").text for c in css(".card")}
        assert figures["GMV"] == f"{room['gmv']:,.2f} CNY"
        assert figures["spend (reported)"] == f"{room['spend']:,.2f} CNY"
        assert figures["budget"] == "240.00 CNY"  # the budget next to the spend, money as an advertiser reads it
        assert "committed is caps issued and not yet covered by a report" in css("p.money")[0].get_attribute("textContent")
        heads = [h.get_attribute("textContent") for h in css("table.decisions thead th")]
        assert heads[3:8] == ["bid cap per viewer", "spend cap until the next decision", "spent", "committed", "left"], heads
        assert figures["ROI (GMV / spend)"] == f"{room['gmv'] / room['spend']:.1f}x"
        assert figures["clips"] == str(len(manifest["clips"]))
        # one clock: the plots' axis, the moments and the clips say UTC wall-clock time with the date
        assert "time (UTC) on 2026-05-28" in b.page_source
        rows = css("table.moments tbody tr")
        assert [r.find_elements("tag name", "td")[0].text for r in rows] == [clock(m.start) for m in moments]
        b.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert len(css("table.decisions tbody tr")) == decisions
        # the clips are players that play, each within the chosen length, on the same clock
        videos = css("video")
        assert len(videos) == len(manifest["clips"]) > 0
        durations = b.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const vs = [...document.querySelectorAll('video')];
            Promise.all(vs.map(v => v.readyState >= 1 ? v.duration : new Promise(r => {
                v.onloadedmetadata = () => r(v.duration); v.onerror = () => r(-1); v.load(); })))
              .then(done);""")
        for c, seconds, box in zip(manifest["clips"], durations, css(".clip")):
            assert abs(seconds - (c["end"] - c["start"])) < 0.6, (seconds, c)
            assert seconds <= 60.0 + 0.1  # --max 60 holds for the file, not only the plan
            assert clock(manifest["t0"] + c["start"]) in box.text
        assert "{'" not in b.find_element("tag name", "body").text  # nothing printed as a Python dict
        b.save_screenshot(str(tmp_path / "report.png"))  # what the reader sees first: the headline
        if os.environ.get("LIVEROOM_SCREENSHOTS"):
            b.save_screenshot(os.path.join(os.environ["LIVEROOM_SCREENSHOTS"], "report.png"))


def test_several_rooms_get_a_sorted_overview_and_say_which_had_no_campaign(synth_factory, tmp_path):
    session = synth_factory(minutes=3, seed=8, rooms=3)  # the campaign is room-001's
    out = tmp_path / "out"
    _replay(session, out)
    rooms = _rooms(out)
    with chromium() as b:
        b.get((out / "report.html").as_uri())
        rows = b.find_elements("css selector", "#overview-table tbody tr")
        names = [r.find_element("tag name", "a").text for r in rows]
        assert names == sorted(rooms, key=lambda r: (-rooms[r]["gmv"], -sum(rooms[r]["interactions"].values()), r))
        for r in rows:  # every row's link leads to its room's section
            target = r.find_element("tag name", "a").get_attribute("href").split("#")[1]
            section = b.find_element("id", target)
            assert section.get_attribute("data-room") == r.find_element("tag name", "a").text
        for room in rooms:
            section = b.find_element("css selector", f"section[data-room='{room}']")
            said = section.find_elements("css selector", "[data-no-campaign]")
            if room == "room-001":
                assert not said and section.find_elements("css selector", "table.decisions")
            else:
                assert said and "has no campaign" in said[0].text
                assert not section.find_elements("css selector", "table.decisions")


def test_a_session_without_a_campaign_is_said_so(sample_session, tmp_path):
    folder = tmp_path / "session"
    folder.mkdir()
    for f in sample_session.iterdir():
        if f.name != "video.mp4":
            (folder / f.name).write_bytes(f.read_bytes())
    info = json.loads((sample_session / "session.json").read_text())
    info["campaign"] = None
    info["files"].pop("video")
    (folder / "session.json").write_text(json.dumps(info))
    output = _replay(folder, tmp_path / "out")
    assert "no campaign in" in output and "zero budget" in output
    decisions = (tmp_path / "out" / "bid-decisions.jsonl").read_bytes().splitlines()
    assert decisions and all(msgspec.json.decode(d)["budget_left"] == 0 for d in decisions)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "has no campaign, so it bid nothing" in page and "no campaign: money figures carry no currency" in page
