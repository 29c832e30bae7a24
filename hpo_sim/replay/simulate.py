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
- Optimizer and rule overhead is not charged (deterministic); `charge_overhead=True` adds the
  measured wall time of each `ask()` and of each rule decision to the simulated time of that
  worker, and makes runs non-deterministic. The rules' wall time is measured either way
  (`RunResult.rule_seconds`, and per decision of a predicting rule in `RunResult.decisions`).
- Rules see `state.ReplayState`, filled epoch by epoch as the clock reaches each observation
  (nothing later is in it); the optimizer sees a `protocols.Pool` (configs, no curves), the jobs
  pending on the other workers at each ask, and what it is told. Built-in and user methods take
  this same path (`protocols.py`, `resolve.py`).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .clock import EventHeap, SimClock
from .protocols import Job, Pool, ProtocolError
from .resolve import optimizer_label, resolve_optimizer, resolve_rules, rules_label
from .state import ReplayState

__all__ = ["GOAL_OVER", "Goal", "ReplayConfig", "RunResult", "replay", "candidate_rows",
           "epoch_costs", "TRACE_COLUMNS", "DECISION_COLUMNS"]

GOAL_OVER = ("complete", "all")  # what a percentile goal ranks (Goal.over)
TRACE_COLUMNS = (
    "iteration", "worker", "config_id", "row", "until", "epochs", "stopped", "diverged",
    "complete", "accuracy", "time", "best_so_far", "off_table", "snap_distance",
)
# off_table: the optimizer's suggestion was not a table config and was mapped to `row`, at
# unit-cube distance snap_distance (the Optuna bridge; False / 0.0 for pool optimizers)

DECISION_COLUMNS = (
    "row", "config_id", "epoch", "time", "stop", "predicted", "std", "prob", "reference",
    "seconds",
)
# one row per prediction of a predicting rule (`protocols.Decision`), in the order they were
# made: simulated time of the observation, the decision and its prediction, wall seconds taken


@dataclass(frozen=True)
class Goal:
    """An absolute accuracy, or the top `top_percent` percent of the table's final accuracies.

    `over` says which configs the percentile ranks: "complete" (the complete configs' final
    accuracies, `LookupTable.goal`) or "all" (every config of the table, as Choi et al. rank
    their 20,000 pre-evaluated configs: a diverged or failed config counts as accuracy 0, below
    every complete one). Both use numpy's linear interpolation between the two nearest order
    statistics (how the paper interpolates: not stated in the paper; ours). An absolute goal
    ignores `over`.
    """

    accuracy: float | None = None  # absolute validation accuracy, e.g. 0.99
    top_percent: float | None = None  # e.g. 0.5 = the best 0.5 % of the table's configs
    over: str = "complete"  # configs the percentile ranks: complete | all (Choi et al.)

    def __post_init__(self):
        if (self.accuracy is None) == (self.top_percent is None):
            raise ValueError("Goal needs exactly one of accuracy or top_percent")
        if self.accuracy is not None and not 0 < self.accuracy <= 1:
            raise ValueError(f"Goal.accuracy must be in (0, 1], got {self.accuracy}")
        if self.top_percent is not None and not 0 < self.top_percent <= 100:
            raise ValueError(f"Goal.top_percent must be in (0, 100], got {self.top_percent}")
        if self.over not in GOAL_OVER:
            raise ValueError(f"Goal.over must be one of {GOAL_OVER}, got {self.over!r}")
        if self.accuracy is not None and self.over != "complete":
            object.__setattr__(self, "over", "complete")  # one spelling per absolute goal

    def resolve(self, table) -> float:
        if self.accuracy is not None:
            return float(self.accuracy)
        if self.over == "complete":
            return float(table.goal(self.top_percent))
        final = np.asarray(table.final_accuracy, dtype=np.float64)
        if not np.isfinite(final).any():
            return float(table.goal(self.top_percent))  # its error names the table's state
        return float(np.percentile(np.nan_to_num(final, nan=0.0), 100.0 - self.top_percent))

    def __str__(self) -> str:
        if self.accuracy is not None:
            return f"acc>={self.accuracy:g}"
        return f"top{self.top_percent:g}%" + ("(all)" if self.over == "all" else "")

    @classmethod
    def parse(cls, text: str, over: str | None = None) -> Goal:
        """'top:0.5' / 'top0.5%' (percent of the table), 'top:0.5:all' / 'top0.5%(all)' (of
        all configs), '0.99' / 'acc>=0.99' (absolute accuracy); str(goal) parses back.
        `over` applies to a percentile goal that does not name its own."""
        t = text.strip().lower()
        try:
            if t.startswith("top"):
                t, own = t[3:].lstrip(":="), None
                for o in GOAL_OVER:
                    for suffix in (f"({o})", f":{o}"):
                        if t.endswith(suffix):
                            t, own = t[: -len(suffix)], o
                return cls(top_percent=float(t.rstrip("%")),
                           over=own or over or "complete")
            return cls(accuracy=float(t.removeprefix("acc>=").rstrip("%")))
        except ValueError:
            pass
        raise ValueError(f"bad goal {text!r}: use an accuracy like 0.99 or top:0.5 "
                         "(top:0.5:all ranks every config of the table)")


