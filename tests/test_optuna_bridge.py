"""The Optuna bridge: samplers and pruners on the simulated clock, cross-checked against
lcsim's own random search and Optuna-style median rule."""

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.replay import (
    Goal,
    ReplayConfig,
    SpecError,
    audit_frame,
    candidate_rows,
    epoch_costs,
    replay,
    run_settings,
)
from lcsim.tabular.testing import make_table, write_table
from scipy.stats import ks_2samp

optuna = pytest.importorskip("optuna", reason="optuna is an optional extra: "
                                              "pip install 'lcsim[optuna]'")

T = 6


def _fn(i, e):
    rng = np.random.default_rng(i)  # seeded noise: no two curves tie at an epoch
    if i % 5 == 0:
        return np.full(T, 0.1) + rng.normal(0, 0.002, T)
    final = 0.3 + 0.65 * rng.random()
    return 0.1 + (final - 0.1) * (1 - np.exp(-e / (0.5 + 3 * rng.random()))) + rng.normal(
        0, 0.01, T)


@pytest.fixture(scope="module")
def table():
    return make_table(150, T, _fn, seconds=lambda i, e: 1.0 + (i % 4) + 0.25 * e,
                      status={7: "failed", 8: "diverged"})


def _same(a, b):
    assert (a.time_to_goal, a.end_time, a.reached) == (b.time_to_goal, b.end_time, b.reached)
    for k in a.trace:
        np.testing.assert_array_equal(a.trace[k], b.trace[k], err_msg=k)


# ----- cross-checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["random", "optuna:tpe"])
def test_optuna_median_pruner_and_lcsim_median_rule_stop_the_same_trials(table, optimizer):
    pruner = "optuna:median:n_startup_trials=0,n_warmup_steps=0"
    ours = "median:variant=optuna,min_trials=1"
    stops = 0
    budget = 30 if optimizer == "optuna:tpe" else None  # TPE's own cost grows with its trials
    for seed in range(4):
        runs = [replay(table, ReplayConfig(optimizer=optimizer, rules=(r,), max_evals=budget,
                                           goal=Goal(top_percent=2)), seed)
                for r in (pruner, ours)]
        _same(*runs)  # same stop decision for every trial, so the same run
        stops += int(runs[0].trace["stopped"].sum())
        assert not runs[0].trace["stopped"].all()
    assert stops >= 20


def test_optuna_random_sampler_and_lcsim_random_search_agree_on_time_to_goal(table):
    goal = Goal(top_percent=5)
    settings = [ReplayConfig(optimizer=o, goal=goal) for o in ("random", "optuna:random")]
    res = run_settings(table, settings, 50, seed=0, progress=False)
    ours, bridged = (np.array([r.time_to_goal for r in rs]) for rs in res)
    assert np.isfinite(ours).all() and np.isfinite(bridged).all()
    assert ks_2samp(ours, bridged).pvalue > 0.01
    # not the same runs: the bridge's own sampler picks other configs
    assert (ours != bridged).mean() > 0.5


# ----- the bridge as an optimizer --------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "nsga2"])
def test_samplers_are_reproducible_and_try_each_candidate_once(table, sampler):
    cfg = ReplayConfig(optimizer=f"optuna:{sampler}", goal=Goal(accuracy=1.0), max_evals=25,
                       workers=2)
    a, b, c = (replay(table, cfg, s) for s in (3, 3, 4))
    _same(a, b)
    assert list(a.trace["row"]) != list(c.trace["row"])
    rows = a.trace["row"]
    assert len(set(rows)) == len(rows) == 25 and set(rows) <= set(candidate_rows(table))
    costs = epoch_costs(table)
    busy = sum(costs[r, :e].sum() for r, e in zip(rows, a.trace["epochs"], strict=True))
    assert busy / 2 <= a.end_time <= busy  # two workers share the charged epochs
    # continuous learning rates, l2 and dropout: no suggestion is exactly a table config
    assert a.trace["off_table"].all() and (a.trace["snap_distance"] > 0).all()


