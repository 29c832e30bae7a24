"""EPBT's claims and epoch accounting (hpo_sim.live.epbt.claims / summary / training_data):
synthetic records that satisfy and refute each claim, and real tiny runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.live.epbt import EPBTConfig, run, training_data
from lcsim.hpo_sim.live.epbt.claims import beats, loss_functions
from lcsim.hpo_sim.live.epbt.summary import member_epochs

TINY = dict(population=6, elites=3, generations=3, epochs_per_generation=1, batch_size=16,
            behaviour_size=20, novelty_period=1, bn_batches=2)


def curve(method: str, seed: int, accs: list[float], step: int = 2) -> pd.DataFrame:
    """One individual per generation (the fittest), test accuracy `accs`."""
    n = len(accs)
    return pd.DataFrame({"method": method, "seed": seed, "generation": range(n),
                         "epoch": [step * (g + 1) for g in range(n)],
                         "individual": range(n), "fitness": accs, "test_accuracy": accs,
                         "role": "child", "member_epochs": [10 * (g + 1) for g in range(n)]})


def test_epbt_beats_the_baseline_at_equal_epochs_and_is_refuted():
    rec = pd.concat([curve("epbt", 0, [0.5, 0.8, 0.9]), curve("epbt", 1, [0.5, 0.7, 0.86]),
                     curve("baseline", 0, [0.4, 0.6, 0.85]), curve("baseline", 1, [0.5, 0.7,
                                                                                  0.83])])
    c = beats(rec, "baseline")
    assert c.holds is True and c.value == pytest.approx(0.88 - 0.84)
    assert c.inputs["epoch"] == 6 and c.inputs["epbt_member_epochs"] == 30
    worse = pd.concat([curve("epbt", 0, [0.5, 0.8, 0.8]),
                       curve("pbt", 0, [0.5, 0.8, 0.85])])
    c = beats(worse, "pbt")
    assert c.holds is False and c.value == pytest.approx(-0.05) and "PBT" in c.claim


def test_equal_epochs_compares_where_both_runs_got_to():
    # PBT ran only to epoch 4: EPBT's accuracy at epoch 4, not its final one, is compared
    rec = pd.concat([curve("epbt", 0, [0.5, 0.6, 0.99]), curve("pbt", 0, [0.5, 0.7])])
    c = beats(rec, "pbt")
    assert c.inputs["epoch"] == 4 and c.value == pytest.approx(0.6 - 0.7) and not c.holds


def test_beats_without_the_other_method_is_not_checkable():
    c = beats(curve("epbt", 0, [0.5]), "pbt")
    assert c.holds is None and "pbt" in c.missing and math.isnan(c.value)


def _theta_records(thetas: list[list[float]], roles: list[str]) -> pd.DataFrame:
    rows = [{"method": "epbt", "seed": 0, "generation": 0 if r == "initial" else 1,
             "individual": i, "role": r, **{f"h_theta_{j}": t[j] for j in range(8)}}
            for i, (t, r) in enumerate(zip(thetas, roles, strict=True))]
    return pd.DataFrame(rows)


def test_distinct_loss_functions_hold_and_are_refuted():
    rng = np.random.default_rng(0)
    thetas = rng.uniform(-10, 10, (6, 8)).tolist()
    roles = ["initial"] * 4 + ["child"] * 2
    (ok,) = loss_functions(_theta_records(thetas, roles))
    assert ok.holds is True and ok.value == 6 and ok.paper == 520
    thetas[5] = thetas[4]  # a child evaluated the same loss function again
    (dup,) = loss_functions(_theta_records(thetas, roles))
    assert dup.holds is False and dup.value == 5 and dup.inputs["evaluated"] == 6
    (na,) = loss_functions(_theta_records(thetas, roles).drop(columns="h_theta_3"))
    assert na.holds is None and "h_theta" in na.missing


def test_a_real_run_counts_its_loss_functions_and_member_epochs(tiny_images, bn_net):
    res = run(EPBTConfig(**TINY), tiny_images, bn_net)
    (c,) = loss_functions(res.records)
    # 6 in generation 0 + 3 children in each of 2 later generations, all distinct
    assert c.holds is True and c.value == 6 + 2 * 3
    last = res.records[res.records.generation == 2].member_epochs
    assert (last == 6 + 2 * 3).all()  # elites carried untrained (Algorithm 1)


def test_member_epochs_of_the_papers_cifar10_setup():
    # Algorithm 1 with P = 40, k = 20, G = 25, E = 8: 4,160 (Section 5.2 says 8,000)
    P, k, G, E = 40, 20, 25, 8
    roles = [["initial"] * P] + [["elite"] * k + ["child"] * (P - k)] * (G - 1)
    rec = pd.DataFrame([{"method": "epbt", "seed": 0, "generation": g, "role": r}
                        for g, rs in enumerate(roles) for r in rs])
    assert member_epochs(rec, E).max() == 4160
    pbt = rec.assign(method="pbt", role="kept")  # PBT trains every member every generation
    assert member_epochs(pbt, E).max() == 8000


def test_baseline_1_trains_on_the_validation_split_too(tiny_images):
    full = training_data(EPBTConfig(method="baseline", **TINY), tiny_images)
    assert len(full.train_y) == len(tiny_images.train_y) + len(tiny_images.val_y)
    assert full.val_y is tiny_images.val_y  # its fitness still reads the validation split
    held = training_data(EPBTConfig(method="baseline", baseline_full_train=False, **TINY),
                         tiny_images)
    assert held is tiny_images
    assert training_data(EPBTConfig(method="epbt", **TINY), tiny_images) is tiny_images