@dataclass(frozen=True)
class ReplayConfig:
    # built-in name (random | smac | hyperband), optuna:SAMPLER, package.module:Name[:k=v,...],
    # or a factory (pool, rng, **options) -> Optimizer, e.g. your optimizer class (resolve.py)
    optimizer: Any = "smac"
    rules: tuple[Any, ...] = ()  # rule specs or StoppingRule objects, combined with AnyOf
    goal: Goal = field(default_factory=lambda: Goal(top_percent=0.5))  # paper's MNIST goal
    workers: int = 1  # paper: one worker
    time: str = "solo"  # solo = config alone on the device (DESIGN time model); or measured
    charge_eval: bool = True  # rules read every epoch's validation accuracy: pay for it
    charge_overhead: bool = False  # wall time of ask(); off = deterministic
    max_time: float | None = None  # simulated seconds; None = no time budget
    max_evals: int | None = None  # jobs asked; None = until the goal or the candidates run out
    optimizer_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"n_init": 10}

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.time not in ("solo", "measured"):
            raise ValueError(f"time must be 'solo' or 'measured', got {self.time!r}")
        if self.max_time is not None and self.max_time <= 0:
            raise ValueError(f"max_time must be > 0 simulated seconds, got {self.max_time}")
        if self.max_evals is not None and self.max_evals < 1:
            raise ValueError(f"max_evals must be >= 1, got {self.max_evals}")
        rules = self.rules
        if isinstance(rules, str) or hasattr(rules, "should_stop"):
            rules = (rules,)  # one rule given bare
        # 'none' is no rule: ("none",) and () are one setting (one baseline row, one run)
        object.__setattr__(self, "rules", tuple(
            r for r in rules if not (isinstance(r, str) and r.strip().lower() == "none")))
        resolve_optimizer(self.optimizer, self.optimizer_options)  # fail early on a bad spec
        resolve_rules(self.rules)

    @property
    def rule_label(self) -> str:
        return rules_label(self.rules)

    @property
    def optimizer_label(self) -> str:
        return optimizer_label(self.optimizer)


