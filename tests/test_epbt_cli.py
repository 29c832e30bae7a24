"""`lcsim live epbt` pieces: presets, the closing tables, augmented validation copies."""

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.live.epbt import EPBTConfig
from lcsim.hpo_sim.live.epbt_cli import PRESETS, closing_tables, load_preset
from lcsim.hpo_sim.live.epbt_engine import Engine

from tests.test_epbt import make_data, tiny_bn_net


@pytest.mark.parametrize("name", PRESETS)
def test_presets_build_valid_configs(name):
    preset = load_preset(name)
    cfg = EPBTConfig(**preset["config"])
    assert cfg.elites < cfg.population
    if name == "cifar10-paper":  # paper 4.1
        assert (cfg.population, cfg.elites, cfg.generations, cfg.epochs_per_generation) == (
            40, 20, 25, 8)
        assert preset["val_size"] == 1250 and preset["model"] == {"named": "resnet32"}


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="mnist-small"):
        load_preset("nope")


def _curve(method, seed, accs):
    return pd.DataFrame({"method": method, "seed": seed, "generation": range(len(accs)),
                         "epoch": [2 * (g + 1) for g in range(len(accs))],
                         "individual": range(len(accs)), "fitness": accs,
                         "test_accuracy": accs})


def test_closing_tables_mean_std_and_epochs_to_pass():
    rec = pd.concat([
        _curve("baseline", 0, [0.5, 0.7, 0.80]), _curve("baseline", 1, [0.5, 0.7, 0.84]),
        _curve("epbt", 0, [0.6, 0.83, 0.9]), _curve("epbt", 1, [0.6, 0.75, 0.85]),
    ])
    t = closing_tables(rec).set_index("method")
    assert t.loc["baseline", "final_test_acc_mean"] == pytest.approx(0.82)
    assert t.loc["baseline", "final_test_acc_std"] == pytest.approx(np.std([0.8, 0.84],
                                                                           ddof=1))
    # EPBT seed 0 passes 0.82 at epoch 4, seed 1 at epoch 6 -> mean 5
    assert t.loc["baseline", "epbt_epochs_to_pass"] == 5
    assert t.loc["baseline", "epbt_runs_passing"] == "2/2"


def test_augmented_validation_copies_multiply_the_fitness_set():
    data = make_data()
    kw = dict(seed=0, batch_size=16, behaviour_size=10, bn_batches=1)
    one = Engine(data, tiny_bn_net, **kw)
    three = Engine(data, tiny_bn_net, val_copies=3, **kw)
    n1 = sum(len(y) for _, y in one.val)
    assert sum(len(y) for _, y in three.val) == 3 * n1
    assert len(three.beh_y) == 10


def test_engine_refuses_data_on_another_device():
    with pytest.raises(ValueError, match="data is on cpu"):
        Engine(make_data(), tiny_bn_net, seed=0, batch_size=16, behaviour_size=10,
               bn_batches=1, device="meta")