def test_a_suggestion_that_is_a_table_config_is_not_off_table(table):
    from lcsim.hpo_sim.replay.optuna_bridge import OptunaOptimizer
    from lcsim.hpo_sim.replay.protocols import Pool

    pool = Pool(table.features, candidate_rows(table), T, table.ids, tuple(table.space.names),
                table.space)
    opt = OptunaOptimizer(pool, np.random.default_rng(0), sampler=optuna.samplers.TPESampler)
    opt.study.enqueue_trial(table.config(int(table.ids[20])))
    job = opt.ask()
    assert job.row == 20 and job.distance == 0.0
    job2 = opt.ask()
    assert job2.row != 20 and job2.distance > 0


def test_trials_report_epochs_and_end_complete_or_pruned(table):
    from lcsim.hpo_sim.replay.optuna_bridge import OptunaOptimizer

    made = []

    def keep(pool, rng, **kw):
        made.append(OptunaOptimizer(pool, rng, sampler=optuna.samplers.RandomSampler))
        return made[-1]

    res = replay(table, ReplayConfig(optimizer=keep, rules=("etr1:tau=2",),
                                     goal=Goal(accuracy=1.0), max_evals=30), 0)
    trials = made[0].study.trials
    tr = res.trace
    assert len(trials) == 30
    for trial, row, e, stopped in zip(trials, tr["row"], tr["epochs"], tr["stopped"],
                                      strict=True):
        assert trial.intermediate_values == {k: table.acc[row, k - 1] for k in range(1, e + 1)}
        if e == T:
            assert trial.state.name == "COMPLETE" and trial.value == table.acc[row, -1]
        else:
            assert trial.state.name == "PRUNED" and (stopped or table.status[row] == "diverged")
    assert tr["stopped"].any()


# ----- the bridge as a stopping rule -----------------------------------------------------------
@pytest.mark.parametrize("pruner", [
    "optuna:sha:min_resource=1", "optuna:hyperband:max_resource=6",
    "optuna:percentile:percentile=40", "optuna:threshold:lower=0.2"])
def test_pruners_decide_reproducibly_with_any_optimizer(table, pruner):
    for optimizer in ("smac", "optuna:tpe"):
        cfg = ReplayConfig(optimizer=optimizer, rules=(pruner,), goal=Goal(accuracy=1.0),
                           max_evals=30, workers=3, optimizer_options={"n_trees": 10}
                           if optimizer == "smac" else {})
        a, b = replay(table, cfg, 1), replay(table, cfg, 1)
        _same(a, b)
        assert a.trace["stopped"].any()


def test_threshold_pruner_stops_exactly_below_its_threshold(table):
    res = replay(table, ReplayConfig(optimizer="random", rules=("optuna:threshold:lower=0.15",),
                                     goal=Goal(accuracy=1.0)), 0)
    tr = res.trace
    first = table.acc[tr["row"], 0]
    np.testing.assert_array_equal(tr["stopped"], first < 0.15)
    assert (tr["epochs"][tr["stopped"]] == 1).all()


def test_pruner_objects_and_classes_are_rules_and_copied_per_run(table):
    a = replay(table, ReplayConfig(optimizer="random", goal=Goal(top_percent=3),
                                   rules=(optuna.pruners.MedianPruner(n_startup_trials=0),)), 2)
    b = replay(table, ReplayConfig(optimizer="random", goal=Goal(top_percent=3),
                                   rules=("optuna:median:n_startup_trials=0",)), 2)
    _same(a, b)
    cfg = ReplayConfig(optimizer=optuna.samplers.TPESampler, goal=Goal(top_percent=3),
                       rules=(optuna.pruners.SuccessiveHalvingPruner,),
                       optimizer_options={"n_startup_trials": 5})
    assert (cfg.optimizer_label, cfg.rule_label) == ("optuna:TPESampler",
                                                     "optuna:SuccessiveHalvingPruner")
    res = run_settings(table, [cfg, cfg], 2, seed=0, progress=False)
    for x, y in zip(*res, strict=True):  # a pruner's study never leaks into the next run
        _same(x, y)


