"""Early-termination rules: pure decisions `should_stop(curve, epoch, state) -> bool`.

The built-in rules of the `StoppingRule` protocol (`protocols.py`): a rule reads the candidate's
validation accuracies so far and the replay's state at that simulated moment (`state.py`: only
what has been observed); it never writes. Rules are consulted after every trained epoch `t < T`
(stopping at `T` saves nothing: the config is fully trained); `AnyOf` composes rules (stop if
any says stop). Names and spec strings resolve in `resolve.py`, the same way as a researcher's
own rules.

Definitions (../shared/DESIGN.md, Choi et al.):
- ETR-1: stop at epoch tau if y(tau) < r + eps; r = 1 / num_classes unless given, eps = 0.05.
- ETR-2: x_c is the best fully trained config so far, y_c(T) its final accuracy; tau is the
  largest epoch t with y_c(t) <= q * y_c(T) (tau = 1 if none qualifies); stop the candidate at tau
  if y(tau) < p * y_c(tau). tau moves whenever the incumbent changes; before any config finished
  ETR-2 stops nothing. With several workers a config already past the new tau is not re-judged.
- Median stopping, three variants (all with `min_trials` finished trials and a `grace` period:
  no decision at epochs t <= grace):
  * "vizier" (default; Golovin et al. 2017): stop at t if the candidate's best value so far is
    strictly below the median, over completed trials, of their running averages mean(y_j(1..t)).
  * "optuna" (optuna.pruners.MedianPruner, Optuna >= 2.x; earlier versions ranked against all
    trials): the candidate's best value so far against the median of completed trials' values
    y_j(t) at t (not running averages). Optuna's own default n_startup_trials is 5.
  * "synetune" (syne_tune MedianStoppingRule): the candidate's value y(t) against the median of
    y_j(t) over every other trial that reached t: completed, stopped and still running ones.
  "Completed" means fully trained (T epochs): a stopped trial may not have reached t, so it is
  not a reference for the vizier / optuna variants (synetune counts it when it reached t).
  Running averages smooth noisy curves (Vizier is the most lenient of the three on curves that
  rise late); ranking against stopped trials (Syne Tune) lowers the bar as bad trials accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .protocols import StoppingRule
from .state import ReplayState

__all__ = [
    "ReplayState",
    "StoppingRule",
    "NoRule",
    "ETR1",
    "ETR2",
    "MedianRule",
    "AnyOf",
    "parse_rule",
    "parse_rules",
    "etr2_tau",
]


@dataclass(frozen=True)
class NoRule:
    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        return False

    def __str__(self) -> str:
        return "none"


@dataclass(frozen=True)
class ETR1:
    tau: int = 3  # epoch of the single check; the paper's Fig. 4 grid spans 1..9
    r: float | None = None  # random-guess accuracy; None = 1 / num_classes of the table
    eps: float = 0.05  # slack for training noise (paper: fixed to 0.05)

    def __post_init__(self):
        if int(self.tau) != self.tau or self.tau < 1:
            raise ValueError(f"ETR1.tau must be a positive integer epoch, got {self.tau}")
        if self.r is not None and not 0 <= self.r <= 1:
            raise ValueError(f"ETR1.r must be in [0, 1], got {self.r}")
        if not 0 <= self.eps <= 1:
            raise ValueError(f"ETR1.eps must be in [0, 1], got {self.eps}")

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        if epoch != self.tau:
            return False
        if self.r is None and not state.num_classes:
            raise ValueError("ETR1: the table does not say its number of classes; give r, "
                             "e.g. etr1:tau=3,r=0.1")
        r = 1.0 / state.num_classes if self.r is None else self.r
        return bool(curve[epoch - 1] < r + self.eps)

    def __str__(self) -> str:  # parse_rule(str(rule)) == rule; defaults left out
        return _label("etr1", self, ("tau",))


def etr2_tau(incumbent_curve: np.ndarray, q: float) -> int:
    """ETR-2's check epoch (1-based) for an incumbent curve of shape [T]."""
    ok = np.flatnonzero(incumbent_curve <= q * incumbent_curve[-1])
    return int(ok[-1]) + 1 if ok.size else 1


