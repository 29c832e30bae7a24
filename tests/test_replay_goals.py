"""Goals: percentiles over complete or all configs, several goals sharing one replay per repeat,
the Choi presets of every panel of Figs 4 and 5."""

import json

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.replay import Goal, ReplayConfig, load_preset, preset_settings, replay
from lcsim.hpo_sim.replay.goals import replay_goals
from lcsim.hpo_sim.replay.study import run_settings
from lcsim.tabular.testing import make_table, write_table

from lcsim.cli import main
from lcsim.errors import PresetError

T = 6


def _acc(i, e):
    final = 0.1 + 0.85 * ((7 * i) % 40) / 39
    return 0.1 + (final - 0.1) * (1 - np.exp(-e / (1 + i % 3)))


def _seconds(i, e):
    return np.full(len(e), 30.0 + 10 * (i % 5))


@pytest.fixture(scope="module")
def table():
    return make_table(60, T, _acc, seconds=_seconds,
                      status={3: "diverged", 5: "failed", 11: "diverged"})


# ----- Goal(over=...) --------------------------------------------------------------------------
def test_percentile_over_all_counts_configs_without_a_final_accuracy_as_zero():
    # 10 configs, finals 0.1 .. 1.0; configs 0-3 diverged: complete finals 0.5 .. 1.0
    t = make_table(10, 3, lambda i, e: np.full(3, (i + 1) / 10),
                   status={i: "diverged" for i in range(4)})
    complete = np.arange(5, 11) / 10
    everything = np.r_[np.zeros(4), complete]
    assert Goal(top_percent=50).resolve(t) == pytest.approx(np.percentile(complete, 50))
    assert Goal(top_percent=50, over="all").resolve(t) == pytest.approx(
        np.percentile(everything, 50))
    assert Goal(top_percent=50, over="all").resolve(t) < Goal(top_percent=50).resolve(t)
    # an absolute goal does not rank anything: one spelling
    assert Goal(accuracy=0.9, over="all") == Goal(accuracy=0.9)


@pytest.mark.parametrize("text,goal", [
    ("top:0.5", Goal(top_percent=0.5)),
    ("top0.5%", Goal(top_percent=0.5)),
    ("top:0.25:all", Goal(top_percent=0.25, over="all")),
    ("top0.25%(all)", Goal(top_percent=0.25, over="all")),
    ("top:5:complete", Goal(top_percent=5)),
    ("0.992", Goal(accuracy=0.992)),
    ("acc>=0.7635", Goal(accuracy=0.7635)),
])
def test_goal_spellings_parse_and_labels_parse_back(text, goal):
    assert Goal.parse(text) == goal
    assert Goal.parse(str(goal)) == goal


def test_goal_parse_applies_a_default_over_only_where_the_goal_names_none():
    assert Goal.parse("top:1", over="all") == Goal(top_percent=1, over="all")
    assert Goal.parse("top:1:complete", over="all") == Goal(top_percent=1)
    assert str(Goal(top_percent=1, over="all")) == "top1%(all)"


@pytest.mark.parametrize("kw,message", [
    ({"top_percent": 1, "over": "some"}, "Goal.over must be one of"),
    ({"top_percent": 0}, r"Goal.top_percent must be in \(0, 100\]"),
])
def test_bad_goals_name_the_value(kw, message):
    with pytest.raises(ValueError, match=message):
        Goal(**kw)
    with pytest.raises(ValueError, match="bad goal 'top:x'"):
        Goal.parse("top:x")


# ----- several goals, one replay per repeat ----------------------------------------------------
GOALS = [Goal(top_percent=5), Goal(top_percent=20, over="all"), Goal(accuracy=0.5),
         Goal(accuracy=0.999)]  # the last is above every final accuracy: never reached


@pytest.mark.parametrize("optimizer,rules,workers,options", [
    ("smac", ("etr2:p=0.9",), 1, {"n_trees": 10, "n_init": 3}),
    ("random", ("median",), 2, {}),
    ("hyperband", (), 1, {}),
    ("random", ("lce:min_epochs=3",), 2, {}),  # a predicting rule: its decision log is cut too
])
def test_shared_replays_give_the_times_of_separate_single_goal_replays(
        table, optimizer, rules, workers, options):
    settings = [ReplayConfig(optimizer=optimizer, rules=rules, goal=g, workers=workers,
                             optimizer_options=options) for g in GOALS]
    shared = run_settings(table, settings, 3, 7, progress=False)
    seeds = np.random.SeedSequence(7).spawn(3)
    times = np.array([[r.time_to_goal for r in rs] for rs in shared])
    assert np.isfinite(times[:3]).all() and np.isinf(times[3]).all()
    assert len({tuple(t) for t in times[:3]}) > 1  # the goals do end the runs differently
    for s, cfg in enumerate(settings):
        for r in range(3):
            alone = replay(table, cfg, seeds[r])
            got = shared[s][r]
            assert got.time_to_goal == alone.time_to_goal  # bit-identical
            assert (got.reached, got.goal_accuracy) == (alone.reached, alone.goal_accuracy)
            if alone.reached:  # the same run: the same trace, row by row
                assert got.end_time == alone.end_time
                assert got.rule_calls == alone.rule_calls
                for c, v in alone.trace.items():
                    np.testing.assert_array_equal(got.trace[c], v, err_msg=c)
                for c, v in alone.decisions.items():  # all but the wall seconds per decision
                    if c != "seconds":
                        np.testing.assert_array_equal(got.decisions[c], v, err_msg=c)


