"""`lcsim replay` / `lcsim study` as a user meets them: bad input is one line with exit 2 (or a
warning where the run still means something), --out folders are guarded, resumable and never
mix runs, outputs carry provenance."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from lcsim.analysis.results import load_replay
from lcsim.tabular.table import LookupTable
from lcsim.tabular.testing import write_table

from lcsim.cli import main
from lcsim.cliargs import OUT_MARKER

T = 6


def _fn(i, e):
    if i % 4 == 0:
        return np.full(T, 0.1)
    return 0.1 + (0.2 + 0.65 * ((i * 17) % 60) / 60) * (1 - np.exp(-e / (1 + i % 3)))


@pytest.fixture(scope="module")
def tdir(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("replay-cli") / "t", 30, T, _fn, per_shard=30)


def _replay(tdir, *extra):
    return main(["replay", "--table", str(tdir), "--optimizer", "random", "--goal-top", "10",
                 "--jobs", "1", "--no-progress", *extra])


@pytest.mark.parametrize("flag,value", [("--repeats", "-1"), ("--repeats", "0"),
                                        ("--jobs", "0")])
def test_counts_below_one_are_refused(tdir, user_error, flag, value):
    assert _replay(tdir, flag, value) == 2
    assert f"argument {flag}: must be an integer >= 1, got {value}" in user_error("replay")


@pytest.mark.parametrize("argv,message", [
    (["--goal-top", "150"], "Goal.top_percent must be in (0, 100], got 150.0"),
    (["--goal", "0"], "Goal.accuracy must be in (0, 1], got 0.0"),
    (["--max-time", "-1"], "max_time must be > 0 simulated seconds, got -1.0"),
    (["--workers", "0"], "argument --workers: must be an integer >= 1, got 0"),
    (["--seed", "-2"], "argument --seed: must be an integer >= 0, got -2"),
])
def test_careless_values_are_named(tdir, user_error, argv, message):
    rc = main(["replay", "--table", str(tdir), "--optimizer", "random", "--repeats", "1",
               "--no-progress", *argv])
    assert rc == 2 and message in user_error("replay")


def test_etr1_at_or_after_the_last_epoch_names_T(tdir, user_error):
    assert _replay(tdir, "--rule", "etr1:tau=999", "--repeats", "1") == 2
    line = user_error("replay")
    assert "etr1:tau=999 never fires" in line and f"T = {T} epochs" in line
    assert f"use tau <= {T - 1}" in line
    assert _replay(tdir, "--rule", f"etr1:tau={T}", "--repeats", "1") == 2  # tau = T too
    assert f"T = {T}" in user_error("replay")


def test_goal_above_every_final_accuracy_warns_with_the_best(tdir, capsys):
    best = float(np.nanmax(LookupTable.open(tdir).final_accuracy))
    assert best < 0.99
    rc = main(["replay", "--table", str(tdir), "--optimizer", "random", "--goal", "0.99",
               "--repeats", "2", "--jobs", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0  # it runs: every time to goal is inf, which is still a result
    assert (f"warning: goal acc>=0.99 (0.99) is above every final accuracy in the table "
            f"(best {best:.4g})") in captured.err
    assert captured.err.count("warning:") == 1  # once, not per setting
    assert "0%" in captured.out


def test_rule_none_beside_other_rules_is_refused(tdir, user_error):
    assert _replay(tdir, "--rule", "none", "--rule", "etr1:tau=1", "--repeats", "1") == 2
    assert "'none' cannot be combined with other rules" in user_error("replay")


def test_rule_none_alone_is_the_baseline_once(tdir, capsys):
    assert _replay(tdir, "--rule", "none", "--repeats", "2") == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.strip().startswith("random")]
    assert len(rows) == 1 and "2 replays" in out


def _preset(tmp_path, **doc):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"optimizers": ["random"], "rules": [[]], "goals": ["top:10"],
                             **doc}))
    return p


@pytest.mark.parametrize("doc,message", [
    ({"repeat": 3}, "unknown key(s) 'repeat'; allowed: optimizers, rules, goals, name"),
    ({"optimizers": "random"}, '"optimizers" must be a non-empty list such as '
                               '["smac", "random"], got "random"'),
    ({"repeats": "two"}, '"repeats" must be an integer >= 1, got "two"'),
    ({"rules": [["none", "median"]]}, "'none' cannot be combined"),
    ({"options": {"workers": "2"}}, 'options.workers must be int, got "2"'),
    ({"seed": -1}, '"seed" must be an integer >= 0, got -1'),
])
def test_bad_presets_name_the_key_and_value(tdir, tmp_path, user_error, doc, message):
    preset = _preset(tmp_path, **doc)
    rc = main(["study", "--preset", str(preset), "--table", str(tdir), "--jobs", "1",
               "--no-progress"])
    assert rc == 2
    line = user_error("study")
    assert f"preset {preset}" in line and message in line


def test_missing_preset_lists_the_shipped_ones(tdir, user_error):
    assert main(["study", "--preset", "nope", "--table", str(tdir)]) == 2
    line = user_error("study")
    assert "no preset 'nope'" in line and "choi-fig4" in line


def test_a_parquet_file_or_an_empty_folder_is_not_a_table(tdir, tmp_path, user_error):
    f = tmp_path / "one.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(f)
    assert _replay(f) == 2
    line = user_error("replay")
    assert "is a file, not a table" in line and "a table is a directory holding meta.json" in line
    (tmp_path / "empty").mkdir()
    assert _replay(tmp_path / "empty") == 2
    assert "no committed shards" in user_error("replay")
    assert _replay(tmp_path / "missing") == 2
    assert "no such table directory" in user_error("replay")


def test_out_refuses_other_settings_and_force_leaves_no_stale_trace(tdir, tmp_path,
                                                                    user_error):
    out = tmp_path / "o"
    (tmp_path / "o").mkdir()
    (out / "notes.txt").write_text("mine")
    assert _replay(tdir, "--rule", "etr1:tau=1", "--rule", "median", "--repeats", "2",
                   "--out", str(out)) == 0
    assert _replay(tdir, "--rule", "etr1:tau=1", "--repeats", "3", "--out", str(out)) == 2
    line = user_error("replay")
    assert "holds results of other settings" in line and "--force" in line
    assert "summary.csv" in line and "traces" in line
    assert len(load_replay(out).summary) == 2  # nothing of the refused run
    # a study with fewer settings than last time: --force, and only its traces remain
    assert _replay(tdir, "--repeats", "2", "--out", str(out), "--force") == 0
    assert sorted(p.name for p in (out / "traces").iterdir()) == ["000.parquet"]
    assert not (out / "audit.csv").exists()  # no rules: no audit of the earlier run left
    res = load_replay(out)
    assert len(res.summary) == 1 and set(res.traces["rules"]) == {"none"}
    assert (out / "notes.txt").read_text() == "mine"


def test_same_settings_resume_and_more_repeats_reuse_the_first(tdir, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["--optimizer", "hyperband", "--rule", "etr1:tau=1", "--out", str(out)]
    assert _replay(tdir, *args, "--repeats", "2") == 0
    assert len(list((out / "runs").glob("*.pkl"))) == 4
    assert _replay(tdir, *args, "--repeats", "3") == 0  # same settings, more repeats
    assert len(list((out / "runs").glob("*.pkl"))) == 6
    assert load_replay(out).summary["repeats"].tolist() == [3] * 4  # random + hyperband


def test_outputs_record_provenance(tdir, tmp_path):
    out = tmp_path / "o"
    assert _replay(tdir, "--rule", "etr1:tau=1", "--repeats", "2", "--seed", "5",
                   "--out", str(out)) == 0
    prov = json.loads((out / "summary.json").read_text())["provenance"]
    assert prov["code_revision"] and prov["versions"]["numpy"] == np.__version__
    assert prov["command"].startswith("lcsim replay --table ") and prov["seed"] == 5
    assert prov["table"] == str(tdir) and prov["table_meta"]["epochs"] == T
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(out / "traces" / "001.parquet").metadata[b"lcsim_replay"])
    assert meta["setting"]["rules"] == ["etr1:tau=1"]
    assert meta["code_revision"] == prov["code_revision"]
    record = json.loads((out / OUT_MARKER).read_text())
    assert record["seed"] == 5 and len(record["settings"]) == 2


def test_a_second_command_on_a_busy_out_is_refused(tdir, tmp_path, user_error):
    out = tmp_path / "busy"
    code = ("import sys, time; from lcsim.cliargs import prepare_out; "
            "prepare_out(sys.argv[1], {}, force=False); print('held', flush=True); "
            "time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _replay(tdir, "--repeats", "1", "--out", str(out)) == 2
        line = user_error("replay")
        assert f"is in use by another running lcsim command (pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    assert _replay(tdir, "--repeats", "1", "--out", str(out)) == 0  # the OS freed the lock


def test_killed_replay_resumes_to_the_same_results(tdir, tmp_path):
    out, fresh = tmp_path / "killed", tmp_path / "fresh"
    args = ["replay", "--table", str(tdir), "--optimizer", "hyperband", "--rule",
            "etr1:tau=1", "--goal-top", "10", "--jobs", "1", "--no-progress", "--seed", "3"]
    proc = subprocess.Popen([sys.executable, "-m", "lcsim.cli", *args, "--repeats", "5000",
                             "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "runs").glob("*.pkl"))) < 20:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the main process alone, mid-run
    finally:
        proc.wait()
    assert not (out / "summary.csv").exists()
    kept = len(list((out / "runs").glob("*.pkl")))
    assert main([*args, "--repeats", "30", "--out", str(out)]) == 0
    assert main([*args, "--repeats", "30", "--out", str(fresh)]) == 0
    assert kept >= 20
    a, b = load_replay(out), load_replay(fresh)
    pd.testing.assert_frame_equal(a.traces, b.traces)
    pd.testing.assert_frame_equal(a.summary, b.summary)


def test_study_flag_errors_name_the_flag_not_the_preset(tdir, user_error):
    assert main(["study", "--preset", "readme", "--table", str(tdir), "--max-time", "-5"]) == 2
    line = user_error("study")
    assert "max_time must be > 0 simulated seconds, got -5.0" in line and "preset" not in line


def test_unreachable_dask_scheduler_is_a_user_error(tdir, user_error):
    import dask
    import distributed  # noqa: F401  (its config defaults load first: set() restores them)

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        rc = main(["replay", "--table", str(tdir), "--optimizer", "hyperband", "--repeats", "1",
                   "--no-progress", "--dask-scheduler", "tcp://127.0.0.1:1"])
    assert rc == 2
    assert "--dask-scheduler tcp://127.0.0.1:1: cannot connect" in user_error("replay")
