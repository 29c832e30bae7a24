"""The ALRS comparison's result folder: what `lcsim live alrs-compare --out DIR` writes and
analysis reads.

    DIR/runs/<experiment>-<key>.json   one finished run each (the resume record)
    DIR/runs.parquet                   one row per (experiment, optimizer, method, seed[, rate]):
                                       RUN_COLUMNS; `curve` holds the per-batch training losses
    DIR/seed_study.parquet             ALRS from each LR seed x seed (paper Table 4):
                                       STUDY_COLUMNS

What the paper's checkable claims read (`alrs.claims`): the chosen rate per seed (runs,
method "alrs", `lr`) against the grid's rates and final losses (method "grid"); the cost in
epochs (`tune_epochs` = tune_batches / epoch_batches, one epoch's batches); the seed study's
rates per (lr_seed, seed). `alrs_adjustment` is the ADJUSTMENT reading every ALRS run used.
    DIR/summary.parquet, summary.md    `summary.summarize` (and its markdown table)
    DIR/loss-<optimizer>.png           training-loss curves per optimizer (per experiment
                                       and optimizer, loss-<experiment>-<optimizer>.png,
                                       where a preset runs several experiments)

The Parquet files hold the provenance, the preset and its experiments as JSON under the key
`lcsim` (`common.read_meta`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESULTS", "RUNS", "RUN_COLUMNS", "RUN_FILES", "SEED_STUDY", "STUDY_COLUMNS",
           "SUMMARY", "SUMMARY_MD", "loss_plot", "write_results"]

RUN_FILES = "runs"
RUNS = "runs.parquet"
SEED_STUDY = "seed_study.parquet"
SUMMARY = "summary.parquet"
SUMMARY_MD = "summary.md"
RUN_COLUMNS = ("experiment", "dataset", "optimizer", "method", "seed", "lr", "tune_batches",
               "tune_seconds", "alt_lr", "status", "final_loss", "last_epoch_loss",
               "val_accuracy", "train_batches", "curve", "alrs_adjustment", "epoch_batches",
               "tune_epochs")
STUDY_COLUMNS = ("experiment", "dataset", "optimizer", "method", "seed", "lr_seed", "lr",
                 "tune_batches", "tune_seconds", "alrs_adjustment", "epoch_batches",
                 "tune_epochs")
# what the command writes (glob patterns: what --force replaces)
RESULTS = (RUN_FILES, RUNS, SEED_STUDY, SUMMARY, SUMMARY_MD, "loss-*.png")


def loss_plot(optimizer: str, experiment: str | None = None) -> str:
    """The loss PNG of an optimizer (of one experiment, where a run has several)."""
    return f"loss-{optimizer}.png" if experiment is None else f"loss-{experiment}-{optimizer}.png"


def write_results(out: str | os.PathLike, runs: pd.DataFrame, study: pd.DataFrame,
                  meta: dict) -> pd.DataFrame:
    """runs / seed_study / summary Parquet files (`meta` under the key `lcsim`), summary.md
    and one PNG per optimizer, each written atomically; returns the summary."""
    import matplotlib.pyplot as plt
    from lcsim.hpo_sim.live.alrs.summary import format_summary, plot_curves, summarize
    from lcsim.hpo_sim.live.common import replacing, write_parquet

    out = Path(out)
    summary = summarize(runs, study)
    for name, df in ((RUNS, runs), (SEED_STUDY, study), (SUMMARY, summary)):
        write_parquet(df, out / name, meta)
    with replacing(out / SUMMARY_MD) as tmp:
        tmp.write_text(format_summary(summary))
    several = runs["experiment"].nunique() > 1  # then one PNG per (experiment, optimizer)
    for exp, opt in runs[["experiment", "optimizer"]].drop_duplicates().itertuples(index=False):
        fig = plot_curves(runs[runs["experiment"] == exp],
                          summary[summary["experiment"] == exp], opt)
        with replacing(out / loss_plot(opt, exp if several else None)) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
    return summary
