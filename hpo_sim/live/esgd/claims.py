"""The ESGD paper's checkable claims, judged on the frames of an `lcsim live esgd` folder.

Each function takes loaded frames (`DIR/<method>/generations.parquet`, columns
`summary.GENERATION_COLUMNS`, or `summary.generations(records, m)`; `DIR/summary.csv`,
`summary.summarize`) and returns `common.Claim`s: our value, the verdict and its inputs.

- `theorem1`: under ESGD (back-off + m-elitist selection) the m-elitist average fitness and
  the best fitness never get worse from one generation to the next (Theorem 1, Corollary 1).
  Our value is the largest increase of either between consecutive generations (a loss:
  <= 0 holds).
- `esgd_vs_population`: ESGD's final best fitness is at least as good (as low) as the
  population baseline's (Table 1: better on every task). Our value is ESGD's best minus the
  baseline's (<= 0 holds); the top-15 ranges and test errors go with it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from lcsim.hpo_sim.live.common import Claim

__all__ = ["esgd_vs_population", "theorem1"]


def theorem1(generations: pd.DataFrame, method: str = "esgd") -> Claim:
    """Best and m-elitist fitness of `method` never worse across generations."""
    claim = "ESGD best and m-elitist fitness never get worse across generations (Theorem 1)"
    g = generations[generations["method"] == method].sort_values("generation")
    if len(g) < 2:
        return Claim(claim, method, math.nan, None, paper="never worse",
                     missing=f"per-generation fitness of {method!r} over >= 2 generations")
    best = g["best_fitness"].to_numpy(dtype=float)
    elite = g["m_elitist_fitness"].to_numpy(dtype=float)
    steps = np.concatenate([np.diff(best), np.diff(elite)])
    worst = float(np.max(np.where(np.isnan(steps), np.inf, steps)))
    return Claim(claim, method, worst, bool(worst <= 0),
                 inputs={"generations": g["generation"].tolist(), "best": best.tolist(),
                         "m_elitist": elite.tolist(), "m": int(g["m"].iloc[0])},
                 paper="never worse")


def esgd_vs_population(summary: pd.DataFrame) -> Claim:
    """ESGD's final best fitness at most the population baseline's (Table 1)."""
    claim = "ESGD at least as good as the population baseline (final best fitness)"
    rows = {m: r for m, r in summary.set_index("method").iterrows()}
    absent = [m for m in ("esgd", "population") if m not in rows]
    if absent:
        return Claim(claim, "esgd vs population", math.nan, None, paper="ESGD better",
                     missing=f"final populations of {' and '.join(absent)}")
    e, p = rows["esgd"], rows["population"]
    value = float(e["best_fitness"] - p["best_fitness"])
    inputs = {f"{who}_{col}": float(r[col]) for who, r in (("esgd", e), ("population", p))
              for col in ("best_fitness", "top15_fitness_low", "top15_fitness_high",
                          "best_test_error") if col in r}
    return Claim(claim, "esgd vs population", value, bool(value <= 0), inputs=inputs,
                 paper="ESGD better (Table 1, every task)")
