"""A post-broadcast audience, seeded: what clips draw after the broadcast, to
measure promotion and learning against an oracle.

The world: one room broadcasts every evening for ``days`` days; each broadcast
yields ``candidates`` clips with highlight-style features, of which
``published`` are published when it ends (ranked by the highlight score, or by a
learned pull model). Each clip has a hidden appeal, the room entries it draws per
impression: a logistic function of its features (faces, orders and carts in it,
shorter, earlier in the broadcast pull more; the score itself only a little)
plus noise, fading over days at a rate of its own. Every quarter hour each
clip gets organic impressions and the promoted impressions the loop's newest
decision gave it; views, completes, likes, shares, clicks, room entries and
orders follow from the appeal. The room is live one evening hour a day: a click
to it outside that hour becomes an entry in the next broadcast (up to a day
later), as with a real room's followers. The events go through the real
:class:`~cliploop.core.ClipLoopCore`, whose promotions steer the next quarter
hours (a decision for a period arrives ``grace_s`` after it begins, as on Kafka).

Traffic is measured as *expected* entries (promoted impressions times the true
appeal at that moment), the same for every policy, so the comparison is not
blurred by the draws. The oracle knows the appeal: it puts the whole budget on
the best clip of the moment. Baselines: the budget split evenly over live clips
(uniform), or all of it on the highest highlight score (score-greedy).

``python -m cliploop.simulate --seeds 20`` prints the table in the README.
"""

from __future__ import annotations

import argparse
import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from .core import KIND_FEATURES, ClipLoopCore, features_of
from .events import (ClipClick, ClipComplete, ClipEntry, ClipImpression, ClipLike, ClipOrder, ClipPlay, ClipPublish,
                     ClipShare)
from .learn import PullModel, fit
from .models import ClipLoopConfig
from .promote import score_prior

START = 1_780_000_000.0 - (1_780_000_000.0 % 86_400.0)  # a midnight, UTC
STEP_S = 900.0  # the audience is simulated a quarter hour at a time
# What the hidden appeal depends on (on the log-odds scale), and how much.
TRUE_WEIGHTS = {"face_share": 1.1, "kind_order": 0.8, "kind_cart_add": 0.45, "kind_share": 0.35, "length_min": -0.9,
                "position": -0.5, "interactions": 0.08, "score": 0.05}
BASE_LOGIT = -4.9  # about 0.7% of impressions draw an entry, for an average clip


@dataclass
class World:
    days: int = 7
    candidates: int = 10
    published: int = 3
    broadcast_hour: int = 20  # clips are published at the end of the evening broadcast
    organic_per_h: float = 120.0  # organic impressions per clip per hour, when new
    noise: float = 0.35  # spread of appeal the features do not explain
    warmup_h: float = 24.0
    start: float = START  # midnight (UTC) of the first broadcast's day
    # True: the room is live only during its evening hour, and a click to it outside
    # that hour enters the next broadcast. False: a click is an entry at once.
    entries_at_next_broadcast: bool = True


@dataclass
class SimClip:
    clip_id: str
    publish: ClipPublish
    appeal0: float
    tau_days: float

    def appeal(self, t: float) -> float:
        return self.appeal0 * math.exp(-(t - self.publish.ts) / 86_400.0 / self.tau_days)


@dataclass
class Outcome:
    traffic: dict[str, float] = field(default_factory=dict)  # policy -> expected entries after warm-up
    published_appeal: list[float] = field(default_factory=list)  # appeal0 of clips published after day 0
    events: int = 0
    model: PullModel | None = None


def candidates(rng: np.random.Generator, room: str, day: int, world: World) -> list[tuple[ClipPublish, float, float]]:
    """A broadcast's candidate clips: (publish event, appeal0, tau_days)."""
    out = []
    ts = world.start + day * 86_400.0 + (world.broadcast_hour + 1) * 3600.0
    for k in range(world.candidates):
        video, audio, inter = (2.0 + 2.0 * abs(rng.normal()) for _ in range(3))
        score = round(0.35 * video + 0.25 * audio + 0.4 * inter + rng.normal(0, 0.3), 3)
        kinds = [kd for kd in KIND_FEATURES if rng.random() < (0.25 if kd in ("order", "cart_add") else 0.4)]
        p = ClipPublish(event_id=f"{room}-d{day}-c{k}-pub", room_id=room, clip_id=f"{room}-d{day}-c{k}", ts=ts,
                        score=score, length_s=round(float(rng.uniform(15, 60)), 1),
                        position=round(float(rng.uniform(0, 1)), 3),
                        signals={"video": round(video, 3), "audio": round(audio, 3), "interactions": round(inter, 3)},
                        kinds=kinds, face_share=round(float(rng.uniform(0, 1)) if rng.random() < 0.6 else 0.0, 3))
        f = features_of(p)
        z = BASE_LOGIT + sum(w * (f[n] - CENTRES.get(n, 0.0)) for n, w in TRUE_WEIGHTS.items())
        z += rng.normal(0, world.noise)
        out.append((p, 1 / (1 + math.exp(-z)), float(rng.uniform(1.5, 6.0))))
    return out


