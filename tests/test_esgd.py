"""ESGD (hpo_sim.live.esgd): ES operators, annealing, back-off, the m-elitist guarantee."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lcsim.hpo_sim.live import esgd
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
from lcsim.pregen.data import DeviceData
from scipy import stats
from torch import nn


def tiny_data(n_train: int = 96, n_test: int = 48, seed: int = 0) -> DeviceData:
    """Three classes of 1x8x8 'images': a bright row at a class-dependent height + noise."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.randint(0, 3, (n,), generator=g)
        x = torch.randint(0, 60, (n, 1, 8, 8), generator=g)
        for c in range(3):
            x[y == c, 0, 1 + 2 * c] += 180
        return x.to(torch.uint8), y

    tx, ty = make(n_train)
    vx, vy = make(16)
    sx, sy = make(n_test)
    return DeviceData("tiny", tx, ty, vx, vy, sx, sy, num_classes=3, in_shape=(1, 8, 8),
                      augment=(), mean=(0.3,), std=(0.3,))


def tiny_model(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3))


SMALL = ESGDConfig(mu=6, lam=12, rho=2, generations=4, epochs_per_generation=1,
                   batch_size=16, fitness_examples=64, recal_batches=2,
                   pool=OptimizerPool(sgd_lr=(0.05, 0.3), adam_lr=(1e-3, 1e-2)), seed=3)


# ---------------------------------------------------------------- operators
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


def test_recombining_identical_parents_with_sigma_zero_returns_the_parent():
    pop = Population.from_models([tiny_model(0), tiny_model(1)])
    # three copies of member 1: a naive mean (a + a + a) / 3 would not be exact
    kids = recombine(pop, np.array([[1, 1, 1], [0, 0, 0]]), 0.0, None)
    for k in pop.params:
        assert torch.equal(kids.params[k][0], pop.params[k][1])
        assert torch.equal(kids.params[k][1], pop.params[k][0])
    for k in pop.buffers:
        assert torch.equal(kids.buffers[k][0], pop.buffers[k][1])


def test_recombination_is_parent_mean_plus_sigma_noise():
    pop = Population.from_models([tiny_model(0), tiny_model(1)])
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


def test_backoff_restores_exact_previous_weights():
    data = tiny_data()
    pop = Population.from_models([tiny_model(0), tiny_model(1)])
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


# ---------------------------------------------------------------- whole runs
@pytest.fixture(scope="module")
def esgd_run():
    return esgd.run("esgd", SMALL, tiny_model, tiny_data())


def _population_after(records, k):
    gen = records[(records.generation == k) & records.selected]
    return np.sort(gen.fitness.to_numpy())


def test_best_and_m_elitist_fitness_never_increase(esgd_run):
    rec = esgd_run.records
    m = SMALL.m
    best, elite = [], []
    for k in range(SMALL.generations + 1):
        f = _population_after(rec, k)
        assert len(f) == SMALL.mu
        best.append(f[0])
        elite.append(f[:m].mean())
    assert all(b1 <= b0 for b0, b1 in zip(best, best[1:], strict=False)), best
    assert all(e1 <= e0 for e0, e1 in zip(elite, elite[1:], strict=False)), elite
    assert best[-1] < best[0]  # and the run actually learned something
    # the carried fitness is the real, deterministic fitness of the final weights
    fit_batches = esgd._fitness_batches(tiny_data(), SMALL)
    again = evaluate(esgd_run.population, fit_batches)[0].numpy()
    np.testing.assert_allclose(again, esgd_run.final.fitness.to_numpy(), rtol=1e-6)


def test_backoff_never_worsens_an_individual(esgd_run):
    par = esgd_run.records[(esgd_run.records.generation > 0) & ~esgd_run.records.offspring]
    assert (par.fitness <= par.fitness_start).all()


def test_records_describe_every_individual(esgd_run):
    rec = esgd_run.records
    for k in range(1, SMALL.generations + 1):
        g = rec[rec.generation == k]
        assert (~g.offspring).sum() == SMALL.mu and g.offspring.sum() == SMALL.lam
        assert g.selected.sum() == SMALL.mu and g.elite.sum() == SMALL.m
        kids = g[g.offspring]
        prev = set(rec[(rec.generation == k - 1) & rec.selected].individual)
        assert all(len(p) == SMALL.rho and set(p) <= prev for p in kids.parents)
        assert set(g[~g.offspring].optimizer) <= {"sgd", "momentum", "nesterov", "adam"}
        lr = g[~g.offspring & (g.optimizer != "adam")].lr
        assert ((lr >= 0.9**k * 0.05 - 1e-12) & (lr <= 0.9**k * 0.3 + 1e-12)).all()
    assert rec.individual.is_unique is False  # survivors appear again in later generations
    assert esgd_run.final.test_error.between(0, 1).all()


def test_offspring_get_recalibrated_batchnorm(monkeypatch):
    calls = []
    real = esgd.recalibrate_bn

    def spy(pop, idx, batches):
        before = {k: v.clone() for k, v in pop.buffers.items()}
        n = real(pop, idx, batches)
        calls.append((len(pop), n, any(not torch.equal(before[k], pop.buffers[k])
                                       for k in before if "running" in k)))
        return n

    monkeypatch.setattr(esgd, "recalibrate_bn", spy)
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 2})
    esgd.run("esgd", cfg, tiny_model, tiny_data())
    assert calls == [(cfg.lam, cfg.recal_batches, True)] * 2


