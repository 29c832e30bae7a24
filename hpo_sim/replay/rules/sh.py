"""Successive halving as a stopping rule (the promotion rule of ASHA, Li et al. 2020).

Rungs are the epochs r_k = min_r * eta^k (k = 0, 1, ...) below T. When a config reaches a rung
it continues only if it is in the top 1/eta of the configs that have reached that rung so far
(itself included; completed, stopped and still running configs alike): with n of them, it must
rank among the best max(1, floor(n / eta)), ties with the last kept value continuing. The
max(1, .) keeps the first configs of a run going, as Optuna's SuccessiveHalvingPruner does
(its promotion index, floor(n / eta) - 1, is raised to 0). Nothing is judged between rungs, so
the first decision is at epoch min_r. Asynchronous, as in ASHA: a config is judged against
whoever reached the rung before it, never held back to wait for others; `sh` and `asha` name
the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..state import ReplayState
from .base import rule_label

__all__ = ["SuccessiveHalving", "rungs"]


def rungs(min_r: int, eta: int, T: int) -> list[int]:
    """The rung epochs min_r * eta^k below T (a rung at T would save nothing)."""
    out, r = [], min_r
    while r < T:
        out.append(r)
        r *= eta
    return out


@dataclass(frozen=True)
class SuccessiveHalving:
    eta: int = 3  # keep the top 1/eta at each rung (ASHA's default reduction factor)
    min_r: int = 1  # first rung, in epochs (Optuna's min_resource; ASHA's r)

    def __post_init__(self):
        if int(self.eta) != self.eta or self.eta < 2:
            raise ValueError(f"SuccessiveHalving.eta must be an integer >= 2, got {self.eta}")
        if int(self.min_r) != self.min_r or self.min_r < 1:
            raise ValueError(f"SuccessiveHalving.min_r must be an integer >= 1 (epochs), got "
                             f"{self.min_r}")

    def is_rung(self, epoch: int) -> bool:
        r = epoch / self.min_r
        if r < 1 or r != int(r):
            return False
        r = int(r)
        while r % self.eta == 0:
            r //= self.eta
        return r == 1

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        if not self.is_rung(epoch):
            return False
        reached = state.acc[state.n_observed >= epoch, epoch - 1]  # the candidate included
        reached = np.where(np.isnan(reached), -np.inf, reached)  # a diverged epoch ranks last
        keep = max(1, len(reached) // self.eta)
        threshold = np.partition(reached, len(reached) - keep)[len(reached) - keep]
        return bool(curve[epoch - 1] < threshold)

    def __str__(self) -> str:
        return rule_label("sh", self, ())
