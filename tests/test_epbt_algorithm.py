"""EPBT, PBT and Baseline 1 runs (hpo_sim.live.epbt.algorithm, .baselines) on the tiny
images with the tiny batch-norm net (tests/conftest.py): seconds each."""

import numpy as np
import pandas as pd
import pytest
import torch
from lcsim.hpo_sim.live.epbt import (
    EPBTConfig,
    EPBTRun,
    epochs_to_pass,
    lineage,
    make_engine,
    run,
    summarize,
)
from lcsim.hpo_sim.live.epbt import results as layout

TINY = dict(population=6, elites=3, generations=3, epochs_per_generation=1, batch_size=16,
            behaviour_size=20, novelty_period=1, bn_batches=100)


@pytest.fixture(scope="module")
def data(tiny_images):
    return tiny_images


def _epbt(data, bn_net, **kw):
    cfg = EPBTConfig(**{**TINY, **kw})
    r = EPBTRun(make_engine(cfg, data, bn_net), cfg)
    r.start()
    return r


def test_elites_carry_weights_buffers_and_optimizer_state_unchanged(data, bn_net):
    r = _epbt(data, bn_net)
    before_w, before_b = r.pop.flat(), {k: v.clone() for k, v in r.pop.buffers.items()}
    before_buf = {k: v.clone() for k, v in r.opt.buf.items()}
    before_ids, before_fit = r.s["id"].copy(), r.s["fitness"].copy()
    r.step(1)
    e, k = r.last_elites, r.cfg.elites
    assert torch.equal(r.pop.flat()[:k], before_w[e])
    for name, v in r.pop.buffers.items():
        assert torch.equal(v[:k], before_b[name][e]), name
    for name, v in r.opt.buf.items():
        assert torch.equal(v[:k], before_buf[name][e]), name
    assert np.array_equal(r.s["id"][:k], before_ids[e])
    assert np.array_equal(r.s["fitness"][:k], before_fit[e])
    # the children did train: none equals its parent any more
    par = r.last_parents
    assert not torch.equal(r.pop.flat()[k:], before_w[par])


def test_children_bn_statistics_are_recalibrated_before_fitness(data, monkeypatch, bn_net):
    r = _epbt(data, bn_net)
    eng, seen = r.eng, []
    x_all = torch.cat([x for x, _ in data.batches("train", 1000)])
    orig_measure = eng.measure

    def spy_measure(pop):
        # running_mean of the first BN = exact mean of the conv output over the whole train set
        for i in range(pop.size):
            conv = pop.member(i)[0]
            want = conv(x_all).mean((0, 2, 3))
            got = pop.buffers["1.running_mean"][i]
            seen.append(torch.allclose(got, want, atol=1e-5))
        return orig_measure(pop)

    monkeypatch.setattr(eng, "measure", spy_measure)
    r.step(1)
    assert len(seen) == r.cfg.population - r.cfg.elites and all(seen)


def test_without_recalibration_the_spy_would_see_stale_statistics(data, monkeypatch, bn_net):
    # the check above has power: skipping recalibration leaves EMA statistics
    r = _epbt(data, bn_net)
    monkeypatch.setattr(r.eng, "recalibrate", lambda pop: 0)
    x_all = torch.cat([x for x, _ in data.batches("train", 1000)])
    seen = []
    orig = r.eng.measure

    def spy(pop):
        for i in range(pop.size):
            want = pop.member(i)[0](x_all).mean((0, 2, 3))
            seen.append(torch.allclose(pop.buffers["1.running_mean"][i], want, atol=1e-5))
        return orig(pop)

    monkeypatch.setattr(r.eng, "measure", spy)
    r.step(1)
    assert not any(seen)


