"""Built-in optimizers over a table's finite candidate set, through the `Optimizer` protocol
(`protocols.py`): random search, SMAC, Hyperband. They are made per run by the factories in
`BUILTIN` (`factory(pool, rng, **options)`), resolved by name in `resolve.py` the same way as a
researcher's own optimizer.

The candidates are table rows whose status is complete or diverged; failed configs (no curve:
out of memory, crash) are excluded, since a real run would not have produced a number for them.
`ask(pending)` returns a `Job` (row, train up to epoch `until`) or None when it has nothing to
propose right now (Hyperband waiting on a rung, or every candidate used); none of the three
looks at `pending`, the jobs on the other workers. `tell(job, accuracy, epochs)` reports the
last observed accuracy after `epochs` trained epochs: an early-terminated config is told with
its last observed accuracy (DESIGN.md), a diverged one with its last finite accuracy.

SMAC uses smac 2.4's own components, driven on numpy arrays:
- Surrogate: `smac.model.random_forest.RandomForest` with n_trees=50 (paper: 50 trees), refit
  from scratch at EVERY ask (the paper's SMAC; smac's ConfigSelector refits only every 8 asks),
  n_jobs=1 (joblib thread overhead dominates for 50 small trees; smac defaults to -1),
  ratio_features=1.0, min_samples_split=2, min_samples_leaf=1, bootstrapping=True (smac's
  HyperparameterOptimizationFacade.get_model settings), log_y=False (costs are 1 - accuracy,
  already in [0, 1]; the facade's log-scaled encoder exists for heavy-tailed run times),
  max_leaf_nodes=None (smac passes 2**20, which makes sklearn's best-first builder preallocate
  ~2M nodes per tree: measured 0.36 s per tree fit on this box vs ~1 ms; a tree on
  h < 2**20 samples never reaches that limit, so the trees follow the same rules: only the
  node expansion order, and with it which random thresholds are drawn where, changes).
  The ConfigurationSpace is the table's unit cube: one UniformFloat in [0, 1] per feature column
  (`LookupTable.features`); categoricals are the bin centres of pregen.spaces' equal-bin encoding,
  so the forest splits them as ordinals (exact for 2 choices; for more choices a split can only
  cut the bin order, a small loss of expressiveness we accept to keep one numeric matrix).
- Acquisition: `smac.acquisition.function.EI` with xi=0.0, log=False, eta = the lowest cost told
  so far; it scores EVERY not-yet-asked candidate in one batched `EI._compute(X)` call
  ([m, d] float array; no ConfigSpace Configuration objects), and the argmax is proposed (ties:
  lowest row). This replaces smac's LocalAndSortedRandomSearch, which searches the continuous
  space and would propose configs outside the table.
- Initial design and interleaved random picks: `n_init` = 10 random table rows, then each ask is
  a uniformly random remaining row with probability `random_prob` = 0.2 (the facade's
  ProbabilityRandomDesign default), drawn with the optimizer's own seeded Generator.
- Cost = 1 - accuracy (smac minimises).

Hyperband (Li et al. 2018) is our own implementation on the table (eta=3, min 1 epoch, max T):
brackets s = s_max..0 with s_max = floor(log_eta(T)); bracket s starts n = ceil((s_max+1) /
(s+1) * eta^s) random configs at r = T * eta^-s epochs and keeps the top 1/eta at each rung;
a promoted config resumes training (it pays only for the new epochs). After the last bracket
it starts over with fresh configs. Synchronous: with several workers a rung waits for all its
jobs (ask returns None meanwhile).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .protocols import Job, Optimizer, Pool

__all__ = [
    "Job",
    "Optimizer",
    "RandomSearch",
    "SMAC",
    "Hyperband",
    "BUILTIN",
    "OPTIMIZERS",
    "unit_cube_space",
]


class RandomSearch:
    """A seeded permutation of the candidates, each trained for all T epochs."""

    def __init__(self, candidates: np.ndarray, T: int, rng: np.random.Generator):
        self._order = rng.permutation(np.asarray(candidates, dtype=np.int64))
        self._next = 0
        self._T = T

    def ask(self, pending: Sequence[Job] = ()) -> Job | None:
        if self._next >= len(self._order):
            return None
        row = int(self._order[self._next])
        self._next += 1
        return Job(row, self._T)

    def tell(self, job: Job, accuracy: float, epochs: int) -> None:
        pass  # random search learns nothing


def unit_cube_space(names: list[str], seed: int = 0):
    """A ConfigSpace with one UniformFloat [0, 1] per feature column (for the forest's bounds)."""
    from ConfigSpace import ConfigurationSpace, UniformFloatHyperparameter

    cs = ConfigurationSpace(seed=seed)
    cs.add([UniformFloatHyperparameter(n, 0.0, 1.0) for n in names])
    return cs


class SMAC:
    """Random-forest SMAC with EI over the table's remaining candidates (module docstring)."""

    def __init__(
        self,
        features: np.ndarray,
        candidates: np.ndarray,
        T: int,
        rng: np.random.Generator,
        *,
        names: list[str] | None = None,
        n_trees: int = 50,
        n_init: int = 10,
        random_prob: float = 0.2,
    ):
        from smac.acquisition.function import EI
        from smac.model.random_forest import RandomForest

        if features.ndim != 2:
            raise ValueError(f"SMAC needs features of shape [n, d], got {features.shape}")
        if not 0 <= random_prob <= 1:
            raise ValueError(f"SMAC random_prob must be in [0, 1], got {random_prob}")
        if n_init < 1:
            raise ValueError(f"SMAC n_init must be >= 1, got {n_init}")
        d = features.shape[1]
        names = names or [f"x{j}" for j in range(d)]
        # float32 once here: sklearn trees predict in float32 and would copy every ask otherwise
        self._X = np.ascontiguousarray(features, dtype=np.float32)
        self._free = np.zeros(len(features), dtype=bool)
        self._free[np.asarray(candidates, dtype=np.int64)] = True
        self._rng = rng
        self._T = T
        self.n_init = n_init
        self.random_prob = random_prob
        self._model = RandomForest(
            unit_cube_space(names),
            n_trees=n_trees,
            ratio_features=1.0,
            min_samples_split=2,
            min_samples_leaf=1,
            bootstrapping=True,
            log_y=False,
            n_jobs=1,
            max_leaf_nodes=None,  # smac's 2**20 makes sklearn preallocate ~2M nodes per tree
            seed=int(rng.integers(2**31 - 1)),
        )
        self._ei = EI(xi=0.0, log=False)
        self._rows: list[int] = []
        self._costs: list[float] = []

    def _random_row(self) -> int:
        free = np.flatnonzero(self._free)
        return int(free[self._rng.integers(len(free))])

    def ask(self, pending: Sequence[Job] = ()) -> Job | None:
        if not self._free.any():
            return None
        if len(self._costs) < self.n_init or self._rng.random() < self.random_prob:
            row = self._random_row()
        else:
            row = self._best_ei_row()
        self._free[row] = False
        return Job(row, self._T)

    def _best_ei_row(self) -> int:
        X = self._X[self._rows]
        y = np.asarray(self._costs, dtype=np.float64)[:, None]
        self._model.train(X, y)
        self._ei.update(model=self._model, eta=float(y.min()))
        free = np.flatnonzero(self._free)
        scores = self._ei._compute(self._X[free])[:, 0]
        return int(free[int(np.argmax(scores))])

    def tell(self, job: Job, accuracy: float, epochs: int) -> None:
        self._rows.append(job.row)
        self._costs.append(1.0 - (accuracy if np.isfinite(accuracy) else 0.0))


class Hyperband:
    """Synchronous Hyperband over epochs with eta=3 (module docstring)."""

    def __init__(self, candidates: np.ndarray, T: int, rng: np.random.Generator, eta: int = 3):
        if eta < 2:
            raise ValueError(f"Hyperband eta must be >= 2, got {eta}")
        self._pool = rng.permutation(np.asarray(candidates, dtype=np.int64))
        self._next = 0
        self._T = T
        self.eta = eta
        self.s_max = int(math.floor(math.log(T) / math.log(eta) + 1e-9))
        self._brackets = self._plan()
        self._b = 0  # index into _brackets
        self._rung = 0
        self._queue: list[int] = []  # rows still to launch in the current rung
        self._pending: set[int] = set()
        self._scores: dict[int, float] = {}  # row -> accuracy at the current rung's epoch
        self._start_bracket()

    def _plan(self) -> list[list[tuple[int, int]]]:
        """Per bracket, its rungs as (n_configs, epochs)."""
        plan = []
        for s in range(self.s_max, -1, -1):
            n = int(math.ceil((self.s_max + 1) / (s + 1) * self.eta**s))
            r = self._T * self.eta ** (-s)
            rungs = []
            for i in range(s + 1):
                n_i = max(1, int(n * self.eta ** (-i)))
                r_i = self._T if i == s else max(1, int(round(r * self.eta**i)))
                rungs.append((n_i, r_i))
            plan.append(rungs)
        return plan

    def _start_bracket(self) -> bool:
        """Draw the bracket's first rung from the unused pool; False once the pool is empty."""
        n0 = self._brackets[self._b][0][0]
        take = self._pool[self._next : self._next + n0]
        self._next += len(take)
        self._rung = 0
        self._queue = [int(r) for r in take]
        self._scores = {}
        return bool(self._queue)

    def _advance(self) -> bool:
        """The current rung is done: promote its top 1/eta, or start the next bracket."""
        rungs = self._brackets[self._b]
        if self._rung + 1 < len(rungs):
            k = rungs[self._rung + 1][0]
            # rows stopped early by a rule have no score at this rung and are not promoted
            scored = sorted(self._scores, key=lambda r: (-self._scores[r], r))
            if scored:
                self._rung += 1
                self._queue = scored[:k]
                self._scores = {}
                return True
        self._b = (self._b + 1) % len(self._brackets)
        return self._start_bracket()

    def ask(self, pending: Sequence[Job] = ()) -> Job | None:
        while not self._queue:
            if self._pending:
                return None  # synchronous: wait for the rung's running jobs
            if not self._advance():
                return None  # every candidate used
        row = self._queue.pop(0)
        self._pending.add(row)
        return Job(row, self._brackets[self._b][self._rung][1])

    def tell(self, job: Job, accuracy: float, epochs: int) -> None:
        self._pending.discard(job.row)
        if epochs >= job.until and np.isfinite(accuracy):
            self._scores[job.row] = float(accuracy)


_POOL_ARGS = ("self", "features", "candidates", "T", "rng", "names")


@dataclass(frozen=True)
class _Builtin:
    """A built-in's factory `(pool, rng, **options)`; its signature lists the options of the
    optimizer class, so they are checked like those of any user class."""

    cls: type
    make: Callable[..., Optimizer]

    def __call__(self, pool: Pool, rng: np.random.Generator, **options) -> Optimizer:
        return self.make(pool, rng, **options)

    @property
    def __signature__(self) -> inspect.Signature:
        P = inspect.Parameter
        own = [p.replace(kind=P.KEYWORD_ONLY)
               for p in inspect.signature(self.cls).parameters.values()
               if p.name not in _POOL_ARGS]
        return inspect.Signature([P("pool", P.POSITIONAL_OR_KEYWORD),
                                  P("rng", P.POSITIONAL_OR_KEYWORD), *own])


def _random(pool: Pool, rng: np.random.Generator) -> RandomSearch:
    return RandomSearch(pool.candidates, pool.T, rng)


def _smac(pool: Pool, rng: np.random.Generator, **options) -> SMAC:
    return SMAC(pool.features, pool.candidates, pool.T, rng,
                names=list(pool.names) if pool.names else None, **options)


def _hyperband(pool: Pool, rng: np.random.Generator, **options) -> Hyperband:
    return Hyperband(pool.candidates, pool.T, rng, **options)


BUILTIN: dict[str, _Builtin] = {
    "random": _Builtin(RandomSearch, _random),
    "smac": _Builtin(SMAC, _smac),
    "hyperband": _Builtin(Hyperband, _hyperband),
}
OPTIMIZERS = tuple(BUILTIN)
