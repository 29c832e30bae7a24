"""EPBT's result folder: the layout `lcsim live epbt --out DIR` writes and analysis reads.

    DIR/<method>-seed<s>/records.parquet   one row per individual alive after each generation
    DIR/<method>-seed<s>/lineage.parquet   the final fittest individual's ancestry, oldest
                                           first (same columns; written last: marks the run
                                           done, so a repeated command skips it)
    DIR/summary.csv                        `summary.closing_tables` (paper Tables 1 and 2)

Records columns: RECORD_COLUMNS, then `h_<name>` per hyperparameter of the method's space
(`H_PREFIX`; EPBT's TaylorGLO loss is h_theta_0..7), then `novelty_on`, `alpha`, and
`member_epochs`: the member-epochs the run has trained by the end of that generation (EPBT's
elites are carried untrained, Algorithm 1; see `algorithm`). Every Parquet file holds the
provenance, the preset, the run's config (augment, baseline_full_train among it) and the
number of images the method trained on (`train_examples`) as JSON under the key `lcsim`
(`common.read_meta`). `claims` judges the paper's claims on the records: EPBT vs PBT and
Baseline 1 at equal epochs per lineage (`epoch`, `test_accuracy`, `member_epochs`), the
distinct loss functions evaluated (`role`, `h_theta_*`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["H_PREFIX", "LINEAGE", "RECORDS", "RECORD_COLUMNS", "RESULTS", "SUMMARY",
           "parse_run_dir", "run_dir", "run_dirs"]

RECORDS = "records.parquet"
LINEAGE = "lineage.parquet"
SUMMARY = "summary.csv"
RECORD_COLUMNS = ("method", "seed", "generation", "epoch", "individual", "parent", "partner",
                  "role", "fitness", "test_accuracy", "train_loss", "lr", "trained_epochs",
                  "diverged")
H_PREFIX = "h_"
_SEP = "-seed"
RESULTS = (f"*{_SEP}*", SUMMARY)  # what the command writes (glob patterns, for --force)


def run_dir(out: str | os.PathLike, method: str, seed: int) -> Path:
    """DIR/<method>-seed<s>: the folder of one (method, seed) run."""
    return Path(out) / f"{method}{_SEP}{seed}"


def parse_run_dir(path: str | os.PathLike) -> tuple[str, int] | None:
    """(method, seed) of a run folder, None if its name is not <method>-seed<int>."""
    method, sep, seed = Path(path).name.rpartition(_SEP)
    return (method, int(seed)) if sep and method and seed.isdigit() else None


def run_dirs(out: str | os.PathLike) -> list[Path]:
    """The run folders in `out`, sorted by name."""
    d = Path(out)
    return sorted(p for p in d.glob(f"*{_SEP}*") if p.is_dir() and parse_run_dir(p))
