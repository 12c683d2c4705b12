"""A room written in parts (streams/room_parts.py) restores exactly, whatever
prefix of its writes survived a crash; and the per-persist bytes follow what
changed, not the room's size."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import CoreConfig
from streams.core import StreamCore
from streams.events import N_KINDS
from streams import room_parts
from streams.room_parts import CHUNK_BYTES, assemble, room_of, split

from .helpers import T0, ev

CFG = CoreConfig(tick_s=5.0, grace_s=10.0, dedup_horizon_s=20.0, rate_window_s=20.0)
USERS = [f"u{i}" for i in range(8)]


class ChangelogStore:
    """A compacted changelog as a dict: records applied in order, None deletes."""

    def __init__(self) -> None:
        self.heads: dict[bytes, bytes] = {}
        self.parts: dict[bytes, bytes] = {}

    def write(self, records) -> None:
        for table, key, value in records:
            target = self.heads if table == "head" else self.parts
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value

    def restore(self, room: str):
        head = self.heads.get(room.encode())
        if head is None:
            return None, []
        viewers = []
        for key, value in self.parts.items():
            kind, key_room = room_of(key)
            if kind == "P" and key_room == room:
                viewers.append((msgspec.msgpack.decode(key)[2], value))
        return assemble(head, self.parts.get, viewers)


def records_of(proc) -> list:
    parts, head, tombstones = split(proc.state, proc.journal)
    return ([("part", k, v) for k, v in parts] + [("head", proc.state.room_id.encode(), head)]
            + [("part", k, v) for k, v in tombstones])


@st.composite
def sessions(draw):
    """One room's events (with duplicates and disorder within grace), cut into batches."""
    n = draw(st.integers(5, 150))
    ts = T0
    lines = []
    for i in range(n):
        ts += draw(st.sampled_from([0.0, 0.3, 1.1, 4.0, 6.5, 21.0]))
        kind = draw(st.sampled_from(["enter", "enter", "enter", "leave", "like", "comment", "room_end", "dup"]))
        if kind == "dup" and lines:
            lines.append(draw(st.sampled_from(lines)))
            continue
        user = draw(st.sampled_from(USERS))
        at = round(ts - draw(st.sampled_from([0.0, 0.0, 2.0, 7.0])), 3)
        fields = {"user_id": user}
        if kind == "enter":
            fields["source"] = draw(st.sampled_from(["organic", "paid"]))
        elif kind == "like":
            fields["count"] = 2
        elif kind == "room_end":
            fields = {}
        if kind == "dup":
            kind, fields = "comment", {"user_id": user}
        lines.append(ev(i, at, kind, **fields))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(lines)), max_size=12))))
    batches, last = [], 0
    for c in cuts + [len(lines)]:
        if c > last:
            batches.append(lines[last:c])
            last = c
    return batches


def comparable(state) -> dict:
    d = msgspec.structs.asdict(state)
    for k in ("gen", "segments", "surge"):
        d.pop(k)
    d["surge"] = msgspec.structs.asdict(state.surge)
    d["buckets"] = {t: sorted(e.event_id for e in b) for t, b in state.buckets.items()}
    return d


def run_batches(batches, *, crash_at: int | None = None, keep: int = 0, config=CFG, quiet_close: bool = False):
    """Run batches through a journalled core, persisting after each into a
    ChangelogStore. With ``crash_at``, that batch's records are cut after
    ``keep`` of them, the worker forgets everything, restores from the store and
    is handed that batch again (at-least-once)."""
    store = ChangelogStore()
    core = StreamCore(config, journal=True)
    snapshots = {}
    i = 0
    crashed = False
    while i < len(batches):
        core.feed_many(batches[i], 1)
        proc = core.processors.get("r1")
        if proc is not None and quiet_close:
            proc.close_through(proc.state.max_ts + 7.0)  # the partition's clock moved on
        records = records_of(proc) if proc is not None else []
        for m in core.drain()[0]:
            snapshots[m.ts] = m
        if i == crash_at and not crashed:
            crashed = True
            store.write(records[:keep])
            state, repairs = store.restore("r1")
            store.write([("part", k, v) for k, v in repairs])
            core = StreamCore(config, journal=True, restore=lambda room, s=state: s)
            continue  # the same batch again
        store.write(records)
        i += 1
    core.flush()
    if "r1" in core.processors:
        store.write(records_of(core.processors["r1"]))  # a flush is persisted too
    for m in core.drain()[0]:
        snapshots[m.ts] = m
    return core, store, snapshots


@settings(max_examples=300, deadline=None)
@given(sessions(), st.data())
def test_a_restore_from_any_prefix_of_a_persist_continues_exactly(batches, data):
    # tiny records, so that segments and id lists are cut into several
    sizes = room_parts.SEGMENT_EVENTS, room_parts.CHUNK_BYTES
    room_parts.SEGMENT_EVENTS, room_parts.CHUNK_BYTES = data.draw(st.sampled_from([(500, 256 * 1024), (2, 12)]))
    try:
        _restore_from_any_prefix(batches, data)
    finally:
        room_parts.SEGMENT_EVENTS, room_parts.CHUNK_BYTES = sizes


