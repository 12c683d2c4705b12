"""Fuzzing the three readers of untrusted bytes: the event decoder (through the
core), the events-file reader (plain and gzip) and the session folder reader.
Whatever the bytes, nothing raises but the documented :class:`SessionError`,
and every input is accounted for.

CI runs a short campaign. A long one, run by hand::

    LIVEROOM_FUZZ_EXAMPLES=200000 .venv/bin/python -m pytest tests/streams/test_fuzz.py
"""

from __future__ import annotations

import gzip
import os
import random
import tempfile
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.config import CoreConfig
from streams.core import StreamCore
from streams.events import EVENT_TYPES, BlankLines
from sessions.folder import LineReader, ReadLimits, SessionError, open_session

EXAMPLES = int(os.environ.get("LIVEROOM_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
T0 = 1_780_000_000.0

VALID = [msgspec.json.encode({"event_id": f"e{i}", "room_id": f"r{i % 3}", "ts": T0 + i, "type": t, "user_id": "u",
                              "count": 2, "value": 1.5, "amount": 3.0, "sku": "s", "text": "hi", "source": "paid"})
         for i, t in enumerate(EVENT_TYPES)]


def mutate(data: bytes, rnd: random.Random, n: int) -> bytes:
    """Flip, insert, delete and duplicate bytes: near-valid input finds the deep paths."""
    buf = bytearray(data)
    for _ in range(n):
        op = rnd.randrange(5)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rnd.randrange(256)
        elif op == 1:
            buf[pos:pos] = bytes([rnd.choice(b'{}[]":,\\\xff\xc3\x00\n0e-.')])
        elif op == 2 and buf:
            del buf[pos:pos + rnd.randrange(1, 8)]
        elif op == 3:
            buf[pos:pos] = buf[pos:pos + rnd.randrange(1, 64)] * rnd.randrange(1, 50)
        else:
            buf[pos:pos] = b"[" * rnd.randrange(1, 3000)
    return bytes(buf)


inputs = st.one_of(
    st.binary(max_size=300),
    st.builds(mutate, st.sampled_from(VALID), st.randoms(use_true_random=False), st.integers(1, 6)),
    st.sampled_from(VALID),
)


@FUZZ
@given(st.lists(inputs, max_size=40))
def test_the_core_takes_any_bytes_and_accounts_for_each(raws):
    core = StreamCore(CoreConfig(max_event_bytes=4096, dead_letter_max_raw=512), max_rooms=2)
    core.feed_many(raws)
    core.flush()
    acc = core.accounting()
    _, _, dead = core.drain()
    assert acc["inputs"] == len(raws) and acc["all_accounted_for"] and len(dead) == acc["dead_letters"]
    assert all(len(d.raw) <= 512 and d.reason for d in dead)


@FUZZ
@given(st.lists(inputs, max_size=30), st.randoms(use_true_random=False), st.booleans(), st.integers(0, 8))
def test_the_file_reader_survives_any_file(raws, rnd, compress, damage):
    blob = b"\n".join(raws)
    if compress:
        blob = gzip.compress(blob, mtime=0)
        if damage:
            blob = mutate(blob[:2] + blob[2:], rnd, damage)  # keep the magic mostly; damage the stream
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "events.jsonl"
        path.write_bytes(blob)
        reader = LineReader(path, ReadLimits(max_line_bytes=2048, keep_bytes=100, ratio_after_bytes=1 << 16))
        core = StreamCore(CoreConfig(max_event_bytes=2048, dead_letter_max_raw=100))
        n = 0
        for lines in reader.chunks():
            core.feed_many(lines)
            n += sum(x.lines if isinstance(x, BlankLines) else 1 for x in lines)
        if reader.error is not None:
            core.reject_input(b"", *reader.error)
            n += 1
        core.flush()
        assert core.accounting()["inputs"] == n and core.accounting()["all_accounted_for"]
        if not blob.startswith(b"\x1f\x8b"):  # plain: every line, the last one without its newline too
            assert n == len(blob.split(b"\n")) - (blob.endswith(b"\n") or not blob)


meta_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
metas = st.one_of(
    st.binary(max_size=200),
    st.fixed_dictionaries({"room_id": meta_values, "start": meta_values, "end": meta_values,
                           "files": st.fixed_dictionaries({"events": meta_values}) | meta_values},
                          optional={"campaign": meta_values}).map(msgspec.json.encode),
    st.builds(mutate, st.just(b'{"room_id":"r","start":1780000000,"end":1780000100,"files":{"events":"e.jsonl"},'
                              b'"campaign":{"room_id":"r","total_budget":10}}'),
              st.randoms(use_true_random=False), st.integers(1, 6)),
)


@FUZZ
@given(metas)
def test_the_session_reader_says_session_error_or_opens(meta):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "session.json").write_bytes(meta)
        (folder / "e.jsonl").write_bytes(VALID[0] + b"\n")
        try:
            session = open_session(folder)
        except SessionError as exc:
            assert str(exc)
        else:
            assert session.events_path.is_relative_to(folder.resolve())
