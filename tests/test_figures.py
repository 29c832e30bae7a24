"""Figure functions: axes, labels, scales, legends and plotted values on small closed-form data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcsim.analysis import figures_choi as fc
from lcsim.analysis import figures_live as fl
from lcsim.tabular.testing import make_table
from matplotlib.figure import Figure


def _acc(i: int, e: np.ndarray) -> np.ndarray:
    """Config i converges to final accuracy 0.1 + 0.85 * ((7 * i) % 30) / 29 (all distinct)."""
    final = 0.1 + 0.85 * ((7 * i) % 30) / 29
    return 0.1 + (final - 0.1) * (1 - np.exp(-e / 2))


@pytest.fixture(scope="module")
def table():
    return make_table(30, 6, _acc, status={4: "diverged", 5: "failed"})


def _visible(fig: Figure):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def _legend_texts(fig_or_ax) -> list[str]:
    legends = fig_or_ax.legends if isinstance(fig_or_ax, Figure) else [fig_or_ax.get_legend()]
    return [t.get_text() for lg in legends if lg is not None for t in lg.get_texts()]


# ------------------------------------------------------------------------ Choi figures
def test_final_accuracy_uses_last_finite_epoch(table):
    final = fc.final_accuracy(table)
    row = table.row(4)  # diverged: epochs 1..3 recorded
    assert final[row] == pytest.approx(_acc(4, np.arange(1, 4))[-1])
    assert np.isnan(final[table.row(5)])  # failed: nothing recorded
    assert final[table.row(0)] == pytest.approx(_acc(0, np.arange(1, 7))[-1])


def test_learning_curves_panels_hold_top_and_bottom(table):
    fig = fc.learning_curves(table, n=5, seed=0)
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["(a) random 5", "(b) top 5", "(c) bottom 5"]
    assert all(ax.get_xlabel() == "epoch" for ax in axes)
    assert axes[0].get_ylabel() == "validation accuracy"

    def finals(ax):  # last epoch of each NaN-separated curve
        y = ax.lines[0].get_ydata().reshape(-1, table.epochs + 1)
        return y[:, table.epochs - 1]

    top, bottom = finals(axes[1]), finals(axes[2])
    complete = table.final_accuracy[~np.isnan(table.final_accuracy)]
    assert sorted(top) == pytest.approx(sorted(complete)[-5:])
    assert sorted(bottom) == pytest.approx(sorted(complete)[:5])


def test_learning_curves_random_panel_depends_on_seed(table):
    a = fc.learning_curves(table, n=5, seed=1).axes[0].lines[0].get_ydata()
    b = fc.learning_curves(table, n=5, seed=1).axes[0].lines[0].get_ydata()
    c = fc.learning_curves(table, n=5, seed=2).axes[0].lines[0].get_ydata()
    assert np.array_equal(a, b, equal_nan=True)
    assert not np.array_equal(a, c, equal_nan=True)


def test_learning_curves_rejects_bad_n(table):
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        fc.learning_curves(table, n=0)


def test_hyperparameter_panels_log_learning_rate(table):
    fig = fc.final_accuracy_vs_hyperparameters(table)
    axes = _visible(fig)
    names = table.space.names
    assert len(axes) == len(names)
    scales = {ax.get_xlabel(): ax.get_xscale() for ax in axes}
    assert scales["learning rate (log scale)"] == "log"
    assert all(s == "linear" for k, s in scales.items() if "learning rate" not in k)
    assert all(ax.get_ylabel() == "final val. accuracy" for ax in axes[::3])
    legend = _legend_texts(fig)
    assert any(t.startswith("diverged") and "(1)" in t for t in legend)
    assert any(t.startswith("complete") for t in legend)


def test_hyperparameter_panels_of_imported_table():
    """A table of unknown space: JSON hyperparameters, log x where values span 2+ decades."""
    import json

    from lcsim.tabular.table import LookupTable
    from lcsim.tabular.testing import make_meta

    n, T = 12, 3
    hp = [{"lr": 10.0 ** -(i % 4 + 1), "opt": "ab"[i % 2], "width": i % 3 + 1} for i in range(n)]
    configs = pd.DataFrame({"config_id": np.arange(n),
                            "hyperparameters": [json.dumps(h) for h in hp],
                            "source_config": [str(i) for i in range(n)], "n_params": None,
                            "flops": None, "status": "complete", "error": None})
    curves = pd.DataFrame([dict(config_id=i, epoch=e, val_accuracy=0.1 + 0.05 * i * e / T,
                                train_loss=1.0, val_loss=1.0, train_seconds=1.0,
                                solo_seconds=1.0, eval_seconds=0.1, concurrency=1)
                           for i in range(n) for e in range(1, T + 1)])
    t = LookupTable.from_frames(configs, curves, make_meta(T, space=None))
    axes = _visible(fc.final_accuracy_vs_hyperparameters(t))
    assert [(ax.get_xlabel(), ax.get_xscale()) for ax in axes] == [
        ("lr (log scale)", "log"), ("opt", "linear"), ("width", "linear")]
    assert [x.get_text() for x in axes[1].get_xticklabels()] == ["a", "b"]


def test_hyperparameter_frame_values(table):
    frame = fc.hyperparameter_frame(table)
    assert list(frame.columns) == [*table.space.names, "status", "final_accuracy"]
    assert frame.loc[7, "learning_rate"] == pytest.approx(table.config(7)["learning_rate"])


def test_hyperparameter_unknown_param_is_named(table):
    with pytest.raises(ValueError, match="unknown parameter.*'momentum'"):
        fc.final_accuracy_vs_hyperparameters(table, params=["momentum"])


def _summary() -> pd.DataFrame:
    rows = []
    for goal in ("top1%", "top5%"):
        for r, t in enumerate([600.0, 1200.0, 1800.0]):
            rows.append(dict(rules="none", goal=goal, repeat=r, time_to_goal=t))
        for r, t in enumerate([300.0, 900.0, np.inf]):
            rows.append(dict(rules="etr1:tau=1,eps=0.05", goal=goal, repeat=r, time_to_goal=t))
    return pd.DataFrame(rows)


def test_time_to_goal_boxes_per_goal_with_baseline_marked():
    fig = fc.time_to_goal_distributions(_summary())
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["goal top1%", "goal top5%"]
    ax = axes[0]
    assert ax.get_ylabel() == "simulated time to goal (minutes)"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "none\n(3/3)"  # the baseline comes first
    assert labels[1] == "etr1:tau=1\neps=0.05\n(2/3)"  # the inf run is counted, not drawn
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(20.0)  # 1200 s
    assert {"no rule (none)", "no-rule median", "with stopping rule"} <= set(_legend_texts(fig))


def test_time_to_goal_log_scale_and_missing_column():
    fig = fc.time_to_goal_distributions(_summary(), log=True)
    assert _visible(fig)[0].get_yscale() == "log"
    with pytest.raises(ValueError, match=r"missing column\(s\) \['time_to_goal'\]"):
        fc.time_to_goal_distributions(_summary().drop(columns="time_to_goal"))


def _traces() -> pd.DataFrame:
    """Method a: repeat r reaches 0.5 at t = 10 (r + 1) and 0.9 at t = 100 (r + 1); b: 0.3."""
    rows = []
    for r in range(3):
        rows += [dict(optimizer="a", repeat=r, time=10.0 * (r + 1), best_so_far=0.5),
                 dict(optimizer="a", repeat=r, time=100.0 * (r + 1), best_so_far=0.9),
                 dict(optimizer="b", repeat=r, time=5.0, best_so_far=np.nan),
                 dict(optimizer="b", repeat=r, time=50.0, best_so_far=0.3)]
    return pd.DataFrame(rows)


def test_best_so_far_median_over_repeats():
    fig = fc.best_so_far(_traces(), goal=0.8)
    ax = _visible(fig)[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "simulated time (seconds, log scale)"
    assert ax.get_ylabel() == "best validation accuracy so far"
    assert _legend_texts(ax)[:3] == ["a (median of 3)", "b (median of 3)", "goal 0.8"]
    x, y = ax.lines[0].get_xydata().T  # method a
    # median of three step functions: 0.5 once two repeats (t >= 20) have a value,
    # 0.9 once two reached it (t >= 200); nothing drawn before t = 20
    assert np.all(np.isnan(y[x < 20 - 1e-9]))
    assert np.all(y[(x >= 20) & (x < 200 - 1e-9)] == 0.5)
    assert np.all(y[x >= 200] == 0.9)
    xb, yb = ax.lines[1].get_xydata().T  # method b: NaN until t = 50
    assert np.all(np.isnan(yb[xb < 50 - 1e-9])) and np.all(yb[xb >= 50] == 0.3)


def test_best_so_far_panels():
    tr = pd.concat([_traces().assign(goal="g1"), _traces().assign(goal="g2")])
    fig = fc.best_so_far(tr, panel_col="goal", goal={"g1": 0.8, "g2": 0.95}, log_time=False)
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["goal g1", "goal g2"]
    assert axes[1].get_xscale() == "linear"
    assert "goal 0.95" in _legend_texts(axes[1])


# ------------------------------------------------------------------------ ALRS
def _alrs_runs() -> pd.DataFrame:
    """lcsim.hpo_sim.live.alrs.compare runs: per-batch loss scale * (1 + s) / b for batch b."""
    rows = []
    for opt in ("adam", "momentum"):
        for m, scale, lr in (("standard", 1.0, 1e-3), ("alrs", 0.5, 2e-3), ("x10", 4.0, 1e-2)):
            for s in range(3):
                rows.append(dict(optimizer=opt, method=m, seed=s, lr=lr, final_loss=scale,
                                 curve=[scale * (1 + s) / b for b in range(1, 9)]))
        for lr, loss in ((0.1, 0.3), (0.01, 0.2)):  # grid: 0.01 has the lower final loss
            for s in range(3):
                rows.append(dict(optimizer=opt, method="grid", seed=s, lr=lr, final_loss=loss,
                                 curve=[loss] * 8))
    return pd.DataFrame(rows)


def test_alrs_curves_long_frame_with_best_grid_rate():
    c = fl.alrs_curves(_alrs_runs())
    assert set(c["method"]) == {"standard", "alrs", "x10", "grid best (lr 0.01)"}
    one = c[(c.optimizer == "adam") & (c.method == "alrs") & (c.seed == 2)]
    assert one["batch"].tolist() == list(range(1, 9))
    assert one["train_loss"].to_numpy() == pytest.approx(1.5 / np.arange(1, 9))


def test_alrs_loss_curves_log_scale_mean_over_seeds():
    fig = fl.alrs_loss_curves(fl.alrs_curves(_alrs_runs()), smooth=1)
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["optimizer adam", "optimizer momentum"]
    ax = axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_ylabel() == "training loss (log scale)" and ax.get_xlabel() == "training batch"
    # paper order first (alrs, standard, x10), then the rest
    assert _legend_texts(ax) == ["alrs, lr 0.002", "standard, lr 0.001", "x10, lr 0.01",
                                 "grid best (lr 0.01), lr 0.01"]
    x, y = ax.lines[0].get_xydata().T
    assert y == pytest.approx(0.5 * 2.0 / x)  # alrs: mean over seeds of 0.5 (1 + s) / b


def test_alrs_loss_curves_running_mean():
    ax = _visible(fl.alrs_loss_curves(fl.alrs_curves(_alrs_runs()), smooth=4))[0]
    x, y = ax.lines[1].get_xydata().T  # standard: mean over seeds 2 / b, then window of 4
    assert x == pytest.approx([4, 5, 6, 7, 8])
    assert y[0] == pytest.approx(np.mean(2.0 / np.arange(1, 5)))
    assert ax.get_xlabel() == "training batch (running mean of 4)"
    with pytest.raises(ValueError, match="smooth must be >= 1, got 0"):
        fl.alrs_loss_curves(fl.alrs_curves(_alrs_runs()), smooth=0)


def _alrs_seeds() -> pd.DataFrame:
    return pd.DataFrame([dict(optimizer="adam", lr_seed=lr0, seed=s, lr=0.01 * (1 + s))
                         for lr0 in (0.001, 1.0, 10.0) for s in range(2)])


def test_alrs_seed_table_and_figure():
    t = fl.alrs_seed_table(_alrs_seeds())
    assert list(t.columns) == ["seed 0", "seed 1", "mean", "se", "variation %"]
    row = t.loc[("adam", 1.0)]
    assert row["mean"] == pytest.approx(0.015)
    assert row["se"] == pytest.approx(0.005)  # std (ddof 1) 0.00707 / sqrt(2)
    assert row["variation %"] == pytest.approx(100 * 0.005 / 0.015)
    ax = _visible(fl.alrs_seed_figure(_alrs_seeds()))[0]
    assert ax.get_title() == "optimizer adam"
    assert ax.get_xscale() == "log"
    assert ax.get_yscale() == "linear"  # 0.01..0.02 is narrower than a decade
    assert _legend_texts(ax) == ["random seed 0", "random seed 1"]
    wide = _alrs_seeds().assign(lr=lambda d: d.lr_seed / 10)
    assert _visible(fl.alrs_seed_figure(wide))[0].get_yscale() == "log"


def test_alrs_figures_keep_a_presets_experiments_apart():
    # the paper preset runs mnist and cifar10 with the same optimizers: nothing is pooled
    runs = pd.concat([_alrs_runs().assign(experiment="mnist"),
                      _alrs_runs().assign(experiment="cifar10",
                                          lr=lambda d: d.lr * 100)], ignore_index=True)
    curves = fl.alrs_curves(runs)
    assert set(curves["experiment"]) == {"mnist", "cifar10"}
    assert set(curves["method"]) == {"standard", "alrs", "x10", "grid best (lr 0.01)",
                                     "grid best (lr 1)"}
    axes = _visible(fl.alrs_loss_curves(curves, smooth=1))
    assert [ax.get_title() for ax in axes] == [
        "optimizer mnist / adam", "optimizer mnist / momentum",
        "optimizer cifar10 / adam", "optimizer cifar10 / momentum"]
    seeds = pd.concat([_alrs_seeds().assign(experiment="mnist"),
                       _alrs_seeds().assign(experiment="cifar10", lr=10.0)])
    t = fl.alrs_seed_table(seeds)
    assert t.loc[("mnist", "adam", 1.0), "mean"] == pytest.approx(0.015)
    assert t.loc[("cifar10", "adam", 1.0), "mean"] == pytest.approx(10.0)
    assert len(_visible(fl.alrs_seed_figure(seeds))) == 2


# ------------------------------------------------------------------------ ESGD
def _esgd_records() -> pd.DataFrame:
    rows = []
    for g in range(3):
        for j in range(20):  # population: fitness g-dependent, individual j adds j / 100
            rows.append(dict(method="population", generation=g, individual=j, offspring=False,
                             fitness=2.0 - g * 0.5 + j / 100, elite=j < 12, selected=True))
        rows.append(dict(method="single", generation=g, individual=0, offspring=False,
                         fitness=2.5 - g * 0.5, elite=True, selected=True))
        for j in range(10):  # esgd: the parents survive, offspring 4 of 10 elite from gen 1
            kid = g > 0 and j < 4
            rows.append(dict(method="esgd", generation=g, individual=100 * g + j,
                             offspring=kid, fitness=1.0 + j / 10, elite=j < 6,
                             selected=j < 6 or not kid))
    return pd.DataFrame(rows)


def test_esgd_fitness_bands_best_to_kth():
    fig = fl.esgd_fitness_bands(_esgd_records(), top=15)
    ax = _visible(fig)[0]
    assert ax.get_xlabel() == "generation (0 = initial population)"
    assert ax.get_ylabel() == "training loss (fitness)"
    assert _legend_texts(ax) == ["single", "population: best .. 15th best",
                                 "esgd: best .. 10th best"]
    pop_line = ax.lines[1]
    assert pop_line.get_ydata() == pytest.approx([2.0, 1.5, 1.0])  # best per generation
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx(2.0 + 0.14)  # generation 0, 15th best
    assert fl.esgd_fitness_bands(_esgd_records(), log=True).axes[0].get_yscale() == "log"


def test_esgd_offspring_share_percent():
    fig = fl.esgd_offspring_share(_esgd_records())
    ax = _visible(fig)[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.0, 4 / 6 * 100, 4 / 6 * 100])
    assert ax.get_ylabel() == "offspring among the elite (%)" and ax.get_ylim() == (0, 100)
    with pytest.raises(ValueError, match="no elite rows for method 'nope'"):
        fl.esgd_offspring_share(_esgd_records(), method="nope")


# ------------------------------------------------------------------------ EPBT
def _epbt_records() -> pd.DataFrame:
    rows = []
    for method, base in (("epbt", 0.9), ("baseline", 0.8)):
        for seed in (0, 1):
            for g in range(4):
                for i in range(1 if method == "baseline" else 3):
                    rows.append(dict(method=method, seed=seed, generation=g, epoch=2 * (g + 1),
                                     individual=10 * g + i, fitness=base + 0.01 * g - 0.001 * i,
                                     test_accuracy=base + 0.01 * g + 0.002 * seed - 0.05 * i,
                                     lr=0.1 / (g + 1) + i, h_momentum=0.9 - 0.01 * g + i,
                                     **{f"h_theta_{j}": float(j + g) for j in range(8)}))
    return pd.DataFrame(rows)


def test_epbt_best_curves_picks_fittest():
    best = fl.epbt_best_curves(_epbt_records())
    assert len(best) == 2 * 2 * 4 and (best["individual"] % 10 == 0).all()


def test_epbt_test_accuracy_mean_over_seeds():
    fig = fl.epbt_test_accuracy(_epbt_records())
    zoom, full = _visible(fig)
    assert full.get_xlabel() == "training epoch" and full.get_ylabel() == "test accuracy"
    assert zoom.get_title() == "zoomed in"
    assert _legend_texts(full) == ["epbt (n=2 seeds)", "baseline (n=2 seeds)"]
    x, y = full.lines[0].get_xydata().T
    assert x == pytest.approx([2, 4, 6, 8])
    assert y == pytest.approx(0.9 + 0.01 * np.arange(4) + 0.001)  # fittest i = 0, mean seed
    assert zoom.get_ylim()[0] == pytest.approx(0.8 + 0.03 + 0.001 - 0.02)


def test_epbt_best_hyperparameters_three_panels():
    fig = fl.epbt_best_hyperparameters(_epbt_records(), seed=1)
    lin, log, mom = _visible(fig)
    assert (lin.get_yscale(), log.get_yscale(), mom.get_yscale()) == ("linear", "log", "linear")
    assert mom.get_xlabel() == "generation" and mom.get_ylabel() == "momentum"
    assert lin.lines[0].get_ydata() == pytest.approx([0.1 / (g + 1) for g in range(4)])
    with pytest.raises(ValueError, match="has no seed 7"):
        fl.epbt_best_hyperparameters(_epbt_records(), seed=7)


def _taylorglo_numpy(theta, p):
    """Equation 2 written out for label (1, 0) and prediction (p, 1 - p), independently."""
    t0, t1, t2, t3, t4, t5, t6, t7 = theta
    total = 0.0
    for x, y in ((1.0, p), (0.0, 1 - p)):
        dx, dy = x - t0, y - t1
        total = total + (t2 * dy + 0.5 * t3 * dy**2 + t4 * dy**3 / 6 + t5 * dx * dy
                         + 0.5 * t6 * dx * dy**2 + 0.5 * t7 * dx**2 * dy)
    return -total / 2


def test_taylorglo_binary_loss_matches_equation():
    theta = np.random.default_rng(0).uniform(-10, 10, size=8)
    p = np.linspace(0.05, 1, 7)
    assert fl.taylorglo_binary_loss(theta, p) == pytest.approx(_taylorglo_numpy(theta, p))


def test_taylorglo_shapes_panels_and_relative_zero_at_one():
    rec = _epbt_records()
    lin = {"run a": rec[rec.seed == 0].groupby("generation").head(1),
           "run b": rec[rec.seed == 1].groupby("generation").head(1)}
    fig = fl.taylorglo_shapes(lin)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["run a (4 ancestors)", "run b (4 ancestors)",
                                               "cross-entropy (reference)"]
    assert axes[0].get_xlabel() == "predicted prob. of true class"
    assert axes[0].get_ylabel() == "loss - loss(p=1)"
    curves = [ln for ln in axes[0].lines if len(ln.get_xdata()) > 2]
    assert len(curves) == 4 and all(ln.get_ydata()[-1] == pytest.approx(0) for ln in curves)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    with pytest.raises(ValueError, match=r"taylorglo_shapes\['x'\].*h_theta_0"):
        fl.taylorglo_shapes({"x": pd.DataFrame({"generation": [0]})})


# ------------------------------------------------------------------------ every figure fits
def _outside(fig: Figure) -> list[str]:
    """Drawn parts (figure texts and legends; each axes with its titles, labels, tick labels
    and legend) whose box leaves the figure canvas, with 1 pixel of slack."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    r = fig.canvas.get_renderer()
    fig.draw(r)
    box = fig.bbox
    parts = [(f"text {t.get_text()!r}", t) for t in fig.texts if t.get_text().strip()]
    parts += [(f"figure legend {i}", lg) for i, lg in enumerate(fig.legends)]
    parts += [(f"axes {ax.get_title()!r}", ax) for ax in _visible(fig)]
    out = []
    for name, artist in parts:
        if not artist.get_visible():
            continue
        e = artist.get_tightbbox(r)
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            out.append(name)
    return out


