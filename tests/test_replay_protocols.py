"""Bring your own method: the Optimizer and StoppingRule protocols, what a rule may see, spec
strings, and user methods in Python, presets and on the command line."""

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.replay import (
    ETR2,
    Goal,
    Job,
    MedianRule,
    OptimizerSpec,
    ProtocolError,
    ReplayConfig,
    SpecError,
    replay,
    resolve_optimizer,
    resolve_rule,
    resolve_rules,
    run_settings,
    summarize,
    with_baselines,
    write_outputs,
)
from lcsim.tabular.testing import make_table, write_table

T = 6


def _fn(i, e):
    rng = np.random.default_rng(i)
    if i % 5 == 0:
        return np.full(T, 0.1) + rng.normal(0, 0.002, T)
    final = 0.3 + 0.65 * rng.random()
    return 0.1 + (final - 0.1) * (1 - np.exp(-e / (0.5 + 2 * rng.random())))


def _seconds(i, e):
    return 1.0 + (i % 7) + 0.25 * e


@pytest.fixture(scope="module")
def table():
    return make_table(60, T, _fn, seconds=_seconds, status={2: "failed", 3: "diverged"})


def _same(a, b):
    assert (a.time_to_goal, a.end_time, a.reached) == (b.time_to_goal, b.end_time, b.reached)
    for k in a.trace:
        np.testing.assert_array_equal(a.trace[k], b.trace[k], err_msg=k)


# ----- user methods, as a researcher's module ---------------------------------------------------
MYMETHODS = """\
from dataclasses import dataclass

from lcsim.hpo_sim.replay import Job


@dataclass(frozen=True)
class Patience:
    \"\"\"Stop when the last k epochs brought no improvement over the best before them.\"\"\"

    k: int = 2

    def should_stop(self, curve, epoch, state):
        return epoch > self.k and curve[-self.k:].max() <= curve[:-self.k].max()


class Shuffled:
    \"\"\"Random search written against the protocol: the same permutation draw as lcsim's.\"\"\"

    def __init__(self, pool, rng, reverse=False):
        self.order = [int(r) for r in rng.permutation(pool.candidates)]
        if not reverse:
            self.order.reverse()
        self.T = pool.T

    def ask(self, pending):
        return Job(self.order.pop(), self.T) if self.order else None

    def tell(self, job, accuracy, epochs):
        pass


patience3 = Patience(3)
"""


