"""Optuna samplers and pruners on lcsim's simulated clock, traces, summary and audit.

    lcsim replay --optimizer optuna:tpe --rule optuna:median:n_startup_trials=5
    ReplayConfig(optimizer="optuna:cmaes", rules=("optuna:sha:min_resource=2",))
    ReplayConfig(optimizer=optuna.samplers.TPESampler,
                 optimizer_options={"multivariate": True},
                 rules=(optuna.pruners.HyperbandPruner(min_resource=1),))

Any sampler (`optuna:NAME` with NAME in `SAMPLERS` or a class name of `optuna.samplers`, or
the class itself) becomes an `Optimizer`; any pruner (`optuna:NAME`, `PRUNERS`, a class of
`optuna.pruners`, or a pruner object) becomes a `StoppingRule`. They mix freely with lcsim's
own methods (SMAC with Optuna's median pruner, TPE with ETR-2). Optuna is an optional extra:
`pip install "lcsim[optuna]"`. The bridge sets Optuna's log level to WARNING (it would log
every trial).

Sampler (one in-memory study per run, direction maximize, sampler seeded from the run's seed).
`ask` = `study.ask()`; the trial's per-epoch validation accuracies are reported as
intermediate values (step = epoch) as the clock reaches them; a trial trained for all T epochs
is told COMPLETE with its final accuracy, one that a rule stopped or that diverged is told
PRUNED (its intermediate values say how far it got, which TPE uses). Jobs running on other
simulated workers are RUNNING trials of the study, so samplers that account for pending trials
(TPE with constant_liar=True) see them.

Mapping a suggestion to the table's finite pool: the sampler suggests in the table's search
space (int, log-float, float and categorical distributions of Table I; the unit cube [0, 1]^d
for an imported table of unknown space); the suggestion is encoded in the unit cube the way
the table's features are (`Space.to_unit`: floats linearly, the learning rate on a log scale,
integers and categoricals by bin centres) and the nearest not-yet-tried candidate (Euclidean;
ties to the lower row) is trained. Every config is tried at most once per run, as with lcsim's
SMAC. The trace records the distance (`snap_distance`) and whether the suggestion was not
itself a table config (`off_table`): with continuous hyperparameters that is nearly every
suggestion. The study keeps the sampler's suggested values, so its model learns the trained
neighbour's result at the suggested point. A consequence to keep in mind: a uniform sampler
mapped this way picks configs in proportion to their nearest-neighbour cells, not uniformly
(the cross-check against lcsim's random search in tests/test_optuna_bridge.py measures it).

Pruner (a shadow study per run, kept from `ReplayState`). At each epoch event the rule brings
its study up to date with the state (configs completed since the last decision are told
COMPLETE with their whole curve; configs that ended early become PRUNED), reports the
candidate's new epochs and returns `trial.should_prune()`. The study sees only what the state
holds at that simulated moment, so a pruner cannot peek; the pruner's own bookkeeping (rung
results of successive halving) lives in that study as in Optuna. Trials are numbered in the
order configs are first judged; the study name is fixed, so HyperbandPruner's brackets are
reproducible. Steps are epochs (1..T): Optuna's n_warmup_steps=w judges epochs >= w, i.e.
lcsim's grace = w - 1.
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .protocols import Job, Pool
from .resolve import OptimizerSpec, SpecError, _bind

__all__ = [
    "SAMPLERS",
    "PRUNERS",
    "OptunaOptimizer",
    "OptunaPruner",
    "optuna_sampler",
    "optuna_pruner",
    "is_optuna_sampler",
    "is_optuna_pruner",
]

SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler",
            "gp": "GPSampler", "qmc": "QMCSampler", "nsga2": "NSGAIISampler"}
PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner",
           "sha": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner",
           "threshold": "ThresholdPruner", "patient": "PatientPruner",
           "wilcoxon": "WilcoxonPruner", "nop": "NopPruner"}


def _optuna(spec: str = "optuna"):
    try:
        import optuna
    except ImportError:
        raise SpecError(f"{spec!r} needs Optuna, an optional extra: pip install "
                        "'lcsim[optuna]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _is(obj: Any, base_path: tuple[str, str]) -> bool:
    mod = sys.modules.get("optuna")  # never imports optuna: an optuna object means it is loaded
    if mod is None:
        return False
    base = getattr(getattr(mod, base_path[0]), base_path[1])
    return isinstance(obj, base) or (inspect.isclass(obj) and issubclass(obj, base))


def is_optuna_sampler(obj: Any) -> bool:
    return _is(obj, ("samplers", "BaseSampler"))


def is_optuna_pruner(obj: Any) -> bool:
    return _is(obj, ("pruners", "BasePruner"))


def _lookup(name: str, short: dict[str, str], module: str, spec: str):
    optuna = _optuna(spec)
    cls_name = short.get(name.lower(), name)
    cls = getattr(getattr(optuna, module), cls_name, None)
    if not inspect.isclass(cls):
        raise SpecError(f"{spec!r}: optuna.{module} has no {name!r}; use one of "
                        f"{sorted(short)} or a class name of optuna.{module}")
    return cls


# ----- samplers -------------------------------------------------------------------------------
def optuna_sampler(sampler: Any, options: dict[str, Any], spec: str) -> OptimizerSpec:
    """The optimizer factory of an Optuna sampler: a short name, a class name, or the class;
    `spec` (what the user wrote, or the object's label) names it."""
    if isinstance(sampler, str):
        sampler = _lookup(sampler, SAMPLERS, "samplers", spec)
    elif not inspect.isclass(sampler):
        raise SpecError(f"optimizer {spec!r} is an Optuna sampler object; give its class (and "
                        "options): the bridge makes one sampler per run, seeded from the run")
    if "seed" in options:
        raise SpecError(f"optimizer {spec!r}: no seed option; each run's sampler is seeded "
                        "from the run's seed")
    _bind("optimizer", spec, sampler, (), options)
    return OptimizerSpec(spec, functools.partial(OptunaOptimizer, sampler=sampler), options)


def _space_of(pool: Pool):
    """(name -> optuna distribution, params dict -> unit-cube vector [d])."""
    import optuna.distributions as D

    if pool.space is None:
        names = list(pool.names or [f"x{j}" for j in range(pool.features.shape[1])])
        dists = {n: D.FloatDistribution(0.0, 1.0) for n in names}
        return dists, lambda p: np.array([p[n] for n in names], dtype=np.float64)
    dists = {}
    for p in pool.space.params:
        if p.kind == "cat":
            dists[p.name] = D.CategoricalDistribution(list(p.choices))
        elif p.integer:
            dists[p.name] = D.IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            dists[p.name] = D.FloatDistribution(p.low, p.high, log=p.log)
    return dists, lambda params: pool.space.to_unit([params])[0]


class OptunaOptimizer:
    """One run of an Optuna sampler over a table's pool (module docstring)."""

    def __init__(self, pool: Pool, rng: np.random.Generator, *, sampler: Any, **options: Any):
        optuna = _optuna()
        kw = dict(options)
        if "seed" in inspect.signature(sampler).parameters:
            kw["seed"] = int(rng.integers(2**31 - 1))
        self.study = optuna.create_study(direction="maximize", sampler=sampler(**kw),
                                         study_name="lcsim-bridge")
        self._pruned = optuna.trial.TrialState.PRUNED
        self._dists, self._encode = _space_of(pool)
        # |X - x|^2 = |X|^2 - 2 X.x + |x|^2: one matrix-vector product per ask (4x faster than
        # summing squared differences column by column); |X|^2 is +inf for configs that are
        # not (or no longer) candidates
        self._X = np.ascontiguousarray(pool.features, dtype=np.float64)
        self._sq = np.full(len(self._X), np.inf)
        self._sq[pool.candidates] = np.einsum("ij,ij->i", self._X, self._X)[pool.candidates]
        self._left = len(pool.candidates)
        self._T = pool.T
        self._trials: dict[int, Any] = {}  # row -> its running optuna Trial

    def ask(self, pending=()) -> Job | None:
        if self._left == 0:
            return None
        trial = self.study.ask(self._dists)
        x = self._encode(trial.params)
        row = int(np.argmin(self._sq - 2.0 * (self._X @ x)))  # ties: the lower row
        self._sq[row] = np.inf
        self._left -= 1
        self._trials[row] = trial
        return Job(row, self._T, float(np.linalg.norm(self._X[row] - x)))  # exact, not expanded

    def report(self, job: Job, epoch: int, accuracy: float) -> None:
        self._trials[job.row].report(accuracy, epoch)

    def tell(self, job: Job, accuracy: float, epochs: int) -> None:
        trial = self._trials.pop(job.row)
        if epochs >= self._T:
            _tell(self.study, trial, accuracy)
        else:
            _tell(self.study, trial, state=self._pruned)


def _tell(study, trial, value: float | None = None, state=None) -> None:
    """`study.tell` without its return value (see `_teller`)."""
    _teller()(study, trial, value, state)


@functools.cache
def _teller():
    """Study.tell deep-copies the finished trial to return it (~0.3 ms with 20 intermediate
    values, more than RandomSampler spends on a trial); `study.optimize` itself calls the
    internal `_tell_with_warning`, used where it exists (optuna 3.x-5.x), the public method
    otherwise."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:  # pragma: no cover - a later optuna without it
        return lambda study, trial, value, state: study.tell(trial, value, state=state)
    return _tell_with_warning


# ----- pruners --------------------------------------------------------------------------------
def optuna_pruner(pruner: Any, options: dict[str, Any], spec: str) -> OptunaPruner:
    """The stopping rule of an Optuna pruner: a short name, a class name, the class, or a
    pruner object (copied for every run)."""
    if isinstance(pruner, str):
        pruner = _lookup(pruner, PRUNERS, "pruners", spec)
    if inspect.isclass(pruner):
        _bind("stopping rule", spec, pruner, (), options)
    elif options:
        raise SpecError(f"stopping rule {spec!r} is a pruner object: it takes no options")
    return OptunaPruner(pruner, dict(options), spec)


@dataclass(frozen=True)
class OptunaPruner:
    """An Optuna pruner as a stopping rule (module docstring); `new_run()` gives the rule of
    one run, with its own study."""

    pruner: Any  # pruner class (made with `options`) or pruner object (deep-copied per run)
    options: dict[str, Any] = field(default_factory=dict)
    label: str = "optuna"

    def new_run(self) -> _PrunerRun:
        import copy

        p = self.pruner(**self.options) if inspect.isclass(self.pruner) else copy.deepcopy(
            self.pruner)
        return _PrunerRun(p, self.label)

    def should_stop(self, curve: np.ndarray, epoch: int, state) -> bool:
        raise TypeError(f"{self.label}: an Optuna pruner keeps a study per run; ask the rule "
                        "returned by new_run() (the replay does)")

    def __str__(self) -> str:
        return self.label


class _PrunerRun:
    """One run's pruner and its shadow study, brought up to date from the state."""

    def __init__(self, pruner: Any, label: str):
        optuna = _optuna()
        self.study = optuna.create_study(direction="maximize", pruner=pruner,
                                         sampler=optuna.samplers.RandomSampler(seed=0),
                                         study_name="lcsim-pruner")
        self._pruned = optuna.trial.TrialState.PRUNED
        self.label = label
        self._live: dict[int, Any] = {}  # row -> running trial
        self._reported: dict[int, int] = {}  # row -> epochs reported to its trial
        self._k = 0  # completed rows already told

    def __str__(self) -> str:
        return self.label

    def _trial(self, row: int):
        if row not in self._live:
            self._live[row] = self.study.ask()
            self._reported[row] = 0  # a config resumed after it ended starts a new trial
        return self._live[row]

    def _report(self, row: int, curve: np.ndarray, upto: int) -> Any:
        trial = self._trial(row)
        for e in range(self._reported[row] + 1, upto + 1):
            trial.report(float(curve[e - 1]), e)
        self._reported[row] = upto
        return trial

    def should_stop(self, curve: np.ndarray, epoch: int, state) -> bool:
        done = state.completed
        for row in done[self._k:].tolist():
            trial = self._report(row, state.acc[row], state.T)
            _tell(self.study, trial, float(state.acc[row, -1]))
            del self._live[row]
        self._k = len(done)
        row = state.candidate
        if len(self._live) > 1:  # a config that is neither judged now nor running has ended
            active = set(state.running.tolist()) | {row}
            for r in [r for r in self._live if r not in active]:
                n = int(state.n_observed[r])
                _tell(self.study, self._report(r, state.acc[r], n), state=self._pruned)
                del self._live[r]
        return bool(self._report(row, curve, epoch).should_prune())
