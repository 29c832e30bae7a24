"""The median stopping rule in three variants (definitions in `rules/__init__.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..state import ReplayState
from .base import rule_label

__all__ = ["MedianRule"]

_MEDIAN_VARIANTS = ("vizier", "optuna", "synetune")


@dataclass(frozen=True)
class MedianRule:
    variant: str = "vizier"  # vizier | optuna | synetune (rules/__init__.py)
    grace: int = 0  # epochs t <= grace are never judged (Vizier: none; Optuna n_warmup_steps=0)
    min_trials: int = 3  # reference trials needed before judging (Syne Tune min_samples=3)

    def __post_init__(self):
        if self.variant not in _MEDIAN_VARIANTS:
            raise ValueError(
                f"MedianRule.variant must be one of {_MEDIAN_VARIANTS}, got {self.variant!r}"
            )
        if int(self.grace) != self.grace or self.grace < 0:
            raise ValueError(f"MedianRule.grace must be an integer >= 0, got {self.grace}")
        if int(self.min_trials) != self.min_trials or self.min_trials < 1:
            raise ValueError(
                f"MedianRule.min_trials must be an integer >= 1, got {self.min_trials}"
            )

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        if epoch <= self.grace:
            return False
        t = epoch - 1
        if self.variant == "synetune":
            others = np.flatnonzero(state.n_observed >= epoch)
            others = others[others != state.candidate]  # the candidate has reached t too
            if others.size < self.min_trials:
                return False
            return bool(curve[t] < np.median(state.acc[others, t]))
        if len(state.completed) < self.min_trials:
            return False
        src = state.running_mean if self.variant == "vizier" else state.acc
        ref = np.median(src[state.completed, t])
        return bool(np.max(curve[:epoch]) < ref)

    def __str__(self) -> str:
        return rule_label("median", self, ())
