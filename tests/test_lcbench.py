"""The lcbench-mlp space, its funnel MLP, its training recipe and the digits dataset."""

import math

import numpy as np
import pytest
import torch
from lcsim.pregen import trainer
from lcsim.pregen.data import load_dataset
from lcsim.pregen.models import build_model, count_params, funnel_dropout, funnel_units
from lcsim.pregen.trainer import TrainSpec, train_config
from lcsim.tabular.spaces import (
    LCBENCH_MLP_SPACE,
    MNIST_SPACE,
    ConfigError,
    Param,
    Recipe,
    Space,
    get_space,
)

S = LCBENCH_MLP_SPACE
SMALL = {"batch_size": 64, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
         "num_layers": 2, "max_units": 64, "max_dropout": 0.0}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_space_has_lcbenchs_seven_hyperparameters_and_ranges():
    assert get_space("lcbench-mlp") is S
    want = {"batch_size": ("logint", 16, 512), "learning_rate": ("logfloat", 1e-4, 1e-1),
            "momentum": ("float", 0.1, 0.99), "weight_decay": ("float", 1e-5, 1e-1),
            "num_layers": ("int", 1, 5), "max_units": ("logint", 64, 1024),
            "max_dropout": ("float", 0.0, 1.0)}
    assert {p.name: (p.kind, p.low, p.high) for p in S.params} == want


def test_every_mapped_config_is_in_range_and_integers_hit_both_ends():
    cfgs = S.configs(0, 4096, seed=0)
    assert all(S.validate(c) == c for c in cfgs)
    for name, lo, hi in (("batch_size", 16, 512), ("max_units", 64, 1024), ("num_layers", 1, 5)):
        values = {c[name] for c in cfgs}
        assert min(values) == lo and max(values) == hi and all(isinstance(v, int) for v in values)


def test_log_integers_are_log_uniform_and_linear_floats_are_uniform():
    cfgs = S.configs(0, 4096, seed=1)
    bs = np.array([c["batch_size"] for c in cfgs])
    # P(batch < 64) = log(64/16) / log(513/16) for log-width bins over [16, 513)
    assert abs(np.mean(bs < 64) - math.log(4) / math.log(513 / 16)) < 0.01
    wd = np.array([c["weight_decay"] for c in cfgs])  # linear in LCBench, not log
    assert abs(np.mean(wd < 0.05) - (0.05 - 1e-5) / (0.1 - 1e-5)) < 0.01


def test_log_int_unit_encoding_round_trips():
    p = Param("units", "logint", 64, 1024)
    values = np.arange(64, 1025)
    u = np.array([p.to_unit(v) for v in values])
    assert np.all(np.diff(u) > 0) and 0 < u[0] and u[-1] < 1
    assert np.array_equal(p.from_unit(u), values)
    cfgs = S.configs(0, 64, seed=2)
    assert S.from_unit(S.to_unit(cfgs)) == [
        {k: (v if S.param(k).integer else pytest.approx(v)) for k, v in c.items()} for c in cfgs]


def test_ids_are_sobol_indices_and_bad_values_are_named():
    assert S.config_at(37, seed=4) == S.configs(30, 40, seed=4)[7]
    with pytest.raises(ConfigError, match=r"batch_size=600 .*\[16, 512\]"):
        S.validate({**SMALL, "batch_size": 600})
    with pytest.raises(ConfigError, match=r"max_units=100.5 must be an integer"):
        S.validate({**SMALL, "max_units": 100.5})


@pytest.mark.parametrize("layers, units, drop, widths, rates", [
    (1, 1024, 0.9, [], []),  # a linear model: no hidden layer
    (2, 64, 0.5, [64], [0.5]),
    (3, 100, 0.8, [100, 55], [0.8, 0.4]),  # step int((100 - 10) / 2) = 45
    (5, 1024, 1.0, [1024, 771, 518, 265], [1.0, 0.75, 0.5, 0.25]),  # step 253
    (5, 1024, 0.05, [1024, 771, 518, 265], [0.0] * 4),  # <= 0.05: no dropout at all
])
def test_funnel_widths_and_dropout_for_corner_configs(layers, units, drop, widths, rates):
    assert funnel_units(64, 10, units, layers) == widths
    assert funnel_dropout(drop, layers) == pytest.approx(rates)
    cfg = S.full({**SMALL, "num_layers": layers, "max_units": units, "max_dropout": drop})
    model = build_model("lcbench-mlp", cfg, in_shape=(64, 1, 1), num_classes=10)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == widths + [10]
    assert linears[0].in_features == 64 and len(linears) == layers
    assert [m.p for m in model if isinstance(m, torch.nn.Dropout)] == pytest.approx(
        [r for r in rates if drop > 0.05])
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model)
    assert count_params(model) == sum(m.in_features * m.out_features + m.out_features
                                      for m in linears)


def test_wider_first_layer_than_max_units_when_inputs_are_wider():
    assert funnel_units(100, 10, 64, 3) == [100, 55]  # Auto-PyTorch: max(in, max_units)


def test_recipes_set_optimizer_schedule_and_the_configs_values():
    full = S.full(SMALL)
    assert S.recipe.overrides(full) == {
        "optimizer": "momentum", "schedule": "cosine", "lr": 0.05, "momentum": 0.9,
        "weight_decay": 1e-4, "batch_size": 64}
    mnist = MNIST_SPACE.full(MNIST_SPACE.config_at(0, seed=0))
    assert MNIST_SPACE.recipe.overrides(mnist) == {
        "optimizer": "adam", "schedule": "constant", "lr": mnist["learning_rate"],
        "l2_weight": mnist["l2_weight"]}


