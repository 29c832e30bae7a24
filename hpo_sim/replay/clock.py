"""Simulated time: a forward-only clock and a deterministic event heap, kept apart.

Nothing in hpo_sim.replay reads the wall clock except the optional optimizer-overhead
measurement (`simulate.py`, `charge_overhead=True`). Heap entries are (time, sequence, item):
equal times pop first-in first-out, so a replay with N workers is deterministic.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

__all__ = ["SimClock", "EventHeap"]


class SimClock:
    """Simulated seconds since the start of a replay; only moves forward."""

    def __init__(self, start: float = 0.0):
        self._now = float(start)

    @property
    def now(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        dt = t - self._now
        assert dt >= 0, f"simulated clock would move backwards by {-dt} s"
        self._now = float(t)

    def advance_by(self, dt: float) -> None:
        assert dt >= 0, f"simulated clock step must be >= 0, got {dt}"
        self._now += float(dt)


class EventHeap:
    """Min-heap of (time, sequence, item); ties on time break by insertion order."""

    def __init__(self):
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()

    def push(self, time: float, item: Any) -> None:
        heapq.heappush(self._heap, (float(time), next(self._seq), item))

    def pop(self) -> tuple[float, Any]:
        time, _, item = heapq.heappop(self._heap)
        return time, item

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)
