"""Early-termination rules: pure decisions `should_stop(curve, epoch, state) -> bool`, one module
per family (`etr`, `median`, `lce`, `svr`, `gp`, `sh`), named here (`parse_rule`).

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
The learning-curve rules Choi et al. compare themselves with (their definitions, parameters and
approximations are in their modules):
- lce (`lce.py`, Domhan et al. 2015): parametric curve families fitted to y(1..t), combined into
  a predictive distribution of y(T); stop if P(y(T) > incumbent's final) < delta.
- svr (`svr.py`, Baker et al. 2017): a nu-SVR from (y(1..t), first and second differences,
  hyperparameters) to y(T), trained on the completed configs; stop if P(y(T) > incumbent's
  final) < delta under its cross-validated error.
- gp (`gp.py`, Google Vizier's performance-curve rule, Golovin et al. 2017): a Gaussian
  process from (y(1..t), hyperparameters) to y(T), trained on the completed configs; stop if
  P(y(T) > incumbent's final) < delta under its predictive distribution.
- sh / asha (`sh.py`, successive halving as a stopping rule): at rung r = min_r * eta^k keep
  the top 1/eta of the configs that reached r so far.
"""

from __future__ import annotations

from ..protocols import Decision, StoppingRule
from ..state import ReplayState
from .base import AnyOf, NoRule, predicts, rule_label
from .etr import ETR1, ETR2, etr2_tau
from .gp import GPRule
from .lce import LCE
from .median import MedianRule
from .sh import SuccessiveHalving
from .svr import SVRRule

__all__ = [
    "ReplayState",
    "StoppingRule",
    "Decision",
    "NoRule",
    "ETR1",
    "ETR2",
    "MedianRule",
    "LCE",
    "SVRRule",
    "GPRule",
    "SuccessiveHalving",
    "AnyOf",
    "parse_rule",
    "parse_rules",
    "etr2_tau",
    "predicts",
    "rule_label",
]


_RULES = {"none": NoRule, "etr1": ETR1, "etr2": ETR2, "median": MedianRule, "lce": LCE,
          "svr": SVRRule, "gp": GPRule, "sh": SuccessiveHalving, "asha": SuccessiveHalving}


def _cast(rule_cls, key: str, value: str):
    """A spec's option as its field's type (the type of the field's default; float if None)."""
    default = rule_cls.__dataclass_fields__[key].default
    if default is None and value.strip().lower() == "none":  # 'r=none': the field's default
        return None
    if isinstance(default, str):
        return value.strip()
    if isinstance(default, bool):
        if value.strip().lower() not in ("true", "false"):
            raise ValueError(value)
        return value.strip().lower() == "true"
    if isinstance(default, int):
        number = float(value)  # 'tau=3.0' is 3, as ETR1(tau=3.0) would take it; 3.5 is not
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    return float(value)


def parse_rule(spec: str) -> StoppingRule:
    """Parse 'name[:key=value,...]', e.g. 'etr2:p=0.9', 'etr1:tau=3', 'median:variant=optuna',
    'lce:delta=0.05,min_epochs=5', 'sh:eta=3'."""
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
            kwargs[key] = _cast(_RULES[name], key, value)
        except ValueError:
            raise ValueError(f"rule {spec!r}: bad value {value!r} for {key}") from None
    return _RULES[name](**kwargs)


def parse_rules(specs) -> AnyOf:
    """Several specs (built-in names, `package.module:Name[:k=v,...]`, `optuna:PRUNER`, or rule
    objects) combine with AnyOf; 'none' entries are dropped (`resolve.resolve_rules`)."""
    from ..resolve import resolve_rules

    return resolve_rules(specs)