CENTRES = {"face_share": 0.3, "kind_order": 0.25, "kind_cart_add": 0.25, "kind_share": 0.4, "length_min": 0.625,
           "position": 0.5, "interactions": 3.6, "score": 3.6}


def run(seed: int, *, config: ClipLoopConfig = ClipLoopConfig(), world: World = World(), learn: bool = False,
        room: str = "room-001", record: list | None = None) -> Outcome:
    """One seeded week of the loop. ``learn``: refit the pull model after each
    day, publish the next broadcast's clips by it and use it as the prior.
    ``record`` collects every event (the session file of a replay)."""
    rng = np.random.default_rng([seed, 1])  # the world: clips and appeals (the same with and without learning)
    draws = np.random.default_rng([seed, 2])  # the audience's draws
    pool = [candidates(rng, room, d, world) for d in range(world.days)]
    model: PullModel | None = None
    core = ClipLoopCore(config, prior=lambda p: model.predict(features_of(p)) if model is not None
                        else score_prior(p.score, config))
    live: list[SimClip] = []
    current: dict[str, int] = {}  # clip -> promoted impressions this period (the newest decision)
    outcome = Outcome(traffic={"loop": 0.0, "oracle": 0.0, "uniform": 0.0, "score-greedy": 0.0})
    n = 0
    serial = 0
    first_publish = world.start + (world.broadcast_hour + 1) * 3600.0

    def emit(ev) -> None:
        nonlocal n
        n += 1
        core.feed_event(ev)
        if record is not None:
            record.append(ev)

    pending: list = []  # (ts, serial, events): entries waiting for the room's next broadcast

    def live_at(ts: float) -> float:
        """``ts`` if the room is live then, else a moment in its next broadcast."""
        into = (ts - world.start) % 86_400.0
        if not world.entries_at_next_broadcast or world.broadcast_hour * 3600.0 <= into < (world.broadcast_hour + 1) * 3600.0:
            return ts
        day0 = ts - into + (86_400.0 if into >= world.broadcast_hour * 3600.0 else 0.0)
        return round(day0 + world.broadcast_hour * 3600.0 + float(draws.uniform(0, 3600.0)), 3)

    steps = int(world.days * 86_400.0 / STEP_S) + int(2 * 86_400.0 / STEP_S)
    for s in range(steps):
        t = world.start + s * STEP_S
        day = int((t - world.start) // 86_400.0)
        while pending and pending[0][0] < t + STEP_S:
            for ev in heapq.heappop(pending)[2]:
                emit(ev)
        if day < world.days and abs(t - pool[day][0][0].ts) < 1e-6:  # the evening broadcast ended: publish
            cands = pool[day]
            if learn and day > 0:
                model = fit(list(core.rooms[room].clips.values())) if room in core.rooms else None
                outcome.model = model
            rank = (lambda c: model.predict(features_of(c[0]))) if (learn and model is not None) else \
                (lambda c: c[0].score)
            for p, a0, tau in sorted(cands, key=rank, reverse=True)[:world.published]:
                live.append(SimClip(p.clip_id, p, a0, tau))
                if day > 0:
                    outcome.published_appeal.append(a0)
                emit(p)
        for ev in core.drain()[1]:
            current = {a.clip_id: a.impressions for a in ev.allocations}
        alive = [c for c in live if c.publish.ts <= t and t - c.publish.ts <= config.max_age_days * 86_400.0]
        if not alive:
            continue
        share = STEP_S / config.period_s
        appeal = {c.clip_id: c.appeal(t + STEP_S / 2) for c in alive}
        if t >= first_publish + world.warmup_h * 3600.0 and day < world.days:
            budget = config.budget * share
            outcome.traffic["oracle"] += budget * max(appeal.values())
            outcome.traffic["uniform"] += budget * sum(appeal.values()) / len(alive)
            outcome.traffic["score-greedy"] += budget * appeal[max(alive, key=lambda c: c.publish.score).clip_id]
            outcome.traffic["loop"] += sum(current.get(c.clip_id, 0) * share * appeal[c.clip_id] for c in alive)
        for c in alive:
            fade = appeal[c.clip_id] / c.appeal0
            for promoted, shown in ((False, draws.poisson(world.organic_per_h * share * fade)),
                                    (True, int(round(current.get(c.clip_id, 0) * share)))):
                if shown <= 0:
                    continue
                serial += 1
                base = dict(room_id=room, clip_id=c.clip_id)
                at = t + float(draws.uniform(0, STEP_S))
                emit(ClipImpression(event_id=f"i{serial}", ts=round(at, 3), count=int(shown), promoted=promoted,
                                    **base))
                p = appeal[c.clip_id]
                plays = draws.binomial(shown, 0.03)
                clicks = draws.binomial(shown, min(1.0, 2.5 * p))
                entries = draws.binomial(clicks, 0.4)
                product = draws.binomial(shown, 0.002)
                for kind, count in (("play", plays), ("click", clicks), ("entry", entries), ("product", product)):
                    for _ in range(int(count)):
                        serial += 1
                        user = f"u{int(draws.integers(1 << 30))}"
                        at = round(t + float(draws.uniform(0, STEP_S)), 3)
                        eid = f"e{serial}"
                        if kind == "play":
                            emit(ClipPlay(event_id=eid, ts=at, user_id=user, **base))
                            if draws.random() < 0.45:
                                emit(ClipComplete(event_id=eid + "c", ts=at, user_id=user,
                                                  watch_ratio=round(float(draws.uniform(0.5, 1.0)), 3), **base))
                            if draws.random() < 0.1:
                                emit(ClipLike(event_id=eid + "l", ts=at, user_id=user, **base))
                            if draws.random() < 0.02:
                                emit(ClipShare(event_id=eid + "s", ts=at, user_id=user, **base))
                        elif kind == "click":
                            emit(ClipClick(event_id=eid, ts=at, user_id=user, target="room", **base))
                        elif kind == "entry":
                            when = live_at(at)
                            drawn = [ClipEntry(event_id=eid, ts=when, user_id=user, **base)]
                            if draws.random() < 0.05:
                                drawn.append(ClipOrder(event_id=eid + "o", ts=when, user_id=user,
                                                       amount=round(float(draws.lognormal(4, 0.5)), 2), **base))
                            if when == at:
                                for ev in drawn:
                                    emit(ev)
                            else:
                                heapq.heappush(pending, (when, serial, drawn))
                        else:
                            emit(ClipClick(event_id=eid, ts=at, user_id=user, target="product", **base))
                            if draws.random() < 0.05:
                                emit(ClipOrder(event_id=eid + "o", ts=at, user_id=user,
                                               amount=round(float(draws.lognormal(4, 0.5)), 2), **base))
    core.flush()
    outcome.events = n
    return outcome


def write_clip_events(folder, *, seed: int, days: int, room: str, start: float) -> str:
    """A week (``days``) of the simulated audience's clip events for ``room``, as
    the session file ``clip-events.jsonl.gz``; returns its name."""
    import gzip

    import msgspec

    events: list = []
    run(seed, world=World(days=days, start=start - start % 86_400.0), room=room, record=events)
    name = "clip-events.jsonl.gz"
    encode = msgspec.json.Encoder().encode
    with open(f"{folder}/{name}", "wb") as disk, gzip.GzipFile(filename="", mode="wb", fileobj=disk, mtime=0) as f:
        f.write(b"\n".join(encode(e) for e in events) + b"\n")
    return name


def add_clip_events(folder, *, seed: int, days: int) -> None:
    """Give a session folder ``days`` of its room's clip events (named in ``session.json``)."""
    from pathlib import Path

    import msgspec

    from sessions.folder import SESSION_FILE, open_session

    info = open_session(Path(folder)).info
    name = write_clip_events(folder, seed=seed, days=days, room=info.room_id, start=info.start)
    info = msgspec.structs.replace(info, files=msgspec.structs.replace(info.files, clip_events=name))
    (Path(folder) / SESSION_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")


def evaluate(seeds: range, *, config: ClipLoopConfig = ClipLoopConfig(), world: World = World()) -> dict:
    """Share of the oracle's traffic after the warm-up for each policy (mean over
    seeds), and the lift in the pull of published clips from learning."""
    shares: dict[str, list[float]] = {"loop": [], "uniform": [], "score-greedy": [], "loop + learned": []}
    lift = []
    for seed in seeds:
        plain = run(seed, config=config, world=world)
        learned = run(seed, config=config, world=world, learn=True)
        oracle = plain.traffic["oracle"]
        for name in ("loop", "uniform", "score-greedy"):
            shares[name].append(plain.traffic[name] / oracle)
        shares["loop + learned"].append(learned.traffic["loop"] / learned.traffic["oracle"])
        lift.append(np.mean(learned.published_appeal) / np.mean(plain.published_appeal))
    return {"seeds": len(seeds), "share_of_oracle": {k: float(np.mean(v)) for k, v in shares.items()},
            "worst_seed": {k: float(np.min(v)) for k, v in shares.items()},
            "beats_uniform": sum(a > b for a, b in zip(shares["loop"], shares["uniform"])),
            "beats_greedy": sum(a > b for a, b in zip(shares["loop"], shares["score-greedy"])),
            "pull_lift": float(np.mean(lift) - 1.0), "pull_lift_min": float(np.min(lift) - 1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    r = evaluate(range(args.first_seed, args.first_seed + args.seeds))
    print(f"{r['seeds']} seeds, traffic after the warm-up as a share of the oracle's (mean; worst seed):")
    print("| policy | share of oracle | worst seed |\n| --- | --- | --- |")
    for k, v in r["share_of_oracle"].items():
        print(f"| {k} | {v:.3f} | {r['worst_seed'][k]:.3f} |")
    print(f"loop beats uniform in {r['beats_uniform']}/{r['seeds']} seeds, score-greedy in "
          f"{r['beats_greedy']}/{r['seeds']}")
    print(f"pull of the clips published after day 0, learned ranking over score ranking: {r['pull_lift']:+.1%} "
          f"(worst seed {r['pull_lift_min']:+.1%})")


if __name__ == "__main__":
    main()
