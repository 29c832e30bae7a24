"""ESGD's result folder: the layout `lcsim live esgd --out DIR` writes and analysis reads.

    DIR/<method>/records.parquet   one row per individual per generation (RECORD_COLUMNS)
    DIR/<method>/generations.parquet  per generation, the population after it: best and
                                   m-elitist average fitness, top-15 range, epochs trained
                                   per individual (summary.GENERATION_COLUMNS; Theorem 1)
    DIR/<method>/final.parquet     the last population (FINAL_COLUMNS); written last: marks
                                   the method done, so a repeated command skips it
    DIR/summary.csv                `summary.summarize` of every finished method (paper
                                   Table 1 layout: best, top-15 range [theta_1, theta_15] of
                                   fitness and of test error, and the top-15 mean)

Every Parquet file holds the provenance, the preset, the config (fitness_on among it), the
dataset size and the fitness split's size (`fitness_examples_used`) as JSON under the key
`lcsim` (`common.read_meta`). `claims` judges the paper's claims on these frames.
"""

from __future__ import annotations

import os
from pathlib import Path

from lcsim.hpo_sim.live.esgd.config import METHODS

__all__ = ["FINAL", "FINAL_COLUMNS", "GENERATIONS", "RECORDS", "RECORD_COLUMNS", "RESULTS",
           "SUMMARY", "method_dir", "method_dirs"]

RECORDS = "records.parquet"
GENERATIONS = "generations.parquet"
FINAL = "final.parquet"
SUMMARY = "summary.csv"
RECORD_COLUMNS = ("method", "generation", "individual", "slot", "offspring", "parents",
                  "optimizer", "lr", "momentum", "fitness_start", "fitness", "backoffs",
                  "elite", "selected")
FINAL_COLUMNS = ("individual", "fitness", "test_loss", "test_error")
RESULTS = (*METHODS, SUMMARY)  # what the command writes: what --force replaces


def method_dir(out: str | os.PathLike, method: str) -> Path:
    """DIR/<method>: the folder of one method's run."""
    return Path(out) / method


def method_dirs(out: str | os.PathLike) -> list[Path]:
    """The method folders in `out` that hold records, sorted by name."""
    return sorted(p.parent for p in Path(out).glob(f"*/{RECORDS}"))