@dataclass(frozen=True)
class RunResult:
    time_to_goal: float  # simulated seconds; inf when the goal was not reached
    end_time: float  # simulated seconds when the run ended
    reached: bool
    goal_accuracy: float
    trace: dict[str, np.ndarray]  # TRACE_COLUMNS -> [n_jobs] arrays, in the order jobs ended
    # DECISION_COLUMNS -> [n_predictions] arrays; empty unless a rule predicts (`decide`)
    decisions: dict[str, np.ndarray] = field(default_factory=dict)
    rule_calls: int = 0  # rule decisions asked in this run
    rule_seconds: float = 0.0  # their wall time (charged to the clock only with charge_overhead)
    # at each trace row: rule calls, decisions logged and rule seconds so far ("calls",
    # "decisions", "rule_seconds" -> [n_jobs]), where `for_goal` cuts a run
    marks: dict[str, np.ndarray] = field(default_factory=dict)

    def for_goal(self, goal_accuracy: float) -> RunResult:
        """This run read for an easier goal (at most `goal_accuracy` of this run when it was
        reached): the trace, decision log and rule counts up to the first fully trained config
        at or above it, which is where a run with that goal ends (`goals.replay_goals`). Not
        reached: the whole run."""
        if self.reached and goal_accuracy > self.goal_accuracy:
            raise ValueError(f"for_goal: {goal_accuracy} is above this run's goal "
                             f"{self.goal_accuracy}, which ended it; replay with the harder goal")
        with np.errstate(invalid="ignore"):
            hit = np.flatnonzero(self.trace["complete"].astype(bool)
                                 & (self.trace["accuracy"].astype(float) >= goal_accuracy))
        if not hit.size:
            return replace(self, time_to_goal=float(np.inf), reached=False,
                           goal_accuracy=goal_accuracy)
        k = int(hit[0]) + 1
        t = float(self.trace["time"][k - 1])
        cut = {"trace": {c: v[:k] for c, v in self.trace.items()}}
        if self.marks:  # fast.py's runs have none: no rule calls, no decisions to cut
            n = int(self.marks["decisions"][k - 1])
            cut.update(decisions={c: v[:n] for c, v in self.decisions.items()},
                       rule_calls=int(self.marks["calls"][k - 1]),
                       rule_seconds=float(self.marks["rule_seconds"][k - 1]),
                       marks={c: v[:k] for c, v in self.marks.items()})
        return replace(self, time_to_goal=t, end_time=t, reached=True,
                       goal_accuracy=goal_accuracy, **cut)


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


def table_arrays(table, cfg: ReplayConfig, costs: np.ndarray | None = None) -> tuple:
    """What a replay reads from the table: accuracies (float64), per-epoch costs, epochs
    recorded, config ids and the resolved goal accuracy."""
    acc = np.asarray(table.acc, dtype=np.float64)
    cost = epoch_costs(table, cfg.time, cfg.charge_eval) if costs is None else costs
    return (acc, cost, np.asarray(table.n_recorded, dtype=np.int64), np.asarray(table.ids),
            cfg.goal.resolve(table))


