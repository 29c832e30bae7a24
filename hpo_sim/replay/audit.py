"""Rule audits: which configs did a rule stop that it should have let finish, and what it saved.

For every run, a stopped config (stopped by a rule, not diverged) is a "top-k loss" when its
final table accuracy ranks in the table's top k complete configs; k defaults to the number of
complete configs at or above the run's goal (the configs that would have ended the run). The
saved time of a stopped config is what its untrained epochs t+1..T would have cost (same time
model as the replay); `charged_seconds` is the compute the run did spend (worker-seconds, so
saved / (charged + saved) means the same with several workers). A rule users can trust stops
many configs, few top-k ones, and saves time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["audit_run", "audit_runs", "goal_k"]


def goal_k(table, goal_accuracy: float) -> int:
    """Number of complete configs whose final accuracy is at or above the goal (at least 1)."""
    final = np.asarray(table.final_accuracy)
    return max(1, int(np.sum(final[~np.isnan(final)] >= goal_accuracy)))


def audit_run(trace: dict[str, np.ndarray], table, costs: np.ndarray, top_k: int) -> dict:
    """Audit one run's trace (simulate.TRACE_COLUMNS). costs: [n, T] seconds per epoch."""
    stopped = np.asarray(trace["stopped"], dtype=bool)
    rows = np.asarray(trace["row"], dtype=np.int64)[stopped]
    epochs = np.asarray(trace["epochs"], dtype=np.int64)[stopped]
    top_ids = set(np.asarray(table.top_k(min(top_k, len(table)))).tolist())
    ids = np.asarray(table.ids)[rows]
    in_top = np.array([i in top_ids for i in ids.tolist()], dtype=bool)
    T = costs.shape[1]
    # seconds of the epochs after each stop: cumulative cost at T minus at the stop epoch
    cum = np.nancumsum(costs[rows], axis=1) if rows.size else np.zeros((0, T))
    saved = cum[:, -1] - cum[np.arange(rows.size), epochs - 1] if rows.size else np.zeros(0)
    # compute the run spent: per config its deepest epoch (Hyperband resumes rows)
    all_rows = np.asarray(trace["row"], dtype=np.int64)
    deepest: dict[int, int] = {}
    for r, e in zip(all_rows.tolist(), np.asarray(trace["epochs"]).tolist(), strict=True):
        deepest[r] = max(e, deepest.get(r, 0))
    charged = sum(float(np.nansum(costs[r, :e])) for r, e in deepest.items())
    return {
        "stopped": int(rows.size),
        "charged_seconds": charged,
        "stopped_top_k": int(in_top.sum()),
        "stopped_top_k_ids": ids[in_top].tolist(),
        "saved_seconds": float(saved.sum()),
        "top_k": int(top_k),
    }


def audit_runs(traces: Sequence[dict[str, np.ndarray]], table, costs: np.ndarray,
               top_k: int) -> pd.DataFrame:
    """One row per run: stopped, stopped_top_k, saved_seconds, top_k."""
    rows = [audit_run(t, table, costs, top_k) for t in traces]
    df = pd.DataFrame(rows)
    df.insert(0, "repeat", np.arange(len(rows)))
    return df
