"""`lce`: learning-curve extrapolation (Domhan, Springenberg & Hutter, IJCAI 2015).

At every epoch t >= min_epochs (t < T), the candidate's accuracies y(1..t) are fitted by the
paper's eleven parametric families and combined into a predictive distribution of its final
accuracy y(T) (`curves.py`: the families, the fit and the posterior approximation that stands in
for the paper's MCMC). The rule stops the candidate when P(y(T) > y_best) < delta, y_best being
the incumbent's final accuracy (the best fully trained config so far). As in the reference
code's conservative criterion, a candidate whose best accuracy so far already exceeds y_best is
never stopped, and before any config has finished nothing is stopped (but y(T) is predicted,
for the audit).

Warm start. A run's rule (`new_run()`) keeps each config's fit of its previous epoch and starts
the next epoch's fit from it. The fit at epoch t is defined as the chain min_epochs, ..., t
(cold at min_epochs, each later epoch warm from the one before), and a cache miss recomputes that
chain, so a decision depends on the curve alone, never on which calls came before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..protocols import Decision
from ..state import ReplayState
from .base import rule_label
from .curves import CurveFit, fit_curves

__all__ = ["LCE"]


@dataclass(frozen=True)
class LCE:
    delta: float = 0.05  # stop when P(y(T) > y_best) < delta (the paper's threshold)
    min_epochs: int = 5  # first epoch judged; ours (fits need more points than parameters)

    def __post_init__(self):
        if not 0 < self.delta < 1:
            raise ValueError(f"LCE.delta must be in (0, 1), got {self.delta}")
        if int(self.min_epochs) != self.min_epochs or self.min_epochs < 3:
            raise ValueError(f"LCE.min_epochs must be an integer >= 3 (a fit needs points), "
                             f"got {self.min_epochs}")
        object.__setattr__(self, "_fits", {})  # row -> (epoch, curve copy, CurveFit)

    def new_run(self) -> LCE:
        return LCE(self.delta, self.min_epochs)  # empty memory

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        return self.decide(curve, epoch, state).stop

    def decide(self, curve: np.ndarray, epoch: int, state: ReplayState) -> Decision:
        y = np.asarray(curve[:epoch], dtype=np.float64)
        if epoch < self.min_epochs or not np.isfinite(y).all():
            return Decision(False)  # too early, or a diverged epoch (the replay ends it)
        fit = self.fit(state.candidate, y, state.T)
        if not len(fit.names):
            return Decision(False)  # no family fits under the constraints
        ref = float(state.acc[state.incumbent, -1]) if state.incumbent >= 0 else math.nan
        if math.isnan(ref):
            return Decision(False, fit.mean, fit.std)
        prob = fit.prob_above(ref)
        stop = prob < self.delta and float(np.max(y)) <= ref
        return Decision(bool(stop), fit.mean, fit.std, prob, ref)

    def fit(self, row: int, y: np.ndarray, T: int) -> CurveFit:
        """The chain's fit of curve y [t] (module docstring), from this run's memory if it
        holds the same curve one epoch shorter."""
        t = len(y)
        memo = self._fits.get(row)
        if memo is not None and memo[0] == t and np.array_equal(memo[1], y):
            return memo[2]
        if (memo is not None and memo[0] == t - 1 and t - 1 >= self.min_epochs
                and np.array_equal(memo[1], y[:-1])):
            fit = fit_curves(y, T, memo[2].thetas)
        else:  # the whole chain, cold at min_epochs
            fit = fit_curves(y[:self.min_epochs], T)
            for e in range(self.min_epochs + 1, t + 1):
                fit = fit_curves(y[:e], T, fit.thetas)
        self._fits[row] = (t, y.copy(), fit)
        return fit

    def __str__(self) -> str:
        return rule_label("lce", self, ())
