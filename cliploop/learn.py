"""Learning what pulls: which clip features predict the room entries a clip
draws per impression, fitted from outcomes across broadcasts.

A ridge regression of each clip's smoothed log-odds of clicks to the room per
impression on its features (standardised), weighted by how much evidence the
clip has (its impressions, in thousands, at most 10); pull is that rate times
the clips' conversion from a click to an entry. Clicks, not entries, because
entries may come a broadcast later: a young clip's entries are not in yet. Small and transparent on purpose: its weights say in
plain numbers what pulls (faces, orders, short clips...), the promotion uses its
prediction as each new clip's prior, and the highlight module can rank its
candidates by it (``find_highlights(..., pull_model=)``). A feature the caller
does not know is taken at its training mean (it then moves nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from typing import Annotated

import msgspec
import numpy as np

from .models import ClipState

MIN_CLIPS = 6  # fewer clips with outcomes: no model (the score prior stays)


@dataclass(frozen=True)
class PullModel:
    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]  # per standardised feature, on the log-odds of clicks per impression
    intercept: float
    clips: int  # how many clips it was fitted on
    conversion: float = 1.0  # entries per click to the room, over the clips it was fitted on

    def predict(self, features: dict[str, float]) -> float:
        """Predicted room entries per impression."""
        z = self.intercept
        for name, m, s, w in zip(self.names, self.mean, self.scale, self.weights):
            z += w * ((features.get(name, m) - m) / s)
        return self.conversion / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def explain(self) -> list[tuple[str, float]]:
        """Features by the size of their weight, largest first."""
        return sorted(zip(self.names, self.weights), key=lambda kv: -abs(kv[1]))

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self.__dict__), indent=2) + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> "PullModel":
        """Read a ``pull-model.json``; a file that is not one (wrong types, lengths
        that differ, a scale of 0, NaN) raises ``ValueError`` saying what is wrong."""
        try:
            d = msgspec.json.decode(data, type=_PullModelFile)
        except msgspec.MsgspecError as exc:  # DecodeError and ValidationError: a verdict on the file
            raise ValueError(str(exc)) from None
        n = len(d.names)
        if not len(d.mean) == len(d.scale) == len(d.weights) == n:
            raise ValueError(f"names, mean, scale and weights differ in length ({n}, {len(d.mean)}, "
                             f"{len(d.scale)}, {len(d.weights)})")
        return cls(names=tuple(d.names), mean=tuple(d.mean), scale=tuple(d.scale), weights=tuple(d.weights),
                   intercept=d.intercept, clips=d.clips, conversion=d.conversion)


_Finite = Annotated[float, msgspec.Meta(ge=-1e12, le=1e12)]  # bounds exclude NaN and the infinities


class _PullModelFile(msgspec.Struct, forbid_unknown_fields=False):
    """The file's contract: what :meth:`PullModel.from_json` accepts."""

    names: Annotated[list[Annotated[str, msgspec.Meta(max_length=256)]], msgspec.Meta(max_length=1000)]
    mean: list[_Finite]
    scale: list[Annotated[float, msgspec.Meta(ge=1e-12, le=1e12)]]  # a divisor: never 0
    weights: list[_Finite]
    intercept: _Finite
    clips: Annotated[int, msgspec.Meta(ge=0)]
    conversion: Annotated[float, msgspec.Meta(gt=0, le=1e6)] = 1.0


def fit(clips: list[ClipState], *, ridge: float = 1.0, min_impressions: int = 500) -> PullModel | None:
    """Fit on the clips with features and at least ``min_impressions`` impressions."""
    used = [c for c in clips if c.features and c.impressions >= min_impressions]
    if len(used) < MIN_CLIPS:
        return None
    names = tuple(sorted(used[0].features))
    x = np.array([[c.features.get(n, 0.0) for n in names] for c in used])
    rate = np.array([(c.clicks + 0.5) / (c.impressions + 1.0) for c in used])
    y = np.log(rate / (1 - rate))
    w = np.sqrt(np.minimum(np.array([c.impressions for c in used]) / 1000.0, 10.0))
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    a = np.c_[np.ones(len(used)), z] * w[:, None]
    penalty = ridge * np.eye(a.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    coef = np.linalg.solve(a.T @ a + penalty, a.T @ (y * w))
    clicks = sum(c.clicks for c in used)
    return PullModel(names=names, mean=tuple(map(float, mean)), scale=tuple(map(float, scale)),
                     weights=tuple(float(c) for c in coef[1:]), intercept=float(coef[0]), clips=len(used),
                     conversion=sum(c.entries for c in used) / clicks if clicks else 1.0)
