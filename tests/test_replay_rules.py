"""Stopping rules: hand-computed decisions on tiny curves, and on replayed synthetic tables."""

import numpy as np
import pytest
from lcsim.hpo_sim.replay import (
    ETR1,
    ETR2,
    AnyOf,
    Goal,
    MedianRule,
    ReplayConfig,
    ReplayState,
    etr2_tau,
    parse_rule,
    parse_rules,
    replay,
)
from lcsim.tabular.testing import make_table


def _state(curves, num_classes=10):
    return ReplayState(np.asarray(curves, dtype=float), num_classes)


# ----- ETR-1 ---------------------------------------------------------------------------------
def test_etr1_checks_only_at_tau_against_r_plus_eps():
    s = _state([[0.1] * 5])
    rule = ETR1(tau=2)  # r = 1/10, eps = 0.05 -> threshold 0.15
    bad = np.array([0.10, 0.149, 0.9])
    good = np.array([0.10, 0.151, 0.9])
    assert not rule.should_stop(bad[:1], 1, s)  # epoch 1 is not tau
    assert rule.should_stop(bad[:2], 2, s)
    assert not rule.should_stop(good[:2], 2, s)
    assert not rule.should_stop(np.array([0.1, 0.1, 0.1]), 3, s)  # after tau: never


def test_etr1_uses_the_tables_class_count():
    rule = ETR1(tau=1)
    assert rule.should_stop(np.array([0.05]), 1, _state([[0.0]], num_classes=100))  # < 0.06
    assert not rule.should_stop(np.array([0.07]), 1, _state([[0.0]], num_classes=100))
    assert not rule.should_stop(np.array([0.07]), 1, _state([[0.0]], num_classes=100))
    assert rule.should_stop(np.array([0.07]), 1, _state([[0.0]], num_classes=10))


def test_etr1_in_a_replay_stops_exactly_the_configs_below_the_threshold_at_tau():
    T, tau = 6, 2
    # config i: flat at 0.1 (untrainable) when i % 3 == 0, else rising to 0.5 + i / 100
    def fn(i, e):
        return np.full(T, 0.1) if i % 3 == 0 else 0.5 + i / 100 - 0.3 / e
    t = make_table(30, T, fn)
    cfg = ReplayConfig(optimizer="random", rules=(f"etr1:tau={tau}",), goal=Goal(accuracy=1.0))
    tr = replay(t, cfg, 0).trace
    assert len(tr["row"]) == 30  # goal unreachable: every config is tried once
    expect_stop = t.acc[tr["row"], tau - 1] < 0.1 + 0.05
    assert expect_stop.sum() == 10
    np.testing.assert_array_equal(tr["stopped"], expect_stop)
    np.testing.assert_array_equal(tr["epochs"], np.where(expect_stop, tau, T))


# ----- ETR-2 ---------------------------------------------------------------------------------
def test_etr2_tau_is_the_last_epoch_at_or_below_q_times_final():
    assert etr2_tau(np.array([0.2, 0.5, 0.7, 0.8, 0.9]), 0.75) == 2  # 0.675: epochs 1, 2
    assert etr2_tau(np.array([0.1, 0.2, 0.5, 0.8, 0.99]), 0.75) == 3  # 0.7425
    assert etr2_tau(np.array([0.5, 0.2, 0.9, 0.3, 0.6]), 0.75) == 4  # last one, not first run
    assert etr2_tau(np.array([0.9, 0.9, 0.9, 0.95, 0.96]), 0.75) == 1  # none qualifies -> 1


def test_etr2_stops_nothing_before_any_config_finished():
    s = _state([[0.2, 0.5, 0.7, 0.8, 0.9]])
    rule = ETR2(p=0.9)
    assert all(not rule.should_stop(np.zeros(e), e, s) for e in range(1, 5))


def test_etr2_compares_with_p_times_the_incumbent_at_tau():
    s = _state([[0.2, 0.5, 0.7, 0.8, 0.9]])
    s.complete(0)  # incumbent: tau = 2, y_c(2) = 0.5, threshold 0.9 * 0.5 = 0.45
    rule = ETR2(p=0.9, q=0.75)
    assert rule.should_stop(np.array([0.3, 0.44]), 2, s)
    assert not rule.should_stop(np.array([0.3, 0.46]), 2, s)
    assert not rule.should_stop(np.array([0.0]), 1, s)  # not tau
    assert not rule.should_stop(np.array([0.0, 0.0, 0.0]), 3, s)


def test_etr2_tau_moves_when_the_incumbent_changes():
    s = _state([[0.2, 0.5, 0.7, 0.8, 0.90],    # tau 2
                [0.1, 0.2, 0.5, 0.8, 0.99],    # better final: tau 3, y_c(3) = 0.5
                [0.6, 0.6, 0.6, 0.6, 0.60]])   # worse: must not become the incumbent
    rule = ETR2(p=0.9)
    cand = np.array([0.3, 0.30, 0.40])
    s.complete(0)
    assert rule.should_stop(cand[:2], 2, s)  # 0.30 < 0.45 at tau 2
    s.complete(1)
    assert s.incumbent == 1
    assert not rule.should_stop(cand[:2], 2, s)  # tau moved to 3
    assert rule.should_stop(cand[:3], 3, s)  # 0.40 < 0.45 at tau 3
    s.complete(2)
    assert s.incumbent == 1


