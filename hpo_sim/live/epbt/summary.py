"""The paper's tables from EPBT records: best-individual curves, Tables 1 and 2, epochs.

`summarize(records)` is, per generation, the fittest individual's test accuracy (what the
paper plots); `closing_tables(records)` is Table 1 (final test accuracy over seeds: mean and
std as the paper's table, standard error as its figures, min and max) and Table 2 (the epochs
EPBT needed to pass each baseline's mean final accuracy), with the member-epochs each method
trained. `member_epochs(records, E)` counts those: every individual trained in a generation
(all but EPBT's elites, which Algorithm 1 carries over untrained) adds E.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["closing_tables", "epochs_to_pass", "member_epochs", "summarize"]


def member_epochs(records: pd.DataFrame, epochs_per_generation: int) -> np.ndarray:
    """Cumulative member-epochs trained by the end of each row's generation, per (method,
    seed) run: E per individual alive after a generation that is not an "elite" carried over
    untrained. Returns one value per row of `records` (aligned with it)."""
    trained = (records["role"] != "elite").astype(int) * epochs_per_generation
    keys = [k for k in ("method", "seed") if k in records]
    per_gen = trained.groupby([records[k] for k in keys] + [records["generation"]]).sum()
    cum = per_gen.groupby(level=list(range(len(keys)))).cumsum() if keys else per_gen.cumsum()
    index = pd.MultiIndex.from_frame(records[keys + ["generation"]]) if keys else \
        records["generation"]
    return cum.reindex(index).to_numpy()


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
    t1 = final.groupby("method").test_accuracy.agg(
        ["mean", "std", "sem", "min", "max", "count"]).reset_index()
    t1.columns = ["method", "final_test_acc_mean", "final_test_acc_std", "final_test_acc_se",
                  "final_test_acc_min", "final_test_acc_max", "seeds"]
    if "member_epochs" in records:  # per run: the last generation's cumulative count
        last = records[records.generation == records.groupby(["method", "seed"]).generation
                       .transform("max")]
        runs = last.groupby(["method", "seed"]).member_epochs.max()
        t1["member_epochs"] = t1.method.map(runs.groupby(level=0).mean())
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
