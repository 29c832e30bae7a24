"""Study summary text: one time unit per table, missed goals explained, no inf / 0.00x, legend."""

import re

import numpy as np
import pytest
from lcsim.hpo_sim.replay import (
    LEGEND,
    Goal,
    ReplayConfig,
    audit_frame,
    format_summary,
    miss_reason,
    run_settings,
    summarize,
    time_unit,
    with_baselines,
)
from lcsim.tabular.testing import make_table

T = 6
GOAL = Goal(accuracy=0.9)


def _fn(i, e):
    # config 0 is the best and flat at chance after epoch 1 (ETR-1 at tau=1 stops it);
    # the others learn to 0.3..0.8
    if i == 0:
        return np.where(e < T, 0.1, 0.95)
    return 0.1 + (0.2 + 0.5 * (i % 10) / 10) * (1 - np.exp(-e / 2))


@pytest.fixture(scope="module")
def table():
    return make_table(30, T, _fn, seconds=lambda i, e: 2.0 + 0 * e)


def _study(table, goal=GOAL, repeats=4):
    settings = with_baselines([
        ReplayConfig(optimizer="random", rules=("etr1:tau=1",), goal=goal),
        ReplayConfig(optimizer="random", rules=("median",), goal=goal)])
    results = run_settings(table, settings, repeats, seed=0, progress=False)
    return settings, results


def test_a_goal_the_rules_always_miss_reads_never_reached_with_its_reason(table):
    settings, results = _study(table)
    summary = summarize(settings, results, table=table)
    etr = summary[summary["rules"] == settings[1].rule_label].iloc[0]
    assert etr["success_rate"] == 0 and etr["median_s"] == np.inf and etr["speedup"] == 0
    assert etr["missed"] == ("4 of 4 runs missed the goal 0.9: in 4 the rules stopped every "
                             "goal config the run tried (1.0 per run, of the table's 1)")
    assert summary.iloc[0]["missed"] == ""  # the baseline always reaches it
    text = format_summary(summary, audit_frame(table, settings, results), unit=time_unit(table))
    row = next(ln for ln in text.splitlines() if "etr1" in ln and "%" in ln)
    assert "never reached" in row and row.rstrip().endswith("-")
    assert "Missed goals:" in text and "rules stopped every goal config" in " ".join(text.split())
    assert not re.search(r"\binf\b|nan|0\.00x", text)
    assert "compute skipped" in text and "time saved" not in text
    assert text.endswith(LEGEND.format(unit="seconds"))


def test_an_unreachable_absolute_goal_is_explained(table):
    settings, results = _study(table, goal=Goal(accuracy=0.99), repeats=2)
    assert miss_reason(table, settings[0], results[0]) == (
        "2 of 2 runs missed the goal 0.99: no config in the table reaches it (best final "
        "accuracy 0.95)")
    text = format_summary(summarize(settings, results, table=table))
    assert text.count("never reached") == 3 and not re.search(r"\binf\b|0\.00x", text)


def test_time_unit_is_the_tables_not_the_results():
    def tab(sec):
        return make_table(4, T, _fn, seconds=lambda i, e: sec + 0 * e)

    assert [time_unit(tab(s)) for s in (1.0, 30.0, 1000.0)] == ["s", "min", "h"]
    t = tab(30.0)  # 180 s per config: minutes, whatever the times to goal are
    settings, results = _study(t, repeats=2)
    text = format_summary(summarize(settings, results), unit=time_unit(t))
    assert "median [min]" in text and "IQR [min]" in text and "[s]" not in text
    with pytest.raises(ValueError, match="unit must be one of"):
        format_summary(summarize(settings, results), unit="days")


def test_partly_reached_goal_prints_words_not_infinities():
    from lcsim.hpo_sim.replay.simulate import RunResult

    cfgs = with_baselines([ReplayConfig(optimizer="random", rules=("etr1:tau=1",))])

    def run(t):
        return RunResult(t, 5.0, bool(np.isfinite(t)), 0.9, {"row": np.zeros(1)})

    res = [[run(t) for t in (1.0, 2.0, 3.0, 4.0)], [run(t) for t in (np.inf, np.inf, 3.0, 1.0)]]
    text = format_summary(summarize(cfgs, res), legend=False)
    assert "not reached" in text and not re.search(r"\binf\b|0\.00x", text)
    assert "Legend" not in text


def test_adding_a_setting_moves_no_other_rows_confidence_interval(table):
    goal = Goal(accuracy=0.7)
    settings, results = _study(table, goal, repeats=8)
    extra = ReplayConfig(optimizer="random", rules=("etr1:tau=2",), goal=goal)
    more = [extra, *settings]  # first, so that every other row moves down one place
    more_results = [run_settings(table, [extra], 8, seed=0, progress=False)[0], *results]
    cols = ["median_ci_low", "median_ci_high", "speedup_ci_low", "speedup_ci_high"]
    small = summarize(settings, results)[cols]
    large = summarize(more, more_results)[cols].iloc[1:].reset_index(drop=True)
    assert small.notna().any().any() and small.equals(large)
    share = ["share_ci_low", "share_ci_high"]
    a = audit_frame(table, settings, results)
    b = audit_frame(table, more, more_results).iloc[1:].reset_index(drop=True)
    assert a[share].equals(b[share])
    assert not summarize(settings, results, seed=1)[cols].equals(small)  # the seed still counts
