"""The paper's tables from EPBT records: best-individual curves, Tables 1 and 2.

`summarize(records)` is, per generation, the fittest individual's test accuracy (what the
paper plots); `closing_tables(records)` is Table 1 (final test accuracy, mean and std over
seeds) and Table 2 (the epochs EPBT needed to pass each baseline's mean final accuracy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["closing_tables", "epochs_to_pass", "summarize"]


def summarize(records: pd.DataFrame) -> pd.DataFrame:
    """Per generation, the fittest individual's test accuracy (what the paper plots)."""
    idx = (records.sort_values(["fitness", "individual"], ascending=[False, True])
           .groupby(["method", "seed", "generation"], sort=True).head(1))
    return idx[["method", "seed", "generation", "epoch", "individual", "fitness",
                "test_accuracy"]].sort_values(["method", "seed", "generation"]).reset_index(
        drop=True)


def epochs_to_pass(curve: pd.DataFrame, target: float) -> int | None:
    """First epoch at which `curve` (summarize() rows of one run) exceeds `target`; None if never
    (the paper's Table 2)."""
    hit = curve[curve.test_accuracy > target]
    return None if hit.empty else int(hit.epoch.min())


def closing_tables(records: pd.DataFrame) -> pd.DataFrame:
    """Table 1 (final test accuracy mean/std over seeds) + Table 2 (epochs EPBT needed to pass
    each baseline's mean final accuracy, per EPBT seed, then mean) as one DataFrame."""
    curves = summarize(records)
    final = curves[curves.generation == curves.groupby(["method", "seed"]).generation
                   .transform("max")]
    t1 = final.groupby("method").test_accuracy.agg(["mean", "std", "count"]).reset_index()
    t1.columns = ["method", "final_test_acc_mean", "final_test_acc_std", "seeds"]
    rows = []
    for _, r in t1.iterrows():
        row = dict(r)
        for ev in ("epbt",):
            if ev not in set(curves.method) or r.method == ev:
                continue
            eps = [epochs_to_pass(c, r.final_test_acc_mean)
                   for _, c in curves[curves.method == ev].groupby("seed")]
            passed = [e for e in eps if e is not None]
            row[f"{ev}_epochs_to_pass"] = float(np.mean(passed)) if passed else np.nan
            row[f"{ev}_runs_passing"] = f"{len(passed)}/{len(eps)}"
        rows.append(row)
    return pd.DataFrame(rows)
