"""Figures of Choi et al. (learning curves, hyperparameters, time to goal) from tables and replays.

Every function takes data objects (a `tabular.LookupTable` or anything with the same arrays, and
pandas DataFrames written by `hpo_sim.replay`) and returns a matplotlib Figure; none reads or
writes files. Column names follow hpo_sim.replay's traces and summaries; each function names
the columns it needs and raises a ValueError naming any that are missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from ._style import (
    fitted_suptitle,
    legend_columns,
    log_if_wide,
    new_figure,
    plain_log_labels,
    require_columns,
    time_unit,
)

__all__ = [
    "final_accuracy",
    "hyperparameter_frame",
    "learning_curves",
    "final_accuracy_vs_hyperparameters",
    "time_to_goal_distributions",
    "best_so_far",
]

BASELINE_RULE = "none"  # hpo_sim.replay's label of the run without any stopping rule
_BASELINE_COLOR = "tab:red"
_RULE_COLOR = "tab:blue"


def final_accuracy(table) -> np.ndarray:
    """Last recorded validation accuracy of each config, shape [n] (NaN if none recorded).

    Unlike `LookupTable.final_accuracy` (complete configs only), a diverged config counts with
    its last finite accuracy, so it shows up in scatter plots at the accuracy it reached.
    """
    acc = np.asarray(table.acc, dtype=float)
    ok = np.isfinite(acc)
    last = np.where(ok.any(axis=1), acc.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1), -1)
    out = np.full(acc.shape[0], np.nan)
    has = last >= 0
    out[has] = acc[np.flatnonzero(has), last[has]]
    return out


_NOT_HPARAMS = {"config_id", "n_params", "flops", "status", "error", "hyperparameters",
                "source_config"}


def hyperparameter_frame(table) -> pd.DataFrame:
    """One row per config (table row order): hyperparameters in their own units, `status`
    and `final_accuracy` (last recorded accuracy, see `final_accuracy`).

    A table of unknown space (imported) has its hyperparameters as JSON text; they are
    expanded into one column per key.
    """
    configs = table.configs_frame().reset_index(drop=True)
    if "hyperparameters" in configs.columns:
        hp = pd.DataFrame([json.loads(s) for s in configs["hyperparameters"]])
    else:
        hp = configs[[c for c in configs.columns if c not in _NOT_HPARAMS]]
    frame = hp.reset_index(drop=True).copy()
    if len(frame) != len(table.ids):
        raise ValueError(f"hyperparameter_frame: {len(frame)} config rows for "
                         f"{len(table.ids)} curves")
    frame["status"] = np.asarray(table.status).astype(str)
    frame["final_accuracy"] = final_accuracy(table)
    return frame


def _space_params(table) -> dict:
    """name -> pregen.spaces.Param of the table's space, or {} for imported tables."""
    space = getattr(table, "space", None)
    return {p.name: p for p in space.params} if space is not None else {}


def learning_curves(table, n: int = 100, *, seed: int = 0, title: str | None = None) -> Figure:
    """Choi et al. Figs 1-2: validation accuracy vs epoch of random / top / bottom `n` configs.

    Top and bottom rank complete configs by final accuracy (`LookupTable.top_k` /
    `bottom_k`); the random panel draws `n` configs with at least one recorded epoch, with
    `np.random.default_rng(seed)`. Panels show fewer curves when the table is smaller.
    """
    if n < 1:
        raise ValueError(f"learning_curves: n must be >= 1, got {n}")
    acc = np.asarray(table.acc, dtype=float)
    recorded = np.flatnonzero(np.asarray(table.n_recorded) > 0)
    n_complete = int((np.asarray(table.status).astype(str) == "complete").sum())
    if recorded.size == 0 or n_complete == 0:
        raise ValueError("learning_curves: the table has no complete config to rank")
    k_rand, k_rank = min(n, recorded.size), min(n, n_complete)
    rng = np.random.default_rng(seed)
    panels = (
        (f"(a) random {k_rand}", rng.choice(recorded, size=k_rand, replace=False), "tab:gray"),
        (f"(b) top {k_rank}", table.rows(table.top_k(k_rank)), "tab:green"),
        (f"(c) bottom {k_rank}", table.rows(table.bottom_k(k_rank)), "tab:red"),
    )
    epochs = np.arange(1, acc.shape[1] + 1)
    fig, axes = new_figure(1, 3, width=3.6, height=3.0, sharey=True)
    for ax, (label, pick, color) in zip(axes[0], panels, strict=True):
        # one Line2D per config is slow for thousands; a single line with NaN breaks is fast.
        xs = np.concatenate([np.append(epochs, np.nan)] * len(pick))
        ys = np.concatenate([np.append(acc[r], np.nan) for r in pick])
        ax.plot(xs, ys, color=color, alpha=0.35, lw=0.8, marker="." if len(epochs) == 1 else "")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_xlim(1, max(acc.shape[1], 2))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("validation accuracy")
    axes[0, 0].set_ylim(-0.02, 1.02)
    meta = getattr(table, "meta", None) or {}
    dataset = meta.get("dataset")
    fitted_suptitle(fig, title or f"Learning curves{' of ' + str(dataset) if dataset else ''} "
                                  f"({len(acc)} configs in the table)")
    return fig


