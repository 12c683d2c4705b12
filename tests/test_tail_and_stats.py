"""Pure parts of the operator's tools: tail's formatting (hostile bytes included),
copy cuts within the length bounds, the worker's state-size bookkeeping."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from highlight.pipeline import copy_span
from liveroom.kafka.tail import format_message, topic_name
from liveroom.kafka.topics import ALL_TOPICS, BID_DECISIONS, CAMPAIGNS, DEAD_LETTERS, EVENTS, ROOM_METRICS
from streams.models import DeadLetter
from streams.room_parts import presence_key, segment_key
from liveroom.kafka.stats import PartsSize


def test_topic_names_short_or_full():
    assert topic_name("room-metrics") == ROOM_METRICS == topic_name(ROOM_METRICS)
    with pytest.raises(ValueError, match="unknown topic"):
        topic_name("liveroom.nope")


def test_an_envelope_is_one_line_per_event_and_times_are_utc():
    a = b'{"type":"enter","event_id":"e1","room_id":"r","ts":1780000000.5,"user_id":"u1","source":"paid"}'
    lines = format_message(EVENTS, b"[" + a + b"," + a.replace(b"e1", b"e2") + b"]")
    assert lines == ["2026-05-28 20:26:40Z r enter user_id=u1 source=paid (id e1)",
                     "2026-05-28 20:26:40Z r enter user_id=u1 source=paid (id e2)"]


def test_a_dead_letter_shows_its_reason_and_bytes():
    dead = DeadLetter(reason="malformed_json", detail="bad", source="liveroom.events/0@1", raw=b"\xff{", room_id="r")
    (line,) = format_message(DEAD_LETTERS, msgspec.json.encode(dead))
    assert line == "r dead letter malformed_json from liveroom.events/0@1: bad [2 bytes: b'\\xff{']"


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(ALL_TOPICS), value=st.one_of(st.binary(max_size=200), st.just(b"{}"), st.just(b"[]"),
       st.just(b'{"ts": "x", "clips": 3}'), st.just(b'[1, {"ts": 1e300}]'), st.just(b'{"interactions_per_min": 5}')))
def test_tail_never_crashes_on_what_anyone_can_write(topic, value):
    lines = format_message(topic, value)
    assert lines and all(isinstance(x, str) for x in lines)


def test_a_decision_line_says_strategy_cap_and_budget():
    d = {"room_id": "r", "ts": 1780000000.0, "seq": 1, "strategy": "interaction_mcb", "bid_cap": 0.5,
         "multiplier": 1.25, "unit_value": 0.4, "spend_cap": 3.0, "budget_left": 120.5, "reason": "mcb"}
    (line,) = format_message(BID_DECISIONS, msgspec.json.encode(d))  # a decision of an older version
    assert line == ("2026-05-28 20:26:40Z r interaction_mcb: bid 1.25 x value 0.4; bid cap 0.5 per viewer; spend cap 3 "
                    "until the next decision; budget left 120.5. Why: mcb")
    d.update(bid_cap=None, budget=240.0, spent=150.0, committed=69.93, budget_left=20.07,
             reason="mcb: plan 2/tick, bid x0.370 (budget x0.4, cap x0.37)")
    (line,) = format_message(BID_DECISIONS, msgspec.json.encode(d))
    # the line the issue quoted said "no cap" next to a spend cap larger than the budget left
    assert line == ("2026-05-28 20:26:40Z r interaction_mcb: bid 1.25 x value 0.4; spend cap 3 until the next "
                    "decision; budget 240: 150 spent, 69.93 committed, 20.07 left. Why: mcb: plan 2/tick, bid x0.370 "
                    "(budget x0.4, cap x0.37)")


def test_a_campaign_line_says_its_run_of_show():
    c = {"room_id": "r", "total_budget": 240.0, "currency": "CNY", "mcb": {"max_cost_per_interaction": 0.5,
         "duration_s": 480.0}, "run_of_show": [{"at": 1780000312.9, "duration_s": 40}, {"at": 1780000137.2}]}
    (line,) = format_message(CAMPAIGNS, msgspec.json.encode(c))
    assert line == ("r campaign: budget 240 CNY, max cost per interaction 0.5, planned 480 s, "
                    "run of show: 2 moment(s), first at 2026-05-28 20:28:57Z")
    c["run_of_show"] = [{"at": "soon"}, 7]  # hostile, as the property test below throws at every topic
    assert format_message(CAMPAIGNS, msgspec.json.encode(c))[0].endswith("run of show: 2 moment(s)")


KEYFRAMES = tuple(float(k) for k in range(0, 600, 10))  # one every 10 s


def test_a_copy_begins_on_the_keyframe_before_when_it_fits():
    assert copy_span(37.3, 90.0, KEYFRAMES, min_s=10, max_s=60) == (30.0, 90.0)


def test_a_copy_that_would_run_past_max_begins_on_the_next_keyframe():
    assert copy_span(37.3, 96.0, KEYFRAMES, min_s=10, max_s=60) == (40.0, 96.0)


def test_no_copy_when_no_keyframe_fits_the_bounds():
    assert copy_span(37.3, 49.0, KEYFRAMES, min_s=10, max_s=11) is None
    assert copy_span(5.0, 20.0, (), min_s=10, max_s=60) is None


@given(start=st.floats(0, 500), length=st.floats(10, 60), gop=st.floats(0.5, 30))
def test_a_copy_span_always_keeps_the_bounds(start, length, gop):
    keyframes = tuple(i * gop for i in range(int(700 / gop)))
    span = copy_span(start, start + length, keyframes, min_s=10, max_s=60)
    if span is not None:
        a, b = span
        assert a in keyframes and 10 - 1e-6 <= b - a <= 60 + 1e-6 and b <= start + length + 1e-9


def test_parts_size_counts_segments_exactly_and_viewers_by_their_mean():
    size = PartsSize()
    seg = segment_key("r", 100, 0)
    size.write(seg, b"x" * 100)
    size.write(presence_key("r", "u1"), b"v" * 10)
    size.write(presence_key("r", "u2"), b"v" * 10)
    assert PartsSize.is_viewer(presence_key("r", "u1")) and not PartsSize.is_viewer(seg)
    viewer = len(presence_key("r", "u1")) + 10
    assert size.total(online_viewers=2) == len(seg) + 100 + 2 * viewer
    size.write(seg, None)  # the tick closed: its segment is gone
    assert size.total(online_viewers=1) == viewer


def test_only_aiokafkas_retried_startup_errors_are_demoted():
    import logging

    from aiokafka.errors import GroupAuthorizationFailedError, GroupCoordinatorNotAvailableError

    from liveroom.kafka.worker import Transient

    f = Transient("liveroom")

    def record(msg, arg):
        return logging.LogRecord("aiokafka", logging.ERROR, "x", 1, msg, (arg,), None)

    retried = record("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    f.filter(retried)
    assert retried.levelno == logging.INFO
    ours = record("Topic %s not found in cluster metadata", "liveroom-room-state-changelog")
    f.filter(ours)
    assert ours.levelno == logging.INFO
    for kept in (record("Group Coordinator Request failed: %s", GroupAuthorizationFailedError()),
                 record("Topic %s not found in cluster metadata", "liveroom.events")):
        assert f.filter(kept) and kept.levelno == logging.ERROR  # not retried, or not ours: still an error


def test_rooms_lists_only_the_busiest_but_every_room_is_reachable():
    from streams.models import RoomMetrics
    from liveroom.kafka.stats import WorkerStats

    stats = WorkerStats()
    base = dict(ts=1.0, peak_online=0, organic_entries_per_min=0.0, paid_entries_per_min=0.0, interactions_per_min={},
                interactions_per_viewer_min=0.0, organic_entries_total=0, paid_entries_total=0, interactions_total={},
                orders_total=0, gmv_total=0.0, gift_value_total=0.0, spend_total=0.0, live=True)
    stats.record_outputs([RoomMetrics(room_id=f"r{i}", online=i, **base) for i in range(500)], [])
    listed = stats.rooms(limit=200)
    assert len(listed) == 200 and listed[0]["room_id"] == "r499" and listed[-1]["room_id"] == "r300"
    assert stats.room("r0")["metrics"]["online"] == 0


def test_tail_clips_names_the_folder_the_clip_files_are_in():
    import msgspec

    from liveroom.kafka.tail import format_message
    from liveroom.kafka.topics import CLIPS

    manifest = {"room_id": "room-001", "folder": "clips/room-001", "part": 2, "final": True,
                "clips": [{"file": "clip-01.mp4", "start": 1.0, "end": 20.0, "score": 3.1, "reasons": ["audio z 4.0"]}]}
    lines = "\n".join(format_message(CLIPS, msgspec.json.encode(manifest))).splitlines()
    assert lines[1].strip().startswith("clips/room-001/clip-01.mp4"), lines


def test_a_decision_that_says_budget_spent_says_what_is_committed():
    d = {"room_id": "r", "ts": 1780000000.0, "seq": 1, "strategy": "paused", "bid_cap": None, "multiplier": 0.0,
         "unit_value": 0.4, "spend_cap": 0.0, "budget_left": 0.0, "reason": "budget spent", "budget": 240.0,
         "spent": 88.68, "committed": 151.32}
    (line,) = format_message(BID_DECISIONS, msgspec.json.encode(d))
    assert line.endswith("Why: budget spent (spent or committed: caps count as spent until a report covers them)")


def test_the_clip_loops_records_count_as_bytes_only_not_as_room_heads():
    """The clip loop's changelog records went into the rooms' head sizes (a dict
    keyed by every clip part ever written, never emptied): now bytes only."""
    from liveroom.kafka.stats import WorkerStats

    stats = WorkerStats()
    for n in range(1000):
        stats.record_changelog("clip-parts", b"\x94\xa1i\xa1r%d" % n, b"x" * 100)
        stats.record_changelog("clip-heads", b"r%d" % n, b"y" * 30)
    stats.record_changelog("room-state", b"room-1", b"z" * 50)
    assert stats.head_bytes == {"room-1": 56}
    assert stats.changelog_bytes["clip-parts"] > 100_000 and stats.changelog_bytes["clip-heads"] > 30_000