@pytest.fixture()
def mymod(tmp_path, monkeypatch):
    """`mymethods.py` (MYMETHODS) in a folder on sys.path, freshly imported; its folder."""
    (tmp_path / "mymethods.py").write_text(MYMETHODS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mymethods", raising=False)
    return tmp_path


@pytest.fixture()
def mine(mymod):
    import mymethods

    return mymethods


def test_rule_objects_and_their_spec_strings_give_the_same_replay(table):
    goal = Goal(top_percent=5)
    for obj, spec in ((ETR2(p=0.8), "etr2:p=0.8"), (MedianRule("optuna", 1, 2),
                                                     "median:variant=optuna,grace=1,min_trials=2")):
        a = replay(table, ReplayConfig(optimizer="random", rules=(obj,), goal=goal), 4)
        b = replay(table, ReplayConfig(optimizer="random", rules=(spec,), goal=goal), 4)
        _same(a, b)
        assert ReplayConfig(rules=(obj,)).rule_label == spec


def test_a_user_optimizer_takes_the_same_path_as_the_builtin(table, mine):
    goal = Goal(top_percent=5)
    for w in (1, 3):
        for seed in (0, 1):
            theirs = replay(table, ReplayConfig(optimizer=mine.Shuffled, rules=("median",),
                                                goal=goal, workers=w), seed)
            ours = replay(table, ReplayConfig(optimizer="random", rules=("median",), goal=goal,
                                              workers=w), seed)
            _same(theirs, ours)


def test_a_user_rule_decides_as_written(table, mine):
    tr = replay(table, ReplayConfig(optimizer="random", rules=(mine.Patience(2),),
                                    goal=Goal(accuracy=1.0)), 0).trace
    for row, e, stopped in zip(tr["row"], tr["epochs"], tr["stopped"], strict=True):
        c = table.acc[row]
        first = next((t for t in range(3, T) if c[t - 2:t].max() <= c[:t - 2].max()), None)
        if stopped:
            assert e == first
        elif table.status[row] == "complete":
            assert first is None and e == T
    assert tr["stopped"].any() and not tr["stopped"].all()


# ----- what a rule sees --------------------------------------------------------------------------
class Spy:
    """Checks, at every decision, that the state holds exactly what was observed so far."""

    def __init__(self, table, log):
        self.full, self.log = table.acc, log

    def should_stop(self, curve, epoch, state):
        row = state.candidate
        np.testing.assert_array_equal(curve, self.full[row, :epoch])
        assert not curve.flags.writeable
        assert not state.acc.flags.writeable and not state.n_observed.flags.writeable
        with pytest.raises(ValueError):
            state.acc[0, 0] = 1.0
        n = state.n_observed
        assert n[row] == epoch
        seen = np.arange(1, state.T + 1)[None, :] <= n[:, None]
        np.testing.assert_array_equal(state.acc[seen], self.full[seen])  # all that was seen
        assert np.isnan(state.acc[~seen]).all()  # and nothing else
        base = curve.base  # even the memory under the curve holds nothing later
        while base is not None and base.base is not None:
            base = base.base
        if base is not None:
            np.testing.assert_array_equal(np.isnan(base.reshape(seen.shape)), ~seen)
        assert set(state.completed.tolist()) == set(np.flatnonzero(n == state.T).tolist())
        self.log.append((row, epoch, sorted(state.running.tolist())))
        return False


@pytest.mark.parametrize("workers", [1, 4])
def test_rules_see_only_what_was_observed_by_that_simulated_moment(table, workers):
    log = []
    res = replay(table, ReplayConfig(optimizer="random", rules=(Spy(table, log),),
                                     goal=Goal(accuracy=1.0), workers=workers), 0)
    assert len(log) == (res.trace["epochs"] - (res.trace["epochs"] == T)).sum()
    if workers == 1:
        assert all(running == [] for _, _, running in log)
    else:  # while a config is judged, the other workers' configs are running
        assert max(len(r) for _, _, r in log) == workers - 1
        assert all(row not in r for row, _, r in log)


def test_rule_with_memory_gets_a_fresh_copy_per_run(table, mine):
    made = []

    @dataclass(frozen=True)
    class Counting:
        def new_run(self):
            made.append(1)
            return mine.Patience(2)

        def should_stop(self, curve, epoch, state):
            raise AssertionError("the replay asks the rule new_run() returned")

    cfg = ReplayConfig(optimizer="random", rules=(Counting(), "etr1:tau=1"),
                       goal=Goal(top_percent=5))
    run_settings(table, [cfg], 3, seed=0, progress=False)
    assert len(made) == 3


def test_every_rule_of_a_combination_sees_every_event(table):
    seen = []

    class Count:
        def should_stop(self, curve, epoch, state):
            seen.append(epoch)
            return False

    tr = replay(table, ReplayConfig(optimizer="random", rules=("etr1:tau=1", Count()),
                                    goal=Goal(accuracy=1.0)), 0).trace
    assert tr["stopped"].any()  # ETR-1 stopped some at epoch 1; Count was asked all the same
    assert len(seen) == (tr["epochs"] - (tr["epochs"] == T)).sum()


# ----- what an optimizer sees ------------------------------------------------------------------
class Recorder:
    """mymethods.Shuffled, asserting at each ask that `pending` is exactly the jobs asked and
    not yet told, and that every epoch was reported before the tell."""

    sizes: list = []

    def __init__(self, pool, rng):
        import mymethods

        self.inner = mymethods.Shuffled(pool, rng)
        assert not hasattr(pool, "acc") and not pool.features.flags.writeable  # no curves
        self.running, self.reports = [], []

    def ask(self, pending):
        assert sorted(j.row for j in pending) == sorted(j.row for j in self.running)
        Recorder.sizes.append(len(pending))
        job = self.inner.ask(pending)
        self.running.append(job)
        return job

    def report(self, job, epoch, accuracy):
        self.reports.append((job.row, epoch, accuracy))

    def tell(self, job, accuracy, epochs):
        self.running.remove(job)
        mine = [e for r, e, _ in self.reports if r == job.row]
        assert mine == list(range(1, epochs + 1))  # every epoch reported, in order, before tell


@pytest.mark.parametrize("workers", [1, 3])
def test_optimizer_sees_the_jobs_pending_on_other_workers(table, workers, mine):
    Recorder.sizes = []
    res = replay(table, ReplayConfig(optimizer=Recorder, rules=("median",),
                                     goal=Goal(accuracy=1.0), workers=workers, max_evals=20), 0)
    assert len(res.trace["row"]) == 20 and len(Recorder.sizes) == 20
    assert max(Recorder.sizes) == workers - 1


def test_a_job_that_breaks_the_protocol_is_a_clear_error(table):
    class Bad:
        def __init__(self, pool, rng, job=None):
            self.job = job

        def ask(self, pending):
            return self.job

        def tell(self, job, accuracy, epochs):
            self.job = Job(job.row, T)  # asks for the same row again

    cases = [(Job(2, T), "row 2 is not a candidate"), (Job(999, T), "row 999 is not"),
             (Job(5, T + 1), "until must be in 1..6"), ((5, T), "must return a Job")]
    for job, msg in cases:
        cfg = ReplayConfig(optimizer=Bad, optimizer_options={"job": job},
                           goal=Goal(accuracy=1.0))
        with pytest.raises(ProtocolError, match=msg):
            replay(table, cfg, 0)
    cfg = ReplayConfig(optimizer=Bad, optimizer_options={"job": Job(5, T)},
                       goal=Goal(accuracy=1.0))
    with pytest.raises(ProtocolError, match="row 5 has 6 epochs trained; until must be in 7..6"):
        replay(table, cfg, 0)
    cfg = ReplayConfig(optimizer=Bad, optimizer_options={"job": Job(5, T)}, workers=2,
                       goal=Goal(accuracy=1.0))
    with pytest.raises(ProtocolError, match="row 5 is training on another worker"):
        replay(table, cfg, 0)


# ----- spec strings ------------------------------------------------------------------------------
def test_module_specs_resolve_with_options(mymod):
    import mymethods

    assert resolve_rule("mymethods:Patience:k=3") == mymethods.Patience(3)
    assert resolve_rule("mymethods:patience3") is mymethods.patience3
    rules = resolve_rules(["mymethods:Patience", "none", "etr2:p=0.8"])
    assert rules.rules == (mymethods.Patience(2), ETR2(p=0.8))
    assert str(rules) == "Patience(k=2)+etr2:p=0.8"
    spec = resolve_optimizer("mymethods:Shuffled:reverse=true")
    assert isinstance(spec, OptimizerSpec) and spec.options == {"reverse": True}
    assert spec.make is mymethods.Shuffled and spec.label == "mymethods:Shuffled:reverse=true"
    smac = resolve_optimizer("smac:n_trees=20", {"n_init": 3})
    assert smac.label == "smac:n_trees=20" and smac.options == {"n_trees": 20, "n_init": 3}
    cfg = ReplayConfig(optimizer="mymethods:Shuffled", rules=("mymethods:Patience:k=3",))
    assert (cfg.optimizer_label, cfg.rule_label) == ("mymethods:Shuffled",
                                                     "mymethods:Patience:k=3")


@pytest.mark.parametrize("kind, spec, msg", [
    ("rule", "nomod_xyz:Rule", r"no module named 'nomod_xyz' .*PYTHONPATH"),
    ("rule", "mymethods:Nope", r"module 'mymethods' \(.*mymethods.py\) has no attribute 'Nope'"),
    ("rule", "mymethods:Shuffled", "is not a stopping rule"),
    ("rule", "mymethods:Patience:kk=3", r"has no option\(s\) \['kk'\]; allowed: \['k'\]"),
    ("rule", "mymethods:patience3:k=1", "is an object, not a class"),
    ("rule", "mymethods:Patience:k", "expected key=value"),
    ("rule", "patience", "unknown stopping rule 'patience'"),
    ("optimizer", "nomod_xyz:Opt", "no module named 'nomod_xyz'"),
    ("optimizer", "mymethods:Shuffled:order=1", r"has no option\(s\) \['order'\]"),
    ("optimizer", "mymethods:patience3", "not callable"),
    ("optimizer", "tpe", "unknown optimizer 'tpe'"),
    ("optimizer", "smac:trees=3", r"optimizer 'smac:trees=3' has no option\(s\) \['trees'\]"),
])
def test_bad_specs_name_what_was_looked_for(mymod, kind, spec, msg):
    with pytest.raises(SpecError, match=msg):
        if kind == "rule":
            ReplayConfig(rules=(spec,))
        else:
            ReplayConfig(optimizer=spec)


def test_a_broken_module_is_named_with_its_error(mymod):
    (mymod / "broken.py").write_text("def oops(:\n")
    with pytest.raises(SpecError, match=r"importing 'broken' failed: SyntaxError: .*line 1"):
        ReplayConfig(rules=("broken:Rule",))


def test_a_started_optimizer_object_is_refused(table, mymod):
    import mymethods
    from lcsim.hpo_sim.replay import Pool

    pool = Pool(table.features, np.arange(5), T, table.ids)
    with pytest.raises(SpecError, match="give its class or a factory"):
        ReplayConfig(optimizer=mymethods.Shuffled(pool, np.random.default_rng(0)))


def test_user_methods_in_a_study_written_and_read_back(table, mymod, tmp_path):
    import mymethods
    from lcsim.analysis import load_replay

    settings = with_baselines([
        ReplayConfig(optimizer=mymethods.Shuffled, rules=(mymethods.Patience(2),),
                     goal=Goal(top_percent=5)),
        ReplayConfig(optimizer="mymethods:Shuffled", rules=("mymethods:Patience:k=3",),
                     goal=Goal(top_percent=5))])
    res = run_settings(table, settings, 2, seed=0, progress=False)
    summ = summarize(settings, res)
    assert list(summ["optimizer"]) == ["mymethods:Shuffled"] * 4
    assert list(summ["rules"]) == ["none", "Patience(k=2)", "none", "mymethods:Patience:k=3"]
    d = write_outputs(tmp_path / "out", settings, res, summ, None, {"seed": 0})
    doc = json.loads((d / "summary.json").read_text())
    assert doc["settings"][1]["rules"] == ["Patience(k=2)"]
    sys.modules.pop("mymethods")  # reading results must not need the user's module
    back = load_replay(d)
    assert set(back.traces["rules"]) == {"none", "Patience(k=2)", "mymethods:Patience:k=3"}


def test_presets_take_module_specs(table, mymod, tmp_path):
    from lcsim.hpo_sim.replay import load_preset, preset_settings

    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"name": "mine", "optimizers": ["mymethods:Shuffled", "random"],
                             "rules": [[], ["mymethods:Patience:k=2"]], "goals": ["top:5"]}))
    settings = preset_settings(load_preset(str(p)))
    res = run_settings(table, settings, 2, seed=3, progress=False)
    for a, b in zip(res[:2], res[2:], strict=True):  # the user's random search is lcsim's
        for x, y in zip(a, b, strict=True):
            _same(x, y)


