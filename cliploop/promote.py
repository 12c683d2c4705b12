"""Which clips to push: Thompson sampling on room entries per impression.

A clip's pull is room entries per impression. Entries often come late (a viewer
who clicks to the room between broadcasts enters the next one, up to a day
later), so the posterior is on the first sign of them, clicks to the room per
impression, and pull is that times the room's conversion from a click to an
entry (measured over all its clips, with a prior of ``entries_per_click``). The
conversion is common to a room's clips, so the ranking rests on clicks alone.
Each clip's click rate has a Beta posterior: a prior worth ``prior_impressions``
impressions at the clip's prior pull (from its highlight score, or from a
learned pull model) over the conversion, plus its outcomes, discounted by
``half_life_h`` so a clip whose pull fades loses its place. The period's budget is handed out in ``slots`` equal parts; each part
goes to the clip whose posterior draw is highest. Exploration is bounded: at
most ``explore_max`` of the parts may go to clips other than the leader (the
highest posterior mean); past that the leader takes the rest.

Deterministic and seeded: the draws of a decision come from a generator seeded
with ``(seed, room, period)`` through sha256, not from a stream of earlier
draws, so the same inputs give the same decision whichever process makes it
and whatever it decided before (embedded and on Kafka, after a restart).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .models import Allocation, ClipLoopConfig, ClipState, Promotion


def decision_rng(seed: int, room_id: str, period: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{room_id}|{period}".encode("utf-8", "surrogatepass")).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def score_prior(score: float, config: ClipLoopConfig) -> float:
    """The prior pull of a clip from its highlight score alone: proportional to
    the score, within a factor 4 of the base rate either way."""
    ratio = min(4.0, max(0.25, score / config.reference_score)) if config.reference_score > 0 else 1.0
    return config.base_rate * ratio


def conversion(entries: int, clicks: int, config: ClipLoopConfig) -> float:
    """A room's entries per click to the room, shrunk towards ``entries_per_click``."""
    w = config.conversion_weight
    return min(1.0, max(1e-6, (entries + w * config.entries_per_click) / (clicks + w)))


def posterior(clip: ClipState, config: ClipLoopConfig, conv: float) -> tuple[float, float]:
    """Beta parameters of the clip's clicks to the room per impression."""
    n0 = config.prior_impressions
    prior = min(0.5, clip.prior / conv)
    c = min(clip.disc_clicks, clip.disc_impressions)
    alpha = n0 * prior + c
    beta = n0 * (1.0 - prior) + (clip.disc_impressions - c)
    return max(alpha, 1e-9), max(beta, 1e-9)


def allocate(room_id: str, period: int, clips: list[ClipState], config: ClipLoopConfig, *,
             conv: float | None = None) -> Promotion:
    """The promotion for period ``period`` among ``clips`` (published, not too old);
    ``conv`` is the room's entries per click (default: its prior)."""
    conv = config.entries_per_click if conv is None else conv
    ts = period * config.period_s
    if not clips or config.budget <= 0:
        return Promotion(room_id=room_id, ts=ts, seq=period, budget=config.budget, allocations=[], explored=0.0,
                         reason="no clip to promote" if not clips else "no budget")
    clips = sorted(clips, key=lambda c: c.clip_id)
    params = np.array([posterior(c, config, conv) for c in clips])
    means = params[:, 0] / params.sum(axis=1) * conv  # entries per impression
    leader = int(np.argmax(means))
    rng = decision_rng(config.seed, room_id, period)
    draws = rng.beta(params[:, 0], params[:, 1], size=(config.slots, len(clips)))
    picks = np.argmax(draws, axis=1)
    cap = int(config.explore_max * config.slots)
    slots = np.zeros(len(clips), dtype=int)
    explored = 0
    for p in picks:
        if p != leader and explored < cap:
            explored += 1
            slots[p] += 1
        else:
            slots[leader] += 1
    impressions = slots * (config.budget // config.slots)
    impressions[leader] += config.budget - int(impressions.sum())  # what does not divide into slots: the leader's
    allocations = [Allocation(clip_id=clips[i].clip_id, impressions=int(impressions[i]),
                              share=round(float(impressions[i]) / config.budget, 4), mean=round(float(means[i]), 6),
                              prior=round(clips[i].prior, 6))
                   for i in np.flatnonzero(impressions)]
    return Promotion(room_id=room_id, ts=ts, seq=period, budget=config.budget, allocations=allocations,
                     explored=round(explored / config.slots, 4),
                     reason=f"Thompson sampling over {len(clips)} clip(s); leader {clips[leader].clip_id} "
                            f"at {means[leader] * 1000:.2f} entries per 1000 impressions")
