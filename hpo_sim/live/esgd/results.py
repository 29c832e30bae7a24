"""ESGD's result folder: the layout `lcsim live esgd --out DIR` writes and analysis reads.

    DIR/<method>/records.parquet   one row per individual per generation (RECORD_COLUMNS)
    DIR/<method>/final.parquet     the last population (FINAL_COLUMNS); written last: marks
                                   the method done, so a repeated command skips it
    DIR/summary.csv                `algorithm.summarize` of every finished method (paper
                                   Table 1 layout)

Both Parquet files hold the provenance, the preset, the config and the dataset size as JSON
under the key `lcsim` (`common.read_meta`).
"""

from __future__ import annotations

import os
from pathlib import Path

from lcsim.hpo_sim.live.esgd.config import METHODS

__all__ = ["FINAL", "FINAL_COLUMNS", "RECORDS", "RECORD_COLUMNS", "RESULTS", "SUMMARY",
           "method_dir", "method_dirs"]

RECORDS = "records.parquet"
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
