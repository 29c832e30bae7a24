"""SBF search (hpo_sim.live.alrs.search) driven by oracles with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lcsim.hpo_sim.live.alrs.search import SBF, ParameterSearch, SBFConfig

GRID = [float(x) for x in np.logspace(-4, 1, 6)]  # 1e-4 ... 10


def run_oracle(search: SBF, target: float) -> SBF:
    """Increase while the value is below the target, else decrease, until done."""
    while not search.done():
        search.increase() if search.value < target else search.decrease()
    return search


def run_noisy(search: SBF, target: float, rng: np.random.Generator, sharp: float = 5.0) -> SBF:
    """Increase with probability sigmoid(sharp * log(target / value)): a noisy ALRS stand-in."""
    while not search.done():
        p = 1.0 / (1.0 + math.exp(-sharp * math.log(target / search.value)))
        search.increase() if rng.random() < p else search.decrease()
    return search


def test_sbf_is_a_parameter_search():
    assert isinstance(SBF(1.0), ParameterSearch)


@pytest.mark.parametrize("seed_value", GRID)
@pytest.mark.parametrize("target", GRID + [3.3e-3, 0.17])
def test_oracle_converges_within_5_percent(seed_value, target):
    s = run_oracle(SBF(seed_value), target)
    assert abs(s.value / target - 1) <= 0.05, (seed_value, target, s.value)


@pytest.mark.parametrize("target", [1e-4, 0.02, 10.0])
def test_oracle_cost_is_bounded(target):
    # ~one epoch of ALRS is 50 signals; bisection + 20 FS moves should stay near that.
    s = run_oracle(SBF(1.0), target)
    assert s.n_signals <= 60
    phases = [e.phase for e in s.trace]
    assert phases.count("fs") == 20
    assert phases == sorted(phases, key=lambda p: p != "sbs")  # all sbs before all fs


def test_soft_limits_let_the_search_leave_a_narrow_bracket():
    # span 10 brackets [0.1, 10]; the target is 4 decades below: pushes must walk out.
    s = run_oracle(SBF(1.0, SBFConfig(span=10.0)), 1e-5)
    assert abs(s.value / 1e-5 - 1) <= 0.05
    assert min(e.lower for e in s.trace) < 0.1 / 1.05


def test_trace_records_every_signal_with_limits():
    s = run_oracle(SBF(1.0), 0.05)
    assert len(s.trace) == s.n_signals
    for e in s.trace:
        assert e.signal in (1, -1)
        assert e.lower <= e.value <= e.upper
        assert -1 <= e.momentum <= 1
    assert s.trace[-1].value == s.value


@pytest.mark.parametrize(
    "change",
    [
        {"beta": 0.5},
        {"beta": 0.9},
        {"span": 1e3},
        {"span": 1e5},
        {"push_after": 4},
    ],
)
def test_converged_value_is_robust_to_open_constants(change):
    """Stated tolerance: with a noisy oracle, the median converged value over 20 runs moves by
    less than 10% when an open constant changes (the spread of single runs is about 10%)."""
    target = 0.03

    def median_value(cfg: SBFConfig) -> float:
        rng = np.random.default_rng(1234)
        return float(np.median([run_noisy(SBF(1.0, cfg), target, rng).value for _ in range(20)]))

    base = median_value(SBFConfig())
    other = median_value(SBFConfig(**change))
    assert abs(math.log(other / base)) < math.log(1.10), (change, base, other)
    assert abs(math.log(base / target)) < math.log(1.10)


def test_done_search_refuses_signals():
    s = run_oracle(SBF(1.0), 0.5)
    with pytest.raises(RuntimeError, match="done"):
        s.increase()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_initial_value_is_named(bad):
    with pytest.raises(ValueError, match="initial"):
        SBF(bad)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"beta": 1.0}, "beta"),
        ({"span": 1.0}, "span"),
        ({"fs_iterations": 0}, "fs_iterations"),
        ({"limit_factor_min": 1.0}, "limit_factor_min"),
        ({"push_after": 0}, "push_after"),
    ],
)
def test_bad_config_is_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SBFConfig(**kwargs)
