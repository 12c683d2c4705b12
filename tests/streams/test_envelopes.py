"""Envelopes: one input (a Kafka message) carrying a JSON array of a room's events."""

from __future__ import annotations

from streams.config import CoreConfig
from streams.core import StreamCore
from liveroom.kafka.io import unpack
from sessions.envelopes import Envelopes

from .helpers import T0, ev


def test_each_event_of_an_envelope_is_an_input_of_its_own():
    core = StreamCore(CoreConfig())
    envelope = b"[" + b",".join(ev(i, T0 + i, "like", user_id="u", count=1) for i in range(5)) + b"]"
    bad_inside = b"[" + ev(10, T0, "like", user_id="u", count=1) + b',{"type":"levitate"}]'
    core.feed_many([envelope, b"[1,2", b"[]", b"[[]]", ev(9, T0 + 9, "like", user_id="u", count=1), bad_inside], 1)
    acc = core.accounting()
    assert acc["all_accounted_for"]
    assert acc["processed"] == 5 + 1 + 1 and acc["blank"] == 1
    assert acc["inputs"] == 5 + 1 + 1 + 1 + 1 + 2  # events count, a bad envelope is one input
    dead = core.drain()[2]
    assert [(d.reason, d.source) for d in dead] == [("malformed_envelope", "2"), ("malformed_envelope", "4"), ("unknown_type", "6#1")]
    assert dead[0].raw == b"[1,2"  # the bytes kept, as for any dead letter


def test_an_envelope_of_another_room_is_refused_event_by_event():
    core = StreamCore(CoreConfig())
    envelope = b"[" + ev(1, T0, "like", user_id="u", count=1) + b"," + ev(2, T0, "like", room="r2", user_id="u",
                                                                          count=1) + b"]"
    core.feed_many([envelope], ["0@7"], expect_room="r1")
    assert core.processed == 1 and core.rejected["key_mismatch"] == 1
    assert core.drain()[2][0].source == "0@7#1"


def test_producer_envelopes_keep_each_rooms_order_and_split_by_size():
    sent = []
    env = Envelopes(lambda key, value, _: sent.append((key, value)), size=3)
    events = [(b"a" if i % 3 else b"b", ev(i, T0 + i, "like", room="a" if i % 3 else "b", user_id="u", count=1))
              for i in range(10)]
    for key, raw in events:
        env.add(key, raw)
    env.add(None, b"{unkeyed")
    env.flush()
    assert (None, b"{unkeyed") in sent
    for room in (b"a", b"b"):
        got = [raw for key, value in sent if key == room for raw in unpack(value)]
        assert got == [raw for key, raw in events if key == room]
    assert all(len(unpack(v)) <= 3 for _, v in sent)
    assert env.messages == len(sent)


def test_unpack_leaves_anything_else_to_the_core():
    assert unpack(b'{"x":1}') == [b'{"x":1}']
    assert unpack(b"[1,") == [b"[1,"]
    assert unpack(b'[{"a":1}, {"b":2}]') == [b'{"a":1}', b'{"b":2}']


def test_an_envelope_past_its_limits_is_one_dead_letter_not_a_fan_out():
    """A 1 MB message of '{}' elements would otherwise be 500,000 dead letters."""
    core = StreamCore(CoreConfig(max_envelope_events=1000, max_envelope_bytes=1 << 20))
    many = b"[" + b",".join([b"{}"] * 5000) + b"]"
    huge = b"[" + b" " * (2 << 20) + b"]"
    core.feed_many([many, huge], ["0@1", "0@2"])
    dead = core.drain()[2]
    assert [(d.reason, d.source) for d in dead] == [("oversized", "0@1"), ("oversized", "0@2")]
    assert core.accounting()["inputs"] == 2 and core.accounting()["all_accounted_for"]
    assert dead[1].raw_bytes == len(huge)  # kept as any long input: prefix, length, hash
