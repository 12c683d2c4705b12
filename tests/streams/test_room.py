"""Unit tests of the per-room state core (through StreamCore, as the runtimes use it)."""

from streams.config import CoreConfig
from streams.core import StreamCore
from streams.room import RoomState, decode_state, encode_state

from .helpers import T0, ev, run


def last(metrics, room="r1"):
    return [m for m in metrics if m.room_id == room][-1]


def test_online_counts_distinct_users_and_never_goes_negative():
    lines = [
        ev(1, T0 + 0.1, "leave", user_id="ghost"),  # leave without enter
        ev(2, T0 + 0.2, "enter", user_id="a"),
        ev(3, T0 + 0.3, "enter", user_id="a"),  # repeated enter counts once
        ev(4, T0 + 0.4, "enter", user_id="b", source="paid"),
        ev(5, T0 + 6.0, "leave", user_id="a"),
        ev(6, T0 + 6.1, "leave", user_id="a"),
    ]
    core, metrics, _, dead = run(lines)
    assert not dead
    assert [m.online for m in metrics] == [2, 1]
    assert metrics[-1].organic_entries_total == 1 and metrics[-1].paid_entries_total == 1
    assert metrics[0].peak_online == 2


def test_rates_totals_and_money():
    lines = [ev(i, T0 + i, "comment", user_id="u") for i in range(10)]
    lines += [ev(100, T0 + 1, "like", user_id="u", count=5), ev(101, T0 + 2, "order", user_id="u", sku="s", amount=19.9),
              ev(102, T0 + 3, "order", user_id="u", sku="s", amount=0.1), ev(103, T0 + 4, "spend", amount=2.5),
              ev(104, T0 + 4, "gift", user_id="u", value=10)]
    _, metrics, _, _ = run(lines)
    m = last(metrics)
    assert m.interactions_total == {"comment": 10, "like": 5, "share": 0, "follow": 0, "gift": 1, "cart_add": 0, "order": 2}
    assert m.orders_total == 2 and m.gmv_total == 20.0 and m.spend_total == 2.5 and m.gift_value_total == 10.0
    # two 5 s ticks so far: rates scale the 10 s seen to a minute
    assert m.interactions_per_min["comment"] == 60.0


def test_snapshot_per_tick_of_event_time_including_quiet_ticks():
    lines = [ev(1, T0 + 1, "enter", user_id="a"), ev(2, T0 + 31, "comment", user_id="a")]
    _, metrics, _, _ = run(lines)
    assert [m.ts - T0 for m in metrics] == [5.0 * k for k in range(1, 8)]
    assert all(m.online == 1 for m in metrics)


def test_late_within_grace_lands_in_its_own_tick_and_later_is_dead_letter():
    cfg = CoreConfig(tick_s=5.0, grace_s=10.0)
    lines = [ev(1, T0 + 1, "comment", user_id="u"), ev(2, T0 + 12, "comment", user_id="u"),
             ev(3, T0 + 3, "comment", user_id="u"),  # 9 s late: within grace
             ev(4, T0 + 40, "comment", user_id="u"),
             ev(5, T0 + 2, "comment", user_id="u")]  # tick [T0, T0+5) was published
    core, metrics, _, dead = run(lines, cfg)
    first = metrics[0]
    assert first.ts == T0 + 5 and first.interactions_total["comment"] == 2
    assert [d.reason for d in dead] == ["late"] and dead[0].raw == lines[4] and dead[0].source == "5"
    assert core.accounting()["all_accounted_for"]


def test_duplicates_dropped_and_memory_bounded():
    cfg = CoreConfig(tick_s=5.0, grace_s=5.0, dedup_horizon_s=30.0)
    lines = []
    for i in range(2000):
        lines.append(ev(i, T0 + i * 0.5, "like", user_id="u"))
        if i % 10 == 0:
            lines.append(ev(i, T0 + i * 0.5, "like", user_id="u"))
    core, metrics, _, dead = run(lines, cfg, flush=False)
    assert core.duplicates == 200 and not dead
    state = next(iter(core.states()))
    # only ids of open ticks and of the dedup horizon are remembered
    assert len(state.seen) <= (30 / 5 + 1 + 10 / 5 + 1) * 10
    assert metrics[-1].interactions_total["like"] == core.processed - sum(len(b) for b in state.buckets.values())


def test_forward_jump_is_refused():
    lines = [ev(1, T0, "comment", user_id="u"), ev(2, T0 + 10_000, "comment", user_id="u"), ev(3, T0 + 4, "comment", user_id="u")]
    core, _, _, dead = run(lines, CoreConfig(max_future_s=3600))
    assert [d.reason for d in dead] == ["ts_jump"] and core.processed == 2


def test_room_end_empties_the_room():
    lines = [ev(1, T0, "room_start"), ev(2, T0 + 1, "enter", user_id="a"), ev(3, T0 + 2, "enter", user_id="b"),
             ev(4, T0 + 7, "room_end"), ev(5, T0 + 8, "enter", user_id="c")]
    _, metrics, _, _ = run(lines)
    assert metrics[0].online == 2 and metrics[0].live
    assert metrics[-1].online == 0 and not metrics[-1].live and metrics[-1].organic_entries_total == 2


def test_rooms_are_independent():
    lines = [ev(1, T0, "enter", room="a", user_id="x"), ev(2, T0 + 100, "enter", room="b", user_id="x"),
             ev(3, T0 + 1, "enter", room="a", user_id="y")]  # room b's clock does not make this late
    core, metrics, _, dead = run(lines)
    assert not dead and last(metrics, "a").online == 2 and last(metrics, "b").online == 1


def test_state_survives_encoding_mid_stream():
    """Stopping, storing the state as bytes and resuming gives the same outputs
    as an uninterrupted run: what the Kafka runtime relies on."""
    lines = [ev(i, T0 + i * 0.7, ("comment", "enter", "like")[i % 3], user_id=f"u{i % 7}") for i in range(300)]
    _, whole, _, _ = run(lines)
    cfg = CoreConfig()
    first = StreamCore(cfg)
    for raw in lines[:150]:
        first.feed(raw)
    before, _, _ = first.drain()
    stored = encode_state(next(iter(first.states())))
    second = StreamCore(cfg)
    second.load(decode_state(stored))
    for raw in lines[150:]:
        second.feed(raw)
    second.flush()
    after, _, _ = second.drain()
    assert before + after == whole
    assert isinstance(decode_state(stored), RoomState)
