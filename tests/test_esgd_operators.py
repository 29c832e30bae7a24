"""ESGD's operators (hpo_sim.live.esgd.operators, .config): roulette selection, recombination,
m-elitist selection, annealed optimizer draws, exact back-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lcsim.hpo_sim.live.esgd import (
    ESGDConfig,
    OptimizerPool,
    m_elitist_select,
    recombine,
    roulette_probabilities,
    select_parents,
    sgd_step,
)
from lcsim.hpo_sim.live.population import Population, StackedOptimizer, evaluate, train_step
from scipy import stats


def test_roulette_frequencies_match_probabilities():
    fitness = np.array([0.5, 1.0, 2.0, 4.0, 4.0])
    inv = 1 / fitness
    expected = inv / inv.sum()  # closed form: 1/f normalised
    np.testing.assert_allclose(roulette_probabilities(fitness), expected)
    rng = np.random.default_rng(123)
    picks = select_parents(fitness, 20000, 1, rng)[:, 0]
    counts = np.bincount(picks, minlength=5)
    res = stats.chisquare(counts, 20000 * expected)
    assert res.pvalue > 0.01, (counts, 20000 * expected)
    # a loss twice as large is half as likely
    assert counts[0] > 1.8 * counts[1] > 3.2 * counts[2]


def test_roulette_gives_diverged_individuals_no_chance():
    p = roulette_probabilities(np.array([1.0, np.inf, np.nan, 2.0]))
    assert p[1] == p[2] == 0 and p.sum() == pytest.approx(1)
    parents = select_parents(np.array([1.0, np.inf, 2.0]), 50, 2, np.random.default_rng(0))
    assert parents.shape == (50, 2) and not (parents == 1).any()
    assert (parents[:, 0] != parents[:, 1]).all()  # rho distinct parents
    with pytest.raises(ValueError, match="non-finite"):
        roulette_probabilities(np.array([np.inf, np.nan]))


def test_recombining_identical_parents_with_sigma_zero_returns_the_parent(bn_net):
    pop = Population.from_models([bn_net(0), bn_net(1)])
    # three copies of member 1: a naive mean (a + a + a) / 3 would not be exact
    kids = recombine(pop, np.array([[1, 1, 1], [0, 0, 0]]), 0.0, None)
    for k in pop.params:
        assert torch.equal(kids.params[k][0], pop.params[k][1])
        assert torch.equal(kids.params[k][1], pop.params[k][0])
    for k in pop.buffers:
        assert torch.equal(kids.buffers[k][0], pop.buffers[k][1])


def test_recombination_is_parent_mean_plus_sigma_noise(bn_net):
    pop = Population.from_models([bn_net(0), bn_net(1)])
    mean = (pop.flat([0]) + pop.flat([1])) / 2
    g = torch.Generator().manual_seed(0)
    kids = recombine(pop, np.array([[0, 1]] * 2), 0.0, None)
    torch.testing.assert_close(kids.flat([0]), mean)
    kids = recombine(pop, np.array([[0, 1]] * 2), 0.05, g)
    noise = kids.flat() - mean
    assert float(noise.std()) == pytest.approx(0.05, rel=0.05)
    assert abs(float(noise.mean())) < 0.01
    assert not torch.equal(noise[0], noise[1])  # each offspring its own noise


def test_m_elitist_keeps_the_m_best_and_draws_the_rest():
    f = np.array([5.0, 1.0, 4.0, 0.5, 3.0, 2.0, 6.0, 7.0])
    sel, elite = m_elitist_select(f, mu=5, m=3, rng=np.random.default_rng(0))
    assert list(sel[:3]) == [3, 1, 5] and elite.tolist() == [True] * 3 + [False] * 2
    assert len(set(sel.tolist())) == 5 and set(sel[3:]) <= {0, 2, 4, 6, 7}
    others = {tuple(m_elitist_select(f, 5, 3, np.random.default_rng(s))[0][3:])
              for s in range(20)}
    assert len(others) > 3  # the non-elite part is random


def test_annealed_ranges_follow_gamma_power_k():
    pool = OptimizerPool(sgd_lr=(1e-2, 3e-2), adam_lr=(5e-5, 1e-3), gamma=0.8)
    rng = np.random.default_rng(0)
    for k in range(1, 6):
        assert pool.lr_range("nesterov", k) == pytest.approx((0.8**k * 1e-2, 0.8**k * 3e-2))
        assert pool.lr_range("adam", k) == pytest.approx((0.8**k * 5e-5, 0.8**k * 1e-3))
        for d in pool.draw(k, 200, rng):
            lo, hi = pool.lr_range(d["optimizer"], k)
            assert lo <= d["lr"] <= hi
    assert [ESGDConfig(sigma0=0.01).sigma(k) for k in (1, 2, 4)] == pytest.approx(
        [0.01, 0.005, 0.0025])


def test_optimizer_pool_mix_follows_the_paper_probabilities():
    draws = OptimizerPool().draw(1, 20000, np.random.default_rng(1))
    kinds = np.array([d["optimizer"] for d in draws])
    freq = {k: float((kinds == k).mean()) for k in ("adam", "sgd", "momentum", "nesterov")}
    # Adam 0.2; SGD 0.8 of which 20% plain, 80% momentum, half of those Nesterov
    for k, p in {"adam": 0.2, "sgd": 0.16, "momentum": 0.32, "nesterov": 0.32}.items():
        assert freq[k] == pytest.approx(p, abs=0.015)
    mom = [d["momentum"] for d in draws if d["optimizer"] in ("momentum", "nesterov")]
    assert 0.1 <= min(mom) and max(mom) <= 0.9


def test_backoff_restores_exact_previous_weights(bn_net, tiny_images):
    data = tiny_images
    pop = Population.from_models([bn_net(0), bn_net(1)])
    opt = StackedOptimizer(pop, ["momentum", "sgd"], [1.0, 1.0], momentum=0.9)
    batches = list(data.batches("train", 32))
    fitness_of = lambda p: evaluate(p, batches)[0].numpy()  # noqa: E731
    before = pop.snapshot()
    f0 = fitness_of(pop)
    g = torch.Generator().manual_seed(0)
    noise = torch.Generator().manual_seed(1)

    def epoch(p, o):
        for x, y in data.batches("train", 16, shuffle=True, generator=g):
            train_step(p, o, x, y)  # changes weights, BN statistics and momentum of both
        with torch.no_grad():  # then wreck member 0: its epoch made it worse
            w = p.params["5.weight"]
            w[0] += 50 * torch.randn(w[0].shape, generator=noise)

    fit, backoffs = sgd_step(pop, opt, f0, torch.tensor([0.1, 0.1], dtype=torch.float64),
                             epoch, fitness_of, epochs=2)
    assert backoffs.tolist() == [2, 0]
    assert fit[0] == f0[0] and fit[1] < f0[1]
    for k in pop.params:  # weights exactly as before, not approximately
        assert torch.equal(pop.params[k][0], before.params[k][0])
    for k in pop.buffers:  # and the BN statistics the epochs had changed
        assert torch.equal(pop.buffers[k][0], before.buffers[k][0])
    assert all(float(b[0].abs().sum()) == 0 for b in opt.buf.values())  # momentum too
    assert not torch.equal(pop.params["5.weight"][1], before.params["5.weight"][1])
    torch.testing.assert_close(opt.lr, torch.tensor([0.1, 0.1], dtype=torch.float64))
