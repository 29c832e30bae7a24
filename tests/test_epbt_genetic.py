"""Genetic operators: statistical tests with fixed seeds, hand-made novelty cases."""

import numpy as np
import pytest
from lcsim.hpo_sim.live.epbt.genetic import (
    elite_select,
    mutate,
    novelty_on,
    novelty_scores,
    novelty_select,
    tournament_select,
    uniform_crossover,
)
from lcsim.hpo_sim.live.population import HSpace
from scipy import stats

SPACE = HSpace.build(
    [("a", -10, 10), ("b", -10, 10), ("lr", 1e-3, 1.0, True), ("n", 1, 50, False, True)]
)


def test_tournament_of_two_picks_the_fitter_with_expected_frequency():
    # rank r (0 = worst) of P wins a 2-tournament with probability r / C(P, 2)
    fitness = np.array([0.3, 0.9, 0.1, 0.5, 0.7])
    winners = tournament_select(fitness, 20000, np.random.default_rng(0), t=2)
    ranks = np.argsort(np.argsort(fitness))
    expected = ranks / (len(fitness) * (len(fitness) - 1) / 2)
    counts = np.bincount(winners, minlength=len(fitness))
    assert counts[np.argmin(fitness)] == 0  # the worst can never win a pair
    nz = expected > 0
    assert stats.chisquare(counts[nz], expected[nz] * len(winners)).pvalue > 1e-3
    # and the test has power: uniform picking would be rejected
    assert stats.chisquare(counts[nz], np.full(nz.sum(), len(winners) / nz.sum())).pvalue < 1e-6


def test_tournament_is_seeded():
    f = np.arange(10.0)
    a = tournament_select(f, 50, np.random.default_rng(5))
    b = tournament_select(f, 50, np.random.default_rng(5))
    c = tournament_select(f, 50, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_crossover_takes_each_variable_from_partner_with_probability_half():
    rng = np.random.default_rng(1)
    h = np.zeros((2000, 4))
    partner = np.ones((2000, 4))
    child, swap = uniform_crossover(h, partner, rng)
    assert np.array_equal(child, swap.astype(float))
    n = swap.size
    assert stats.binomtest(int(swap.sum()), n, 0.5).pvalue > 1e-3
    # per-variable independence: each column also near 0.5
    for j in range(4):
        assert stats.binomtest(int(swap[:, j].sum()), 2000, 0.5).pvalue > 1e-3


def test_mutation_respects_reinit_and_mutation_probabilities():
    rng = np.random.default_rng(2)
    h = np.tile([1.0, -2.0, 0.1, 20.0], (5000, 1))
    new, mutated, reinit = mutate(h, SPACE, rng, sigma=0.1, p_mutate=0.5, p_reinit=0.1)
    n = h.size
    assert not (mutated & reinit).any()
    assert stats.binomtest(int(reinit.sum()), n, 0.1).pvalue > 1e-3
    assert stats.binomtest(int(mutated.sum()), n, 0.9 * 0.5).pvalue > 1e-3
    untouched = ~mutated & ~reinit
    assert np.array_equal(new[untouched], h[untouched])
    # multiplicative noise: the ratio - 1 has std sigma on a float column far from its bounds
    ratio = new[mutated[:, 0], 0] / h[0, 0] - 1
    assert abs(ratio.std() - 0.1) < 0.01 and abs(ratio.mean()) < 0.01
    # re-initialised values spread over the box, all in bounds, integers rounded
    assert new[reinit[:, 0], 0].min() < -8 and new[reinit[:, 0], 0].max() > 8
    assert (new >= SPACE.low).all() and (new <= SPACE.high).all()
    assert np.array_equal(new[:, 3], np.rint(new[:, 3]))


def test_space_sample_is_log_uniform_where_asked():
    s = SPACE.sample(4000, np.random.default_rng(3))
    lr = np.log10(s[:, 2])
    assert stats.kstest((lr + 3) / 3, "uniform").pvalue > 1e-3


def test_novelty_selection_keeps_the_most_novel_of_the_fittest():
    fitness = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    b = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]])
    # among the m = 3 fittest: d01 = 1, d02 = 4, d12 = 3 -> S = (5, 4, 7): keep 2, then 0
    assert novelty_scores(b[:3]).tolist() == [5, 4, 7]
    assert novelty_select(fitness, b, k=2, m=3).tolist() == [2, 0]
    # fitness-only elitism would keep 0, 1
    assert elite_select(fitness, 2).tolist() == [0, 1]


def test_novelty_selection_skips_duplicate_behaviours():
    fitness = np.array([0.9, 0.8, 0.7, 0.6])
    b = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    # S over the 3 fittest = (2, 2, 4): 2 first, then 0; 1 duplicates 0 -> not needed
    assert novelty_select(fitness, b, k=2, m=3).tolist() == [2, 0]
    # with k = m every candidate is kept; the duplicate comes last
    assert novelty_select(fitness, b, k=3, m=3).tolist() == [2, 0, 1]


def test_novelty_pulsation_switches_every_p_generations():
    assert [novelty_on(g, 5) for g in range(20)] == ([False] * 5 + [True] * 5) * 2


def test_bad_arguments_raise_naming_the_value():
    with pytest.raises(ValueError, match="t=3"):
        tournament_select(np.ones(2), 1, np.random.default_rng(0), t=3)
    with pytest.raises(ValueError, match="p_reinit"):
        mutate(np.ones((1, 4)), SPACE, np.random.default_rng(0), p_reinit=1.5)
    with pytest.raises(ValueError, match="'lr'"):
        HSpace.build([("lr", 0.0, 1.0, True)])
    with pytest.raises(TypeError, match="Generator"):
        uniform_crossover(np.ones((1, 2)), np.ones((1, 2)), 0)
