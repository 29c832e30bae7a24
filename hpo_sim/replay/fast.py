"""Random search with stateless rules (none / ETR-1) on one worker, in numpy.

Such a run needs no event loop: a config's stop epoch depends only on its own curve, so a
repeat is its seeded permutation, a per-config charged time and a cumulative sum. Results are
identical to `simulate.replay` (same permutation draw, same float summation order: the epoch
costs are summed left to right with zeros after each stop, and x + 0.0 == x), which the tests
check trace by trace. `study.run_settings` uses it for eligible settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .optimizers import RandomSearch
from .resolve import resolve_rules
from .rules import ETR1, AnyOf, NoRule
from .simulate import TRACE_COLUMNS, ReplayConfig, RunResult, _num_classes, candidate_rows

__all__ = ["eligible", "random_search_runs"]


def eligible(cfg: ReplayConfig) -> bool:
    rule = resolve_rules(cfg.rules)
    return (cfg.optimizer == "random" and cfg.workers == 1 and not cfg.charge_overhead
            and not cfg.optimizer_options
            and all(isinstance(r, ETR1 | NoRule) for r in rule.rules))


def _stop_epochs(rule: AnyOf, acc: np.ndarray, n_rec: np.ndarray, num_classes: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(last trained epoch [n], stopped by a rule [n]) for ETR-1 rules; earliest stop wins."""
    n, T = acc.shape
    last = np.minimum(n_rec, T).astype(np.int64)
    stopped = np.zeros(n, dtype=bool)
    for r in rule.rules:
        if r.tau >= T:
            continue  # rules are consulted at epochs < T only
        if r.r is None and not num_classes:
            raise ValueError("ETR1: the table does not say its number of classes; give r")
        thr = (1.0 / num_classes if r.r is None else r.r) + r.eps
        with np.errstate(invalid="ignore"):
            hit = (r.tau <= n_rec) & (acc[:, r.tau - 1] < thr) & (r.tau <= last)
        stopped |= hit
        last = np.where(hit, r.tau, last)
    return last, stopped


def random_search_runs(table, cfg: ReplayConfig, seeds: Sequence, *,
                       costs: np.ndarray | None = None) -> list[RunResult]:
    """The RunResults `replay(table, cfg, seed)` would give for each seed (cfg eligible)."""
    from .simulate import table_arrays

    if not eligible(cfg):
        raise ValueError(f"random_search_runs: setting not eligible for the fast path: {cfg}")
    acc, cost, n_rec, ids, goal = table_arrays(table, cfg, costs)
    n, T = acc.shape
    last, stopped = _stop_epochs(resolve_rules(cfg.rules), acc, n_rec, _num_classes(table))
    complete = last == T
    with np.errstate(invalid="ignore"):
        hits_goal = complete & (acc[:, -1] >= goal)
    trained = np.arange(1, T + 1)[None, :] <= last[:, None]
    masked = np.where(trained, cost, 0.0)  # [n, T]
    cand = candidate_rows(table)
    out = []
    for seed in seeds:
        order = RandomSearch(cand, T, np.random.default_rng(seed))._order  # same draw
        m = len(order) if cfg.max_evals is None else min(len(order), cfg.max_evals)
        order = order[:m]
        ends = np.cumsum(masked[order].ravel())[T - 1::T] if m else np.zeros(0)
        hit = np.flatnonzero(hits_goal[order])
        k = int(hit[0]) + 1 if hit.size else m  # jobs in the run
        reached = bool(hit.size)
        end = float(ends[k - 1]) if k else 0.0
        if cfg.max_time is not None and k and ends[k - 1] > cfg.max_time:
            k = int(np.searchsorted(ends, cfg.max_time, side="right"))
            reached, end = False, float(cfg.max_time)
        rows = order[:k]
        fin = np.where(complete[rows], acc[rows, -1], -np.inf)
        best = np.maximum.accumulate(fin) if k else fin
        e = last[rows]
        cols = (np.arange(k), np.zeros(k, dtype=np.int64), ids[rows], rows,
                np.full(k, T), e, stopped[rows], (e >= n_rec[rows]) & (e < T), complete[rows],
                acc[rows, e - 1], ends[:k], np.where(np.isfinite(best), best, np.nan),
                np.zeros(k, dtype=bool), np.zeros(k))
        trace = dict(zip(TRACE_COLUMNS, cols, strict=True))
        out.append(RunResult(float(ends[k - 1]) if reached else float(np.inf), end, reached,
                             goal, trace))
    return out
