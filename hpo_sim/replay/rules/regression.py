"""What the regression rules (`svr`, `gp`) share: a model per epoch t from the completed
configs' curves y(1..t) (and hyperparameters) to their final accuracy y(T), refitted only when
the set of completed configs changes, and the stop test P(y(T) > y_best) < delta under
N(prediction, std^2), y_best being the incumbent's final accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from ..protocols import Decision
from ..state import ReplayState

__all__ = ["CompletedRegression", "Standardized"]


@dataclass(frozen=True)
class Standardized:
    """A regressor fitted on standardised features (StandardScaler's arithmetic, in numpy: the
    scikit-learn pipeline costs more than the fits on these small sets)."""

    mean: np.ndarray
    scale: np.ndarray
    model: Any

    @classmethod
    def fit(cls, model: Any, X: np.ndarray, y: np.ndarray) -> Standardized:
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0  # a constant feature (StandardScaler's convention)
        return cls(mean, scale, model.fit((X - mean) / scale, y))

    def predict(self, X: np.ndarray, **kw) -> Any:
        return self.model.predict((X - self.mean) / self.scale, **kw)


class CompletedRegression:
    """Mixin of a frozen rule dataclass with fields `delta`, `min_epochs`, `min_configs`.

    A subclass defines `features(curves, hyper)`, `train(X, y) -> fitted` and
    `predict(fitted, x) -> (mean, std)`; `new_run()` must give a rule with an empty memo."""

    def _memo(self) -> dict:
        memo = self.__dict__.get("_models")
        if memo is None:
            memo = {}  # epoch -> (completed rows, fitted); one run's memory
            object.__setattr__(self, "_models", memo)
        return memo

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        return self.decide(curve, epoch, state).stop

    def decide(self, curve: np.ndarray, epoch: int, state: ReplayState) -> Decision:
        y = np.asarray(curve[:epoch], dtype=np.float64)
        if (epoch < self.min_epochs or len(state.completed) < self.min_configs
                or not np.isfinite(y).all()):
            return Decision(False)
        hyper = None if state.features is None else state.features[[state.candidate]]
        pred, std = self.predict(self.model(epoch, state), self.features(y, hyper))
        ref = float(state.acc[state.incumbent, -1])
        prob = float(ndtr((pred - ref) / std))
        return Decision(prob < self.delta, pred, std, prob, ref)

    def model(self, epoch: int, state: ReplayState) -> Any:
        """The fitted model of epoch `epoch`, trained on state.completed."""
        done = state.completed
        memo = self._memo()
        hit = memo.get(epoch)
        if hit is not None and np.array_equal(hit[0], done):  # the same completed configs
            return hit[1]
        hyper = None if state.features is None else state.features[done]
        fitted = self.train(self.features(state.acc[done, :epoch], hyper), state.acc[done, -1])
        memo[epoch] = (done.copy(), fitted)
        return fitted
