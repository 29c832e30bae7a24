"""Table I search spaces: mapping, ranges, frequencies, validation, JSON round trip."""

import json

import numpy as np
import pytest
from lcsim.tabular.spaces import CIFAR10_SPACE, MNIST_SPACE, ConfigError, get_space

SPACES = [MNIST_SPACE, CIFAR10_SPACE]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_every_mapped_config_is_in_range(space):
    for cfg in space.configs(0, 4096, seed=3):
        assert space.validate(cfg) == cfg


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_integers_and_categories_are_near_uniform_over_2_14_points(space):
    cfgs = space.configs(0, 2**14, seed=0)
    for p in space.params:
        if p.kind not in ("int", "cat"):
            continue
        values = [c[p.name] for c in cfgs]
        expected = p.choices if p.kind == "cat" else range(int(p.low), int(p.high) + 1)
        counts = np.array([values.count(v) for v in expected])
        assert counts.min() > 0, f"{p.name}: some value never appears"
        mean = len(cfgs) / len(counts)
        # Sobol balance: each equal-width bin gets its share to within a few points
        assert np.abs(counts - mean).max() <= max(3, 0.05 * mean), (p.name, counts)


def test_learning_rate_is_log_uniform():
    lr = np.array([c["learning_rate"] for c in MNIST_SPACE.configs(0, 4096, seed=1)])
    assert lr.min() >= 1e-4 and lr.max() <= 10**-0.5
    share_below_1e_3 = np.mean(lr < 1e-3)
    assert abs(share_below_1e_3 - 1 / 3.5) < 0.01


def test_ids_are_stable_sobol_indices():
    a = MNIST_SPACE.configs(0, 100, seed=7)
    b = MNIST_SPACE.configs(40, 60, seed=7)
    assert a[40:60] == b
    assert MNIST_SPACE.config_at(55, seed=7) == a[55]
    assert MNIST_SPACE.configs(0, 10, seed=8) != a[:10]


def test_validation_names_parameter_and_range():
    cfg = MNIST_SPACE.config_at(0, seed=0)
    with pytest.raises(ConfigError, match=r"c1_filters=400 .*\[1, 350\]"):
        MNIST_SPACE.validate({**cfg, "c1_filters": 400})
    with pytest.raises(ConfigError, match="learning_rate"):
        MNIST_SPACE.validate({**cfg, "learning_rate": 1.0})
    with pytest.raises(ConfigError, match="missing"):
        MNIST_SPACE.validate({k: v for k, v in cfg.items() if k != "dropout"})
    with pytest.raises(ConfigError, match="activation"):
        CIFAR10_SPACE.validate({**CIFAR10_SPACE.config_at(0, 0), "activation": "gelu"})
    with pytest.raises(ConfigError, match="fixed"):
        MNIST_SPACE.validate({**cfg, "activation": "tanh"})


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_json_round_trip_and_unit_inverse(space):
    cfgs = space.configs(0, 64, seed=2)
    for cfg in cfgs:
        assert space.from_json(space.to_json(cfg)) == cfg
        assert json.loads(space.to_json(cfg)) == cfg
    back = space.from_unit(space.to_unit(cfgs))
    for a, b in zip(cfgs, back, strict=True):
        for p in space.params:
            if p.kind in ("int", "cat"):
                assert a[p.name] == b[p.name]
            else:
                assert a[p.name] == pytest.approx(b[p.name], rel=1e-9)


def test_full_adds_fixed_values_and_unknown_space_errors():
    assert CIFAR10_SPACE.full(CIFAR10_SPACE.config_at(0, 0))["dropout"] == 0.5
    assert MNIST_SPACE.full(MNIST_SPACE.config_at(0, 0))["activation"] == "relu"
    with pytest.raises(ValueError, match="unknown space"):
        get_space("imagenet")
