import msgspec
import pytest

from streams.events import EVENT_TYPES, Comment, EventDecoder, Like, Order, Rejected, Spend

from .helpers import T0, ev


def test_every_contract_type_decodes():
    extras = {
        "enter": {"user_id": "u", "source": "paid"}, "leave": {"user_id": "u"}, "comment": {"user_id": "u", "text": "hi"},
        "like": {"user_id": "u", "count": 3}, "share": {"user_id": "u"}, "follow": {"user_id": "u"},
        "gift": {"user_id": "u", "value": 5}, "cart_add": {"user_id": "u", "sku": "s"},
        "order": {"user_id": "u", "sku": "s", "amount": 9.9}, "room_start": {}, "room_end": {}, "spend": {"amount": 1.5},
    }
    assert set(extras) == set(EVENT_TYPES)
    dec = EventDecoder()
    for i, (etype, fields) in enumerate(extras.items()):
        event = dec.decode(ev(i, T0, etype, **fields))
        assert event.room_id == "r1" and event.ts == T0
        assert type(event).__struct_config__.tag == etype


def test_typed_fields():
    dec = EventDecoder()
    assert dec.decode(ev(1, T0, "like", user_id="u", count=4)) == Like(event_id="e1", room_id="r1", ts=T0, user_id="u", count=4)
    assert isinstance(dec.decode(ev(1, T0, "comment", user_id="u")), Comment)
    assert dec.decode(ev(1, T0, "order", user_id="u", sku="s", amount=3)).amount == 3.0
    assert isinstance(dec.decode(ev(1, T0, "spend", amount=0)), Spend)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "empty"),
        (b"   \r", "empty"),
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00garbage", "invalid_utf8"),  # decided from the bytes, whatever the parser raises
        (b'{"type":"comment","text":"\xc3"}', "invalid_utf8"),
        (b'{"type":"comment","x":' + b"[" * 65 + b"]" * 65 + b"}", "invalid_event"),  # deep but JSON: the contract decides
        (b'{"x":' + b"[" * 65, "too_deep"),
        (b'{"x":"' + b"[" * 500, "malformed_json"),  # brackets inside a string are no nesting
        (b'{"type":["comment"]}', "unknown_type"),
        (b"\x0b\x0c", "malformed_json"),  # not JSON white space (Python's strip() took them for blank)
        (ev(1, T0, "teleport", user_id="u"), "unknown_type"),
        (b'{"event_id":"e","room_id":"r","ts":1.0}', "unknown_type"),
        (ev(1, T0, "comment"), "invalid_event"),  # missing user_id
        (ev(1, "yesterday", "comment", user_id="u"), "invalid_event"),
        (ev(1, -5.0, "comment", user_id="u"), "invalid_event"),
        (ev(1, T0, "order", user_id="u", sku="s", amount=-1), "invalid_event"),
        (ev(1, T0, "gift", user_id="u", value=-0.01), "invalid_event"),
        (ev(1, T0, "spend", amount=-3), "invalid_event"),
        (ev(1, T0, "like", user_id="u", count=0), "invalid_event"),
        (ev(1, T0, "enter", user_id="u", source="bot"), "invalid_event"),
        (ev(1, T0, "comment", room="", user_id="u"), "invalid_event"),
        (b'{"event_id":"e","room_id":"r","ts":1e999,"type":"leave","user_id":"u"}', "invalid_event"),
        (b"[1, 2, 3]", "invalid_event"),
    ],
)
def test_rejections_have_reasons(raw, reason):
    with pytest.raises(Rejected) as info:
        EventDecoder().decode(raw)
    assert info.value.reason == reason
    assert info.value.detail


def test_oversized_is_refused_before_decoding():
    raw = ev(1, T0, "comment", user_id="u", text="x" * 500)
    with pytest.raises(Rejected) as info:
        EventDecoder(max_bytes=200).decode(raw)
    assert info.value.reason == "oversized"
    assert EventDecoder(max_bytes=len(raw)).decode(raw).text == "x" * 500


def test_ts_bounds():
    dec = EventDecoder(ts_bounds=(T0, T0 + 60))
    assert dec.decode(ev(1, T0 + 60, "leave", user_id="u")).ts == T0 + 60
    for ts in (T0 - 0.001, T0 + 60.5, 1.0):
        with pytest.raises(Rejected) as info:
            dec.decode(ev(1, ts, "leave", user_id="u"))
        assert info.value.reason == "ts_out_of_range"


def test_unknown_fields_are_ignored_for_forward_compatibility():
    raw = msgspec.json.encode({"event_id": "e", "room_id": "r", "ts": T0, "type": "order", "user_id": "u",
                               "sku": "s", "amount": 1.0, "currency": "EUR"})
    assert isinstance(EventDecoder().decode(raw), Order)