def test_same_seed_same_run_and_other_seed_differs():
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 1, "mu": 3, "lam": 4})
    a = esgd.run("esgd", cfg, tiny_model, tiny_data())
    b = esgd.run("esgd", cfg, tiny_model, tiny_data())
    c = esgd.run("esgd", ESGDConfig(**{**cfg.__dict__, "seed": 4}), tiny_model, tiny_data())
    assert a.records.drop(columns="parents").equals(b.records.drop(columns="parents"))
    assert not np.allclose(a.records.fitness, c.records.fitness)


@pytest.mark.parametrize("method", ["population", "no-evolution", "esgd"])
def test_every_method_gets_the_same_epoch_budget(method, monkeypatch):
    epochs = []
    real = esgd._train_epoch
    monkeypatch.setattr(esgd, "_train_epoch",
                        lambda pop, *a: (epochs.append(len(pop)), real(pop, *a))[1])
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 2, "epochs_per_generation": 2,
                        "mu": 3, "lam": 3})
    res = esgd.run(method, cfg, tiny_model, tiny_data())
    assert epochs == [cfg.mu] * 4  # every individual slot trains K * K_s epochs
    rec = res.records[res.records.generation > 0]
    assert rec.offspring.any() == (method == "esgd")
    if method == "population":  # drawn once and kept
        per = rec.groupby("individual")[["optimizer", "lr", "momentum"]].nunique()
        assert (per == 1).all().all()
        assert (rec.backoffs == 0).all()


def test_single_baseline_runs_one_model_with_torch_optim():
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 2, "single_lr": 0.1})
    res = esgd.run("single", cfg, tiny_model, tiny_data())
    assert len(res.final) == 1 and list(res.records.generation) == [0, 1, 2]
    assert res.records.fitness.iloc[-1] < res.records.fitness.iloc[0]


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="rho"):
        ESGDConfig(mu=2, rho=3)
    with pytest.raises(ValueError, match="elite_fraction"):
        ESGDConfig(elite_fraction=0)
    with pytest.raises(ValueError, match="gamma"):
        OptimizerPool(gamma=1.5)
    with pytest.raises(ValueError, match="unknown ESGD setting"):
        ESGDConfig.from_dict({"mu": 4, "sigma": 0.1})
    with pytest.raises(ValueError, match="unknown ESGD method"):
        esgd.run("pbt", SMALL, tiny_model, tiny_data())


@pytest.mark.slow
def test_m_elitist_guarantee_on_shipped_mnist():
    """The theorem on real digits: the shipped MNIST subset, the mnist-small preset's CNN."""
    from lcsim.hpo_sim.live.esgd_cli import load_data, load_preset, model_factory

    preset = load_preset("mnist-small")
    data = load_data(preset, None, "cpu", 512)
    cfg = ESGDConfig.from_dict({**preset["config"], "mu": 6, "lam": 12, "generations": 3,
                                "fitness_examples": 512})
    res = esgd.run("esgd", cfg, model_factory(preset, data), data)
    best = [_population_after(res.records, k)[0] for k in range(4)]
    elite = [_population_after(res.records, k)[:cfg.m].mean() for k in range(4)]
    assert np.all(np.diff(best) <= 0) and np.all(np.diff(elite) <= 0), (best, elite)
    assert best[-1] < 0.5 * best[0]


def test_training_in_chunks_of_members_changes_nothing_but_memory():
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 1, "mu": 5, "lam": 4})
    whole = esgd.run("no-evolution", cfg, tiny_model, tiny_data())
    chunked = esgd.run("no-evolution", ESGDConfig(**{**cfg.__dict__, "train_members": 2}),
                       tiny_model, tiny_data())
    np.testing.assert_allclose(chunked.records.fitness, whole.records.fitness, rtol=1e-5)
    torch.testing.assert_close(chunked.population.flat(), whole.population.flat())


def test_perturbed_initial_population_shares_one_centre(monkeypatch):
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 1, "mu": 4, "lam": 4,
                        "init": "perturb", "sigma0": 0.02})
    seen = {}
    real = esgd.sgd_step

    def spy(pop, *a, **kw):  # the weights as the first SGD step receives them
        seen.setdefault("w", pop.flat().clone())
        return real(pop, *a, **kw)

    monkeypatch.setattr(esgd, "sgd_step", spy)
    esgd.run("no-evolution", cfg, tiny_model, tiny_data())
    w = seen["w"]
    centre = torch.nn.utils.parameters_to_vector(
        tiny_model(int(np.random.SeedSequence(cfg.seed).spawn(4)[0].spawn(1)[0]
                       .generate_state(1)[0] % 2**31)).parameters())
    noise = w - centre.detach()
    assert float(noise.std()) == pytest.approx(0.02, rel=0.1)
    assert not torch.equal(noise[0], noise[1])
    with pytest.raises(ValueError, match="init"):
        ESGDConfig(init="zeros")
