"""What a stopping rule sees: the replay at one simulated moment, and nothing later.

The replay loop (`simulate.py`) builds its state with `ReplayState.empty(...)`: every array
starts as NaN / 0 and is filled epoch by epoch as the simulated clock reaches each observation,
so a rule cannot read an epoch that has not been trained yet, by accident or otherwise (the
table's full curves never enter the state). The arrays rules get are read-only views, and the
candidate's `curve` is a read-only slice of the observed accuracies; the loop writes through
`observe` and `complete`, the only writers.

`ReplayState(acc, num_classes)` takes arrays you give as what has been observed (for tests and
notebooks); it leaves them writable, since you own them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ReplayState"]


def _frozen(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


class ReplayState:
    """The replay at one simulated moment, as stopping rules see it (n rows, T epochs):

    acc [n, T]: validation accuracy of every epoch observed so far, NaN elsewhere. The epoch
        being judged is observed: acc[candidate, :epoch] is the rule's `curve`.
    running_mean [n, T]: mean of a row's accuracies over epochs 1..t, where t is observed.
    n_observed [n]: epochs observed per row (n_observed[candidate] == epoch). A rule that
        ranks the candidate against other configs leaves out `candidate` itself.
    completed [k]: rows fully trained (T epochs), in completion order.
    incumbent: the completed row with the best final accuracy (-1 before any finished).
    running [r]: rows training on the other simulated workers at this moment.
    candidate: the row whose epoch was observed last: the one being judged (-1 before any).
    features [n, d]: unit-cube hyperparameters of the rows (None if not given).
    num_classes (0 if unknown), T.
    """

    def __init__(self, acc: np.ndarray, num_classes: int, *,
                 features: np.ndarray | None = None, _running_mean: np.ndarray | None = None):
        acc = np.asarray(acc, dtype=np.float64)
        if acc.ndim != 2:
            raise ValueError(f"ReplayState.acc must be [n, T], got shape {acc.shape}")
        n, T = acc.shape
        self._acc = acc
        self._running_mean = (np.cumsum(acc, axis=1) / np.arange(1, T + 1)
                              if _running_mean is None else _running_mean)
        self._sum = [0.0] * n  # running sums along epochs, for observe(); floats are float64
        self._n_observed = np.zeros(n, dtype=np.int64)
        self._completed = np.zeros(n, dtype=np.int64)
        self._k = 0
        self._done = _frozen(self._completed[:0])
        self._incumbent = -1
        self._candidate = -1
        self._workers: Sequence[int] = ()  # row per simulated worker, -1 when idle
        self.num_classes = int(num_classes or 0)
        self.features = None if features is None else _frozen(np.asarray(features))
        # by hand: your arrays, as given; empty(): read-only views (set there)
        self.acc, self.running_mean, self.n_observed = acc, self._running_mean, self._n_observed

    @classmethod
    def empty(cls, n: int, T: int, num_classes: int, *,
              features: np.ndarray | None = None) -> ReplayState:
        """The state of a replay before anything was trained: nothing observed."""
        s = cls(np.full((n, T), np.nan), num_classes, features=features,
                _running_mean=np.full((n, T), np.nan))
        s.acc, s.running_mean = _frozen(s._acc), _frozen(s._running_mean)
        s.n_observed = _frozen(s._n_observed)
        return s

    @property
    def T(self) -> int:
        return self._acc.shape[1]

    @property
    def completed(self) -> np.ndarray:
        return self._done

    @property
    def incumbent(self) -> int:
        return self._incumbent

    @property
    def candidate(self) -> int:
        return self._candidate

    @property
    def running(self) -> np.ndarray:
        rows = [r for r in self._workers if r >= 0 and r != self._candidate]
        return np.asarray(rows, dtype=np.int64)

    # ----- written by the replay loop only --------------------------------------------------
    def observe(self, row: int, epoch: int, accuracy: float,
                workers: Sequence[int] = ()) -> None:
        """Epoch `epoch` of `row` has been trained and validated (a row's epochs arrive in
        order); `row` is the candidate until the next observation. `workers`: the row each
        simulated worker trains (-1 when idle), for `running`."""
        s = self._sum[row] + accuracy  # sequential sum: equals np.cumsum bit for bit
        self._sum[row] = s
        self._acc[row, epoch - 1] = accuracy
        self._running_mean[row, epoch - 1] = s / epoch
        self._n_observed[row] = epoch
        self._candidate = row
        self._workers = workers

    def complete(self, row: int) -> None:
        """Record `row` as fully trained; the incumbent changes only on a strictly better final."""
        self._completed[self._k] = row
        self._k += 1
        self._done = _frozen(self._completed[:self._k])
        if self._incumbent < 0 or self._acc[row, -1] > self._acc[self._incumbent, -1]:
            self._incumbent = row
