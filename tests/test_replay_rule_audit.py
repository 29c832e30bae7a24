"""What a replay records of a predicting rule's decisions, and how the audit scores rules:
top-k share stopped, prediction error, calibration, cost per decision (charged on request)."""

import time

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.replay import (
    DECISION_COLUMNS,
    Goal,
    ReplayConfig,
    audit_frame,
    calibration_frame,
    check_settings,
    load_preset,
    preset_settings,
    replay,
    run_settings,
    summarize,
    write_outputs,
)
from lcsim.hpo_sim.replay.audit import (
    calibration_table,
    decision_frame,
    prediction_audit,
    top_k_share,
)
from lcsim.tabular.testing import make_table

T = 10


def _curve(i, e):
    top = 0.2 + 0.7 * ((i * 7) % 30) / 30  # finals spread over 0.2..0.9
    return top - (top - 0.1) * e ** -0.8


@pytest.fixture(scope="module")
def table():
    return make_table(30, T, _curve)


def test_a_predicting_rule_s_decisions_are_logged_with_time_and_cost(table):
    res = replay(table, ReplayConfig(optimizer="random", rules=("lce:min_epochs=4",),
                                     goal=Goal(accuracy=1.0)), 0)
    d, tr = res.decisions, res.trace
    assert tuple(d) == DECISION_COLUMNS
    assert len(d["row"]) > 0 and (d["epoch"] >= 4).all() and (d["epoch"] < T).all()
    assert np.all(np.diff(d["time"]) > 0) and (d["seconds"] > 0).all()
    assert res.rule_calls == (tr["epochs"] - (tr["epochs"] == T)).sum()
    assert res.rule_seconds >= d["seconds"].sum()
    np.testing.assert_array_equal(d["config_id"], table.ids[d["row"]])
    # a stopped job's last decision said stop, at its stop epoch; nothing else did
    stops = {(r, e) for r, e, s in zip(d["row"], d["epoch"], d["stop"], strict=True) if s}
    assert stops == {(r, e) for r, e, s in zip(tr["row"], tr["epochs"], tr["stopped"],
                                               strict=True) if s}
    assert replay(table, ReplayConfig(optimizer="random", rules=("etr2",),
                                      goal=Goal(accuracy=1.0)), 0).decisions == {}


class _Table:  # just what the audit reads
    final_accuracy = np.array([0.9, 0.5, np.nan])


def test_prediction_error_and_calibration_by_hand():
    logs = [{"row": np.array([0, 1, 1]), "predicted": np.array([0.8, 0.6, 0.55]),
             "prob": np.array([0.5, 0.02, 0.005]), "reference": np.array([0.7, 0.7, 0.7]),
             "stop": np.array([False, False, True]), "seconds": np.array([1e-3, 2e-3, 3e-3])},
            {"row": np.array([2, 0]), "predicted": np.array([0.4, 0.95]),
             "prob": np.array([0.1, 0.995]), "reference": np.array([0.7, np.nan]),
             "stop": np.array([False, False]), "seconds": np.array([4e-3, 5e-3])}]
    df = decision_frame(logs, _Table())
    # row 2 diverged (no final): out of every score; the last has no reference: no calibration
    np.testing.assert_array_equal(df["repeat"], [0, 0, 0, 1, 1])
    a = prediction_audit(df, runs=2)
    assert a["predictions_per_run"] == 2.5
    assert a["prediction_mae"] == pytest.approx((0.1 + 0.1 + 0.05 + 0.05) / 4)
    assert a["prediction_mae_at_stop"] == pytest.approx(0.05)
    assert a["decision_ms_median"] == pytest.approx(3.0)
    cal = calibration_table(df)  # beat: row 0 (0.9 > 0.7) yes, row 1 (0.5 > 0.7) no, twice
    assert cal[["bin_low", "bin_high", "n"]].values.tolist() == [[0.0, 0.01, 1], [0.01, 0.05, 1],
                                                                 [0.5, 0.6, 1]]
    np.testing.assert_allclose(cal["frequency"], [0, 0, 1])
    assert a["calibration_ece"] == pytest.approx((0.005 + 0.02 + 0.5) / 3)
    assert prediction_audit(decision_frame([{}], _Table()), runs=1) == {}


def test_top_k_share_pools_runs_and_bootstraps_them():
    audits = [{"stopped_top_k": 1, "started_top_k": 2}, {"stopped_top_k": 0, "started_top_k": 2},
              {"stopped_top_k": 2, "started_top_k": 4}]
    share, lo, hi = top_k_share(audits, np.random.default_rng(0))
    assert share == 3 / 8 and 0 <= lo <= share <= hi <= 0.5
    assert np.isnan(top_k_share([{"stopped_top_k": 0, "started_top_k": 0}],
                                np.random.default_rng(0))[0])


