"""The EPBT paper's checkable claims, judged on the records of an `lcsim live epbt` folder.

Each function takes the records (every DIR/<method>-seed<s>/records.parquet concatenated;
columns `results.RECORD_COLUMNS` + `h_*`) and returns `common.Claim`s.

- `beats(records, other)`: EPBT's fittest individual has a higher test accuracy than
  `other`'s ("pbt" or "baseline") at equal epochs per lineage: at the last epoch both
  reached (Fig. 2, Table 1), mean over seeds. Our value is the difference (> 0 holds); the
  member-epochs each trained go with it (EPBT trains its children only, so the same epochs
  per lineage cost it fewer member-epochs than PBT).
- `loss_functions(records)`: the number of distinct TaylorGLO parameter vectors EPBT
  evaluated per run (Section 5.2: "up to 520 unique TaylorGLO parameterizations" = 40 in
  the first generation + 20 per later one). Holds when every evaluated individual (initial or
  child) brought a loss function of its own, i.e. the count is P + (G - 1)(P - k) of the
  run's records; the paper's 520 is its value for P = 40, k = 20, G = 25.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from lcsim.hpo_sim.live.common import Claim
from lcsim.hpo_sim.live.epbt.results import H_PREFIX
from lcsim.hpo_sim.live.epbt.summary import summarize

__all__ = ["beats", "loss_functions"]

_THETAS = [f"{H_PREFIX}theta_{j}" for j in range(8)]


def beats(records: pd.DataFrame, other: str, method: str = "epbt") -> Claim:
    """`method`'s best individual's test accuracy above `other`'s at equal epochs."""
    claim = f"EPBT beats {'PBT' if other == 'pbt' else 'Baseline 1'} at equal epochs"
    scope = f"{method} vs {other}"
    curves = summarize(records)
    have = set(curves["method"])
    absent = [m for m in (method, other) if m not in have]
    if absent:
        return Claim(claim, scope, math.nan, None, paper="EPBT higher (Table 1, Fig. 2)",
                     missing=f"runs of {' and '.join(absent)}")
    last = {m: curves[curves.method == m].groupby("seed").epoch.max().min()
            for m in (method, other)}
    epoch = int(min(last.values()))

    def at(m: str) -> pd.Series:  # per seed, the best individual's accuracy at `epoch`
        c = curves[(curves.method == m) & (curves.epoch <= epoch)]
        return c.sort_values("epoch").groupby("seed").test_accuracy.last()

    ours, theirs = at(method), at(other)
    value = float(ours.mean() - theirs.mean())
    inputs = {"epoch": epoch, f"{method}_by_seed": ours.to_dict(),
              f"{other}_by_seed": theirs.to_dict()}
    if "member_epochs" in records:
        upto = records[records.epoch <= epoch]
        spent = upto.groupby(["method", "seed"]).member_epochs.max()
        inputs.update({f"{m}_member_epochs": float(spent.loc[m].mean())
                       for m in (method, other)})
    return Claim(claim, scope, value, bool(value > 0), inputs=inputs,
                 paper="EPBT higher (Table 1, Fig. 2)")


def loss_functions(records: pd.DataFrame, method: str = "epbt") -> list[Claim]:
    """Per run of `method`: distinct TaylorGLO parameter vectors among evaluated individuals."""
    claim = "EPBT evaluates a new loss function per trained individual (Section 5.2)"
    runs = records[records["method"] == method]
    if runs.empty or not set(_THETAS) <= set(runs.columns):
        return [Claim(claim, method, math.nan, None, paper=520,
                      missing=f"{method} records with TaylorGLO parameters (h_theta_*)")]
    out = []
    for seed, r in runs.groupby("seed", sort=True):
        evaluated = r[r["role"].isin(("initial", "child"))].drop_duplicates("individual")
        distinct = len(np.unique(evaluated[_THETAS].to_numpy(dtype=float), axis=0))
        pop = int((r["generation"] == 0).sum())
        gens = int(r["generation"].nunique())
        out.append(Claim(claim, f"{method} seed {seed}", float(distinct),
                         bool(distinct == len(evaluated)),
                         inputs={"evaluated": len(evaluated), "population": pop,
                                 "generations": gens},
                         paper=520))
    return out