@dataclass(frozen=True)
class ETR2:
    p: float = 0.9  # allowed ratio to the incumbent's accuracy at tau
    q: float = 0.75  # tau = last epoch where the incumbent is <= q * its final accuracy (paper)

    def __post_init__(self):
        if not 0 < self.p <= 1:
            raise ValueError(f"ETR2.p must be in (0, 1], got {self.p}")
        if not 0 < self.q <= 1:
            raise ValueError(f"ETR2.q must be in (0, 1], got {self.q}")

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        if state.incumbent < 0:
            return False  # nothing finished yet: no reference curve
        ref = state.acc[state.incumbent]
        tau = etr2_tau(ref, self.q)
        if epoch != tau:
            return False
        return bool(curve[tau - 1] < self.p * ref[tau - 1])

    def __str__(self) -> str:
        return _label("etr2", self, ("p",))


_MEDIAN_VARIANTS = ("vizier", "optuna", "synetune")


@dataclass(frozen=True)
class MedianRule:
    variant: str = "vizier"  # vizier | optuna | synetune (module docstring)
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
        return _label("median", self, ())


@dataclass(frozen=True)
class AnyOf:
    """Stop if any of the rules says stop. Every rule is asked, in order, even after one said
    stop: a rule with memory over the run (`new_run`) sees every epoch event."""

    rules: tuple[StoppingRule, ...] = ()

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        stop = False
        for r in self.rules:
            stop = r.should_stop(curve, epoch, state) or stop
        return stop

    def new_run(self) -> AnyOf:
        """The rules for one run: each rule's `new_run()` where it has one."""
        return AnyOf(tuple(r.new_run() if hasattr(r, "new_run") else r for r in self.rules))

    def __str__(self) -> str:
        from .resolve import label_of

        return "+".join(label_of(r) for r in self.rules) or "none"


def _label(name: str, rule, always: tuple[str, ...]) -> str:
    """'name:k=v,...' with the fields in `always` and those that differ from their default."""
    parts = []
    for f in rule.__dataclass_fields__.values():
        v = getattr(rule, f.name)
        if f.name in always or v != f.default:
            parts.append(f"{f.name}={v:g}" if isinstance(v, float) else f"{f.name}={v}")
    return name + (":" + ",".join(parts) if parts else "")


_RULES = {"none": NoRule, "etr1": ETR1, "etr2": ETR2, "median": MedianRule}
_INT_FIELDS = {"tau", "grace", "min_trials"}


def parse_rule(spec: str) -> StoppingRule:
    """Parse 'name[:key=value,...]', e.g. 'etr2:p=0.9', 'etr1:tau=3', 'median:variant=optuna'."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in _RULES:
        raise ValueError(f"unknown stopping rule {spec!r}; choose from {sorted(_RULES)}")
    kwargs: dict[str, object] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"rule {spec!r}: expected key=value, got {item!r}")
        fields = _RULES[name].__dataclass_fields__
        if key not in fields:
            raise ValueError(
                f"rule {spec!r}: {name} has no parameter {key!r}; it has {list(fields)}"
            )
        try:
            kwargs[key] = (value.strip() if key == "variant"
                           else int(value) if key in _INT_FIELDS else float(value))
        except ValueError:
            raise ValueError(f"rule {spec!r}: bad value {value!r} for {key}") from None
    return _RULES[name](**kwargs)


def parse_rules(specs) -> AnyOf:
    """Several specs (built-in names, `package.module:Name[:k=v,...]`, `optuna:PRUNER`, or rule
    objects) combine with AnyOf; 'none' entries are dropped (`resolve.resolve_rules`)."""
    from .resolve import resolve_rules

    return resolve_rules(specs)
