"""The comparison's tables and plot: summary per (experiment, optimizer, method), the seed
study (paper Table 4), the markdown table and the training-loss curves.

`summarize(runs, study)` reads the frames of `compare.run_experiment` (columns in
`results.RUN_COLUMNS` / `results.STUDY_COLUMNS`); no torch here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["format_summary", "plot_curves", "summarize"]


def _se(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan


def summarize(runs: pd.DataFrame, study: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (experiment, optimizer, method): final loss mean +- se, LR, cost in batches.

    Grid rates appear as `grid lr=...` rows and as `grid best 3` (the three rates with the
    lowest mean final loss: loss range over them, total grid cost). `within_grid_best3` says
    whether a method's mean final loss is at most the third-best grid rate's.
    """
    out = []
    for (exp_label, opt), g in runs.groupby(["experiment", "optimizer"], sort=False):
        rows = []
        for (method, lr_key), r in g.assign(
            lr_key=np.where(g["method"] == "grid", g["lr"], np.nan)
        ).groupby(["method", "lr_key"], dropna=False, sort=False):
            name = method if method != "grid" else f"grid lr={lr_key:.3g}"
            rows.append(
                {
                    "experiment": exp_label,
                    "optimizer": opt,
                    "method": name,
                    "lr_mean": r["lr"].mean(),
                    "lr_se": _se(r["lr"]),
                    "loss_mean": r["final_loss"].mean(skipna=False),  # NaN if any seed diverged
                    "loss_se": _se(r["final_loss"]),
                    "last_epoch_loss": r["last_epoch_loss"].mean(),
                    "val_accuracy": r["val_accuracy"].mean(),
                    "tune_batches": r["tune_batches"].mean(),
                    "train_batches": r["train_batches"].mean(),
                    "diverged": int((r["status"] != "complete").sum()),
                    "n": len(r),
                }
            )
        tab = pd.DataFrame(rows)
        grid = tab[tab["method"].str.startswith("grid lr=")].sort_values("loss_mean")
        if len(grid) >= 3:
            best = grid.head(3)
            tab = pd.concat(
                [
                    tab,
                    pd.DataFrame(
                        [
                            {
                                "experiment": exp_label,
                                "optimizer": opt,
                                "method": "grid best 3",
                                "lr_mean": float(np.exp(np.log(best["lr_mean"]).mean())),
                                "lr_se": math.nan,
                                "loss_mean": best["loss_mean"].min(),
                                "loss_se": best["loss_mean"].max() - best["loss_mean"].min(),
                                "tune_batches": grid["train_batches"].sum(),
                                "train_batches": best["train_batches"].mean(),
                                "diverged": 0,
                                "n": 3,
                            }
                        ]
                    ),
                ],
                ignore_index=True,
            )
            third = best["loss_mean"].max()
            tab["within_grid_best3"] = tab["loss_mean"] <= third
        out.append(tab)
    summary = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if study is not None and len(study):
        st = study.groupby(["experiment", "optimizer"])["lr"].agg(["mean", _se, "count"])
        st = st.rename(
            columns={"mean": "study_lr_mean", "_se": "study_lr_se", "count": "study_n"}
        ).reset_index()
        st["study_variation_pct"] = 100 * st["study_lr_se"] / st["study_lr_mean"]
        summary = summary.merge(st, on=["experiment", "optimizer"], how="left")
    return summary


def plot_curves(runs: pd.DataFrame, summary: pd.DataFrame, optimizer: str, smooth: int = 10):
    """Training loss per batch (mean over seeds, running mean over `smooth`), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    r = runs[runs["optimizer"] == optimizer]
    s = summary[summary["optimizer"] == optimizer]
    best = s[s["method"].str.startswith("grid lr=")].sort_values("loss_mean").head(1)
    for method, g in r.groupby("method", sort=False):
        if method == "grid":
            if best.empty:
                continue
            g = g[np.isclose(g["lr"], best["lr_mean"].iloc[0])]
            method = f"grid best ({best['lr_mean'].iloc[0]:.2g})"
        curves = [np.asarray(c, dtype=float) for c in g["curve"] if len(c)]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        mean = np.mean([c[:n] for c in curves], axis=0)
        k = max(1, min(smooth, n))
        sm = np.convolve(mean, np.ones(k) / k, mode="valid")
        lr = g["lr"].mean()
        ax.plot(np.arange(k, n + 1), sm, label=f"{method} (lr {lr:.2g})")
    ax.set_yscale("log")
    ax.set_xlabel("batch")
    ax.set_ylabel(f"training loss (mean of seeds, running mean {smooth})")
    ax.set_title(f"{', '.join(sorted(r['experiment'].unique()))}: {optimizer}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def format_summary(summary: pd.DataFrame) -> str:
    lines = [
        "| experiment | optimizer | method | LR | final loss (mean +- se) | tune batches |"
        " train batches | within grid best 3 |",
        "|---" * 8 + "|",
    ]
    for _, r in summary.iterrows():
        pm = "range" if r["method"] == "grid best 3" else "+-"
        within = r.get("within_grid_best3", "")
        lines.append(
            f"| {r['experiment']} | {r['optimizer']} | {r['method']} | {r['lr_mean']:.3g} | "
            f"{r['loss_mean']:.4f} {pm} {r['loss_se']:.4f} | {r['tune_batches']:.0f} | "
            f"{r['train_batches']:.0f} | {within} |"
        )
    if "study_lr_mean" in summary:
        st = summary.drop_duplicates(["experiment", "optimizer"])
        lines += [
            "",
            "| experiment | optimizer | seed study mean LR | se | % variation | n |",
            "|---" * 6 + "|",
        ]
        for _, r in st.iterrows():
            if pd.notna(r.get("study_lr_mean")):
                lines.append(
                    f"| {r['experiment']} | {r['optimizer']} | {r['study_lr_mean']:.4g} | "
                    f"{r['study_lr_se']:.2g} | {r['study_variation_pct']:.1f}% | "
                    f"{r['study_n']:.0f} |"
                )
    return "\n".join(lines) + "\n"
