"""Interaction surges ("moments") against the room's own rolling baseline.

A detector in the PySceneDetect shape: :meth:`SurgeDetector.process_tick` sees one
closed tick at a time and may return a finished :class:`~streams.models.Moment`;
:meth:`SurgeDetector.post_process` flushes a surge still open when the input ends.

Why interactions per online viewer, with a robust z-score: a room's interaction
count grows with its audience (most of all in the first minutes), which is not a
moment; a jump in what each viewer does is. The median and MAD of the last few
minutes resist outliers, surge ticks are kept out of the baseline, and a Poisson
floor keeps quiet rooms, where the MAD is often zero, from calling every comment
a surge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from .events import INTERACTION_KINDS, N_KINDS
from .models import Moment
from .windows import tick_end, tick_start, ticks_per


@dataclass(frozen=True, slots=True)
class SurgeConfig:
    baseline_s: float = 300.0  # rolling baseline length
    warmup_s: float = 60.0  # no surge is called before this much baseline exists
    z_on: float = 3.5  # robust z-score that opens a surge
    z_off: float = 1.5  # below this the surge is over (after ``max_gap_ticks``)
    min_per_tick: int = 5  # interactions in a tick needed to open a surge
    min_ticks: int = 2  # shorter surges are noise
    max_gap_ticks: int = 1  # ticks below z_off tolerated inside one surge
    kind_ratio: float = 2.0  # a kind is named when its rate is this many times its baseline


class SurgeState(msgspec.Struct, kw_only=True):
    """Everything the detector needs to resume, so it can live in a table."""

    history: list[list[int]] = msgspec.field(default_factory=list)  # per-kind counts + online, per tick
    rates: list[float] = msgspec.field(default_factory=list)  # interactions per viewer, per tick (-1: nobody)
    active: bool = False
    start_index: int = 0
    last_index: int = 0
    gap: int = 0
    ticks: int = 0
    peak_z: float = 0.0
    peak_count: int = 0
    sums: list[int] = msgspec.field(default_factory=lambda: [0] * (N_KINDS + 1))  # per kind, then viewer-ticks
    base_means: list[float] = msgspec.field(default_factory=lambda: [0.0] * N_KINDS)  # per viewer-tick


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def robust_z(count: int, online: int, baseline: list[float]) -> float:
    """Robust z-score of a tick's interactions per online viewer against the
    baseline's per-viewer rates (median, MAD, and a Poisson floor: with ``m``
    the median rate, ``count`` has a spread of at least ``sqrt(m * online)``)."""
    if online <= 0 or not baseline:
        return 0.0
    med = _median(baseline)
    mad = _median([abs(x - med) for x in baseline])
    floor = math.sqrt(max(med * online, 1.0)) / online
    return (count / online - med) / max(1.4826 * mad, floor)


class SurgeDetector:
    def __init__(self, config: SurgeConfig, *, tick_s: float, state: SurgeState | None = None) -> None:
        self.config = config
        self.tick_s = tick_s
        self.state = state if state is not None else SurgeState()
        self._baseline_len = ticks_per(config.baseline_s, tick_s)
        self._warmup_len = ticks_per(config.warmup_s, tick_s)

    @property
    def settled_after(self) -> int:
        """Empty ticks in a row after which another one changes nothing: an open
        surge has ended (its gap ran out) and the baseline holds only empty ticks."""
        return self._baseline_len + self.config.max_gap_ticks + 1

    def process_tick(self, room_id: str, index: int, kinds: list[int], online: int) -> Moment | None:
        """Feed one closed tick: per-kind interaction counts and viewers online."""
        st = self.state
        cfg = self.config
        count = sum(kinds)
        history = st.history
        moment = None
        if len(history) >= self._warmup_len:
            z = robust_z(count, online, [r for r in st.rates if r >= 0.0])
        else:
            z = 0.0
        if st.active:
            if z >= cfg.z_off:
                self._extend(index, z, count, kinds, online)
                return None
            st.gap += 1
            if st.gap <= cfg.max_gap_ticks:
                return None
            moment = self._finish(room_id)
        elif z >= cfg.z_on and count >= cfg.min_per_tick:
            st.active = True
            st.start_index = index
            st.ticks = 0
            st.peak_z = 0.0
            st.peak_count = 0
            st.sums = [0] * (N_KINDS + 1)
            viewer_ticks = max(sum(h[N_KINDS] for h in history), 1)
            st.base_means = [sum(h[k] for h in history) / viewer_ticks for k in range(N_KINDS)]
            self._extend(index, z, count, kinds, online)
            return None
        # Only calm ticks make the baseline, so a surge never raises its own bar.
        history.append([*kinds, online])
        st.rates.append(count / online if online > 0 else -1.0)
        if len(history) > self._baseline_len:
            del history[0]
            del st.rates[0]
        return moment

    def post_process(self, room_id: str) -> Moment | None:
        """Close a surge still open at the end of the input (or a silent room)."""
        return self._finish(room_id) if self.state.active else None

    def _extend(self, index: int, z: float, count: int, kinds: list[int], online: int) -> None:
        st = self.state
        st.last_index = index
        st.gap = 0
        st.ticks += 1
        if z > st.peak_z:
            st.peak_z = z
        if count > st.peak_count:
            st.peak_count = count
        st.sums = [a + b for a, b in zip(st.sums, [*kinds, online])]

    def _finish(self, room_id: str) -> Moment | None:
        st = self.state
        cfg = self.config
        st.active = False
        if st.ticks < cfg.min_ticks:
            return None
        ratios = []
        viewer_ticks = max(st.sums[N_KINDS], 1)
        for k, name in enumerate(INTERACTION_KINDS):
            mean = st.sums[k] / viewer_ticks
            base = max(st.base_means[k], 1e-4)
            if st.sums[k] >= 3 and mean >= cfg.kind_ratio * base:
                ratios.append((-mean / base, name))
        return Moment(
            room_id=room_id,
            start=tick_start(st.start_index, self.tick_s),
            end=tick_end(st.last_index, self.tick_s),
            strength=round(st.peak_z, 3),
            peak_per_min=round(st.peak_count * 60.0 / self.tick_s, 3),
            interactions=sum(st.sums[:N_KINDS]),
            kinds=[name for _, name in sorted(ratios)],
        )
