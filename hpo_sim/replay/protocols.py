"""The two public protocols of a replay: `Optimizer` (which config to train next, and for
how many epochs) and `StoppingRule` (stop this config now?), and what they are handed.

Built-in methods and a researcher's own go through the same path: `ReplayConfig(optimizer=...,
rules=...)` takes a name or spec string (resolved by `resolve.resolve_optimizer` /
`resolve.resolve_rule`) or the objects themselves, and `simulate.replay` drives them on the
simulated clock.

Optimizer. A run's optimizer is made fresh for every run by a factory `(pool, rng, **options)
-> Optimizer` (a class whose `__init__(self, pool, rng, ...)` qualifies), so repeats never
share state and each gets its own seeded Generator. It proposes `Job(row, until)`: train table
row `row` up to epoch `until`: a candidate row not running elsewhere, further than it has
been trained (a row may be resumed, as Hyperband does; `ProtocolError` otherwise).
`ask(pending)` sees the jobs running on the other simulated
workers at that moment; it returns None when it has nothing to propose now (the worker waits
for the next tell) or ever. `tell(job, accuracy, epochs)` reports the last observed accuracy
after `epochs` trained epochs: fewer than `until` when a rule stopped the job or the config
diverged (then its last finite accuracy). An optional `report(job, epoch, accuracy)` is called
after every trained epoch, for optimizers that learn from intermediate values (Optuna's
samplers do). An optimizer never sees a curve it has not paid for: the pool holds no
accuracies.

StoppingRule. `should_stop(curve, epoch, state) -> bool` is asked after every trained epoch
t < T of every job (stopping at T saves nothing). `curve` [epoch] is the candidate's accuracy
at epochs 1..epoch (read-only); `state` (`state.ReplayState`) is the replay at that simulated
moment, read-only: every epoch observed so far, this one included, and nothing later. A rule
decides; it never writes the state. A rule that keeps memory over one run (a model it refits,
Optuna's study behind a pruner) defines `new_run() -> StoppingRule`: the replay calls it at the
start of every run and asks the returned object, so runs never share that memory. Such memory
may only save work (a fit to warm-start, a model to reuse): the same curve and state must give
the same decision whatever was asked before.

A rule that predicts (the learning-curve rules `lce` and `svr`) may also define the optional
`decide(curve, epoch, state) -> Decision`: the same stop as `should_stop`, with the predicted
final accuracy y(T), its standard deviation, the probability that y(T) beats the incumbent's
final accuracy and that reference accuracy (NaN where it has none). The replay then asks
`decide` instead of `should_stop` and records every prediction with its simulated time and the
decision's wall seconds in `RunResult.decisions` (`simulate.DECISION_COLUMNS`), which the audit
scores against the table's true final accuracies. Recording happens in the replay loop; the rule
still only reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from lcsim.errors import UserError

if TYPE_CHECKING:
    from .state import ReplayState

__all__ = ["Job", "Pool", "Optimizer", "OptimizerFactory", "StoppingRule", "Decision",
           "ProtocolError"]


class ProtocolError(UserError, ValueError):
    """A method broke the protocol (asked for a row that is not a candidate, or one already
    trained that far); the message names the method and the job."""


@dataclass(frozen=True, slots=True)
class Job:
    row: int  # table row (not config_id)
    until: int  # train this row up to this epoch (1..T); earlier epochs already trained are kept
    distance: float = 0.0  # unit-cube distance from the optimizer's own suggestion to `row`
    # (0: the suggestion was a table config; the Optuna bridge maps off-table suggestions)


@dataclass(frozen=True, eq=False)
class Pool:
    """What an optimizer may know about a table before training anything: its configs, not
    their curves.

    features [n, d]: every row's hyperparameters in the unit cube (`LookupTable.features`;
    floats linearly, the learning rate on a log scale, integers and categoricals by bin
    centres), read-only. candidates [m]: the rows it may propose (complete and diverged configs;
    failed ones have no curve). T: epochs per config. ids [n]: config ids of the rows.
    names: the feature columns' hyperparameter names (None when unknown). space: the table's
    search space (`lcsim.tabular.spaces.Space`), None for an imported table of unknown space.
    """

    features: np.ndarray
    candidates: np.ndarray
    T: int
    ids: np.ndarray
    names: tuple[str, ...] | None = None
    space: Any = None

    def __post_init__(self):
        for name in ("features", "candidates", "ids"):  # read-only views, the caller's untouched
            v = np.asarray(getattr(self, name)).view()
            v.setflags(write=False)
            object.__setattr__(self, name, v)
        if self.features.ndim != 2:
            raise ValueError(f"Pool.features must be [n, d], got shape {self.features.shape}")
        if self.T < 1:
            raise ValueError(f"Pool.T must be >= 1, got {self.T}")

    def config(self, row: int) -> dict[str, Any]:
        """Hyperparameters of a row, decoded from its unit-cube features (needs a space)."""
        if self.space is None:
            raise ValueError("Pool.config: this table has no known search space; use "
                             "pool.features[row]")
        return self.space.from_unit(self.features[row])[0]


@runtime_checkable
class Optimizer(Protocol):
    """One run's optimizer over a table's pool (module docstring)."""

    def ask(self, pending: Sequence[Job] = ()) -> Job | None: ...

    def tell(self, job: Job, accuracy: float, epochs: int) -> None: ...


OptimizerFactory = Callable[..., Optimizer]  # (pool: Pool, rng: np.random.Generator, **options)


@runtime_checkable
class StoppingRule(Protocol):
    """Stop a config now? Decided from what has been observed by this simulated moment."""

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        """curve: [epoch] the candidate's accuracies at epochs 1..epoch."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """A predicting rule's answer at one epoch (`decide`): stop or not, and what it predicted.
    NaN where the rule has no such number (no incumbent yet: no `prob`, no `reference`)."""

    stop: bool
    predicted: float = math.nan  # predicted final accuracy y(T)
    std: float = math.nan  # standard deviation of that prediction
    prob: float = math.nan  # P(y(T) > reference)
    reference: float = math.nan  # the incumbent's final accuracy the rule compared against