# ----- specs, errors, outputs ------------------------------------------------------------------
@pytest.mark.parametrize("spec, msg", [
    ("optuna:bogus", r"optuna.samplers has no 'bogus'"),
    ("optuna:tpe:seed=3", "no seed option"),
    ("optuna:tpe:n_startup=3", r"has no option\(s\) \['n_startup'\]"),
])
def test_bad_optuna_specs(spec, msg):
    with pytest.raises(SpecError, match=msg):
        ReplayConfig(optimizer=spec)
    with pytest.raises(SpecError, match="optuna.pruners has no 'bogus'"):
        ReplayConfig(rules=("optuna:bogus",))
    with pytest.raises(SpecError, match=r"'optuna:median:warmup=2' has no option\(s\) "
                                        r"\['warmup'\]; allowed: \['n_startup_trials'"):
        ReplayConfig(rules=("optuna:median:warmup=2",))
    with pytest.raises(SpecError, match="give its class"):
        ReplayConfig(optimizer=optuna.samplers.TPESampler())


def test_without_optuna_the_spec_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)  # import optuna fails
    with pytest.raises(SpecError, match=r"needs Optuna.*pip install 'lcsim\[optuna\]'"):
        ReplayConfig(optimizer="optuna:tpe")
    ReplayConfig(optimizer="smac", rules=("median",))  # the rest does not need it


def test_cli_optuna_study_through_traces_summary_and_audit(tmp_path, capsys):
    from lcsim.cli import main

    path = write_table(tmp_path / "t", 60, T, _fn, per_shard=60)
    out = tmp_path / "o"
    rc = main(["replay", "--table", str(path), "--optimizer", "optuna:tpe", "--optimizer",
               "smac", "--rule", "optuna:median", "--goal-top", "5", "--repeats", "2",
               "--jobs", "1", "--no-progress", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "optuna:tpe" in text and "optuna:median" in text and "Audit" in text
    summ = pd.read_csv(out / "summary.csv")
    assert list(summ["optimizer"]) == ["optuna:tpe", "optuna:tpe", "smac", "smac"]
    tr = pd.read_parquet(out / "traces" / "001.parquet")
    assert {"off_table", "snap_distance"} <= set(tr.columns) and tr["off_table"].all()
    aud = pd.read_csv(out / "audit.csv")
    assert list(aud["rules"]) == ["optuna:median"] * 2


def test_audit_of_an_optuna_pruner(table):
    settings = [ReplayConfig(optimizer="random", goal=Goal(top_percent=5),
                             rules=("optuna:median:n_startup_trials=2",))]
    res = run_settings(table, settings, 3, seed=0, progress=False)
    aud = audit_frame(table, settings, res)
    assert aud.iloc[0]["stopped_per_run"] == pytest.approx(
        np.mean([r.trace["stopped"].sum() for r in res[0]]))


def test_suggestions_follow_the_space_scales_log_integers_included():
    from lcsim.hpo_sim.replay.optuna_bridge import _space_of
    from lcsim.hpo_sim.replay.protocols import Pool
    from lcsim.tabular.spaces import get_space

    space = get_space("lcbench-mlp")  # batch size and max units are log-scaled integers
    dists, _ = _space_of(Pool(np.zeros((1, space.dim)), np.zeros(1, dtype=np.int64), 3,
                              np.zeros(1, dtype=np.int64), tuple(space.names), space))
    D = optuna.distributions
    assert dists["batch_size"] == D.IntDistribution(16, 512, log=True)
    assert dists["max_units"] == D.IntDistribution(64, 1024, log=True)
    assert dists["num_layers"] == D.IntDistribution(1, 5)
    assert dists["learning_rate"] == D.FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["momentum"] == D.FloatDistribution(0.1, 0.99)
