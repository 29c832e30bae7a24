"""Studies: repeats and seeds, summaries, bootstrap CIs, audits, output files, presets, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.replay import (
    Goal,
    ReplayConfig,
    audit_frame,
    audit_run,
    load_preset,
    preset_settings,
    replay,
    run_settings,
    summarize,
    with_baselines,
    write_outputs,
)
from lcsim.hpo_sim.replay.settings import PRESET_DIR
from lcsim.tabular.testing import make_table, write_table

from lcsim.errors import PresetError

T = 6


def _fn(i, e):
    if i % 4 == 0:
        return np.full(T, 0.1)  # untrainable: ETR-1 stops these
    return 0.1 + (0.2 + 0.65 * ((i * 17) % 60) / 60) * (1 - np.exp(-e / (1 + i % 3)))


@pytest.fixture(scope="module")
def table():
    return make_table(60, T, _fn, seconds=lambda i, e: 1.0 + (i % 5) + 0 * e)


def _settings():
    goal = Goal(top_percent=5)
    return with_baselines([ReplayConfig(optimizer="random", rules=("etr1:tau=1",), goal=goal)])


def test_repeats_use_spawned_child_seeds_shared_across_settings(table):
    settings = _settings()
    assert [c.rules for c in settings] == [(), ("etr1:tau=1",)]
    res = run_settings(table, settings, 4, seed=11, progress=False)
    child = np.random.SeedSequence(11).spawn(4)
    for r in range(4):
        for s, cfg in enumerate(settings):
            np.testing.assert_array_equal(res[s][r].trace["row"],
                                          replay(table, cfg, child[r]).trace["row"])
    # paired: a random-search repeat draws the same permutation with or without the rule
    for r in range(4):
        assert list(res[0][r].trace["row"]) == list(res[1][r].trace["row"])


def test_summary_speedup_and_bootstrap(table):
    settings = _settings()
    res = run_settings(table, settings, 8, seed=0, progress=False)
    summ = summarize(settings, res, seed=0)
    base, rule = (np.array([x.time_to_goal for x in rs]) for rs in res)
    row = summ.iloc[1]
    assert row["median_s"] == pytest.approx(np.median(rule))
    assert row["q25_s"] == pytest.approx(np.percentile(rule, 25))
    assert row["speedup"] == pytest.approx(np.median(base) / np.median(rule))
    assert row["speedup"] > 1  # stopping untrainable configs after 1 epoch saves time here
    assert row["median_ci_low"] <= row["median_s"] <= row["median_ci_high"]
    assert row["speedup_ci_low"] <= row["speedup"] <= row["speedup_ci_high"]
    assert summ.iloc[0]["speedup"] == 1.0
    again = summarize(settings, res, seed=0)
    pd.testing.assert_frame_equal(summ, again)  # the bootstrap is seeded


def test_audit_counts_top_k_stops_and_saved_seconds(table):
    costs = table.solo_seconds + table.eval_seconds
    top = table.top_k(3)
    rows = table.rows([top[0], top[2], 1 * 4])  # two top-3 configs and an untrainable one
    trace = {"row": rows, "epochs": np.array([2, 1, 1]),
             "stopped": np.array([True, False, True])}
    a = audit_run(trace, table, costs, top_k=3)
    assert a["stopped"] == 2 and a["stopped_top_k"] == 1 and a["stopped_top_k_ids"] == [top[0]]
    expect = costs[rows[0], 2:].sum() + costs[rows[2], 1:].sum()
    assert a["saved_seconds"] == pytest.approx(expect)


def test_audit_frame_of_an_etr1_study(table):
    settings = _settings()
    res = run_settings(table, settings, 3, seed=0, progress=False)
    aud = audit_frame(table, settings, res)
    assert len(aud) == 1  # only the setting with rules
    # ETR-1 at tau=1 stops exactly the flat 0.1 configs, none of which is in the top k
    assert aud.iloc[0]["stopped_top_k_total"] == 0
    n_flat = [np.sum(table.acc[r.trace["row"], 0] < 0.15) for r in res[1]]
    assert aud.iloc[0]["stopped_per_run"] == pytest.approx(np.mean(n_flat))
    assert 0 < aud.iloc[0]["saved_fraction"] < 1


def test_write_outputs_round_trip(table, tmp_path):
    settings = _settings()
    res = run_settings(table, settings, 2, seed=0, progress=False)
    summ = summarize(settings, res)
    d = write_outputs(tmp_path / "out", settings, res, summ, audit_frame(table, settings, res),
                      {"seed": 0})
    tr = pd.read_parquet(d / "traces" / "000.parquet")
    assert {"repeat", "iteration", "config_id", "epochs", "stopped", "time",
            "best_so_far"} <= set(tr.columns)
    assert len(tr) == sum(len(r.trace["row"]) for r in res[0])
    doc = json.loads((d / "summary.json").read_text())
    assert doc["settings"][1]["rules"] == ["etr1:tau=1"] and len(doc["summary"]) == 2
    assert pd.read_csv(d / "summary.csv").shape[0] == 2


def test_process_pool_gives_the_same_results_as_in_process(tmp_path):
    path = write_table(tmp_path / "t", 30, T, _fn, per_shard=30)
    settings = _settings()
    one = run_settings(str(path), settings, 3, seed=2, progress=False)
    two = run_settings(str(path), settings, 3, seed=2, jobs=2, progress=False)
    for a, b in zip(one, two, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x.trace["row"], y.trace["row"])
            assert x.time_to_goal == y.time_to_goal


def test_shipped_presets_parse():
    for p in PRESET_DIR.glob("*.json"):
        doc = load_preset(p.stem)
        settings = preset_settings(doc)
        n = len(doc["optimizers"]) * len(doc["goals"])
        assert len(settings) == n * len(doc["rules"])  # baselines are in every shipped grid
    with pytest.raises(PresetError, match="no preset .nope."):
        load_preset("nope")


def test_cli_replay_and_study(tmp_path, capsys):
    from lcsim.cli import main

    path = write_table(tmp_path / "t", 30, T, _fn, per_shard=30)
    out = tmp_path / "o"
    rc = main(["replay", "--table", str(path), "--optimizer", "random", "--optimizer",
               "hyperband", "--rule", "etr1:tau=1",
               "--goal-top", "10", "--repeats", "3", "--jobs", "1", "--no-progress",
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "etr1:tau=1" in text and "speed-up" in text and "Audit" in text
    assert "hyperband" in text
    assert (out / "summary.csv").exists() and len(list((out / "traces").glob("*.parquet"))) == 4
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"name": "mine", "optimizers": ["random"],
                                  "rules": [[], ["median"]], "goals": ["top:10", "0.9"],
                                  "repeats": 2}))
    rc = main(["study", "--preset", str(preset), "--table", str(path), "--jobs", "1",
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "top10%" in text and "acc>=0.9" in text


def test_charge_overhead_only_adds_time(table):
    base = ReplayConfig(optimizer="random", goal=Goal(accuracy=1.0), max_evals=10)
    a = replay(table, base, 0)
    b = replay(table, ReplayConfig(optimizer="random", goal=Goal(accuracy=1.0), max_evals=10,
                                   charge_overhead=True), 0)
    assert list(a.trace["row"]) == list(b.trace["row"])  # overhead changes time, not choices
    assert b.end_time > a.end_time


@pytest.mark.slow
def test_dask_scheduler_gives_the_same_results(tmp_path):
    from distributed import LocalCluster

    path = write_table(tmp_path / "t", 30, T, _fn, per_shard=30)
    settings = _settings()
    one = run_settings(str(path), settings, 3, seed=4, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        two = run_settings(str(path), settings, 3, seed=4, scheduler=cluster.scheduler_address,
                           progress=False)
    for a, b in zip(one, two, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x.trace["row"], y.trace["row"])


def test_cli_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    from lcsim.cli import main

    path = write_table(tmp_path / "t", 10, T, _fn, per_shard=10)
    assert main(["replay", "--table", str(path), "--rule", "etr2:p=2", "--no-progress"]) == 2
    assert "ETR2.p must be in (0, 1], got 2.0" in capsys.readouterr().err
    assert main(["study", "--preset", "nope", "--table", str(path)]) == 2
    assert "no preset 'nope'" in capsys.readouterr().err
    assert main(["replay", "--table", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_audit_charged_seconds_counts_resumed_rows_once(table):
    costs = table.solo_seconds + table.eval_seconds
    trace = {"row": np.array([1, 2, 1]), "epochs": np.array([1, 2, 3]),
             "stopped": np.array([False, False, False])}
    a = audit_run(trace, table, costs, top_k=1)
    assert a["charged_seconds"] == pytest.approx(costs[1, :3].sum() + costs[2, :2].sum())
    assert a["stopped"] == 0 and a["saved_seconds"] == 0


def test_resume_dir_skips_finished_runs(table, tmp_path):
    settings = with_baselines([ReplayConfig(optimizer="random", rules=("median",),
                                            goal=Goal(top_percent=5))])
    first = run_settings(table, settings, 3, seed=1, progress=False, resume_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pkl"))) == 3  # the numpy-path baseline is not cached
    ran = []
    more = run_settings(table, settings, 5, seed=1, progress=False, resume_dir=tmp_path,
                        on_result=lambda s, r, res: ran.append((s, r)))
    assert sorted(ran) == [(0, r) for r in range(5)] + [(1, 3), (1, 4)]  # only new median runs
    for a, b in zip(first, more, strict=True):
        for x, y in zip(a, b[:3], strict=True):
            np.testing.assert_array_equal(x.trace["row"], y.trace["row"])
    fresh = run_settings(table, settings, 5, seed=1, progress=False)
    for a, b in zip(fresh, more, strict=True):
        assert [x.time_to_goal for x in a] == [x.time_to_goal for x in b]


def test_summary_quantiles_treat_unreached_goals_as_infinite():
    from lcsim.hpo_sim.replay.simulate import RunResult
    from lcsim.hpo_sim.replay.summary import _pct

    x = np.array([1.0, 2.0, np.inf, np.inf])
    assert _pct(x, 50) == np.inf and _pct(x, 25) == pytest.approx(1.75)
    assert _pct(np.array([1.0, 2.0, np.inf]), 50) == 2.0
    cfgs = with_baselines([ReplayConfig(optimizer="random", rules=("etr1:tau=1",))])
    mk = [lambda t: RunResult(t, 5.0, np.isfinite(t), 0.9, {"row": np.zeros(1)})]
    res = [[mk[0](t) for t in (1.0, 2.0, 3.0)], [mk[0](t) for t in (np.inf, np.inf, 3.0)]]
    summ = summarize(cfgs, res)
    rule = summ.iloc[1]
    assert rule["success_rate"] == pytest.approx(1 / 3) and rule["median_s"] == np.inf
    assert rule["speedup"] == 0.0 and rule["mean_s"] == 3.0
    assert not np.isnan([rule["median_ci_low"], rule["median_ci_high"]]).any()


def test_a_none_rule_is_the_no_rule_setting():
    goal = Goal(top_percent=20)
    none = ReplayConfig(optimizer="random", rules=("none",), goal=goal)
    assert none.rules == () and none == ReplayConfig(optimizer="random", goal=goal)
    assert with_baselines([none]) == [none]  # one baseline, not two
