"""ESGD's tables from its result frames: paper Table 1 and the per-generation fitness.

- `summarize(finals)`: Table 1's layout from each method's final population: the best
  individual's fitness and test error, and the top 15 (ranked by fitness) as the paper
  reports them, a range: fitness [theta_1, theta_15] (`top15_fitness_low` / `_high`) and
  their test errors [min, max]; the mean over those 15 is kept as an extra column (`_mean`).
- `generations(records, m)`: per method and generation, the population after that
  generation (the selected rows): best fitness, m-elitist average fitness (Definition 1: the
  mean of the m best), the top-15 range and the epochs each individual has trained. Theorem 1
  says the m-elitist average (and so the best) never worsens under ESGD (`claims`).

No torch here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["GENERATION_COLUMNS", "generations", "summarize"]

GENERATION_COLUMNS = ("method", "generation", "epochs", "m", "best_fitness",
                      "m_elitist_fitness", "top15_fitness_low", "top15_fitness_high",
                      "mean_fitness", "population")


def summarize(finals: dict[str, pd.DataFrame], top: int = 15,
              elite: int | None = None) -> pd.DataFrame:
    """Paper Table 1 from each method's final population (`ESGDResult.final`): one row per
    method. With `elite` (= m), also the mean fitness and test error of the m best: with a
    small mu the top 15 include the mu - m randomly kept individuals, whereas in the paper's
    populations (mu >= 100) they are all elite."""
    rows = []
    for method, final in finals.items():
        f = final.sort_values("fitness", kind="stable")
        head = f.head(top)
        row = {"method": method, "best_fitness": f["fitness"].iloc[0],
               f"top{top}_fitness_low": head["fitness"].min(),
               f"top{top}_fitness_high": head["fitness"].max(),
               f"top{top}_fitness_mean": head["fitness"].mean(),
               "best_test_error": f["test_error"].iloc[0],
               f"top{top}_test_error_low": head["test_error"].min(),
               f"top{top}_test_error_high": head["test_error"].max(),
               f"top{top}_test_error_mean": head["test_error"].mean()}
        if elite:
            row[f"top{elite}_fitness"] = f["fitness"].head(elite).mean()
            row[f"top{elite}_test_error"] = f["test_error"].head(elite).mean()
        rows.append({**row, "n_final": len(f)})
    return pd.DataFrame(rows)


def generations(records: pd.DataFrame, m: int, epochs_per_generation: int = 1) -> pd.DataFrame:
    """GENERATION_COLUMNS per (method, generation) of `records` (one or more methods' record
    frames): the population after each generation, i.e. its selected rows."""
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    rows = []
    sel = records[records["selected"].astype(bool)]
    for (method, k), g in sel.groupby(["method", "generation"], sort=True):
        f = np.sort(g["fitness"].to_numpy(dtype=float))
        rows.append({"method": method, "generation": int(k),
                     "epochs": int(k) * epochs_per_generation, "m": min(m, len(f)),
                     "best_fitness": f[0], "m_elitist_fitness": f[:m].mean(),
                     "top15_fitness_low": f[:15].min(), "top15_fitness_high": f[:15].max(),
                     "mean_fitness": f.mean(), "population": len(f)})
    return pd.DataFrame(rows, columns=list(GENERATION_COLUMNS))