# ----- the command line --------------------------------------------------------------------------
def test_cli_replays_a_module_on_pythonpath(tmp_path, mymod):
    path = write_table(tmp_path / "t", 40, T, _fn, per_shard=40)
    env = {**__import__("os").environ, "PYTHONPATH": str(mymod)}
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "lcsim", "replay", "--table", str(path),
           "--optimizer", "mymethods:Shuffled", "--rule", "mymethods:Patience:k=2",
           "--goal-top", "10", "--repeats", "3", "--jobs", "2", "--no-progress",
           "--out", str(out)]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "mymethods:Shuffled" in r.stdout and "mymethods:Patience:k=2" in r.stdout
    assert "Audit" in r.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["rules"]) == ["none", "mymethods:Patience:k=2"]
    bad = cmd[:6] + ["--optimizer", "mymethods:Nope", "--no-progress"]
    r = subprocess.run(bad, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "lcsim replay: error: optimizer 'mymethods:Nope': module 'mymethods'" in r.stderr


def test_the_pool_holds_configs_read_only_and_decodes_them(table):
    from lcsim.hpo_sim.replay import Pool, candidate_rows

    feats = np.array(table.features)
    pool = Pool(feats, candidate_rows(table), T, table.ids, tuple(table.space.names),
                table.space)
    assert feats.flags.writeable and not pool.features.flags.writeable  # yours stays yours
    for row in (0, 17, 59):
        got, want = pool.config(row), table.config(int(table.ids[row]))
        assert {k: v for k, v in got.items() if isinstance(v, int)} == {
            k: v for k, v in want.items() if isinstance(v, int)}
        assert got["learning_rate"] == pytest.approx(want["learning_rate"], rel=1e-9)
    with pytest.raises(ValueError, match="no known search space"):
        Pool(feats, np.arange(3), T, table.ids).config(0)
    with pytest.raises(ValueError, match=r"Pool.T must be >= 1, got 0"):
        Pool(feats, np.arange(3), 0, table.ids)
