"""What every built-in rule shares: its label, the no-rule rule, and `AnyOf`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..protocols import Decision, StoppingRule
from ..state import ReplayState

__all__ = ["NoRule", "AnyOf", "rule_label", "predicts"]


def rule_label(name: str, rule, always: tuple[str, ...]) -> str:
    """'name:k=v,...' with the fields in `always` and those that differ from their default."""
    parts = []
    for f in rule.__dataclass_fields__.values():
        v = getattr(rule, f.name)
        if f.name in always or v != f.default:
            parts.append(f"{f.name}={v:g}" if isinstance(v, float) else f"{f.name}={v}")
    return name + (":" + ",".join(parts) if parts else "")


def predicts(rule) -> bool:
    """Does the rule implement the optional `decide` (a decision with its prediction)?"""
    return callable(getattr(rule, "decide", None))


@dataclass(frozen=True)
class NoRule:
    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        return False

    def __str__(self) -> str:
        return "none"


@dataclass(frozen=True)
class AnyOf:
    """Stop if any of the rules says stop. Every rule is asked, in order, even after one said
    stop: a rule with memory over the run (`new_run`) sees every epoch event.

    `decide` returns the combined stop with the prediction of the first rule that made one
    (rules without `decide` predict nothing)."""

    rules: tuple[StoppingRule, ...] = ()

    def should_stop(self, curve: np.ndarray, epoch: int, state: ReplayState) -> bool:
        stop = False
        for r in self.rules:
            stop = r.should_stop(curve, epoch, state) or stop
        return stop

    def decide(self, curve: np.ndarray, epoch: int, state: ReplayState) -> Decision:
        stop, first = False, None
        for r in self.rules:
            if predicts(r):
                d = r.decide(curve, epoch, state)
                stop = bool(d.stop) or stop
                if first is None and not (math.isnan(d.predicted) and math.isnan(d.prob)):
                    first = d
            else:
                stop = r.should_stop(curve, epoch, state) or stop
        if first is None:
            return Decision(stop)
        return Decision(stop, first.predicted, first.std, first.prob, first.reference)

    @property
    def predicting(self) -> bool:
        return any(predicts(r) for r in self.rules)

    def new_run(self) -> AnyOf:
        """The rules for one run: each rule's `new_run()` where it has one."""
        return AnyOf(tuple(r.new_run() if hasattr(r, "new_run") else r for r in self.rules))

    def __str__(self) -> str:
        from ..resolve import label_of

        return "+".join(label_of(r) for r in self.rules) or "none"
