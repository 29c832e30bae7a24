"""Several goals from one replay.

A replay depends on its goal only through its end: optimizers and rules never see the goal,
so the run is the same epoch by epoch until the goal stops it. One run to the hardest goal
therefore holds every easier goal's run as a prefix (`simulate.RunResult.for_goal` cuts the
trace, the decision log and the rule counts there), and a study whose settings differ only in
their goal runs once per repeat (`study.run_settings`). The times are those of separate
single-goal replays, to the bit (tests/test_replay_goals.py); with `charge_overhead` no two
runs are the same anyway.

The hardest goal that some complete config of the table reaches drives the shared run; a goal
above every final accuracy cannot be reached by any run (time +inf, as its own replay gives),
so it does not prolong the shared run to the end of the candidates: its result keeps the
shared run's trace, end time and counts (what its summary's configs per run and audit show).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .simulate import Goal, ReplayConfig, RunResult, replay

__all__ = ["goal_plan", "read_goals", "replay_goals"]


def replay_goals(table, cfg: ReplayConfig, goals: list[Goal], seed, *,
                 costs: np.ndarray | None = None) -> list[RunResult]:
    """One replay read for several goals: the RunResult `replay(table, replace(cfg, goal=g),
    seed)` gives, for each g in `goals`, from a single run (module docstring)."""
    goals = list(goals)
    if not goals:
        return []
    drive, accs, best = goal_plan(table, goals)
    return read_goals(replay(table, replace(cfg, goal=goals[drive]), seed, costs=costs),
                      accs, best)


def goal_plan(table, goals: list[Goal]) -> tuple[int, list[float], float]:
    """(index of the goal that drives a shared run, each goal's accuracy, the table's best final
    accuracy): the driver is the hardest goal some complete config reaches, else the hardest."""
    accs = [g.resolve(table) for g in goals]
    final = np.asarray(table.final_accuracy, dtype=np.float64)
    best = float(np.nanmax(final)) if np.isfinite(final).any() else -np.inf
    reachable = [i for i, a in enumerate(accs) if a <= best] or range(len(accs))
    return max(reachable, key=lambda i: accs[i]), accs, best


def read_goals(run: RunResult, accs: list[float], best: float) -> list[RunResult]:
    """`run` (driven by the hardest reachable of these goal accuracies) read for each."""
    return [run if a == run.goal_accuracy else
            replace(run, time_to_goal=float(np.inf), reached=False, goal_accuracy=a)
            if a > best else
            run.for_goal(a) for a in accs]
