"""ALRS claims (hpo_sim.live.alrs.claims) on synthetic result frames: one that satisfies each
claim, one that refutes it, and inputs that make it not checkable."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from lcsim.hpo_sim.live.alrs.claims import cost_about_one_epoch, rate_within_grid, seed_variation
from lcsim.hpo_sim.live.common import claims_frame

GRID = {1e-4: 0.9, 1e-3: 0.3, 3e-3: 0.2, 1e-2: 0.25, 1e-1: 2.0}  # rate -> final loss


def runs_frame(alrs_rates, grid=GRID, tune_epochs=(1.1, 0.9)) -> pd.DataFrame:
    rows = []
    for seed, lr in enumerate(alrs_rates):
        rows.append(dict(experiment="e", dataset="mnist", optimizer="adam", method="alrs",
                         seed=seed, lr=lr, final_loss=0.2, tune_batches=100,
                         tune_epochs=tune_epochs[seed % len(tune_epochs)], epoch_batches=100,
                         alrs_adjustment="last"))
    for lr, loss in grid.items():
        for seed in range(2):
            rows.append(dict(experiment="e", dataset="mnist", optimizer="adam", method="grid",
                             seed=seed, lr=lr, final_loss=loss + 0.01 * seed, tune_batches=0,
                             tune_epochs=0.0, epoch_batches=100, alrs_adjustment="last"))
    return pd.DataFrame(rows)


def study_frame(rates) -> pd.DataFrame:
    return pd.DataFrame([dict(experiment="e", dataset="mnist", optimizer="adam",
                              method="seed_study", seed=i % 3, lr_seed=10.0 ** (i // 3 - 4),
                              lr=lr) for i, lr in enumerate(rates)])


def test_rate_within_the_grids_best_rates_holds_and_is_refuted():
    (ok,) = rate_within_grid(runs_frame([2e-3, 4e-3]))
    assert ok.holds is True and ok.value == pytest.approx(math.sqrt(2e-3 * 4e-3))
    assert ok.inputs["grid_best_rates"] == [3e-3, 1e-2, 1e-3]  # by mean final loss
    assert (ok.inputs["grid_low"], ok.inputs["grid_high"]) == (1e-3, 1e-2)
    (bad,) = rate_within_grid(runs_frame([0.05, 0.08]))
    assert bad.holds is False and bad.value > bad.inputs["grid_high"]


def test_a_diverged_grid_rate_is_not_among_the_best():
    grid = {**GRID, 1e-1: math.nan}  # best loss of all would be NaN: never "best"
    (c,) = rate_within_grid(runs_frame([2e-3], grid=grid))
    assert 1e-1 not in c.inputs["grid_best_rates"]


def test_rate_claim_without_a_grid_is_not_checkable():
    (c,) = rate_within_grid(runs_frame([2e-3], grid={1e-3: 0.3}))
    assert c.holds is None and "grid" in c.missing


def test_seed_variation_holds_and_is_refuted():
    (ok,) = seed_variation(study_frame([1.0e-3, 1.1e-3, 0.9e-3, 1.05e-3, 0.95e-3, 1.0e-3]))
    assert ok.holds is True and ok.value < 5 and ok.paper == 22.37
    wild = [1e-5, 1e-3, 1e-1, 1e-4, 3e-2, 1e-2]
    (bad,) = seed_variation(study_frame(wild))
    s = pd.Series(wild)
    assert bad.value == pytest.approx(100 * s.std() / math.sqrt(6) / s.mean())
    assert bad.holds is False
    (one,) = seed_variation(study_frame([1e-3]))
    assert one.holds is None and one.missing


def test_cost_about_one_epoch_holds_and_is_refuted():
    (ok,) = cost_about_one_epoch(runs_frame([1e-3, 2e-3], tune_epochs=(1.2, 0.8)))
    assert ok.holds is True and ok.value == pytest.approx(1.0)
    (bad,) = cost_about_one_epoch(runs_frame([1e-3, 2e-3], tune_epochs=(3.5, 2.5)))
    assert bad.holds is False and bad.value == pytest.approx(3.0)
    old = runs_frame([1e-3]).drop(columns="tune_epochs")
    (na,) = cost_about_one_epoch(old)
    assert na.holds is None and "tune_epochs" in na.missing


def test_claims_frame_lays_out_one_row_per_claim():
    claims = rate_within_grid(runs_frame([2e-3])) + cost_about_one_epoch(runs_frame([2e-3]))
    df = claims_frame(claims)
    assert list(df.columns) == ["claim", "scope", "value", "holds", "paper", "missing",
                                "inputs"]
    assert len(df) == 2 and (df["scope"] == "e / adam").all()


def test_a_grid_rate_with_one_diverged_seed_is_not_ranked_by_the_others():
    frame = runs_frame([2e-3])
    # seed 1 at lr 1e-4 diverged: seed 0 alone (loss 0.01) would make 1e-4 the best rate
    frame.loc[(frame["method"] == "grid") & (frame["lr"] == 1e-4), "final_loss"] = [0.01,
                                                                                    math.nan]
    (c,) = rate_within_grid(frame)
    assert 1e-4 not in c.inputs["grid_best_rates"]
    assert c.inputs["grid_best_rates"] == [3e-3, 1e-2, 1e-3]
