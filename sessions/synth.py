"""Synthetic live-room sessions with known ("planted") moments.

What makes them realistic enough to test against: viewers arrive on a ramp after
``room_start`` (organic, plus paid traffic front-loaded as a typical campaign
buys it), stay for a log-normal dwell time, sometimes come back; every online
viewer comments, likes, shares, adds to cart and orders at base rates; at
planted moments (a product reveal, a flash sale) the rates jump, a few seconds
after the moment shows on screen because audiences react late. Events reach the
recorder slightly out of order and, rarely, twice (at-least-once delivery).

The plan (:class:`RoomPlan`) is separate from the events so that the highlight
side can render a matching video track from the same plan.

Same seed, same bytes: one seeded numpy generator per room, gzip without mtime.
"""

from __future__ import annotations

import gzip
import heapq
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from streams.models import Campaign, McbSettings, RampSettings, ScheduledMoment
from sessions.folder import SESSION_FILE, SessionFiles, SessionInfo

DEFAULT_START = 1_780_000_000.0  # a fixed epoch keeps outputs reproducible

BASE_RATES = {  # per online viewer per second
    "comment": 0.012, "like": 0.03, "share": 0.0008, "follow": 0.001,
    "gift": 0.0004, "cart_add": 0.0015, "order": 0.0004,
}
MOMENT_KINDS = {  # rate multipliers while the audience reacts to the moment
    "product_reveal": {"comment": 5.0, "like": 4.0, "share": 4.0, "follow": 3.0, "cart_add": 4.0},
    "flash_sale": {"comment": 3.0, "like": 2.0, "cart_add": 8.0, "order": 10.0, "share": 2.0},
}
COMMENTS = ("how much?", "love it", "link please", "size?", "so cute", "wow", "buying now",
            "does it ship today", "color options?", "hello from here")
PRICES = (9.9, 19.9, 29.0, 49.0, 99.0)


@dataclass(frozen=True)
class PlantedMoment:
    """A moment on screen from ``start`` to ``end`` (epoch s); the audience
    reacts ``lag_s`` later."""

    kind: str
    start: float
    end: float
    lag_s: float
    boost: float = 1.0  # scales how far the rates jump


@dataclass(frozen=True)
class RoomPlan:
    room_id: str
    start: float
    end: float
    moments: tuple[PlantedMoment, ...] = field(default_factory=tuple)
    peak_arrivals_per_s: float = 1.5
    paid_arrivals_per_s: float = 0.6
    # Decoys fire one signal only (on screen or in the sound), never the audience:
    # a highlight finder must not pick them.
    decoys: tuple[PlantedMoment, ...] = field(default_factory=tuple)


SHAPES = ("default", "quiet", "one_peak", "steady", "late_peaks")


REPORT_TICK_S = 5.0  # the default tick and grace: when the synthetic ad server has seen a decision
REPORT_GRACE_S = 10.0