def test_generation_structure_and_novelty_pulsation(data, bn_net):
    cfg = EPBTConfig(**TINY)
    res = run(cfg, data, bn_net)
    rec = res.records
    assert rec.groupby("generation").size().tolist() == [6, 6, 6]
    g1 = rec[rec.generation == 1]
    assert (g1.role == "elite").sum() == 3 and (g1.role == "child").sum() == 3
    # parents of generation g's children are individuals of generation g - 1
    for g in (1, 2):
        prev = set(rec[rec.generation == g - 1].individual)
        kids = rec[(rec.generation == g) & (rec.role == "child")]
        assert set(kids.parent) <= prev and set(kids.partner) <= prev
    # period 1: novelty off, on, off
    assert rec.groupby("generation").novelty_on.first().tolist() == [False, True, False]
    assert {f"h_theta_{j}" for j in range(8)} <= set(rec.columns)
    n = len(layout.RECORD_COLUMNS)  # the layout analysis reads
    assert tuple(rec.columns[:n]) == layout.RECORD_COLUMNS
    assert all(c.startswith(layout.H_PREFIX) for c in rec.columns[n:-3])
    assert list(rec.columns[-3:]) == ["novelty_on", "alpha", "member_epochs"]
    # Algorithm 1: generation 0 trains all 6 members, later ones the 3 children only
    assert rec.groupby("generation").member_epochs.first().tolist() == [6, 9, 12]
    lin = res.lineage
    assert lin.parent.iloc[0] == -1 and (lin.parent.iloc[1:].values
                                         == lin.individual.iloc[:-1].values).all()


def test_same_seed_same_run_different_seed_different_run(data, bn_net):
    cfg = EPBTConfig(**{**TINY, "generations": 2})
    a = run(cfg, data, bn_net).records
    b = run(cfg, data, bn_net).records
    c = run(EPBTConfig(**{**TINY, "generations": 2, "seed": 1}), data, bn_net).records
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.h_theta_0.values, c.h_theta_0.values)


@pytest.mark.parametrize("method", ["pbt", "baseline", "epbt-ce", "epbt-no-pbd"])
def test_every_method_runs_and_learns_the_tiny_task(data, method, bn_net):
    cfg = EPBTConfig(**{**TINY, "method": method, "generations": 3})
    res = run(cfg, data, bn_net)
    curve = summarize(res.records)
    assert curve.generation.tolist() == [0, 1, 2]
    assert curve.epoch.tolist() == [1, 2, 3]
    assert curve.test_accuracy.iloc[-1] > 0.5  # 3 classes: chance is 1/3
    if method == "pbt":
        rec = res.records
        assert (rec.role == "exploited").sum() == 2 * 2   # bottom 25% of 6 = 2, twice
        assert rec.h_lr.between(1e-4, 0.1).all()
    if method == "baseline":
        assert len(res.records) == 3 and (res.records.h_lr_scale == 1).all()
    assert epochs_to_pass(curve, 0.0) == 1 and epochs_to_pass(curve, 1.0) is None
    assert len(lineage(res.records)) >= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_epbt_runs_on_cuda_like_on_cpu(bn_net, tiny_images):
    d = tiny_images
    cfg = EPBTConfig(**{**TINY, "generations": 2})
    gpu = run(cfg, d.to("cuda"), bn_net, device="cuda").records
    cpu = run(cfg, d, bn_net).records
    assert list(gpu.individual) == list(cpu.individual)
    g0 = gpu.generation == 0  # same seeded h; fitness may differ in the last bits on GPU
    assert np.allclose(gpu.h_theta_0[g0], cpu.h_theta_0[g0])
    assert abs(summarize(gpu).test_accuracy.iloc[-1] - summarize(cpu).test_accuracy.iloc[-1]) < 0.2


@pytest.mark.slow
def test_epbt_learns_real_mnist_subset():
    from lcsim.hpo_sim.live.common import build_config, load_data, load_preset, model_factory
    from lcsim.hpo_sim.live.epbt.cli import PRESET_KEYS

    preset = load_preset("epbt", "mnist-small", **PRESET_KEYS)
    d = load_data(preset["dataset"])
    cfg = build_config(EPBTConfig, {**preset["config"], "generations": 2}, "mnist-small")
    curve = summarize(run(cfg, d, model_factory(preset["model"], d)).records)
    assert curve.test_accuracy.iloc[-1] > 0.9
