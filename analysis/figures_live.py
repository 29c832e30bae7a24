"""Figures of the live comparisons: ALRS, ESGD and EPBT (with TaylorGLO loss shapes).

Every function takes DataFrames as hpo_sim.live writes them (Parquet records read back with
pandas) and returns a matplotlib Figure; none reads or writes files. Each names the columns it
needs and raises a ValueError naming any that are missing.

- ALRS (hpo_sim.live.alrs.compare: OUT/runs.parquet, OUT/seed_study.parquet): per-batch
  loss curves per optimizer, method and seed; the seed study (LR found per LR seed and seed).
- ESGD (hpo_sim.live.esgd `ESGDResult.records`, DIR/<method>/records.parquet): one row per
  individual per generation with `fitness` (a loss: lower is better), `selected`, `elite`,
  `offspring`.
- EPBT (hpo_sim.live.epbt `EPBTResult` records / lineage, DIR/<method>-seed<s>/*.parquet):
  one row per individual alive after each generation with `fitness` (validation accuracy:
  higher is better), `test_accuracy`, `lr`, `h_momentum`, and `h_theta_0..7` for TaylorGLO
  methods.

(A little over 400 lines: the three methods' figures share one column check and one style.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._style import band_stats, log_if_wide, new_figure, plain_log_labels, require_columns

__all__ = [
    "alrs_curves",
    "alrs_loss_curves",
    "alrs_seed_figure",
    "alrs_seed_table",
    "esgd_fitness_bands",
    "esgd_offspring_share",
    "epbt_best_curves",
    "epbt_test_accuracy",
    "epbt_best_hyperparameters",
    "taylorglo_binary_loss",
    "taylorglo_shapes",
]

# Fixed colours per method so the same method looks the same in every figure.
_METHOD_COLORS = {
    "alrs": "tab:green", "standard": "tab:blue", "x10": "tab:red", "x0.1": "tab:orange",
    "range-test": "tab:purple", "range_test": "tab:purple",
    "esgd": "tab:green", "population": "tab:orange", "single": "tab:red",
    "no-evolution": "tab:gray",
    "epbt": "tab:green", "pbt": "tab:orange", "baseline": "tab:red", "epbt-ce": "tab:blue",
    "epbt-no-pbd": "tab:cyan", "epbt-no-novelty": "tab:olive",
}


def _color(method: str, fallback_index: int) -> str:
    return _METHOD_COLORS.get(str(method), f"C{fallback_index % 10}")


def _methods(df: pd.DataFrame, col: str, order: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(df[col].astype(str)))
    if order is None:
        return present
    return [m for m in order if m in present] + [m for m in present if m not in order]


# ---------------------------------------------------------------------------------- ALRS
_ALRS_ORDER = ("alrs", "standard", "x10", "x0.1", "range_test", "prodigy", "hypergrad")


def alrs_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame of per-batch training losses from hpo_sim.live.alrs.compare's runs table.

    runs: one row per (optimizer, method, seed[, grid lr]) with `curve` (the loss of every
    training batch). Returns columns optimizer, method, seed, lr, batch (1-based),
    train_loss (and experiment, when the runs have it). Grid runs are reduced, per experiment
    and optimizer, to the grid rate with the lowest mean `final_loss` (NaN if a seed
    diverged), labelled "grid best (lr X)", as the comparison's own plot does.
    """
    require_columns(runs, ["optimizer", "method", "seed", "lr", "curve"], "alrs_curves")
    keep = []
    by = ["experiment", "optimizer"] if "experiment" in runs.columns else ["optimizer"]
    for _, g in runs.groupby(by, sort=False):
        grid = g[g["method"] == "grid"]
        keep.append(g[g["method"] != "grid"])
        if not grid.empty and "final_loss" in grid.columns:
            best = grid.groupby("lr")["final_loss"].agg(lambda s: s.mean(skipna=False)).idxmin()
            keep.append(grid[np.isclose(grid["lr"], best)].assign(
                method=f"grid best (lr {best:.2g})"))
    frames = []
    for _, r in pd.concat(keep).iterrows():
        c = np.asarray(r["curve"], dtype=float)
        frames.append(pd.DataFrame({**{k: r[k] for k in by}, "method": r["method"],
                                    "seed": r["seed"], "lr": r["lr"],
                                    "batch": np.arange(1, len(c) + 1), "train_loss": c}))
    if not frames:
        raise ValueError("alrs_curves: no run has a loss curve")
    return pd.concat(frames, ignore_index=True)


