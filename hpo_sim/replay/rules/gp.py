"""`gp`: a performance-curve stopping rule in the spirit of Google Vizier (Golovin et al. 2017,
Sec. 3.2.1: "performs regression on the performance curves to make a prediction of the final
objective value of a Trial given a set of Trials that are already Completed, and a partial
performance curve ... if the probability of exceeding the optimal value found thus far is
sufficiently low, early stopping is requested"; Bayesian non-parametric regression, a Gaussian
process with "a carefully designed kernel that measures similarity between performance
curves").

Vizier's kernel is not published. Ours: scikit-learn's GaussianProcessRegressor from the
standardised curve so far y(1..t) and the config's hyperparameters (unit-cube features of the
table) to y(T), kernel C * RBF + White (one length scale, an observation-noise term), targets
normalised, kernel hyperparameters by maximum marginal likelihood (L-BFGS, no restarts), one
model per epoch t trained on the configs completed before the decision and refitted when that
set changes (`regression.CompletedRegression`). The rule stops the candidate when
P(y(T) > y_best) < delta under the GP's predictive N(mean, std^2), y_best being the
incumbent's final accuracy; delta = 0.05 and `min_configs` are ours, as for `svr`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .base import rule_label
from .regression import CompletedRegression, Standardized

__all__ = ["GPRule", "gp_features"]


def gp_features(curves: np.ndarray, hyper: np.ndarray | None) -> np.ndarray:
    """curves [n, t] (+ hyperparameters [n, d]) -> [n, t + d]."""
    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    if hyper is None:
        return curves
    return np.concatenate([curves, np.atleast_2d(np.asarray(hyper, dtype=np.float64))], axis=1)


@dataclass(frozen=True)
class GPRule(CompletedRegression):
    delta: float = 0.05  # stop when P(y(T) > y_best) < delta (ours, as lce and svr)
    min_epochs: int = 2  # first epoch judged (ours)
    min_configs: int = 10  # completed configs before the first model (ours)
    noise: float = 1e-3  # initial WhiteKernel level (fitted; bounds 1e-8..1)

    def __post_init__(self):
        if not 0 < self.delta < 1:
            raise ValueError(f"GPRule.delta must be in (0, 1), got {self.delta}")
        for name, low in (("min_epochs", 1), ("min_configs", 3)):
            v = getattr(self, name)
            if int(v) != v or v < low:
                raise ValueError(f"GPRule.{name} must be an integer >= {low}, got {v}")
        if not 0 < self.noise <= 1:
            raise ValueError(f"GPRule.noise must be in (0, 1], got {self.noise}")

    def new_run(self) -> GPRule:
        return GPRule(self.delta, self.min_epochs, self.min_configs, self.noise)

    features = staticmethod(gp_features)

    def train(self, X: np.ndarray, target: np.ndarray) -> Standardized:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.sqrt(X.shape[1]), (1e-2, 1e3))
                  + WhiteKernel(self.noise, (1e-8, 1.0)))
        # no optimizer restarts: the fit is deterministic, random_state draws nothing
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=0)
        with warnings.catch_warnings():  # a length scale at its bound is an answer, not an error
            warnings.simplefilter("ignore", ConvergenceWarning)
            return Standardized.fit(gp, X, target)

    @staticmethod
    def predict(fitted: Standardized, x: np.ndarray) -> tuple[float, float]:
        mean, std = fitted.predict(x, return_std=True)
        return float(mean[0]), max(float(std[0]), 1e-4)

    def __str__(self) -> str:
        return rule_label("gp", self, ())
