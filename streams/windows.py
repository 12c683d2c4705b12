"""Event-time tick arithmetic, as pure functions.

Ticks are aligned to the epoch (tick ``i`` covers ``[i*tick_s, (i+1)*tick_s)``),
so every runtime, worker and replay cuts the same windows from the same ``ts``.
"""

from __future__ import annotations


def tick_index(ts: float, tick_s: float) -> int:
    """Index of the tick that contains event time ``ts``."""
    return int(ts // tick_s)


def tick_start(index: int, tick_s: float) -> float:
    return index * tick_s


def tick_end(index: int, tick_s: float) -> float:
    """Exclusive end of tick ``index``; snapshots are stamped with it."""
    return (index + 1) * tick_s


def closable_until(max_ts: float, grace_s: float, tick_s: float) -> int:
    """Ticks with an index below this value can be closed: their end plus the
    grace period lies at or before the newest event time seen."""
    return int((max_ts - grace_s) // tick_s)


def ticks_per(span_s: float, tick_s: float) -> int:
    """How many whole ticks make up ``span_s`` (at least one)."""
    return max(1, round(span_s / tick_s))
