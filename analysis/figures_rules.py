"""Figures of the stopping-rule audit: what a rule buys (speed-up) against what it costs (top
configs wrongly stopped), and how well a predicting rule's probabilities are calibrated.

Like `figures_choi`, every function takes the frames `lcsim study` writes (summary.csv,
audit.csv, calibration.csv; `analysis.results.load_replay`) and returns a matplotlib Figure;
a frame that lacks a needed column is a ValueError naming it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ._style import new_figure, require_columns

__all__ = ["speedup_vs_wrong_stops", "calibration_curves"]

_KEYS = ["optimizer", "rules", "goal"]


def _panels(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(frame["optimizer"].astype(str), frame["goal"].astype(str),
                                  strict=True)))


def _colors(rules) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {r: cmap(i % 10) for i, r in enumerate(dict.fromkeys(rules))}


def speedup_vs_wrong_stops(summary: pd.DataFrame, audit: pd.DataFrame, *,
                           title: str | None = None) -> Figure:
    """Speed-up of the median time to goal over the no-rule baseline (summary: `speedup`,
    `speedup_ci_low/high`, 95% bootstrap CI) against the share of the top-k configs a run
    started that the rule stopped (audit: `top_k_stopped_share`, `share_ci_low/high`), one
    point per rule with both CIs as error bars, one panel per optimizer and goal.

    Up and to the left is better: faster to the goal, fewer good configs killed. A rule whose
    median run never reached the goal (speed-up 0 or not finite) or that never met a top-k
    config has no place on these axes; it is listed under the panel instead.
    """
    require_columns(summary, _KEYS + ["speedup", "speedup_ci_low", "speedup_ci_high"],
                    "speedup_vs_wrong_stops")
    require_columns(audit, _KEYS + ["top_k_stopped_share", "share_ci_low", "share_ci_high"],
                    "speedup_vs_wrong_stops")
    df = audit[_KEYS + ["top_k_stopped_share", "share_ci_low", "share_ci_high"]].merge(
        summary[_KEYS + ["speedup", "speedup_ci_low", "speedup_ci_high"]], on=_KEYS)
    if df.empty:
        raise ValueError("speedup_vs_wrong_stops: no rule setting in both the summary and the "
                         "audit")
    panels = _panels(df)
    colors = _colors(df["rules"].astype(str))
    fig, axes = new_figure(1, len(panels), width=4.6, height=4.0)
    for ax, (opt, goal) in zip(axes[0], panels, strict=True):
        sub = df[(df["optimizer"].astype(str) == opt) & (df["goal"].astype(str) == goal)]
        off = []
        for _, r in sub.iterrows():
            x, y = 100 * r["top_k_stopped_share"], r["speedup"]
            if not (np.isfinite(x) and np.isfinite(y) and y > 0):
                off.append(str(r["rules"]))
                continue
            xerr = [[max(x - 100 * r["share_ci_low"], 0)], [max(100 * r["share_ci_high"] - x, 0)]]
            yerr = [[max(y - r["speedup_ci_low"], 0)], [max(r["speedup_ci_high"] - y, 0)]]
            yerr = np.nan_to_num(yerr, nan=0.0, posinf=0.0)
            ax.errorbar(x, y, xerr=np.nan_to_num(xerr), yerr=yerr, fmt="o", ms=6, capsize=3,
                        color=colors[str(r["rules"])], lw=1)
            ax.annotate(str(r["rules"]), (x, y), xytext=(4, 4), textcoords="offset points",
                        fontsize=7)
        ax.axhline(1.0, color="tab:red", ls="--", lw=1)
        ax.set_xlim(left=-3, right=max(103, ax.get_xlim()[1]))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("top-k configs stopped, % of those started (95% CI)")
        ax.set_ylabel("speed-up over no rule (95% CI)")
        ax.set_title(f"{opt}, goal {goal}")
        ax.grid(alpha=0.3)
        if off:
            ax.text(0.02, 0.02, "not shown: " + ", ".join(off), transform=ax.transAxes,
                    fontsize=7, va="bottom", color="0.3")
    handles = [Line2D([], [], color="tab:red", ls="--", label="no rule (speed-up 1)")]
    fig.legend(handles=handles, loc="outside lower center", fontsize=8)
    fig.suptitle(title or "What a stopping rule buys against the top configs it kills")
    return fig


def calibration_curves(calibration: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Reliability of a predicting rule's P(y(T) > incumbent's final): per probability bin
    (calibration.csv: `bin_low`, `bin_high`, `n`, `mean_prob`, `frequency`) the observed
    frequency against the mean predicted probability, one line per rule, marker area by the
    bin's count; the diagonal is perfect calibration. One panel per optimizer and goal."""
    require_columns(calibration, _KEYS + ["n", "mean_prob", "frequency"], "calibration_curves")
    panels = _panels(calibration)
    colors = _colors(calibration["rules"].astype(str))
    fig, axes = new_figure(1, len(panels), width=4.0, height=4.0)
    for ax, (opt, goal) in zip(axes[0], panels, strict=True):
        sub = calibration[(calibration["optimizer"].astype(str) == opt)
                          & (calibration["goal"].astype(str) == goal)]
        ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1)
        for rule, g in sub.groupby(sub["rules"].astype(str), sort=False):
            n = g["n"].to_numpy(dtype=float)
            ax.plot(g["mean_prob"], g["frequency"], "-", color=colors[rule], lw=1,
                    label=f"{rule} ({int(n.sum())} predictions)")
            ax.scatter(g["mean_prob"], g["frequency"], s=10 + 90 * n / n.max(),
                       color=colors[rule], alpha=0.7)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("predicted P(final > incumbent's final)")
        ax.set_ylabel("observed frequency")
        ax.set_title(f"{opt}, goal {goal}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title or "Calibration of the predicted probability of beating the incumbent")
    return fig