def test_study_audit_and_files_of_predicting_rules(table, tmp_path):
    settings = [ReplayConfig(optimizer="random", rules=r, goal=Goal(top_percent=10))
                for r in ((), ("etr2",), ("lce:min_epochs=4",), ("svr:min_configs=3",))]
    res = run_settings(table, settings, 4, seed=0, progress=False)
    aud = audit_frame(table, settings, res).set_index("rules")
    assert {"top_k_stopped_share", "share_ci_low", "decision_ms", "prediction_mae",
            "calibration_ece"} <= set(aud.columns)
    assert np.isnan(aud.loc["etr2:p=0.9", "prediction_mae"])
    assert aud.loc["lce:min_epochs=4", "prediction_mae"] < 0.1  # smooth curves: predictable
    assert aud.loc["lce:min_epochs=4", "decision_ms"] > aud.loc["etr2:p=0.9", "decision_ms"]
    cal = calibration_frame(table, settings, res)
    assert set(cal["rules"]) <= {"lce:min_epochs=4", "svr:min_configs=3"} and len(cal)
    out = tmp_path / "study"
    write_outputs(out, settings, res, summarize(settings, res), audit_frame(table, settings,
                                                                            res), {}, cal)
    assert sorted(p.name for p in (out / "decisions").iterdir()) == ["002.parquet",
                                                                     "003.parquet"]
    df = pd.read_parquet(out / "decisions" / "002.parquet")
    assert {"repeat", *DECISION_COLUMNS} == set(df.columns)
    assert len(pd.read_csv(out / "calibration.csv")) == len(cal)
    write_outputs(out, settings[:2], res[:2], summarize(settings[:2], res[:2]), None, {})
    assert not list((out / "decisions").iterdir()) and not (out / "calibration.csv").exists()


class Slow:
    """A rule that takes 2 ms to decide and never stops."""

    def should_stop(self, curve, epoch, state):
        time.sleep(0.002)
        return False


def test_rule_time_is_charged_only_with_charge_overhead(table):
    kw = dict(optimizer="random", rules=(Slow(),), goal=Goal(accuracy=1.0), max_evals=3)
    free = replay(table, ReplayConfig(**kw), 0)
    paid = replay(table, ReplayConfig(**kw, charge_overhead=True), 0)
    assert free.rule_calls == paid.rule_calls == 3 * (T - 1) and paid.rule_seconds > 0.05
    extra = paid.end_time - free.end_time  # the rule's seconds, and the asks' (a few us)
    assert paid.rule_seconds <= extra < paid.rule_seconds + 0.01
    np.testing.assert_array_equal(free.trace["time"], replay(table, ReplayConfig(**kw),
                                                             0).trace["time"])


def test_beyond_etr_preset_and_rules_that_never_fire(table):
    settings = preset_settings(load_preset("beyond-etr"))
    labels = [(c.optimizer_label, c.rule_label) for c in settings]
    rules = ["none", "etr1:tau=3", "etr2:p=0.9", "median", "lce", "svr", "gp", "sh"]
    assert labels == [(o, r) for o in ("smac", "random") for r in rules]
    for spec, key in (("lce:min_epochs=10", "min_epochs"), ("svr:min_epochs=10", "min_epochs"),
                      ("gp:min_epochs=10", "min_epochs"), ("sh:min_r=10", "min_r")):
        with pytest.raises(ValueError, match=f"never fires .* use {key} <= 9"):
            check_settings(table, [ReplayConfig(optimizer="random", rules=(spec,))])


def test_rule_audit_text_shows_prediction_columns_only_for_predicting_rules(table):
    from lcsim.hpo_sim.replay.audit import format_rule_audit

    def text(rules):
        settings = [ReplayConfig(optimizer="random", rules=r, goal=Goal(top_percent=10))
                    for r in rules]
        res = run_settings(table, settings, 2, seed=0, progress=False)
        return format_rule_audit(audit_frame(table, settings, res))

    plain = text([("etr2",), ("median",)])
    assert "top-k stopped / started" in plain and "ms/decision" in plain
    assert "MAE" not in plain and "ECE" not in plain  # no predicting rule: nothing to say
    assert "MAE of y(T)" in text([("etr2",), ("lce:min_epochs=4",)])