def replay(table, cfg: ReplayConfig, seed, *, costs: np.ndarray | None = None) -> RunResult:
    """Replay one HPO run. `seed`: int or np.random.SeedSequence (a repeat's child seed)."""
    acc, cost, n_rec, ids, goal = table_arrays(table, cfg, costs)
    n, T = acc.shape
    rule = resolve_rules(cfg.rules).new_run()
    judging = bool(rule.rules)
    predicting = rule.predicting  # ask decide(): the decision with its prediction
    rng = np.random.default_rng(seed)
    features = np.asarray(table.features)
    pool = Pool(features, candidate_rows(table), T, ids, names=_feature_names(table),
                space=getattr(table, "space", None))
    opt = resolve_optimizer(cfg.optimizer, cfg.optimizer_options)(pool, rng)
    report = getattr(opt, "report", None)
    check = _JobCheck(pool, n, T, cfg.optimizer_label)
    state = ReplayState.empty(n, T, _num_classes(table), features=features)
    observed = state.acc
    clock, heap = SimClock(), EventHeap()
    out: dict[str, list] = {c: [] for c in TRACE_COLUMNS}
    log: dict[str, list] = {c: [] for c in DECISION_COLUMNS}
    calls, rule_seconds = 0, 0.0
    marks: dict[str, list] = {"calls": [], "decisions": [], "rule_seconds": []}
    idle: list[int] = []
    working = [-1] * cfg.workers  # row each worker trains, -1 when idle (state.running)
    jobs: list = [None] * cfg.workers
    asked = 0
    best = -np.inf

    def record(w: int, job, e: int, stopped, diverged, complete, last, t: float) -> None:
        for c, v in zip(TRACE_COLUMNS, (len(out["iteration"]), w, ids[job.row], job.row,
                                        job.until, e, stopped, diverged, complete, last, t,
                                        best, job.distance > 0, job.distance), strict=True):
            out[c].append(v)
        for c, v in zip(marks, (calls, len(log["row"]), rule_seconds), strict=True):
            marks[c].append(v)

    def launch(w: int, now: float) -> None:
        nonlocal asked
        while True:
            t0 = _time.perf_counter() if cfg.charge_overhead else 0.0
            done = cfg.max_evals is not None and asked >= cfg.max_evals
            job = None if done else opt.ask(tuple(filter(None, jobs)))
            if job is None:
                idle.append(w)
                return
            asked += 1
            now += _time.perf_counter() - t0 if cfg.charge_overhead else 0.0
            row = check(job, state, working)
            e = int(state.n_observed[row]) + 1  # resume after the trained epochs
            if e <= n_rec[row]:
                jobs[w], working[w] = job, row
                heap.push(now + cost[row, e - 1], (w, job, e))
                return
            # resumed, but it diverged right after its last recorded epoch (a rung ended
            # there): it diverges again at once, charged nothing; ask again
            last = _last_finite(acc[row, :e - 1])
            opt.tell(job, last, e - 1)
            record(w, job, e - 1, False, True, False, last, now)

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
        last = float(acc[row, e - 1])
        state.observe(row, e, last, working)
        stopped = False
        if judging and e < T:
            # the curve is a read-only slice of what has been observed: no way to later epochs
            t0 = _time.perf_counter()
            if predicting:
                d = rule.decide(observed[row, :e], e, state)
                stopped = bool(d.stop)
            else:
                stopped = bool(rule.should_stop(observed[row, :e], e, state))
            dt = _time.perf_counter() - t0
            calls, rule_seconds = calls + 1, rule_seconds + dt
            if predicting and not (np.isnan(d.predicted) and np.isnan(d.prob)):
                for c, v in zip(DECISION_COLUMNS, (row, ids[row], e, t, stopped, d.predicted,
                                                   d.std, d.prob, d.reference, dt), strict=True):
                    log[c].append(v)
            if cfg.charge_overhead:
                t += dt  # this worker waited for the decision
        if report is not None:
            report(job, e, last)
        diverged = e >= n_rec[row] and e < T
        if not (stopped or diverged or e >= job.until):
            heap.push(t + cost[row, e], (w, job, e + 1))
            continue
        complete = e == T
        if complete:
            state.complete(row)
            best = max(best, acc[row, T - 1])
        jobs[w], working[w] = None, -1
        opt.tell(job, float(last if np.isfinite(last) else _last_finite(acc[row, :e])), e)
        record(w, job, e, stopped, diverged, complete, last, t)
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
    for c, dtype in (("off_table", bool), ("snap_distance", np.float64)):
        trace[c] = trace[c].astype(dtype)  # typed even when no job ended
    decisions = {c: np.asarray(v, dtype=dtype) for (c, v), dtype in zip(
        log.items(), (np.int64, np.int64, np.int64, np.float64, bool) + (np.float64,) * 5,
        strict=True)} if predicting else {}
    return RunResult(float(ttg), clock.now, reached, goal, trace, decisions, calls,
                     rule_seconds, {c: np.asarray(v, dtype=dtype) for (c, v), dtype in zip(
                         marks.items(), (np.int64, np.int64, np.float64), strict=True)})


class _JobCheck:
    """A job an optimizer proposes must be a candidate row, not running on another worker,
    and train it further than it has been trained (ProtocolError otherwise)."""

    def __init__(self, pool: Pool, n: int, T: int, label: str):
        self.ok = np.zeros(n, dtype=bool)
        self.ok[pool.candidates] = True
        self.T, self.label = T, label

    def __call__(self, job, state: ReplayState, working: list[int]) -> int:
        if not isinstance(job, Job):
            raise ProtocolError(f"optimizer {self.label!r}: ask() must return a "
                                f"Job(row, until) or None, got {job!r}")
        row = job.row
        if not (0 <= row < len(self.ok) and self.ok[row]):
            raise ProtocolError(f"optimizer {self.label!r} asked for {job}: row {row} is not a "
                                "candidate (pool.candidates: table rows with a curve)")
        done = int(state.n_observed[row])
        if not done < job.until <= self.T:
            raise ProtocolError(f"optimizer {self.label!r} asked for {job}: row {row} has "
                                f"{done} epochs trained; until must be in {done + 1}..{self.T}")
        if row in working:
            raise ProtocolError(f"optimizer {self.label!r} asked for {job}: row {row} is "
                                "training on another worker (it is in `pending`)")
        return row


def _last_finite(curve: np.ndarray) -> float:
    ok = np.flatnonzero(np.isfinite(curve))
    return float(curve[ok[-1]]) if ok.size else 0.0