def _several_experiments(frame: pd.DataFrame) -> bool:
    return "experiment" in frame.columns and frame["experiment"].nunique() > 1


def _panel_keys(frame: pd.DataFrame, col: str) -> pd.Series:
    """Each row's panel: its `col` value, prefixed by its experiment where the frame holds
    several (a preset's MNIST and CIFAR runs of one optimizer must not be pooled)."""
    keys = frame[col].astype(str)
    if _several_experiments(frame):
        keys = frame["experiment"].astype(str) + " / " + keys
    return keys


def alrs_loss_curves(curves: pd.DataFrame, *, panel_col: str | None = "optimizer",
                     method_col: str = "method", seed_col: str = "seed",
                     x_col: str = "batch", loss_col: str = "train_loss", smooth: int = 10,
                     order: Sequence[str] | None = _ALRS_ORDER,
                     title: str | None = None) -> Figure:
    """ALRS paper Tables 1-3 as curves: training loss (log scale) per method, mean over seeds
    with a band of one standard error (the paper's error bars), one panel per optimizer.

    curves: one row per method, seed and step (`x_col`, e.g. `alrs_curves(runs)`); each
    seed's curve is smoothed by a running mean over `smooth` steps before averaging (per-batch
    losses are noisy). The legend gives each method's mean learning rate when `lr` is known.
    """
    cols = [method_col, seed_col, x_col, loss_col] + ([panel_col] if panel_col else [])
    require_columns(curves, cols, "alrs_loss_curves")
    if smooth < 1:
        raise ValueError(f"alrs_loss_curves: smooth must be >= 1, got {smooth}")
    keys = _panel_keys(curves, panel_col) if panel_col else None
    panels = list(dict.fromkeys(keys)) if panel_col else [None]
    fig, axes = new_figure(1, len(panels), width=6.6, height=3.8)
    for ax, panel in zip(axes[0], panels, strict=True):
        df = curves if panel is None else curves[keys == panel]
        for i, method in enumerate(_methods(df, method_col, order)):
            sub = df[df[method_col].astype(str) == method]
            wide = sub.pivot_table(index=seed_col, columns=x_col, values=loss_col,
                                   aggfunc="mean")
            x = wide.columns.to_numpy(dtype=float)
            v = wide.to_numpy(dtype=float)
            k = max(1, min(smooth, v.shape[1]))
            if k > 1:  # running mean per seed; 'valid' part only, so no edge artefacts
                kern = np.ones(k) / k
                v = np.stack([np.convolve(row, kern, mode="valid") for row in v])
                x = x[k - 1:]
            v = np.where(v > 0, v, np.nan)  # log axis: a zero or negative loss cannot be drawn
            mid, lo, hi = band_stats(v, "sem")
            c = _color(method, i)
            lr = f", lr {sub['lr'].mean():.2g}" if "lr" in sub.columns else ""
            ax.plot(x, mid, lw=1.4, color=c, label=f"{method}{lr}")
            floor = np.nanmin(v) / 10 if np.isfinite(v).any() else 1e-12
            ax.fill_between(x, np.clip(lo, floor, None), hi, color=c, alpha=0.2, lw=0)
        ax.set_yscale("log")
        plain_log_labels(ax.yaxis)
        ax.set_xlabel(f"training {x_col.replace('_', ' ')}"
                      + (f" (running mean of {smooth})" if smooth > 1 else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("training loss (log scale)")
        ax.grid(alpha=0.3)
        n_seeds = df[seed_col].nunique()
        ax.legend(fontsize=7, title=f"mean ± s.e.\nover {n_seeds} seeds", title_fontsize=7,
                  loc="upper left", bbox_to_anchor=(1.02, 1.0))
        if panel is not None:
            ax.set_title(f"{panel_col} {panel}")
    fig.suptitle(title or "Training loss by choice of initial learning rate")
    return fig


def alrs_seed_table(study: pd.DataFrame, *, lr_seed_col: str = "lr_seed",
                    random_seed_col: str = "seed", lr_col: str = "lr",
                    group_col: str | None = "optimizer") -> pd.DataFrame:
    """ALRS paper Table 4: the LR found by ALRS per initial LR seed (rows; per `group_col`,
    e.g. optimizer, when the frame has it) and random seed (columns), plus the mean, the
    standard error and the % variation (se / mean) over random seeds."""
    require_columns(study, [lr_seed_col, random_seed_col, lr_col], "alrs_seed_table")
    index = [group_col, lr_seed_col] if group_col and group_col in study.columns else \
        [lr_seed_col]
    if _several_experiments(study):  # one experiment's rates are not another's
        index = ["experiment", *index]
    wide = study.pivot_table(index=index, columns=random_seed_col, values=lr_col,
                             aggfunc="mean").sort_index()
    n = wide.notna().sum(axis=1)
    wide.columns = [f"seed {c}" for c in wide.columns]
    vals = wide.to_numpy(dtype=float)
    wide["mean"] = np.nanmean(vals, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        wide["se"] = np.where(n > 1, np.nanstd(vals, axis=1, ddof=1) / np.sqrt(n), np.nan)
    wide["variation %"] = 100 * wide["se"] / wide["mean"]
    return wide


def alrs_seed_figure(study: pd.DataFrame, *, lr_seed_col: str = "lr_seed",
                     random_seed_col: str = "seed", lr_col: str = "lr",
                     group_col: str | None = "optimizer", title: str | None = None) -> Figure:
    """The seed table as a plot: LR found by ALRS against its initial LR seed (log x), one
    line per random seed, one panel per optimizer; a flat line means ALRS does not depend on
    where it starts."""
    require_columns(study, [lr_seed_col, random_seed_col, lr_col], "alrs_seed_figure")
    use_groups = bool(group_col) and group_col in study.columns
    keys = _panel_keys(study, group_col) if use_groups else None
    groups = list(dict.fromkeys(keys)) if use_groups else [None]
    fig, axes = new_figure(1, len(groups), width=4.6, height=3.6)
    for ax, group in zip(axes[0], groups, strict=True):
        df = study if group is None else study[keys == group]
        for i, (rs, sub) in enumerate(df.groupby(random_seed_col, sort=True)):
            sub = sub.sort_values(lr_seed_col)
            ax.plot(sub[lr_seed_col], sub[lr_col], marker="o", ms=4, lw=1,
                    color=f"C{i % 10}", label=f"random seed {rs}")
        ax.set_xscale("log")
        ylog = log_if_wide(ax, "y", df[lr_col])
        if ylog:
            plain_log_labels(ax.yaxis)
        ax.set_xlabel("initial LR seed (log scale)")
        ax.set_ylabel("learning rate found by ALRS" + (" (log scale)" if ylog else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if group is not None:
            ax.set_title(f"{group_col} {group}")
    fig.suptitle(title or "ALRS learning rate vs initial LR seed")
    return fig


# ---------------------------------------------------------------------------------- ESGD
def _population(records: pd.DataFrame) -> pd.DataFrame:
    """Rows of individuals in the population after each generation (`selected`)."""
    if "selected" in records.columns:
        return records[records["selected"].astype(bool)]
    return records


def esgd_fitness_bands(records: pd.DataFrame, *, top: int = 15, method_col: str = "method",
                       fitness_label: str = "training loss (fitness)",
                       log: bool = False, title: str | None = None) -> Figure:
    """ESGD paper Figure 1: fitness over generations. For every method with a population the
    band spans the best to the `top`-th best fitness of the population after each generation
    (lower is better: its lower edge is the best individual); a one-member method (the single
    baseline) is a line.

    records: ESGD records of one or several methods (concatenate the per-method frames).
    """
    require_columns(records, [method_col, "generation", "fitness"], "esgd_fitness_bands")
    if top < 1:
        raise ValueError(f"esgd_fitness_bands: top must be >= 1, got {top}")
    pop = _population(records)
    fig, axes = new_figure(1, 1, width=6.0, height=4.0)
    ax = axes[0, 0]
    order = ("single", "population", "no-evolution", "esgd")
    for i, method in enumerate(_methods(pop, method_col, order)):
        sub = pop[pop[method_col].astype(str) == method]
        g = sub.groupby("generation")["fitness"]
        best = g.min()
        kth = g.apply(lambda f: np.sort(f.to_numpy(dtype=float))[:top][-1])
        size = int(g.size().max())
        c = _color(method, i)
        if size == 1:
            ax.plot(best.index, best.values, marker="o", ms=3, color=c, lw=1.5, label=method)
        else:
            k = min(top, size)
            ax.fill_between(best.index, best.values, kth.values, color=c, alpha=0.3, lw=0)
            ax.plot(best.index, best.values, color=c, lw=1.5, marker="o", ms=3,
                    label=f"{method}: best .. {k}th best")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("generation (0 = initial population)")
    ax.set_ylabel(fitness_label + (" (log scale)" if log else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"Fitness over generations (bands: top {top})")
    return fig


def esgd_offspring_share(records: pd.DataFrame, *, method: str = "esgd",
                         method_col: str = "method", title: str | None = None) -> Figure:
    """ESGD paper Figure 2: percentage of offspring among the m-elitist survivors per
    generation (rows with `elite` True; `offspring` marks the evolution step's children)."""
    require_columns(records, [method_col, "generation", "elite", "offspring"],
                    "esgd_offspring_share")
    sub = records[(records[method_col].astype(str) == method) & records["elite"].astype(bool)]
    if sub.empty:
        raise ValueError(f"esgd_offspring_share: no elite rows for method {method!r}; methods "
                         f"present: {sorted(records[method_col].astype(str).unique())}")
    share = sub.groupby("generation")["offspring"].mean() * 100
    fig, axes = new_figure(1, 1, width=5.5, height=3.6)
    ax = axes[0, 0]
    ax.bar(share.index, share.values, color=_color(method, 0), alpha=0.8, width=0.7)
    ax.set_ylim(0, 100)
    ax.set_xlabel("generation")
    ax.set_ylabel("offspring among the elite (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"Share of offspring selected into the m-elitist ({method})")
    return fig


# ---------------------------------------------------------------------------------- EPBT
def epbt_best_curves(records: pd.DataFrame) -> pd.DataFrame:
    """Per method, seed and generation: the fittest individual's row (ties: smaller id).

    The same selection as hpo_sim.live.epbt.summary.summarize (what the paper plots), with
    every column (the hyperparameter figures need the h_* columns).
    """
    require_columns(records, ["method", "seed", "generation", "epoch", "individual", "fitness",
                              "test_accuracy"], "epbt_best_curves")
    best = (records.sort_values(["fitness", "individual"], ascending=[False, True])
            .groupby(["method", "seed", "generation"], sort=True).head(1))
    return best.sort_values(["method", "seed", "generation"]).reset_index(drop=True)


def epbt_test_accuracy(records: pd.DataFrame, *, zoom_top: float | None = None,
                       order: Sequence[str] | None = ("epbt", "pbt", "baseline"),
                       title: str | None = None) -> Figure:
    """EPBT paper Figure 2: test accuracy of each method's fittest individual over training
    epochs, mean over seeds with one standard error. The top panel zooms into the best
    accuracies (from `zoom_top`, default: the lowest final mean minus a margin)."""
    best = epbt_best_curves(records)
    fig, axes = new_figure(2, 1, width=6.0, height=2.8, sharex=True)
    finals = []
    for i, method in enumerate(_methods(best, "method", order)):
        sub = best[best["method"].astype(str) == method]
        wide = sub.pivot_table(index="seed", columns="epoch", values="test_accuracy")
        x = wide.columns.to_numpy(dtype=float)
        mid, lo, hi = band_stats(wide.to_numpy(dtype=float), "sem")
        finals.append(mid[np.isfinite(mid)][-1] if np.isfinite(mid).any() else np.nan)
        for ax in axes[:, 0]:
            ax.plot(x, mid, color=_color(method, i), lw=1.5, marker="o", ms=3,
                    label=f"{method} (n={wide.shape[0]} seeds)")
            ax.fill_between(x, lo, hi, color=_color(method, i), alpha=0.2, lw=0)
    zoom, full = axes[0, 0], axes[1, 0]
    if zoom_top is None and np.isfinite(finals).any():
        zoom_top = max(0.0, float(np.nanmin(finals)) - 0.02)
    if zoom_top is not None:
        zoom.set_ylim(zoom_top, min(1.0, zoom.get_ylim()[1]))
    zoom.set_title("zoomed in")
    zoom.set_ylabel("test accuracy")
    full.set_ylabel("test accuracy")
    full.set_xlabel("training epoch")
    full.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
    full.legend(fontsize=8, title="mean ± s.e.", title_fontsize=8)
    fig.suptitle(title or "Test accuracy of the fittest individual over training")
    return fig


def epbt_best_hyperparameters(records: pd.DataFrame, *, method: str = "epbt",
                              seed: int | None = None, title: str | None = None) -> Figure:
    """EPBT paper Figure 6: learning rate (linear and log scale) and momentum of the fittest
    individual of each generation in one run (`method`, `seed`; default the smallest seed)."""
    require_columns(records, ["method", "seed", "generation", "lr", "h_momentum"],
                    "epbt_best_hyperparameters")
    best = epbt_best_curves(records)
    best = best[best["method"].astype(str) == method]
    if best.empty:
        raise ValueError(f"epbt_best_hyperparameters: no records for method {method!r}")
    seed = int(best["seed"].min()) if seed is None else seed
    run = best[best["seed"] == seed]
    if run.empty:
        raise ValueError(f"epbt_best_hyperparameters: method {method!r} has no seed {seed}; "
                         f"seeds: {sorted(best['seed'].unique())}")
    fig, axes = new_figure(3, 1, width=6.0, height=2.0, sharex=True)
    g = run["generation"].to_numpy()
    for ax, col, log, label in ((axes[0, 0], "lr", False, "learning rate"),
                                (axes[1, 0], "lr", True, "learning rate (log)"),
                                (axes[2, 0], "h_momentum", False, "momentum")):
        ax.plot(g, run[col].to_numpy(dtype=float), marker="o", ms=3, color="tab:green")
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[2, 0].set_xlabel("generation")
    axes[2, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title or f"Best individual's learning rate and momentum ({method}, "
                          f"seed {seed})")
    return fig


def taylorglo_binary_loss(theta: Sequence[float], p: np.ndarray) -> np.ndarray:
    """TaylorGLO loss [m] in the 2-D binary projection: label (1, 0), prediction (p, 1 - p)
    for each predicted probability p [m] of the true class (EPBT Figure 5, after
    Gonzalez & Miikkulainen). Computed by hpo_sim.live.epbt.taylorglo, the training loss."""
    import torch
    from lcsim.hpo_sim.live.epbt.taylorglo import taylorglo_from_probs

    p = np.asarray(p, dtype=np.float64)
    y = torch.as_tensor(np.stack([p, 1 - p], axis=-1))  # [m, 2]
    x = torch.zeros_like(y)
    x[:, 0] = 1.0
    th = torch.as_tensor(np.asarray(theta, dtype=np.float64))
    return taylorglo_from_probs(x, y, th).numpy()


def taylorglo_shapes(lineages: Mapping[str, pd.DataFrame], *, n_points: int = 200,
                     relative: bool = True, title: str | None = None) -> Figure:
    """EPBT paper Figure 5: loss against the predicted probability of the true class for
    every ancestor of a run's best individual (dark: early generations, light: late), one
    panel per run, and cross-entropy -log(p) for comparison.

    lineages: run label -> lineage frame (hpo_sim.live.epbt.lineage) with `generation` and
    `h_theta_0` .. `h_theta_7`. relative: draw loss(p) - loss(1). A TaylorGLO loss carries a
    constant offset of up to thousands (theta terms that do not depend on p), which has no
    gradient and would flatten every shape; subtracting the loss of a perfect prediction
    keeps the shape, and cross-entropy is unchanged by it (-log 1 = 0).
    """
    if not lineages:
        raise ValueError("taylorglo_shapes: no lineage given")
    cols = [f"h_theta_{j}" for j in range(8)]
    for name, lin in lineages.items():
        require_columns(lin, ["generation", *cols], f"taylorglo_shapes[{name!r}]")
    p = np.linspace(0.01, 1.0, n_points)
    n = len(lineages) + 1
    ncols = min(3, int(np.ceil(np.sqrt(n))))
    nrows = -(-n // ncols)
    fig, axes = new_figure(nrows, ncols, width=3.4, height=2.7)
    gmax = max(int(lin["generation"].max()) for lin in lineages.values())
    cmap = colormaps["viridis"]
    norm = Normalize(0, max(gmax, 1))
    flat = axes.ravel()
    for ax, (name, lin) in zip(flat, lineages.items(), strict=False):
        for _, row in lin.sort_values("generation").iterrows():
            loss = taylorglo_binary_loss(row[cols].to_numpy(dtype=float), p)
            if relative:
                loss = loss - loss[-1]
            ax.plot(p, loss, color=cmap(norm(row["generation"])), lw=1.2)
        ax.set_title(f"{name} ({len(lin)} ancestors)", fontsize=9)
    ce = flat[len(lineages)]
    ce.plot(p, -np.log(p), color="black", lw=1.5)
    ce.set_title("cross-entropy (reference)", fontsize=9)
    for ax in flat[:n]:
        ax.set_xlabel("predicted prob. of true class")
        ax.set_ylabel("loss - loss(p=1)" if relative else "loss")
        ax.axhline(0, color="gray", lw=0.6)
        ax.grid(alpha=0.3)
    for ax in flat[n:]:
        ax.set_visible(False)
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(flat[:n]),
                      label="generation", shrink=0.8)
    cb.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title or "Loss functions of the best individual's ancestry "
                          "(2-D binary projection)")
    return fig
