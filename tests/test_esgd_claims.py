"""ESGD's tables and claims (hpo_sim.live.esgd.summary / claims) on synthetic frames and on a
real run: Theorem 1 and ESGD vs the population baseline, each satisfied and refuted."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.live.esgd import ESGDConfig, OptimizerPool
from lcsim.hpo_sim.live.esgd import algorithm as esgd
from lcsim.hpo_sim.live.esgd.claims import esgd_vs_population, theorem1
from lcsim.hpo_sim.live.esgd.summary import GENERATION_COLUMNS, generations, summarize


def records(pops: list[list[float]], method: str = "esgd") -> pd.DataFrame:
    """Record rows whose selected individuals at generation k have fitness pops[k] (plus
    one unselected offspring per generation, worse than all)."""
    rows = []
    for k, fits in enumerate(pops):
        rows += [dict(method=method, generation=k, individual=10 * k + j, fitness=f,
                      selected=True) for j, f in enumerate(fits)]
        rows.append(dict(method=method, generation=k, individual=10 * k + 9, fitness=99.0,
                         selected=False))
    return pd.DataFrame(rows)


def test_generations_are_the_selected_population_per_generation():
    g = generations(records([[3.0, 1.0, 2.0, 4.0], [0.5, 2.5, 1.5, 0.9]]), m=2,
                    epochs_per_generation=5)
    assert tuple(g.columns) == GENERATION_COLUMNS
    assert g.best_fitness.tolist() == [1.0, 0.5] and g.m_elitist_fitness.tolist() == [1.5, 0.7]
    assert g.epochs.tolist() == [0, 5] and (g.population == 4).all()
    assert g.top15_fitness_high.tolist() == [4.0, 2.5]  # 99 was not selected


def test_theorem1_holds_and_is_refuted():
    ok = theorem1(generations(records([[3, 2, 5], [2, 1.5, 9], [1, 1.5, 9]]), m=2))
    assert ok.holds is True and ok.value <= 0 and ok.inputs["m"] == 2
    # the best improves but the m-elitist average gets worse (2.5 -> 3.0): refuted
    bad = theorem1(generations(records([[3, 2, 5], [1, 5, 9]]), m=2))
    assert bad.holds is False and bad.value == pytest.approx(0.5)
    worse = theorem1(generations(records([[1, 2], [1.5, 2]]), m=1))
    assert worse.holds is False and worse.value == pytest.approx(0.5)
    na = theorem1(generations(records([[1, 2]]), m=1))
    assert na.holds is None and "2 generations" in na.missing


def test_summary_reports_the_top_15_as_a_range():
    final = pd.DataFrame({"individual": range(20), "fitness": np.arange(20, 0, -1) / 10,
                          "test_loss": 0.0, "test_error": np.linspace(0.3, 0.1, 20)})
    s = summarize({"esgd": final}).iloc[0]
    assert s.best_fitness == 0.1 and s.top15_fitness_low == 0.1
    assert s.top15_fitness_high == pytest.approx(1.5)  # theta_15
    assert s.top15_fitness_mean == pytest.approx(0.8)
    errs = np.linspace(0.3, 0.1, 20)[5:]  # the 15 fittest individuals' errors
    assert (s.top15_test_error_low, s.top15_test_error_high) == pytest.approx(
        (errs.min(), errs.max()))


def _summary(esgd_best: float, pop_best: float) -> pd.DataFrame:
    finals = {m: pd.DataFrame({"individual": [0, 1], "fitness": [b, b + 1],
                               "test_loss": [0.0, 0.0], "test_error": [0.2, 0.3]})
              for m, b in (("esgd", esgd_best), ("population", pop_best))}
    return summarize(finals)


def test_esgd_vs_population_holds_and_is_refuted():
    ok = esgd_vs_population(_summary(0.8, 1.0))
    assert ok.holds is True and ok.value == pytest.approx(-0.2)
    assert ok.inputs["population_top15_fitness_high"] == 2.0
    bad = esgd_vs_population(_summary(1.3, 1.0))
    assert bad.holds is False and bad.value == pytest.approx(0.3)
    na = esgd_vs_population(_summary(1.0, 1.0).query("method == 'esgd'"))
    assert na.holds is None and "population" in na.missing and math.isnan(na.value)


def test_theorem1_holds_on_a_real_esgd_run(bn_net, tiny_images):
    cfg = ESGDConfig(mu=4, lam=8, generations=3, batch_size=16, fitness_examples=0,
                     recal_batches=2, pool=OptimizerPool(sgd_lr=(0.05, 0.3)), seed=1)
    res = esgd.run("esgd", cfg, bn_net, tiny_images)
    c = theorem1(generations(res.records, cfg.m))
    assert c.holds is True and len(c.inputs["best"]) == 4


def test_fitness_on_val_uses_the_validation_split(bn_net, tiny_images):
    cfg = ESGDConfig(mu=2, lam=2, generations=1, batch_size=16, fitness_on="val",
                     fitness_examples=0, recal_batches=1, seed=0)
    assert esgd.fitness_size(tiny_images, cfg) == 48  # all validation images
    res = esgd.run("population", cfg, bn_net, tiny_images)
    batches = esgd._fitness_batches(tiny_images, cfg)
    assert sum(len(y) for _, y in batches) == 48
    assert np.isfinite(res.records.fitness).all()
    with pytest.raises(ValueError, match="fitness_on must be 'train' or 'val'"):
        ESGDConfig(fitness_on="test")