def _lcbench_table():
    return make_table(40, 8, _acc, space="lcbench-mlp")


@pytest.mark.parametrize("make", [
    lambda t: fc.learning_curves(t, n=5),
    lambda t: fc.final_accuracy_vs_hyperparameters(t),
    lambda t: fc.final_accuracy_vs_hyperparameters(_lcbench_table()),
    lambda t: fc.time_to_goal_distributions(
        _summary(), title="smac: simulated time to reach the goal accuracy"),
    lambda t: fc.time_to_goal_distributions(
        _summary()[_summary()["goal"] == "top1%"],
        title="random search: simulated time to reach the goal accuracy"),
    lambda t: fc.time_to_goal_distributions(_summary()[_summary()["rules"] == "none"]),
    lambda t: fc.time_to_goal_distributions(pd.concat([_summary().assign(rules=r) for r in (
        "none", "etr1:tau=1", "etr1:tau=3", "etr2:p=0.9", "median", "etr1:tau=1+median")])),
    lambda t: fc.best_so_far(_traces(), goal=0.8),
    lambda t: fc.best_so_far(pd.concat([_traces().assign(goal="top1%"),
                                        _traces().assign(goal="top5%")]), panel_col="goal"),
], ids=["curves", "hyperparameters", "hyperparameters-lcbench", "time-to-goal-long-title",
        "time-to-goal-one-goal",
        "time-to-goal-one-rule", "time-to-goal-six-rules", "best-so-far", "best-so-far-panels"])