def _restore_from_any_prefix(batches, data):
    want_core, want_store, want_snaps = run_batches(batches)
    crash_at = data.draw(st.integers(0, len(batches) - 1))
    core_ref, _, _ = run_batches(batches[: crash_at + 1])
    keep = data.draw(st.integers(0, 10_000))
    got_core, got_store, got_snaps = run_batches(batches, crash_at=crash_at, keep=keep)
    assert got_snaps == want_snaps  # every tick's last snapshot is the uninterrupted run's
    assert comparable(got_core.processors["r1"].state) == comparable(want_core.processors["r1"].state)
    # and what the store holds now restores the same room again
    again, _ = got_store.restore("r1")
    want_again, _ = want_store.restore("r1")
    assert comparable(again) == comparable(want_again)
    assert again.online == got_core.processors["r1"].state.online


@settings(max_examples=100, deadline=None)
@given(sessions())
def test_ticks_closed_by_the_partition_reopen_and_lose_nothing(batches):
    """Closing a quiet room's ticks early (its partition's clock) never drops an
    event: every event the room's own clock takes is taken, and the interaction
    totals are the run's without early closes. (A copy may be refused as late
    rather than as a duplicate: early closes move the dedup horizon sooner. And
    a reopened enter or leave is applied in arrival order, so presence may differ.)"""
    want_core, _, _ = run_batches(batches)
    got_core, _, _ = run_batches(batches, quiet_close=True)
    want, got = want_core.processors["r1"].state, got_core.processors["r1"].state
    assert got.totals[:N_KINDS] == want.totals[:N_KINDS]
    assert got_core.processed == want_core.processed
    assert got_core.duplicates + got_core.dead == want_core.duplicates + want_core.dead


def test_an_event_after_an_early_close_reopens_its_tick():
    core = StreamCore(CFG)
    core.feed_many([ev(1, T0 + 1, "like", user_id="u", count=1)], 1)
    proc = core.processors["r1"]
    assert proc.close_through(T0 + 60)  # the partition moved on; this room was quiet
    core.feed_many([ev(2, T0 + 2, "like", user_id="u", count=3)], 1)  # the room's producer was only late
    assert core.rejected["late"] == 0
    core.flush()
    metrics = core.drain()[0]
    assert metrics[-1].interactions_total["like"] == 4  # counted, one tick later
    core.feed_many([ev(3, T0 - 10, "like", user_id="u", count=1)], 1)
    assert core.rejected["late"] == 0  # its own clock never passed it either: still reopened
    core.feed_many([ev(4, T0 - 40, "like", user_id="u", count=1)], 1)
    assert core.rejected["late"] == 1  # older than the ids it remembers: a copy could not be told, so late
    core.feed_many([ev(5, T0 + 120, "like", user_id="u", count=1), ev(6, T0 + 3, "like", user_id="u", count=1)], 1)
    assert core.rejected["late"] == 2  # now its own events have passed that tick: late


def test_bytes_per_persist_follow_the_change_not_the_room_size():
    """100k viewers online; then each batch of 100 likes writes a few KB, not the room."""
    core = StreamCore(CFG, journal=True)
    core.feed_many([ev(i, T0 + i * 0.0001, "enter", user_id=f"viewer-{i}", source="organic")
                    for i in range(100_000)], 1)
    proc = core.processors["r1"]

    def persisted() -> int:
        return sum(len(k) + len(v or b"") for _, k, v in records_of(proc))

    entering = persisted()
    core.feed_many([ev("x", T0 + 30, "comment", user_id="viewer-1")], 1)  # closes the enters' ticks
    entered = persisted()
    assert len(proc.state.online) == 100_000
    per_like = []
    for batch in range(1, 6):
        core.feed_many([ev(f"l{batch}-{i}", T0 + 30 + batch * 5 + i * 0.01, "like", user_id=f"viewer-{i}", count=1)
                        for i in range(100)], 1)
        per_like.append(persisted() / 100)
    assert entering + entered > 100_000 * 100  # every viewer once, as an event, then as presence
    assert max(per_like) < 200, per_like  # the likes, their ids, tombstones, a small head: not the room


def test_dedup_memory_is_capped_and_copies_past_it_are_late_not_counted():
    config = CoreConfig(tick_s=5.0, grace_s=0.0, dedup_horizon_s=600.0, max_dedup_ids=50)
    core = StreamCore(config)
    lines = [ev(i, T0 + i, "like", user_id="u", count=1) for i in range(200)]
    core.feed_many(lines, 1)
    st_ = core.processors["r1"].state
    assert len(st_.seen) <= 50 + 5  # the cap, plus the open tick's ids
    core.feed_many(lines[:10], 1)  # copies of forgotten ids
    assert core.rejected["late"] == 10 and core.duplicates == 0
    core.flush()
    assert sum(m.interactions_total["like"] for m in core.drain()[0][-1:]) == 200


def test_no_record_outgrows_a_kafka_message_in_a_hot_tick():
    """50,000 events with 100-byte ids in one tick: segments and id lists are cut
    below Kafka's 1 MB default message size, and the room restores whole."""
    core = StreamCore(CFG, journal=True)
    core.feed_many([ev(f"{i:0>100}", T0 + i * 0.00005, "like", user_id=f"v{i}", count=1) for i in range(50_000)], 1)
    proc = core.processors["r1"]
    store = ChangelogStore()
    buffered = records_of(proc)
    store.write(buffered)
    core.feed_many([ev("later", T0 + 30, "comment", user_id="v1")], 1)  # closes the tick: its ids are written
    closed = records_of(proc)
    store.write(closed)
    assert max(len(v or b"") for _, _, v in buffered + closed) <= CHUNK_BYTES + 1024
    assert sum(1 for _, k, _ in closed if room_of(k) == ("D", "r1")) > 1
    state, repairs = store.restore("r1")
    assert repairs == [] and state.seen == proc.state.seen and len(state.seen) == 50_001
