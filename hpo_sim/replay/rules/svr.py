"""`svr`: performance prediction by regression (Baker, Gupta, Raskar & Naik 2017,
"Accelerating neural architecture search using performance prediction").

At epoch t the features of a config are its accuracies y(1..t), their first and second
differences and its hyperparameters (the unit-cube features of the table; none for a state
built without them), and the target is its final accuracy y(T). A nu-SVR (scikit-learn's
NuSVR, RBF kernel, standardised features) is trained on the configs completed before the
decision, one model per epoch t, and refitted only when the set of completed configs has
changed (memory of one run, `new_run()`). Its error is estimated by K-fold cross-validation on
the same configs (root mean squared residual, folds in completion order, each fold's
standardisation from its training part). The rule stops the
candidate when P(y(T) > y_best) < delta under N(prediction, CV error^2), y_best being the
incumbent's final accuracy (Baker et al. stop when the predicted performance, allowing for its
estimated error, is unlikely to beat the best so far).

Ours, not stated in the paper: the thresholds (delta = 0.05, as `lce`), the minimum of
`min_configs` completed configs before the first model (Baker et al. train on a set of
completed models first), NuSVR's scikit-learn defaults (nu = 0.5, C = 1) instead of their
hyperparameter search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .base import rule_label
from .regression import CompletedRegression, Standardized

__all__ = ["SVRRule", "svr_features"]


def svr_features(curves: np.ndarray, hyper: np.ndarray | None) -> np.ndarray:
    """Baker et al.'s features: curves [n, t] -> [n, 3t - 3 + d] = y(1..t), first and second
    differences, hyperparameters [n, d]."""
    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    parts = [curves, np.diff(curves, 1, axis=1), np.diff(curves, 2, axis=1)]
    if hyper is not None:
        parts.append(np.atleast_2d(np.asarray(hyper, dtype=np.float64)))
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class SVRRule(CompletedRegression):
    delta: float = 0.05  # stop when P(y(T) > y_best) < delta (ours, as lce)
    min_epochs: int = 3  # first epoch judged (second differences need 3 points)
    min_configs: int = 10  # completed configs before the first model (ours)
    nu: float = 0.5  # NuSVR's nu (scikit-learn default)
    C: float = 1.0  # NuSVR's C (scikit-learn default)
    folds: int = 5  # cross-validation folds for the error estimate

    def __post_init__(self):
        if not 0 < self.delta < 1:
            raise ValueError(f"SVRRule.delta must be in (0, 1), got {self.delta}")
        for name, low in (("min_epochs", 3), ("min_configs", 3), ("folds", 2)):
            v = getattr(self, name)
            if int(v) != v or v < low:
                raise ValueError(f"SVRRule.{name} must be an integer >= {low}, got {v}")
        if not 0 < self.nu <= 1:
            raise ValueError(f"SVRRule.nu must be in (0, 1], got {self.nu}")
        if not self.C > 0:
            raise ValueError(f"SVRRule.C must be > 0, got {self.C}")

    def new_run(self) -> SVRRule:
        return SVRRule(self.delta, self.min_epochs, self.min_configs, self.nu, self.C,
                       self.folds)

    features = staticmethod(svr_features)

    def train(self, X: np.ndarray, target: np.ndarray) -> tuple[Standardized, float]:
        """(NuSVR on all of X, its K-fold cross-validated error)."""
        from sklearn.model_selection import KFold

        pred = np.empty_like(target)
        for train, test in KFold(min(self.folds, len(X))).split(X):
            pred[test] = self._fit(X[train], target[train]).predict(X[test])
        err = max(math.sqrt(float(np.mean((pred - target) ** 2))), 1e-4)
        return self._fit(X, target), err

    @staticmethod
    def predict(fitted: tuple[Standardized, float], x: np.ndarray) -> tuple[float, float]:
        model, err = fitted
        return float(model.predict(x)[0]), err

    def _fit(self, X: np.ndarray, y: np.ndarray) -> Standardized:
        from sklearn.svm import NuSVR

        return Standardized.fit(NuSVR(nu=self.nu, C=self.C), X, y)

    def __str__(self) -> str:
        return rule_label("svr", self, ())
