"""One replayed HPO run: optimizer + stopping rules + simulated clock over a LookupTable.

Semantics (../shared/DESIGN.md "Replay semantics"):
- Each trained epoch costs the table's `solo_seconds` (this config alone on the device) or, with
  `time="measured"`, its `train_seconds`; `charge_eval=True` (default) adds `eval_seconds`,
  because every rule needs the per-epoch validation accuracy, so a real run pays for it too.
- `workers` asynchronous workers; one event per trained epoch in an `EventHeap` ordered by
  (time, sequence number). With one worker (the paper's setting) this is the plain sequential
  loop. Rules are consulted after each epoch t < T; a stopped config is told to the optimizer
  with its last observed accuracy. A diverged config ends at its `n_recorded` epochs and counts as
  terminated (it can never reach the goal).
- The run ends at the first fully trained config (T epochs) whose final accuracy is at or above
  the goal, or when the time budget (`max_time`, simulated seconds) or the evaluation budget
  (`max_evals` jobs) ends, or when the optimizer has nothing left to propose.
- Optimizer overhead is not charged (deterministic); `charge_overhead=True` adds the measured
  wall time of each `ask()` to the simulated time of that worker, and makes runs
  non-deterministic.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .clock import EventHeap, SimClock
from .optimizers import OPTIMIZERS, make_optimizer
from .rules import ReplayState, parse_rules

__all__ = ["Goal", "ReplayConfig", "RunResult", "replay", "candidate_rows", "epoch_costs"]

TRACE_COLUMNS = (
    "iteration", "worker", "config_id", "row", "until", "epochs", "stopped", "diverged",
    "complete", "accuracy", "time", "best_so_far",
)


@dataclass(frozen=True)
class Goal:
    """An absolute accuracy, or the top `top_percent` percent of the table's final accuracies."""

    accuracy: float | None = None  # absolute validation accuracy, e.g. 0.99
    top_percent: float | None = None  # e.g. 0.5 = the best 0.5 % of the table's configs

    def __post_init__(self):
        if (self.accuracy is None) == (self.top_percent is None):
            raise ValueError("Goal needs exactly one of accuracy or top_percent")
        if self.accuracy is not None and not 0 < self.accuracy <= 1:
            raise ValueError(f"Goal.accuracy must be in (0, 1], got {self.accuracy}")
        if self.top_percent is not None and not 0 < self.top_percent <= 100:
            raise ValueError(f"Goal.top_percent must be in (0, 100], got {self.top_percent}")

    def resolve(self, table) -> float:
        return float(self.accuracy if self.accuracy is not None else table.goal(self.top_percent))

    def __str__(self) -> str:
        return (f"acc>={self.accuracy:g}" if self.accuracy is not None
                else f"top{self.top_percent:g}%")

    @classmethod
    def parse(cls, text: str) -> Goal:
        """'top:0.5' / 'top0.5%' (percent of the table) or '0.99' (absolute accuracy)."""
        t = text.strip().lower().rstrip("%")
        try:
            if t.startswith("top"):
                return cls(top_percent=float(t[3:].lstrip(":=")))
            return cls(accuracy=float(t))
        except ValueError:
            raise ValueError(f"bad goal {text!r}: use an accuracy like 0.99 or top:0.5") from None


_OPTIONS = {"random": (), "smac": ("n_trees", "n_init", "random_prob"), "hyperband": ("eta",)}


@dataclass(frozen=True)
class ReplayConfig:
    optimizer: str = "smac"  # random | smac | hyperband
    rules: tuple[str, ...] = ()  # rule specs, combined with AnyOf; () = no rule
    goal: Goal = field(default_factory=lambda: Goal(top_percent=0.5))  # paper's MNIST goal
    workers: int = 1  # paper: one worker
    time: str = "solo"  # solo = config alone on the device (DESIGN time model); or measured
    charge_eval: bool = True  # rules read every epoch's validation accuracy: pay for it
    charge_overhead: bool = False  # wall time of ask(); off = deterministic
    max_time: float | None = None  # simulated seconds; None = no time budget
    max_evals: int | None = None  # jobs asked; None = until the goal or the candidates run out
    optimizer_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"n_init": 10}

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.time not in ("solo", "measured"):
            raise ValueError(f"time must be 'solo' or 'measured', got {self.time!r}")
        if self.max_time is not None and self.max_time <= 0:
            raise ValueError(f"max_time must be > 0 simulated seconds, got {self.max_time}")
        if self.max_evals is not None and self.max_evals < 1:
            raise ValueError(f"max_evals must be >= 1, got {self.max_evals}")
        allowed = _OPTIONS[self.optimizer]
        bad = sorted(set(self.optimizer_options) - set(allowed))
        if bad:
            raise ValueError(f"optimizer {self.optimizer!r} has no option(s) {bad}; "
                             f"allowed: {list(allowed)}")
        object.__setattr__(self, "rules", tuple(self.rules))
        parse_rules(self.rules)  # fail early on a bad spec

    @property
    def rule_label(self) -> str:
        return str(parse_rules(self.rules))


