"""ESGD runs (hpo_sim.live.esgd.algorithm): the m-elitist guarantee, records, budgets,
baselines, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lcsim.hpo_sim.live.common import PresetError, build_config, child_seeds
from lcsim.hpo_sim.live.esgd import ESGDConfig, OptimizerPool
from lcsim.hpo_sim.live.esgd import algorithm as esgd
from lcsim.hpo_sim.live.population import evaluate

SMALL = ESGDConfig(mu=6, lam=12, rho=2, generations=4, epochs_per_generation=1,
                   batch_size=16, fitness_examples=64, recal_batches=2,
                   pool=OptimizerPool(sgd_lr=(0.05, 0.3), adam_lr=(1e-3, 1e-2)), seed=3)


@pytest.fixture(scope="module")
def esgd_run(bn_net, tiny_images):
    return esgd.run("esgd", SMALL, bn_net, tiny_images)


def _population_after(records, k):
    gen = records[(records.generation == k) & records.selected]
    return np.sort(gen.fitness.to_numpy())


def test_best_and_m_elitist_fitness_never_increase(esgd_run, tiny_images):
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
    fit_batches = esgd._fitness_batches(tiny_images, SMALL)
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


def test_offspring_get_recalibrated_batchnorm(monkeypatch, bn_net, tiny_images):
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
    esgd.run("esgd", cfg, bn_net, tiny_images)
    assert calls == [(cfg.lam, cfg.recal_batches, True)] * 2


def test_same_seed_same_run_and_other_seed_differs(bn_net, tiny_images):
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 1, "mu": 3, "lam": 4})
    a = esgd.run("esgd", cfg, bn_net, tiny_images)
    b = esgd.run("esgd", cfg, bn_net, tiny_images)
    c = esgd.run("esgd", ESGDConfig(**{**cfg.__dict__, "seed": 4}), bn_net, tiny_images)
    assert a.records.drop(columns="parents").equals(b.records.drop(columns="parents"))
    assert not np.allclose(a.records.fitness, c.records.fitness)


@pytest.mark.parametrize("method", ["population", "no-evolution", "esgd"])
def test_every_method_gets_the_same_epoch_budget(method, monkeypatch, bn_net, tiny_images):
    epochs = []
    real = esgd._train_epoch
    monkeypatch.setattr(esgd, "_train_epoch",
                        lambda pop, *a: (epochs.append(len(pop)), real(pop, *a))[1])
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 2, "epochs_per_generation": 2,
                        "mu": 3, "lam": 3})
    res = esgd.run(method, cfg, bn_net, tiny_images)
    assert epochs == [cfg.mu] * 4  # every individual slot trains K * K_s epochs
    rec = res.records[res.records.generation > 0]
    assert rec.offspring.any() == (method == "esgd")
    if method == "population":  # drawn once and kept
        per = rec.groupby("individual")[["optimizer", "lr", "momentum"]].nunique()
        assert (per == 1).all().all()
        assert (rec.backoffs == 0).all()


def test_single_baseline_runs_one_model_with_torch_optim(bn_net, tiny_images):
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 2, "single_lr": 0.1})
    res = esgd.run("single", cfg, bn_net, tiny_images)
    assert len(res.final) == 1 and list(res.records.generation) == [0, 1, 2]
    assert res.records.fitness.iloc[-1] < res.records.fitness.iloc[0]


def test_bad_settings_are_named(bn_net, tiny_images):
    with pytest.raises(ValueError, match="rho"):
        ESGDConfig(mu=2, rho=3)
    with pytest.raises(ValueError, match="elite_fraction"):
        ESGDConfig(elite_fraction=0)
    with pytest.raises(ValueError, match="gamma"):
        OptimizerPool(gamma=1.5)
    with pytest.raises(PresetError, match="unknown key.*'sigma'.*allowed:.*sigma0"):
        build_config(ESGDConfig, {"mu": 4, "sigma": 0.1}, "ESGD config")
    with pytest.raises(ValueError, match="unknown ESGD method"):
        esgd.run("pbt", SMALL, bn_net, tiny_images)


@pytest.mark.slow
def test_m_elitist_guarantee_on_shipped_mnist():
    """The theorem on real digits: the shipped MNIST subset, the mnist-small preset's CNN."""
    from lcsim.hpo_sim.live.common import load_data, load_preset, model_factory
    from lcsim.hpo_sim.live.esgd.cli import PRESET_KEYS

    preset = load_preset("esgd", "mnist-small", **PRESET_KEYS)
    data = load_data(preset["dataset"], train_examples=512)
    cfg = build_config(ESGDConfig, {**preset["config"], "mu": 6, "lam": 12, "generations": 3,
                                    "fitness_examples": 512}, "mnist-small")
    res = esgd.run("esgd", cfg, model_factory(preset["model"], data), data)
    best = [_population_after(res.records, k)[0] for k in range(4)]
    elite = [_population_after(res.records, k)[:cfg.m].mean() for k in range(4)]
    assert np.all(np.diff(best) <= 0) and np.all(np.diff(elite) <= 0), (best, elite)
    assert best[-1] < 0.5 * best[0]


def test_training_in_chunks_of_members_changes_nothing_but_memory(bn_net, tiny_images):
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 1, "mu": 5, "lam": 4})
    whole = esgd.run("no-evolution", cfg, bn_net, tiny_images)
    chunked = esgd.run("no-evolution", ESGDConfig(**{**cfg.__dict__, "train_members": 2}),
                       bn_net, tiny_images)
    np.testing.assert_allclose(chunked.records.fitness, whole.records.fitness, rtol=1e-5)
    torch.testing.assert_close(chunked.population.flat(), whole.population.flat())


def test_perturbed_initial_population_shares_one_centre(monkeypatch, bn_net, tiny_images):
    cfg = ESGDConfig(**{**SMALL.__dict__, "generations": 1, "mu": 4, "lam": 4,
                        "init": "perturb", "sigma0": 0.02})
    seen = {}
    real = esgd.sgd_step

    def spy(pop, *a, **kw):  # the weights as the first SGD step receives them
        seen.setdefault("w", pop.flat().clone())
        return real(pop, *a, **kw)

    monkeypatch.setattr(esgd, "sgd_step", spy)
    esgd.run("no-evolution", cfg, bn_net, tiny_images)
    w = seen["w"]
    s_init = np.random.SeedSequence(cfg.seed).spawn(4)[0]  # run's first child: init
    centre = torch.nn.utils.parameters_to_vector(
        bn_net(child_seeds(s_init, 1, below=2**31)[0]).parameters())
    noise = w - centre.detach()
    assert float(noise.std()) == pytest.approx(0.02, rel=0.1)
    assert not torch.equal(noise[0], noise[1])
    with pytest.raises(ValueError, match="init"):
        ESGDConfig(init="zeros")
