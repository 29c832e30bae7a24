"""pregen.models: every corner of both spaces builds and trains a step; counts; named models."""

import itertools

import numpy as np
import pytest
import torch
from lcsim.pregen.models import (
    NAMED_MODELS,
    build_model,
    build_named_model,
    count_params,
    forward_flops,
)
from lcsim.tabular.spaces import CIFAR10_SPACE, MNIST_SPACE
from torch import nn

IN_SHAPE = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
N_DEFAULT_CORNERS = 6  # seeded subset per space by default; all 2^9 + 2^10 under -m slow


def corners(space):
    """Every config with each dimension at its min or max (first / last category)."""
    ends = [(p.choices[0], p.choices[-1]) if p.kind == "cat" else
            ((int(p.low), int(p.high)) if p.kind == "int" else (p.low, p.high))
            for p in space.params]
    return [dict(zip(space.names, combo, strict=True)) for combo in itertools.product(*ends)]


def _forward_backward(space, cfg):
    model = build_model(space.name, space.full(cfg), in_shape=IN_SHAPE[space.name],
                        num_classes=10, seed=0)
    batch = 2 if space.name == "cifar10" else 1  # batch norm (cifar10 only) needs 2 in training
    x = torch.randn(batch, *IN_SHAPE[space.name], generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (batch, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def _subset(space):
    cs = corners(space)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(cs), N_DEFAULT_CORNERS, replace=False)
    return [cs[0], cs[-1]] + [cs[i] for i in pick]  # all-min, all-max, a seeded sample


@pytest.mark.parametrize("space", [MNIST_SPACE, CIFAR10_SPACE], ids=lambda s: s.name)
def test_corner_count(space):
    assert len(corners(space)) == 2 ** space.dim
    assert all(space.validate(c) == c for c in corners(space)[:: 2 ** space.dim // 16])


@pytest.mark.parametrize("space", [MNIST_SPACE, CIFAR10_SPACE], ids=lambda s: s.name)
def test_seeded_subset_of_corners_builds_and_runs_forward_backward(space):
    for cfg in _subset(space):
        _forward_backward(space, cfg)


@pytest.mark.slow
@pytest.mark.parametrize("space", [MNIST_SPACE, CIFAR10_SPACE], ids=lambda s: s.name)
def test_every_corner_builds_and_runs_forward_backward(space):
    for cfg in corners(space):
        _forward_backward(space, cfg)


def test_cifar_middle_categories_elu_and_dropout_build():
    cfg = {**corners(CIFAR10_SPACE)[0], "activation": "elu", "regularizer": "dropout"}
    model = build_model("cifar10", CIFAR10_SPACE.full(cfg), in_shape=(3, 32, 32),
                        num_classes=10)
    assert any(isinstance(m, nn.ELU) for m in model.modules())
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert [d.p for d in drops] == [0.5]  # Table I fixes the CIFAR-10 dropout rate at 0.5
    _forward_backward(CIFAR10_SPACE, cfg)


def test_mnist_dropout_rate_and_batchnorm_placement():
    cfg = {**corners(MNIST_SPACE)[0], "dropout": 0.3}
    m = build_model("mnist", MNIST_SPACE.full(cfg), in_shape=(1, 28, 28), num_classes=10)
    assert [d.p for d in m.modules() if isinstance(d, nn.Dropout)] == [0.3]
    cfg = {**corners(CIFAR10_SPACE)[-1]}
    m = build_model("cifar10", CIFAR10_SPACE.full(cfg), in_shape=(3, 32, 32), num_classes=10)
    assert cfg["regularizer"] == "batchnorm"
    assert sum(isinstance(x, nn.BatchNorm2d) for x in m.modules()) == 4
    assert sum(isinstance(x, nn.BatchNorm1d) for x in m.modules()) == 1


def test_param_count_and_flops_match_the_layer_arithmetic():
    c1, c2, fc, k = 4, 8, 16, 3
    cfg = {"c1_filters": c1, "c2_filters": c2, "fc_units": fc, "filter_size": k, "pool1": 2,
           "pool2": 3, "learning_rate": 1e-3, "l2_weight": 0.0, "dropout": 0.5}
    model = build_model("mnist", MNIST_SPACE.full(cfg), in_shape=(1, 28, 28), num_classes=10)
    side = 28 // 2 // 3  # 'same' convs keep the size; pools of 2 then 3 (floor)
    flat = c2 * side * side
    params = (1 * c1 * k * k + c1) + (c1 * c2 * k * k + c2) + (flat * fc + fc) + (fc * 10 + 10)
    assert count_params(model) == params
    flops = 2 * (28 * 28 * c1 * k * k * 1 + 14 * 14 * c2 * k * k * c1 + flat * fc + fc * 10)
    model.train()
    assert forward_flops(model, (1, 28, 28)) == flops
    assert model.training  # mode restored


def test_even_filters_pad_like_same():
    cfg = {**corners(CIFAR10_SPACE)[0]}
    assert cfg["filter_size"] == 2
    model = build_model("cifar10", CIFAR10_SPACE.full(cfg), in_shape=(3, 32, 32),
                        num_classes=10)
    h = torch.zeros(1, 3, 32, 32)
    for layer in model:
        h = layer(h)
        if isinstance(layer, nn.Conv2d):
            assert h.shape[-2:] in {(32, 32), (16, 16), (8, 8)}


def test_init_is_seeded_and_leaves_global_rng_alone():
    cfg = MNIST_SPACE.full(corners(MNIST_SPACE)[0])
    state = torch.random.get_rng_state()
    a = build_model("mnist", cfg, in_shape=(1, 28, 28), num_classes=10, seed=5)
    b = build_model("mnist", cfg, in_shape=(1, 28, 28), num_classes=10, seed=5)
    c = build_model("mnist", cfg, in_shape=(1, 28, 28), num_classes=10, seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", NAMED_MODELS)
def test_named_models_build_seeded_and_run(name):
    shape = (1, 28, 28) if name == "mnist-cnn" else (3, 32, 32)
    m = build_named_model(name, in_shape=shape, num_classes=10, seed=1)
    m2 = build_named_model(name, in_shape=shape, num_classes=10, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                  m2.state_dict().values(), strict=True))
    out = m(torch.zeros(2, *shape))
    assert out.shape == (2, 10)


def test_cifar_resnets_have_he_et_al_sizes_and_option_a_shortcuts():
    for name, published in (("resnet20", 0.27e6), ("resnet32", 0.46e6)):
        m = build_named_model(name, in_shape=(3, 32, 32), num_classes=10)
        assert abs(count_params(m) - published) < 0.005e6, name
        convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
        n = {"resnet20": 3, "resnet32": 5}[name]
        assert len(convs) == 1 + 6 * n and all(c.kernel_size == (3, 3) for c in convs)


def test_resnet18_has_a_cifar_stem():
    m = build_named_model("resnet18-cifar", in_shape=(3, 32, 32), num_classes=100)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert isinstance(m.maxpool, nn.Identity) and m.fc.out_features == 100
    feats = {}
    m.layer1.register_forward_hook(lambda mod, i, o: feats.update(l1=o.shape))
    m(torch.zeros(1, 3, 32, 32))
    assert feats["l1"][-2:] == (32, 32)  # no downsampling in the stem


def test_bad_names_are_clear():
    with pytest.raises(ValueError, match="'vgg'"):
        build_named_model("vgg", in_shape=(3, 32, 32), num_classes=10)
    with pytest.raises(ValueError, match="'svhn'"):
        build_model("svhn", {}, in_shape=(3, 32, 32), num_classes=10)


@pytest.mark.parametrize("name, published", [("wrn-28-10", 36.5e6), ("wrn-16-4", 2.7e6),
                                             ("wrn-40-4", 8.9e6)])
def test_wide_resnets_have_the_published_sizes(name, published):
    # Zagoruyko & Komodakis (2016), Table 1 / Table 4 (10 classes), to their rounding
    with torch.device("meta"):  # counts need no memory for the weights
        m = build_named_model(name, in_shape=(3, 32, 32), num_classes=10)
    assert abs(count_params(m) - published) < 0.05e6, (name, count_params(m))


@pytest.mark.parametrize("name, depth, width", [("wrn-10-12", 10, 12), ("wrn-16-8", 16, 8),
                                                ("wrn-22-6", 22, 6), ("wrn-28-5", 28, 5)])
def test_epbt_fig3_wide_resnets_parse_depth_and_width(name, depth, width):
    with torch.device("meta"):
        m = build_named_model(name, in_shape=(3, 32, 32), num_classes=10)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d) and x.kernel_size == (3, 3)]
    n = (depth - 4) // 6
    assert len(convs) == 1 + 6 * n  # the stem + two per block, n blocks in each of 3 stages
    assert [c.out_channels for c in convs][-1] == 64 * width and m.fc.in_features == 64 * width
    assert 9e6 < count_params(m) < 11.5e6  # "similar number of parameters (11 million)"


def test_wide_resnet_runs_seeded_with_stride_2_stages():
    a = build_named_model("wrn-10-1", in_shape=(3, 32, 32), num_classes=7, seed=2)
    b = build_named_model("wrn-10-1", in_shape=(3, 32, 32), num_classes=7, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                  b.state_dict().values(), strict=True))
    sizes = []
    for blk in a.blocks:
        blk.register_forward_hook(lambda mod, i, o: sizes.append(tuple(o.shape[1:])))
    out = a(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert sizes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


@pytest.mark.parametrize("name", ["wrn-27-10", "wrn-4-1", "wrn-28-0"])
def test_bad_wide_resnet_shapes_are_named(name):
    from lcsim.pregen.models import is_named_model

    assert not is_named_model(name)
    with pytest.raises(ValueError, match=name):
        build_named_model(name, in_shape=(3, 32, 32), num_classes=10)
