"""Choi et al.'s early-termination rules ETR-1 and ETR-2 (definitions in `rules/__init__.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..state import ReplayState
from .base import rule_label

__all__ = ["ETR1", "ETR2", "etr2_tau"]


@dataclass(frozen=True)
class ETR1:
    tau: int = 3  # epoch of the single check; the paper's Fig. 4 grid spans 1..9
    r: float | None = None  # random-guess accuracy; None = 1 / num_classes of the table
    eps: float = 0.05  # slack for training noise (paper: fixed to 0.05)

    def __post_init__(self):
        if int(self.tau) != self.tau or self.tau < 1:
            raise ValueError(f"ETR1.tau must be a positive integer epoch, got {self.tau}")
        if self.r is not None and not 0 <= self.r <= 1:
            raise ValueError(f"ETR1.r must be in [0, 1], got {self.r}")
        if not 0 <= self.eps <= 1:
            raise ValueError(f"ETR1.eps must be in [0, 1], got {self.eps}")

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        if epoch != self.tau:
            return False
        if self.r is None and not state.num_classes:
            raise ValueError("ETR1: the table does not say its number of classes; give r, "
                             "e.g. etr1:tau=3,r=0.1")
        r = 1.0 / state.num_classes if self.r is None else self.r
        return bool(curve[epoch - 1] < r + self.eps)

    def __str__(self) -> str:  # parse_rule(str(rule)) == rule; defaults left out
        return rule_label("etr1", self, ("tau",))


def etr2_tau(incumbent_curve: np.ndarray, q: float) -> int:
    """ETR-2's check epoch (1-based) for an incumbent curve of shape [T]."""
    ok = np.flatnonzero(incumbent_curve <= q * incumbent_curve[-1])
    return int(ok[-1]) + 1 if ok.size else 1


@dataclass(frozen=True)
class ETR2:
    p: float = 0.9  # allowed ratio to the incumbent's accuracy at tau
    q: float = 0.75  # tau = last epoch where the incumbent is <= q * its final accuracy (paper)

    def __post_init__(self):
        if not 0 < self.p <= 1:
            raise ValueError(f"ETR2.p must be in (0, 1], got {self.p}")
        if not 0 < self.q <= 1:
            raise ValueError(f"ETR2.q must be in (0, 1], got {self.q}")

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        if state.incumbent < 0:
            return False  # nothing finished yet: no reference curve
        ref = state.acc[state.incumbent]
        tau = etr2_tau(ref, self.q)
        if epoch != tau:
            return False
        return bool(curve[tau - 1] < self.p * ref[tau - 1])

    def __str__(self) -> str:
        return rule_label("etr2", self, ("p",))