@dataclass(frozen=True)
class RunResult:
    time_to_goal: float  # simulated seconds; inf when the goal was not reached
    end_time: float  # simulated seconds when the run ended
    reached: bool
    goal_accuracy: float
    trace: dict[str, np.ndarray]  # TRACE_COLUMNS -> [n_jobs] arrays, in the order jobs ended


def candidate_rows(table) -> np.ndarray:
    """Rows an optimizer may propose: complete configs and diverged ones with at least one
    recorded epoch. Failed configs (out of memory, crash) are excluded: they have no curve, and
    a real run would not have produced a number for them either."""
    status = np.asarray(table.status).astype(str)
    ok = (status == "complete") | ((status == "diverged") & (np.asarray(table.n_recorded) > 0))
    return np.flatnonzero(ok)


def epoch_costs(table, time: str = "solo", charge_eval: bool = True) -> np.ndarray:
    """Seconds charged per trained epoch, shape [n, T] (NaN where no epoch was recorded)."""
    base = table.solo_seconds if time == "solo" else table.train_seconds
    cost = np.asarray(base, dtype=np.float64)
    if charge_eval:
        ev = getattr(table, "eval_seconds", None)
        if ev is not None:
            cost = cost + np.nan_to_num(np.asarray(ev, dtype=np.float64), nan=0.0)
    return cost


def _feature_names(table) -> list[str] | None:
    space = getattr(table, "space", None)
    names = space.names if space is not None else None
    return list(names) if names is not None and len(names) == table.features.shape[1] else None


def _num_classes(table) -> int:
    """The table's class count (meta, else its search space); 0 if unknown (ETR-1 needs r)."""
    n = getattr(table, "num_classes", None)
    if n is None and getattr(table, "space", None) is not None:
        n = table.space.num_classes
    return int(n or 0)


def replay(table, cfg: ReplayConfig, seed, *, costs: np.ndarray | None = None) -> RunResult:
    """Replay one HPO run. `seed`: int or np.random.SeedSequence (a repeat's child seed)."""
    acc = np.asarray(table.acc, dtype=np.float64)
    n, T = acc.shape
    cost = epoch_costs(table, cfg.time, cfg.charge_eval) if costs is None else costs
    n_rec = np.asarray(table.n_recorded, dtype=np.int64)
    ids = np.asarray(table.ids)
    goal = cfg.goal.resolve(table)
    rule = parse_rules(cfg.rules)
    rng = np.random.default_rng(seed)
    opt = make_optimizer(
        cfg.optimizer, features=np.asarray(table.features), candidates=candidate_rows(table),
        T=T, rng=rng, names=_feature_names(table), **cfg.optimizer_options,
    )
    state = ReplayState(acc, _num_classes(table))
    clock, heap = SimClock(), EventHeap()
    out: dict[str, list] = {c: [] for c in TRACE_COLUMNS}
    idle: list[int] = []
    asked = 0
    best = -np.inf

    def launch(w: int, now: float) -> None:
        nonlocal asked
        if cfg.max_evals is not None and asked >= cfg.max_evals:
            idle.append(w)
            return
        t0 = _time.perf_counter() if cfg.charge_overhead else 0.0
        job = opt.ask()
        if job is None:
            idle.append(w)
            return
        asked += 1
        start = now + (_time.perf_counter() - t0 if cfg.charge_overhead else 0.0)
        e = int(state.n_observed[job.row]) + 1  # resume after the epochs already trained
        heap.push(start + cost[job.row, e - 1], (w, job, e))

    for w in range(cfg.workers):
        launch(w, 0.0)
    reached, ttg = False, np.inf
    while heap:
        t, (w, job, e) = heap.pop()
        if cfg.max_time is not None and t > cfg.max_time:
            clock.advance_to(cfg.max_time)  # budget ends while this epoch is still training
            break
        clock.advance_to(t)
        row = job.row
        stopped = e < T and rule.should_stop(acc[row, :e], e, state)
        state.n_observed[row] = e
        diverged = e >= n_rec[row] and e < T
        if not (stopped or diverged or e >= job.until):
            heap.push(t + cost[row, e], (w, job, e + 1))
            continue
        complete = e == T
        if complete:
            state.complete(row)
            best = max(best, acc[row, T - 1])
        last = acc[row, e - 1]
        opt.tell(job, float(last if np.isfinite(last) else _last_finite(acc[row, :e])), e)
        for c, v in zip(TRACE_COLUMNS, (len(out["iteration"]), w, ids[row], row, job.until, e,
                                        stopped, diverged, complete, last, t, best), strict=True):
            out[c].append(v)
        if complete and acc[row, T - 1] >= goal:
            reached, ttg = True, t
            break
        launch(w, t)
        if len(idle) > 0:  # a tell may unblock a synchronous optimizer (Hyperband)
            waiting = sorted(idle)
            idle.clear()
            for w2 in waiting:
                launch(w2, t)
    trace = {c: np.asarray(v) for c, v in out.items()}
    trace["best_so_far"] = np.where(np.isfinite(trace["best_so_far"].astype(float)),
                                    trace["best_so_far"], np.nan)
    return RunResult(float(ttg), clock.now, reached, goal, trace)


def _last_finite(curve: np.ndarray) -> float:
    ok = np.flatnonzero(np.isfinite(curve))
    return float(curve[ok[-1]]) if ok.size else 0.0