def final_accuracy_vs_hyperparameters(table, *, params: Sequence[str] | None = None,
                                      ncols: int = 3, title: str | None = None) -> Figure:
    """Final validation accuracy against each hyperparameter, one small panel each.

    Learning rate (and any other log-scaled parameter of the table's space, such as
    lcbench-mlp's batch size and max units; for an imported
    table, any positive parameter spanning two decades or more) gets a log x axis;
    categorical and few-valued integer parameters are spread over their values with a little
    jitter. Diverged configs are drawn as red crosses at their last finite accuracy.
    """
    frame = hyperparameter_frame(table)
    kinds = _space_params(table)
    available = [c for c in frame.columns if c not in ("final_accuracy", "status")]
    names = list(params) if params is not None else (list(kinds) or available)
    bad = [p for p in names if p not in available]
    if bad:
        raise ValueError(f"final_accuracy_vs_hyperparameters: unknown parameter(s) {bad}; "
                         f"the table has {available}")
    if not names:
        raise ValueError("final_accuracy_vs_hyperparameters: no hyperparameter to plot")
    ncols = max(1, min(ncols, len(names)))
    nrows = -(-len(names) // ncols)
    fig, axes = new_figure(nrows, ncols, width=3.0, height=2.4, sharey=True)
    y = frame["final_accuracy"].to_numpy(dtype=float)
    div = frame["status"].to_numpy() == "diverged"
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=len(frame))  # display only
    for ax, name in zip(axes.ravel(), names, strict=False):
        col = frame[name]
        param = kinds.get(name)
        n_values = col.nunique()
        if (param is not None and param.kind == "cat") or not pd.api.types.is_numeric_dtype(col):
            cats = (list(param.choices) if param is not None and param.kind == "cat"
                    else sorted(col.astype(str).unique()))
            x = col.astype(str).map({str(c): i for i, c in enumerate(cats)}).to_numpy(float)
            x = x + jitter
            ax.set_xticks(range(len(cats)), [str(c) for c in cats])
        elif (pd.api.types.is_integer_dtype(col) and n_values <= 12
              and not (param is not None and param.log)):
            x = col.to_numpy(dtype=float) + jitter
            ax.set_xticks(sorted(col.unique()))
            ax.set_xlim(col.min() - 0.6, col.max() + 0.6)
        else:
            x = col.to_numpy(dtype=float)
            if param is not None and param.log:
                ax.set_xscale("log")
                plain_log_labels(ax.xaxis)  # 16..512: 20, 50, 100, not overlapping 2x10^1
            elif param is None:  # imported table: log when positive and >= 2 decades wide,
                log_if_wide(ax, "x", x, decades=2.0)  # the rule tabular's importer uses
        ax.scatter(x[~div], y[~div], s=6, alpha=0.5, lw=0, color="tab:blue")
        if div.any():
            ax.scatter(x[div], y[div], s=12, marker="x", lw=0.8, color="tab:red")
        ax.set_xlabel(name.replace("_", " ") + (" (log scale)" if ax.get_xscale() == "log"
                                                else ""))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("final val. accuracy")
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    handles = [Line2D([], [], ls="", marker="o", ms=4, color="tab:blue",
                      label=f"complete ({int((~div).sum())})")]
    if div.any():
        handles.append(Line2D([], [], ls="", marker="x", color="tab:red",
                              label=f"diverged, last finite epoch ({int(div.sum())})"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8,
               ncols=legend_columns(fig, [h.get_label() for h in handles]))
    fitted_suptitle(fig, title or "Final validation accuracy against each hyperparameter")
    return fig


def time_to_goal_distributions(summary: pd.DataFrame, *, rule_col: str = "rules",
                               goal_col: str = "goal", time_col: str = "time_to_goal",
                               baseline: str = BASELINE_RULE, log: bool = False,
                               title: str | None = None) -> Figure:
    """Choi et al. Figs 4-5: box plots of simulated time to goal per rule setting, per goal.

    summary: one row per replayed run with the rule setting (`rule_col`, the no-rule run
    labelled `baseline`), the goal (`goal_col`) and the simulated seconds to reach it
    (`time_col`, inf or NaN when the budget ended first). Runs that never reached the goal
    cannot be placed on the time axis; each tick label says how many of the runs did.
    The baseline box is red and its median is a dashed red line across the panel.
    """
    require_columns(summary, [rule_col, goal_col, time_col], "time_to_goal_distributions")
    t = summary[time_col].to_numpy(dtype=float)
    unit, scale = time_unit(t[np.isfinite(t)])
    goals = list(dict.fromkeys(summary[goal_col].astype(str)))
    rules = list(dict.fromkeys(summary[rule_col].astype(str)))
    if baseline in rules:  # baseline first, as in the paper
        rules.remove(baseline)
        rules.insert(0, baseline)
    width = max(3.5, 0.95 * len(rules) + 1.0)
    fig, axes = new_figure(1, len(goals), width=width, height=3.6, sharey=False)
    for ax, goal in zip(axes[0], goals, strict=True):
        sub = summary[summary[goal_col].astype(str) == goal]
        data, labels, colors = [], [], []
        for rule in rules:
            v = sub.loc[sub[rule_col].astype(str) == rule, time_col].to_numpy(dtype=float)
            if v.size == 0:
                continue
            ok = v[np.isfinite(v)] / scale
            data.append(ok if ok.size else np.array([np.nan]))
            labels.append(rule.replace(",", "\n").replace("+", "+\n") + f"\n({ok.size}/{v.size})")
            colors.append(_BASELINE_COLOR if rule == baseline else _RULE_COLOR)
        bp = ax.boxplot(data, patch_artist=True, widths=0.6, showfliers=True)
        for box, color in zip(bp["boxes"], colors, strict=True):
            box.set(facecolor=color, alpha=0.35, edgecolor=color)
        for med in bp["medians"]:
            med.set(color="black")
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
        if baseline in sub[rule_col].astype(str).values and np.isfinite(data[0]).any():
            ax.axhline(np.nanmedian(data[0]), color=_BASELINE_COLOR, ls="--", lw=1)
        if log:
            ax.set_yscale("log")
        ax.set_title(f"goal {goal}")
        ax.set_xlabel("stopping rule\n(runs reaching the goal / runs)")
        ax.set_ylabel(f"simulated time to goal ({unit})")
        ax.grid(axis="y", alpha=0.3)
    handles = []
    if baseline in rules:
        handles += [Patch(facecolor=_BASELINE_COLOR, alpha=0.35, label=f"no rule ({baseline})"),
                    Line2D([], [], color=_BASELINE_COLOR, ls="--", label="no-rule median")]
    if any(r != baseline for r in rules):
        handles.append(Patch(facecolor=_RULE_COLOR, alpha=0.35, label="with stopping rule"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8,
               ncols=legend_columns(fig, [h.get_label() for h in handles]))
    fitted_suptitle(fig, title or "Distribution of simulated time to reach the goal accuracy")
    return fig


def _step_on_grid(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Value of a right-continuous step function (events at `times`) at each grid point."""
    order = np.argsort(times, kind="stable")
    t, v = times[order], values[order]
    # best so far may be NaN before the first finished config: carry the last finite value.
    v = pd.Series(v).ffill().to_numpy(dtype=float)
    idx = np.searchsorted(t, grid, side="right") - 1
    out = np.full(grid.shape, np.nan)
    out[idx >= 0] = v[idx[idx >= 0]]
    return out


def best_so_far(traces: pd.DataFrame, *, method_col: str = "optimizer",
                repeat_col: str = "repeat", time_col: str = "time",
                value_col: str = "best_so_far", panel_col: str | None = None,
                goal: float | Mapping[str, float] | None = None, n_grid: int = 200,
                log_time: bool = True, title: str | None = None) -> Figure:
    """SMAC vs random search: best accuracy found so far over simulated time.

    traces: one row per finished job with the method (`method_col`), repeat, simulated seconds
    (`time_col`) and best final accuracy of a fully trained config so far (`value_col`). Each
    repeat is a step function sampled on a shared grid; the line is the median over repeats and
    the band the 25th-75th percentiles. A repeat that stopped (goal reached) keeps its last
    value. Before a repeat's first fully trained config it has no value and ranks below any
    accuracy, so the median appears once half of the repeats have one.
    panel_col: one panel per value of this column (e.g. "goal"). goal: the goal accuracy as a
    dotted line (one number, or panel value -> number).
    """
    cols = [method_col, repeat_col, time_col, value_col] + ([panel_col] if panel_col else [])
    require_columns(traces, cols, "best_so_far")
    t_all = traces[time_col].to_numpy(dtype=float)
    t_pos = t_all[np.isfinite(t_all) & (t_all > 0)]
    if t_pos.size == 0:
        raise ValueError(f"best_so_far: column {time_col!r} has no positive finite time")
    unit, scale = time_unit(t_pos)
    if log_time:
        grid = np.geomspace(t_pos.min(), t_pos.max(), n_grid)
    else:
        grid = np.linspace(0, t_pos.max(), n_grid)
    panels = (list(dict.fromkeys(traces[panel_col].astype(str))) if panel_col else [None])
    fig, axes = new_figure(1, len(panels), width=5.2, height=3.8, sharey=True)
    methods = sorted(traces[method_col].astype(str).unique())
    for ax, panel in zip(axes[0], panels, strict=True):
        df = traces if panel is None else traces[traces[panel_col].astype(str) == panel]
        for i, method in enumerate(methods):
            sub = df[df[method_col].astype(str) == method]
            if sub.empty:
                continue
            curves = np.stack([
                _step_on_grid(g[time_col].to_numpy(dtype=float),
                              g[value_col].to_numpy(dtype=float), grid)
                for _, g in sub.groupby(repeat_col, sort=True)
            ])
            # No value yet ranks below every accuracy (-inf), so each percentile is monotone
            # in time like the runs themselves; where it is still -inf nothing is drawn.
            with np.errstate(invalid="ignore"):
                q = np.percentile(np.nan_to_num(curves, nan=-np.inf), [50, 25, 75], axis=0)
            mid, lo, hi = np.where(np.isfinite(q), q, np.nan)
            color = f"C{i % 10}"
            ax.plot(grid / scale, mid, lw=1.6, color=color,
                    label=f"{method} (median of {len(curves)})")
            ax.fill_between(grid / scale, lo, hi, color=color, alpha=0.2, lw=0)
        g_acc = goal.get(panel) if isinstance(goal, Mapping) else goal
        if g_acc is not None and np.isfinite(g_acc):
            ax.axhline(g_acc, color="black", ls=":", lw=1, label=f"goal {g_acc:.4g}")
        if log_time:
            ax.set_xscale("log")
            # a narrow log range would label every minor tick; plain numbers on major ticks
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"simulated time ({unit}{', log scale' if log_time else ''})")
        ax.grid(alpha=0.3)
        ax.legend(title="band: 25-75th percentile", fontsize=8, title_fontsize=8)
        if panel is not None:
            ax.set_title(f"{panel_col} {panel}")
    axes[0, 0].set_ylabel("best validation accuracy so far")
    fitted_suptitle(fig, title or "Best accuracy so far over simulated time")
    return fig