def test_etr2_in_a_replay_matches_the_definition_job_by_job():
    T = 8

    def fn(i, e):  # varied speeds and finals, so the incumbent and its tau change
        final = 0.3 + 0.65 * ((i * 37) % 50) / 50
        return 0.1 + (final - 0.1) * (1 - np.exp(-e / (1 + i % 4)))
    t = make_table(50, T, fn)
    cfg = ReplayConfig(optimizer="random", rules=("etr2:p=0.9",), goal=Goal(accuracy=1.0))
    tr = replay(t, cfg, 3).trace
    acc = t.acc
    incumbent, taus_seen = -1, set()
    for row, stopped, epochs in zip(tr["row"], tr["stopped"], tr["epochs"], strict=True):
        if incumbent < 0:
            expect = False
        else:
            ref = acc[incumbent]
            ok = np.flatnonzero(ref <= 0.75 * ref[-1])
            tau = ok[-1] + 1 if ok.size else 1
            taus_seen.add(tau)
            expect = tau < T and acc[row, tau - 1] < 0.9 * ref[tau - 1]
        assert stopped == expect
        assert epochs == (tau if expect else T)
        if not stopped and (incumbent < 0 or acc[row, -1] > acc[incumbent, -1]):
            incumbent = row
    assert tr["stopped"].sum() > 0 and (~tr["stopped"]).sum() > 0
    assert len(taus_seen) >= 2  # the incumbent (and its tau) changed during the run


# ----- median --------------------------------------------------------------------------------
def _median_state():
    s = _state([[0.2, 0.4, 0.6],   # running means 0.2, 0.3, 0.4
                [0.4, 0.4, 0.4],   # 0.4, 0.4, 0.4
                [0.1, 0.1, 0.7],   # 0.1, 0.1, 0.3
                [0.9, 0.9, 0.9]])  # not completed
    for r in (0, 1, 2):
        s.complete(r)
        s.n_observed[r] = 3
    s.n_observed[3] = 2  # running / stopped trial that reached epoch 2
    return s


def test_median_rule_vizier_matches_hand_computation():
    s = _median_state()
    rule = MedianRule()  # median of running means at t=2: median(0.3, 0.4, 0.1) = 0.3
    assert rule.should_stop(np.array([0.25, 0.28]), 2, s)  # best 0.28 < 0.3
    assert not rule.should_stop(np.array([0.35, 0.20]), 2, s)  # best 0.35 >= 0.3
    # t=1: median(0.2, 0.4, 0.1) = 0.2
    assert rule.should_stop(np.array([0.19]), 1, s)
    assert not rule.should_stop(np.array([0.21]), 1, s)


def test_median_rule_variants_differ_as_documented():
    s = _median_state()
    cand = np.array([0.35, 0.20])
    # optuna: completed values at t=2: median(0.4, 0.4, 0.1) = 0.4 > best 0.35
    assert MedianRule(variant="optuna").should_stop(cand, 2, s)
    # synetune: value y(2) = 0.20 vs median over all trials that reached 2:
    # median(0.4, 0.4, 0.1, 0.9) = 0.4
    assert MedianRule(variant="synetune").should_stop(cand, 2, s)
    assert not MedianRule(variant="synetune").should_stop(np.array([0.1, 0.41]), 2, s)


def test_median_rule_grace_and_min_trials():
    s = _median_state()
    cand = np.array([0.19, 0.2])
    assert MedianRule().should_stop(cand[:1], 1, s)
    assert not MedianRule(grace=1).should_stop(cand[:1], 1, s)
    assert not MedianRule(min_trials=4).should_stop(cand[:1], 1, s)


# ----- composition and parsing ---------------------------------------------------------------
def test_anyof_stops_if_any_rule_stops():
    s = _state([[0.2, 0.5, 0.7, 0.8, 0.9]])
    s.complete(0)
    both = AnyOf((ETR1(tau=1), ETR2(p=0.9)))
    assert both.should_stop(np.array([0.12]), 1, s)  # ETR-1 alone
    assert both.should_stop(np.array([0.3, 0.3]), 2, s)  # ETR-2 alone
    assert not both.should_stop(np.array([0.3, 0.5]), 2, s)
    assert not AnyOf(()).should_stop(np.array([0.0]), 1, s)


def test_parse_rule_specs_and_errors():
    assert parse_rule("etr2:p=0.8,q=0.5") == ETR2(p=0.8, q=0.5)
    assert parse_rule("etr1:tau=3") == ETR1(tau=3)
    assert parse_rule("median:variant=optuna,grace=2") == MedianRule("optuna", 2)
    assert parse_rules(["none", "etr1:tau=2"]).rules == (ETR1(tau=2),)
    with pytest.raises(ValueError, match="unknown stopping rule 'etr3'"):
        parse_rule("etr3")
    with pytest.raises(ValueError, match="has no parameter 'pp'"):
        parse_rule("etr2:pp=0.9")
    with pytest.raises(ValueError, match="ETR2.p must be in"):
        parse_rule("etr2:p=1.5")
    with pytest.raises(ValueError, match="bad value 'x' for tau"):
        parse_rule("etr1:tau=x")
    with pytest.raises(ValueError, match="variant"):
        parse_rule("median:variant=bogus")


@pytest.mark.parametrize("spec", ["etr1:tau=3", "etr1:tau=2,r=0.2,eps=0.1", "etr2:p=0.8",
                                  "etr2:p=0.9,q=0.5", "median", "median:variant=optuna,grace=2"])
def test_rule_labels_are_short_and_round_trip(spec):
    rule = parse_rule(spec)
    assert str(rule) == spec
    assert parse_rule(str(rule)) == rule


def test_rule_options_read_as_the_shared_option_grammar_reads_them():
    # 'none' for a field whose default is None, integral numbers for integer fields
    assert parse_rule("etr1:tau=3,r=none") == ETR1(tau=3)
    assert parse_rule("etr1:tau=3.0") == ETR1(tau=3)
    with pytest.raises(ValueError, match="bad value '3.5' for tau"):
        parse_rule("etr1:tau=3.5")