def test_recipe_and_space_reject_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown TrainSpec field\(s\) \['nesterov'\]"):
        Recipe(spec_keys=(("nesterov", "x"),))
    with pytest.raises(ValueError, match=r"recipe reads \['lr0'\]"):
        Space("s", (Param("x", "float", 0, 1),), recipe=Recipe(spec_keys=(("lr", "lr0"),)))


def test_train_config_trains_with_the_spaces_recipe(digits, monkeypatch):
    seen = []
    real = trainer.train

    def spy(model, data, spec, **kw):
        seen.append(spec)
        return real(model, data, spec, **kw)

    monkeypatch.setattr(trainer, "train", spy)
    cfg = {**SMALL, "batch_size": 37}
    r = train_config(S, cfg, digits, TrainSpec(epochs=4, batch_size=128, lr=1.0), "cpu")
    spec = seen[0]
    assert (spec.optimizer, spec.schedule, spec.batch_size) == ("momentum", "cosine", 37)
    assert (spec.lr, spec.momentum, spec.weight_decay, spec.l2_weight) == (0.05, 0.9, 1e-4, 0)
    cosine = [1e-8 + (0.05 - 1e-8) * (1 + math.cos(math.pi * (t - 1) / 4)) / 2
              for t in (1, 2, 3, 4)]
    assert [e.lr for e in r.epochs] == pytest.approx(cosine, rel=1e-9)
    assert r.status == "complete" and r.epochs[-1].val_accuracy > 0.8  # digits are learnable


def test_a_configs_curve_is_reproducible_from_its_seed(digits):
    cfg = {**SMALL, "num_layers": 3, "max_dropout": 0.5}

    def curve(seed):
        r = train_config(S, cfg, digits, TrainSpec(epochs=3, seed=seed), "cpu")
        return [(e.train_loss, e.val_loss, e.val_accuracy) for e in r.epochs]

    assert curve(5) == curve(5)
    assert curve(5) != curve(6)


def test_digits_splits_sizes_and_seeding():
    a = load_dataset("digits")
    assert (len(a.train_y), len(a.val_y), len(a.test_y)) == (1150, 287, 360)
    assert a.in_shape == (64, 1, 1) and a.num_classes == 10 and a.augment == ()
    b = load_dataset("digits", split_seed=1)
    assert torch.equal(a.test_x, b.test_x)  # one fixed test split for every table
    assert not torch.equal(a.val_x, b.val_x)
    assert torch.equal(load_dataset("digits").val_x, a.val_x)
    from sklearn.datasets import load_digits

    d = load_digits()
    ours = torch.cat([a.train_x, a.val_x, a.test_x]).flatten(1).numpy()
    assert sorted(map(bytes, ours)) == sorted(map(bytes, d.images.reshape(-1, 64).astype(
        np.uint8)))
    assert len(load_dataset("digits", val_size=100).val_y) == 100


def test_digits_are_standardised_per_feature_on_the_training_split():
    d = load_dataset("digits")
    x, _ = next(d.batches("train", 2000))
    x = x.flatten(1)
    varying = d.train_x.flatten(1).float().std(0) > 0
    assert torch.allclose(x.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(x.std(0, unbiased=False)[varying], torch.ones(int(varying.sum())),
                          atol=1e-5)
    assert torch.all(x[:, ~varying] == 0)  # a constant feature: centred, scale 1


def test_a_table_i_cnn_on_digits_is_a_clear_user_error(capsys):
    from lcsim.cli import main

    assert main(["train", "--space", "mnist", "--dataset", "digits", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "a pool of" in err and "(64, 1, 1)" in err and "Traceback" not in err


def test_the_pregen_runner_writes_lcbench_curves_as_train_config_trains_them(tmp_path, digits):
    from lcsim.pregen.runner import RunConfig, config_seed, run
    from lcsim.tabular.table import LookupTable

    out = tmp_path / "t"
    run(RunConfig(out=str(out), space="lcbench-mlp", dataset="digits", n_configs=2, epochs=2,
                  progress=False))
    t = LookupTable.open(out)
    assert (t.meta["optimizer"], t.meta["schedule"]) == ("momentum", "cosine")
    assert t.meta["batch_size"] == "per config (batch_size)" and t.meta["n_train"] == 1150
    for i in (0, 1):
        r = train_config(S, S.config_at(i, 0), digits,
                         TrainSpec(epochs=2, seed=config_seed(0, i)), "cpu")
        assert t.curve(i).tolist() == [e.val_accuracy for e in r.epochs]


def test_a_run_of_the_lcbench_space_trains_on_digits_by_default():
    from lcsim.pregen.runner import DEFAULT_EPOCHS, RunConfig

    assert RunConfig(out="t", space="lcbench-mlp").dataset == "digits"
    assert RunConfig(out="t").dataset == "mnist"  # Table I spaces: their own dataset
    assert RunConfig(out="t", space="cifar10", dataset="svhn-extra").epochs is None
    assert DEFAULT_EPOCHS["svhn-extra"] == DEFAULT_EPOCHS["svhn"]