def test_replay_goals_reads_one_run_for_every_goal(table):
    cfg = ReplayConfig(optimizer="smac", optimizer_options={"n_trees": 10, "n_init": 3})
    runs = replay_goals(table, cfg, GOALS, seed=3)
    hardest = max(runs[:3], key=lambda r: r.goal_accuracy)
    # every reached goal's trace is a prefix of the hardest reachable goal's
    for r in runs[:3]:
        k = len(r.trace["row"])
        np.testing.assert_array_equal(r.trace["row"], hardest.trace["row"][:k])
    assert runs[3].time_to_goal == np.inf and not runs[3].reached


def test_a_goal_group_runs_and_keeps_one_replay_per_repeat(table, tmp_path):
    settings = [ReplayConfig(optimizer="smac", goal=g,
                             optimizer_options={"n_trees": 10, "n_init": 3}) for g in GOALS]
    first = run_settings(table, settings, 2, 0, progress=False, resume_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pkl"))) == 2  # the shared run of each repeat
    ran = []
    again = run_settings(table, settings, 2, 0, progress=False, resume_dir=tmp_path,
                         on_result=lambda s, r, res: ran.append((s, r)))
    assert ran == []  # every goal read back from the saved runs
    assert [[r.time_to_goal for r in rs] for rs in again] == \
        [[r.time_to_goal for r in rs] for rs in first]


# ----- command line and presets ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tdir(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("goals") / "t", 40, T, _acc, per_shard=40,
                       seconds=_seconds, status={3: "diverged"})


def test_replay_with_several_goals_writes_one_summary_row_per_goal(tdir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["replay", "--table", str(tdir), "--optimizer", "random", "--rule", "median",
               "--goal-top", "5", "--goal-top", "20", "--goal", "0.5", "--goal-over", "all",
               "--repeats", "3", "--jobs", "1", "--no-progress", "--out", str(out)])
    assert rc == 0
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(set(summary["goal"])) == ["acc>=0.5", "top20%(all)", "top5%(all)"]
    assert len(summary) == 6  # (no rule, median) x 3 goals
    recorded = json.loads((out / "summary.json").read_text())["settings"]
    assert {s["goal"] for s in recorded} == {"acc>=0.5", "top20%(all)", "top5%(all)"}
    assert "top5%(all)" in capsys.readouterr().out


@pytest.mark.parametrize("name,goals", [
    ("choi-fig4-mnist", ["top0.25%(all)", "top0.5%(all)", "acc>=0.992", "acc>=0.9915"]),
    ("choi-fig5-mnist", ["top0.25%(all)", "top0.5%(all)", "acc>=0.992", "acc>=0.9915"]),
    ("choi-fig4-cifar10", ["top0.05%(all)", "top0.5%(all)", "acc>=0.7635", "acc>=0.7229"]),
    ("choi-fig5-cifar10", ["top0.05%(all)", "top0.5%(all)", "acc>=0.7635", "acc>=0.7229"]),
])
def test_choi_presets_carry_the_papers_goals_over_all_configs(name, goals):
    settings = preset_settings(load_preset(name))
    assert list(dict.fromkeys(str(c.goal) for c in settings)) == goals
    assert {c.optimizer for c in settings} == {"smac"}
    rule = "etr1" if "fig4" in name else "etr2"
    assert all(not c.rules or c.rules[0].startswith(rule) for c in settings)


def test_old_choi_names_are_the_mnist_presets():
    assert load_preset("choi-fig4")["name"] == "choi-fig4-mnist"
    assert load_preset("choi-fig5")["name"] == "choi-fig5-mnist"


def test_a_bad_goal_over_in_a_preset_is_named(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"optimizers": ["random"], "rules": [[]], "goals": ["top:5"],
                             "goal_over": "most"}))
    with pytest.raises(PresetError, match=r'"goal_over" must be one of \[.complete., .all.\], '
                                          r'got "most"'):
        load_preset(str(p))


def test_study_goals_from_the_command_line_rank_as_the_preset_says(tdir, tmp_path, capsys):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"optimizers": ["random"], "rules": [[], ["etr1:tau=1"]],
                             "goals": ["top:5"], "goal_over": "all", "repeats": 2}))
    out = tmp_path / "out"
    assert main(["study", "--preset", str(p), "--table", str(tdir), "--goal-top", "10",
                 "--goal-top", "20", "--jobs", "1", "--no-progress", "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["goal"]) == ["top10%(all)"] * 2 + ["top20%(all)"] * 2
    assert list(summary["rules"]) == ["none", "etr1:tau=1"] * 2
    assert main(["study", "--preset", str(p), "--table", str(tdir), "--goal-over", "complete",
                 "--jobs", "1", "--no-progress"]) == 0
    assert "top5% " in capsys.readouterr().out  # the preset's goal, over complete configs