def test_every_text_fits_the_canvas(make, table):
    assert _outside(make(table)) == []


def test_hyperparameter_panels_of_lcbench_log_integers():
    fig = fc.final_accuracy_vs_hyperparameters(_lcbench_table())
    scales = {ax.get_xlabel(): ax.get_xscale() for ax in _visible(fig)}
    assert scales["batch size (log scale)"] == scales["max units (log scale)"] == "log"
    assert scales["momentum"] == scales["weight decay"] == scales["num layers"] == "linear"


# ------------------------------------------------------------------------ rule audit figures
def _rule_frames():
    keys = {"optimizer": ["smac"] * 3, "goal": ["top5%"] * 3,
            "rules": ["etr2:p=0.9", "lce", "svr"]}
    summary = pd.DataFrame({**keys, "speedup": [1.8, 1.5, 0.0],
                            "speedup_ci_low": [1.2, 1.0, 0.0],
                            "speedup_ci_high": [2.1, 2.0, np.inf]})
    audit = pd.DataFrame({**keys, "top_k_stopped_share": [0.2, 0.1, 0.9],
                          "share_ci_low": [0.1, 0.0, 0.7], "share_ci_high": [0.3, 0.25, 1.0]})
    return summary, audit


def test_speedup_vs_wrong_stops_one_point_per_rule_with_both_cis():
    from lcsim.analysis import figures_rules as fr

    summary, audit = _rule_frames()
    fig = fr.speedup_vs_wrong_stops(summary, audit)
    ax = _visible(fig)[0]
    points = [line for line in ax.lines if line.get_marker() == "o"]
    assert sorted(p.get_xdata()[0] for p in points) == pytest.approx([10, 20])  # percent
    assert sorted(p.get_ydata()[0] for p in points) == pytest.approx([1.5, 1.8])
    texts = [t.get_text() for t in ax.texts]
    assert "etr2:p=0.9" in texts and "lce" in texts
    assert "not shown: svr" in texts  # speed-up 0: its median run never reached the goal
    with pytest.raises(ValueError, match=r"missing column\(s\) \['share_ci_low'"):
        fr.speedup_vs_wrong_stops(summary, audit.drop(columns="share_ci_low"))


def test_calibration_curves_against_the_diagonal():
    from lcsim.analysis import figures_rules as fr

    cal = pd.DataFrame({"optimizer": "random", "goal": "top5%", "rules": "lce",
                        "bin_low": [0.0, 0.5], "bin_high": [0.5, 1.0], "n": [10, 30],
                        "mean_prob": [0.1, 0.8], "frequency": [0.2, 0.7]})
    ax = _visible(fr.calibration_curves(cal))[0]
    diag, line = ax.lines[0], ax.lines[1]
    assert list(diag.get_xdata()) == [0, 1] and list(diag.get_ydata()) == [0, 1]
    np.testing.assert_allclose(line.get_ydata(), [0.2, 0.7])
    assert _legend_texts(ax) == ["lce (40 predictions)"]