def plan_room(rng: np.random.Generator, room_id: str, start: float, minutes: float, *,
              lag_s: float, peak_arrivals_per_s: float = 1.5, shape: str = "default") -> RoomPlan:
    """Place the moments: a product reveal then a flash sale, one every ~4
    minutes, never in the first 90 s (the baseline is still forming).

    Shapes: ``quiet`` (a quarter of the audience), ``one_peak`` (a single, twice
    as strong moment mid-broadcast), ``steady`` (no moments), ``late_peaks`` (two
    moments, both in the last 40%, after a calm start)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    duration = minutes * 60.0
    moments = []
    kinds = list(MOMENT_KINDS)
    if shape == "quiet":
        peak_arrivals_per_s *= 0.25
    n = 0 if shape == "steady" else 1 if shape == "one_peak" else 2 if shape == "late_peaks" else max(
        1, int(duration // 240))
    boost = 2.0 if shape == "one_peak" else 1.0
    slot = duration / (n + 1)
    for i in range(n):
        centre = slot * (i + 1) + rng.uniform(-0.15, 0.15) * slot
        if shape == "late_peaks":
            centre = duration * (0.65, 0.85)[i] + rng.uniform(-0.03, 0.03) * duration
        length = float(rng.uniform(35.0, 60.0))
        begin = max(90.0, centre - length / 2)
        if begin + length + lag_s > duration - 20:
            continue
        moments.append(PlantedMoment(kinds[i % 2], round(start + begin, 3), round(start + begin + length, 3), lag_s,
                                     boost))
    decoys = []
    # One decoy in the middle of each gap after a moment (and its audience's reaction).
    ends = [m.end - start + lag_s for m in moments]
    starts = [m.start - start for m in moments[1:]] + [duration - 20.0]
    for i, (gap_a, gap_b) in enumerate(zip(ends, starts)):
        length = 20.0
        if gap_b - gap_a >= length + 24.0:
            begin = round((gap_a + gap_b - length) / 2)
            kind = ("visual_decoy", "audio_decoy")[i % 2]
            decoys.append(PlantedMoment(kind, round(start + begin, 3), round(start + begin + length, 3), 0.0))
    return RoomPlan(room_id, start, start + duration, tuple(moments), peak_arrivals_per_s,
                    paid_arrivals_per_s=peak_arrivals_per_s * 0.4, decoys=tuple(decoys))


def _multipliers(plan: RoomPlan, t: float) -> dict[str, float]:
    for m in plan.moments:
        if m.start + m.lag_s <= t < m.end + m.lag_s:
            return {k: 1.0 + (v - 1.0) * m.boost for k, v in MOMENT_KINDS[m.kind].items()}
    return {}


def simulate_room(rng: np.random.Generator, plan: RoomPlan, *, duplicate_rate: float = 0.002,
                  max_delay_s: float = 3.0) -> list[tuple[float, int, bytes]]:
    """All events of one room as ``(arrival time, sequence, JSON line)``, sorted by arrival."""
    enc = msgspec.json.Encoder()
    out: list[tuple[float, int, bytes]] = []
    seq = 0
    rid = plan.room_id

    def emit(ts: float, etype: str, **fields: object) -> None:
        nonlocal seq
        seq += 1
        ts = round(ts, 3)
        line = enc.encode({"event_id": f"{rid}-{seq:08d}", "room_id": rid, "ts": ts, "type": etype, **fields})
        arrival = ts + min(float(rng.exponential(0.3)), max_delay_s)
        out.append((arrival, seq, line))
        if rng.random() < duplicate_rate:
            out.append((arrival + float(rng.uniform(0.0, max_delay_s)), seq, line))

    online: list[str] = []
    where: dict[str, int] = {}
    leaves: list[tuple[float, str]] = []
    returning: list[str] = []
    users = 0
    skus = [f"sku-{i}" for i in range(1, 6)]
    duration = int(plan.end - plan.start)
    emit(plan.start, "room_start", user_id=f"host-{rid}")
    spend_window = 0
    spent = 0.0

    def add(user: str, ts: float, source: str) -> None:
        where[user] = len(online)
        online.append(user)
        emit(ts, "enter", user_id=user, source=source)
        median = 35.0 if source == "paid" else 90.0
        heapq.heappush(leaves, (ts + float(rng.lognormal(math.log(median), 0.9)), user))

    def remove(user: str, ts: float) -> None:
        i = where.pop(user)
        last = online.pop()
        if last != user:
            online[i] = last
            where[last] = i
        emit(ts, "leave", user_id=user)
        if rng.random() < 0.15:
            returning.append(user)

    for sec in range(duration):
        t0 = plan.start + sec
        while leaves and leaves[0][0] < t0 + 1:
            ts, user = heapq.heappop(leaves)
            if user in where:
                remove(user, max(ts, t0))
        mult = _multipliers(plan, t0)
        ramp = 1.0 - math.exp(-sec / 90.0)
        buzz = 1.0 + (0.8 if mult else 0.0)
        for _ in range(rng.poisson(plan.peak_arrivals_per_s * ramp * buzz)):
            if returning and rng.random() < 0.3:
                user = returning.pop(int(rng.integers(len(returning))))
                if user in where:
                    continue
            else:
                users += 1
                user = f"u{rid[-3:]}{users:06d}"
            add(user, t0 + float(rng.random()), "organic")
        paid = int(rng.poisson(plan.paid_arrivals_per_s * math.exp(-sec / 180.0)))
        for _ in range(paid):
            users += 1
            add(f"p{rid[-3:]}{users:06d}", t0 + float(rng.random()), "paid")
        spend_window += paid
        if sec % 5 == 4 and spend_window:
            cost = round(sum(float(rng.lognormal(math.log(0.8), 0.3)) for _ in range(spend_window)), 4)
            spent = round(spent + cost, 4)
            # An ad server keeping the contract: the report covers every decision it
            # could have applied by now (published a grace period after their tick).
            # Before the room's first decision (its first tick's snapshot, seq first_tick + 1)
            # there is nothing to cover: the report gives the amount only.
            covers = int((t0 + 0.999 - REPORT_GRACE_S) // REPORT_TICK_S) - 1
            cover = {"covers": covers, "total": spent} if covers > int(plan.start // REPORT_TICK_S) else {}
            emit(t0 + 0.999, "spend", amount=cost, user_id="ad-server", **cover)
            spend_window = 0
        if not online:
            continue
        for kind, rate in BASE_RATES.items():
            k = int(rng.poisson(len(online) * rate * mult.get(kind, 1.0)))
            for _ in range(k):
                user = online[int(rng.integers(len(online)))]
                ts = t0 + float(rng.random())
                if kind == "comment":
                    emit(ts, kind, user_id=user, text=COMMENTS[int(rng.integers(len(COMMENTS)))])
                elif kind == "like":
                    emit(ts, kind, user_id=user, count=int(rng.geometric(0.5)))
                elif kind == "gift":
                    emit(ts, kind, user_id=user, value=float(rng.choice((1.0, 5.0, 10.0))))
                elif kind == "cart_add":
                    emit(ts, kind, user_id=user, sku=skus[int(rng.integers(len(skus)))])
                elif kind == "order":
                    i = int(rng.integers(len(skus)))
                    emit(ts, kind, user_id=user, sku=skus[i], amount=PRICES[i])
                else:
                    emit(ts, kind, user_id=user)
    emit(plan.end, "room_end", user_id=f"host-{rid}")
    out.sort()
    return out


def default_campaign(room_id: str, minutes: float, plan: RoomPlan | None = None) -> Campaign:
    """A campaign sized to the synthetic room, so its budget binds; with ``plan``,
    its run of show lists the planned moments (when they go on screen)."""
    total = round(30.0 * minutes, 2)
    show = [ScheduledMoment(at=m.start, duration_s=round(m.end - m.start, 3), kind=m.kind)
            for m in (plan.moments if plan else ())]
    return Campaign(room_id=room_id, total_budget=total, currency="CNY",
                    ramp=RampSettings(window_s=min(300.0, minutes * 20.0), budget=round(0.1 * total, 2),
                                      target_paid_entries=int(6 * minutes), max_cost_per_entry=1.0),
                    mcb=McbSettings(max_cost_per_interaction=0.5, duration_s=minutes * 60.0), run_of_show=show)


def synth_session(out: str | Path, *, minutes: float = 10.0, seed: int = 0, rooms: int = 1,
                  start: float = DEFAULT_START, lag_s: float = 4.0, peak_arrivals_per_s: float = 1.5,
                  shape: str = "default", compress: bool = True) -> Path:
    """Write a session folder (events, ``session.json``, ``labels.json``); returns its path."""
    if minutes <= 0 or rooms < 1:
        raise ValueError("minutes must be > 0 and rooms >= 1")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    plans, streams = [], []
    for r in range(rooms):
        rng = np.random.default_rng([seed, r])
        room_start = start + (float(rng.uniform(0, 60)) if r else 0.0)
        plan = plan_room(rng, f"room-{r + 1:03d}", round(room_start, 3), minutes, lag_s=lag_s,
                         peak_arrivals_per_s=peak_arrivals_per_s, shape=shape)
        plans.append(plan)
        streams.append(simulate_room(rng, plan))
    events_name = "events.jsonl.gz" if compress else "events.jsonl"
    with open(folder / events_name, "wb") as disk:
        sink = gzip.GzipFile(filename="", mode="wb", fileobj=disk, mtime=0) if compress else disk
        for _, _, line in heapq.merge(*streams):
            sink.write(line)
            sink.write(b"\n")
        if compress:
            sink.close()
    first = plans[0]
    info = SessionInfo(
        room_id=first.room_id,
        title=f"synthetic session, {shape}, seed {seed}, {rooms} room(s)",
        start=first.start,
        end=max(p.end for p in plans),
        files=SessionFiles(events=events_name, labels="labels.json"),
        campaign=default_campaign(first.room_id, minutes, first),
    )
    (folder / SESSION_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    labels = {
        "seed": seed,
        "moments": [
            {"room_id": p.room_id, "kind": m.kind, "start": m.start, "end": m.end, "lag_s": m.lag_s}
            for p in plans for m in p.moments
        ],
        "decoys": [{"room_id": p.room_id, "kind": d.kind, "start": d.start, "end": d.end} for p in plans for d in p.decoys],
    }
    (folder / "labels.json").write_bytes(msgspec.json.format(msgspec.json.encode(labels), indent=2) + b"\n")
    return folder


def hot_room_session(out: str | Path, *, viewers: int = 200_000, events_per_s: float = 10_000.0,
                     interactions_per_viewer: float = 0.25, leave_share: float = 0.05, seed: int = 0,
                     room_id: str = "hot-001", start: float = DEFAULT_START) -> Path:
    """A session of one hot room: ``viewers`` distinct viewers enter (``leave_share``
    of them leave again) while the others like and comment, at ``events_per_s`` of
    event time; no room end, so the room is still full when the input stops.
    Written uncompressed, in time order; returns the folder."""
    if viewers < 1 or events_per_s <= 0:
        raise ValueError("viewers must be >= 1 and events_per_s > 0")
    rng = np.random.default_rng(seed)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    enc = msgspec.json.Encoder()
    leaves = int(viewers * leave_share)
    interactions = int(viewers * interactions_per_viewer)
    total = viewers + leaves + interactions
    kinds = np.concatenate([np.zeros(viewers, np.int8), np.ones(leaves, np.int8), np.full(interactions, 2, np.int8)])
    rng.shuffle(kinds)
    step = 1.0 / events_per_s
    entered = left = 0
    with open(folder / "events.jsonl", "wb") as f:
        f.write(enc.encode({"event_id": "start", "room_id": room_id, "ts": start, "type": "room_start"}) + b"\n")
        for i, kind in enumerate(kinds):
            ts = round(start + (i + 1) * step, 4)
            if kind == 1 and left < entered // 2:
                user, event = f"v{left}", {"type": "leave"}  # the earliest half of the audience drifts off
                left += 1
            elif kind == 2 and entered:
                user = f"v{int(rng.integers(left, entered)) if entered > left else 0}"
                event = ({"type": "like", "count": int(rng.integers(1, 5))} if rng.random() < 0.7
                         else {"type": "comment"})
            else:
                user, event = f"v{entered}", {"type": "enter", "source": "paid" if rng.random() < 0.1 else "organic"}
                entered += 1
            f.write(enc.encode({"event_id": f"h{i}", "room_id": room_id, "ts": ts, "user_id": user, **event}) + b"\n")
    info = SessionInfo(room_id=room_id, title=f"hot room, {viewers} viewers at {events_per_s:g} events/s",
                       start=start, end=round(start + (total + 1) * step, 4), files=SessionFiles(events="events.jsonl"))
    (folder / SESSION_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    return folder


def churn_session(out: str | Path, *, rooms: int = 20_000, live: int = 300, room_s: float = 120.0,
                  events_per_room: int = 12, seed: int = 0, start: float = DEFAULT_START) -> Path:
    """A platform's day in small: ``rooms`` short rooms, started one after another
    so that about ``live`` are on at once, each a ``room_start``, a few viewers
    entering, liking, commenting and leaving, and a ``room_end`` after ``room_s``.
    Written uncompressed, in time order; returns the folder."""
    if rooms < 1 or live < 1 or room_s <= 0 or events_per_room < 3:
        raise ValueError("need rooms >= 1, live >= 1, room_s > 0 and events_per_room >= 3")
    rnd = random.Random(seed)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    enc = msgspec.json.Encoder()
    gap = room_s / live
    streams = []
    for r in range(rooms):
        room = f"churn-{r:06d}"
        t0 = start + r * gap
        evs = [(t0, f"{room}-s", {"type": "room_start"})]
        users = [f"u{i}" for i in range(max(1, (events_per_room - 2) // 3))]
        for i in range(events_per_room - 2):
            ts = t0 + room_s * (i + 1) / (events_per_room - 1) + rnd.uniform(-0.5, 0.5)
            user = users[i % len(users)]
            kind = i // len(users)
            event = ({"type": "enter", "source": "organic"} if kind == 0 else
                     {"type": "leave"} if i >= events_per_room - 2 - len(users) else
                     {"type": "like", "count": rnd.randint(1, 5)} if rnd.random() < 0.7 else {"type": "comment"})
            evs.append((ts, f"{room}-{i}", {"user_id": user, **event}))
        evs.append((t0 + room_s, f"{room}-e", {"type": "room_end"}))
        streams.append([(round(ts, 4), eid, room, body) for ts, eid, body in sorted(evs, key=lambda e: e[0])])
    with open(folder / "events.jsonl", "wb") as f:
        for ts, eid, room, body in heapq.merge(*streams):
            f.write(enc.encode({"event_id": eid, "room_id": room, "ts": ts, **body}) + b"\n")
    info = SessionInfo(room_id="churn-000000", title=f"churn: {rooms} rooms of {room_s:g} s, about {live} live",
                       start=start, end=round(start + (rooms - 1) * gap + room_s + 1, 4),
                       files=SessionFiles(events="events.jsonl"))
    (folder / SESSION_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    return folder
