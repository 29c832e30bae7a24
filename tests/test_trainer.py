"""pregen.trainer: optimizers, schedules, L2, divergence, callbacks, seeding, train_config."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from lcsim.pregen.models import build_model
from lcsim.pregen.trainer import (
    OPTIMIZERS,
    SCHEDULES,
    RunningLoss,
    TrainSpec,
    batches_per_epoch,
    epoch_batches,
    evaluate,
    l2_params,
    make_optimizer,
    make_scheduler,
    train,
    train_config,
)
from lcsim.tabular.spaces import MNIST_SPACE

SMALL = {"c1_filters": 4, "c2_filters": 8, "fc_units": 32, "filter_size": 3, "pool1": 2,
         "pool2": 2, "learning_rate": 3e-3, "l2_weight": 0.0, "dropout": 0.0}
# learning rates at which each optimizer learns the tiny task in 3 epochs of batch 32
GOOD_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "rmsprop": 3e-3, "adam": 3e-3}


def small_model(seed=0, **over):
    return build_model("mnist", MNIST_SPACE.full({**SMALL, **over}), in_shape=(1, 28, 28),
                       num_classes=10, seed=seed)


def spec(**kw):
    return TrainSpec(**{"epochs": 3, "batch_size": 32, **kw})


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_each_optimizer_lowers_the_loss(opt, tiny_mnist_data):
    model = small_model()
    loss0, _ = evaluate(model, tiny_mnist_data)
    r = train(model, tiny_mnist_data, spec(optimizer=opt, lr=GOOD_LR[opt]), device="cpu")
    assert r.status == "complete" and [e.epoch for e in r.epochs] == [1, 2, 3]
    assert r.epochs[-1].val_loss < 0.9 * loss0
    assert r.epochs[-1].train_loss < r.epochs[0].train_loss


def test_make_optimizer_maps_names_to_torch_optim():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert type(make_optimizer("nesterov", p, 0.1)) is torch.optim.SGD
    assert make_optimizer("nesterov", p, 0.1, 0.8).param_groups[0]["nesterov"] is True
    assert make_optimizer("momentum", p, 0.1, 0.8).param_groups[0]["momentum"] == 0.8
    assert type(make_optimizer("rmsprop", p, 0.1)) is torch.optim.RMSprop
    with pytest.raises(ValueError, match="'lbfgs'"):
        make_optimizer("lbfgs", p, 0.1)


def test_an_external_optimizer_trains_exactly_like_the_built_one(tiny_mnist_data):
    built = train(small_model(), tiny_mnist_data, spec(optimizer="momentum", lr=0.05),
                  device="cpu")
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)  # what spec would build
    given = train(model, tiny_mnist_data, spec(optimizer="adam", lr=1.0), device="cpu",
                  optimizer=opt)  # spec's optimizer and lr are then not used
    assert [e.train_loss for e in given.epochs] == [e.train_loss for e in built.epochs]
    assert [e.val_accuracy for e in given.epochs] == [e.val_accuracy for e in built.epochs]


def test_an_external_optimizer_keeps_its_rate_unless_given_a_scheduler(tiny_mnist_data):
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    r = train(model, tiny_mnist_data, spec(schedule="exponential"), device="cpu", optimizer=opt)
    assert [e.lr for e in r.epochs] == [0.05] * 3  # spec.schedule is for a built optimizer
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    halve = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    r = train(model, tiny_mnist_data, spec(), device="cpu", optimizer=opt, scheduler=halve)
    assert [e.lr for e in r.epochs] == pytest.approx([0.05, 0.025, 0.0125])


def test_epoch_batches_drop_only_a_last_batch_of_one(tiny_mnist_data):
    n = tiny_mnist_data.train_y.shape[0]  # 205 = 6 * 32 + 13 = 51 * 4 + 1
    g = torch.Generator().manual_seed(0)
    assert [len(y) for _, y in epoch_batches(tiny_mnist_data, 32, generator=g)] == [32] * 6 + [13]
    sizes = [len(y) for _, y in epoch_batches(tiny_mnist_data, 4, generator=g)]
    assert sizes == [4] * 51 and sum(sizes) == n - 1
    assert batches_per_epoch(n, 32) == 7 and batches_per_epoch(n, 4) == 51
    assert batches_per_epoch(n, n) == 1 and batches_per_epoch(n, 1) == n


def test_running_loss_is_example_weighted():
    r = RunningLoss((2,))
    r.add(torch.tensor([1.0, 4.0]), 3)
    r.add(torch.tensor([2.0, 0.0]), 1)
    torch.testing.assert_close(r.mean(), torch.tensor([1.25, 3.0]))
    assert RunningLoss().mean().item() == 0  # no batch yet: 0, not NaN


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_each_schedule_follows_its_formula_and_lowers_the_loss(schedule, tiny_mnist_data):
    model = small_model()
    loss0, _ = evaluate(model, tiny_mnist_data)
    lr0 = 3e-3
    r = train(model, tiny_mnist_data, spec(lr=lr0, schedule=schedule, step_size=2),
              device="cpu")
    want = {"constant": lambda t: lr0, "exponential": lambda t: lr0 * 0.95 ** (t - 1),
            "inv_sqrt": lambda t: lr0 / math.sqrt(t),
            "step": lambda t: lr0 * 0.1 ** ((t - 1) // 2),
            "cosine": lambda t: 1e-8 + (lr0 - 1e-8) * (1 + math.cos(math.pi * (t - 1) / 3)) / 2}
    for e in r.epochs:
        assert e.lr == pytest.approx(want[schedule](e.epoch), rel=1e-9)
    assert r.epochs[-1].val_loss < 0.9 * loss0


def test_unknown_schedule_is_rejected():
    opt = make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], 0.1)
    with pytest.raises(ValueError, match="'cyclic'"):
        make_scheduler("cyclic", opt)
    with pytest.raises(ValueError, match="'cyclic'"):
        TrainSpec(schedule="cyclic")
    with pytest.raises(ValueError, match="cosine schedule needs epochs"):
        make_scheduler("cosine", opt)


def test_weight_decay_reaches_torch_optim_and_is_validated():
    p = [torch.nn.Parameter(torch.zeros(2))]
    for name in OPTIMIZERS:
        assert make_optimizer(name, p, 0.1, 0.5, 0.03).param_groups[0]["weight_decay"] == 0.03
    with pytest.raises(ValueError, match="weight_decay must be >= 0, got -1"):
        TrainSpec(weight_decay=-1.0)


def test_huge_learning_rate_ends_as_diverged_not_an_exception(tiny_mnist_data):
    # SGD at lr 1e3 with a Table I L2 weight: w <- w (1 - 2 lr lambda) overflows to inf
    r = train(small_model(), tiny_mnist_data, spec(optimizer="sgd", lr=1e3, l2_weight=1e-3),
              device="cpu")
    assert r.status == "diverged" and r.epochs == () and "lr=1000" in r.error


def test_huge_but_finite_loss_is_diverged_with_max_loss(tiny_mnist_data):
    # Adam's steps are bounded by lr, so at lr 1e3 the loss explodes but stays finite
    s = spec(optimizer="adam", lr=1e3, epochs=1)
    assert train(small_model(), tiny_mnist_data, s, device="cpu").epochs[0].train_loss > 1e3
    r = train(small_model(), tiny_mnist_data, replace(s, max_loss=1e3), device="cpu")
    assert r.status == "diverged" and "max_loss=1000" in r.error


def test_divergence_keeps_the_epochs_before_it(tiny_mnist_data):
    calls = []

    def loss_fn(logits, y):  # a plugged-in loss that turns NaN in the second epoch
        calls.append(1)
        ce = F.cross_entropy(logits, y)
        return ce * float("nan") if len(calls) > 7 else ce

    r = train(small_model(), tiny_mnist_data, spec(check_every=1), device="cpu",
              loss_fn=loss_fn)
    assert r.status == "diverged" and [e.epoch for e in r.epochs] == [1]
    assert len(calls) == 8  # 7 batches in epoch 1; stopped right after the first NaN batch


def test_callback_sees_each_epoch_and_can_stop(tiny_mnist_data):
    seen = []
    r = train(small_model(), tiny_mnist_data, spec(), device="cpu",
              callback=lambda rec: seen.append(rec) or rec.epoch == 2)
    assert r.status == "stopped" and seen == list(r.epochs) and len(seen) == 2
    rec = seen[0]
    assert rec.train_seconds > 0 and rec.eval_seconds > 0 and 0 <= rec.val_accuracy <= 1
    assert math.isfinite(rec.val_loss)


def test_l2_penalty_covers_conv_and_linear_weights_only(tiny_mnist_data):
    model = small_model()
    covered = {id(p) for p in l2_params(model)}
    names = {n for n, p in model.named_parameters() if id(p) in covered}
    assert names and all(n.endswith("weight") for n in names)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr, lam = 0.1, 0.5
    # data loss contributes nothing, so plain SGD only applies the penalty's gradient 2*lam*w
    train(model, tiny_mnist_data, spec(optimizer="sgd", lr=lr, l2_weight=lam, epochs=1,
                                       batch_size=128),
          device="cpu", loss_fn=lambda logits, y: 0.0 * logits.sum())
    steps = math.ceil(len(tiny_mnist_data.train_y) / 128)
    for n, p in model.named_parameters():
        factor = (1 - 2 * lr * lam) ** steps if n in names else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor)


def test_same_seed_same_curve_different_seed_different_curve(tiny_mnist_data):
    def curve(seed):
        state = torch.random.get_rng_state()
        r = train_config(MNIST_SPACE, {**SMALL, "dropout": 0.5}, tiny_mnist_data,
                         spec(seed=seed, epochs=2), "cpu")
        assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
        return [(e.train_loss, e.val_loss, e.val_accuracy) for e in r.epochs]

    assert curve(1) == curve(1)
    assert curve(1) != curve(2)


def test_train_config_uses_the_configs_lr_and_l2(tiny_mnist_data):
    cfg = {**SMALL, "learning_rate": 0.0123, "l2_weight": 0.0}
    r = train_config(MNIST_SPACE, cfg, tiny_mnist_data, spec(epochs=1, lr=0.5), "cpu")
    assert r.epochs[0].lr == pytest.approx(0.0123) and r.status == "complete"
    assert r.n_params == sum(p.numel() for p in small_model().parameters())
    assert r.flops > 0


def test_bf16_and_channels_last_paths_run_on_cpu(tiny_mnist_data):
    r = train(small_model(), tiny_mnist_data, spec(epochs=1, bf16=True, channels_last=True),
              device="cpu")
    assert r.status == "complete" and math.isfinite(r.epochs[0].val_loss)


def test_data_on_another_device_is_a_clear_error(tiny_mnist_data):
    with pytest.raises(ValueError, match="data is on cpu"):
        train(small_model(), tiny_mnist_data, spec(), device="meta")


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"lr": -1.0}, {"l2_weight": float("nan")},
                                 {"optimizer": "sgdx"}, {"batch_size": 0}])
def test_trainspec_rejects_bad_values_naming_them(bad):
    (key, value), = bad.items()
    with pytest.raises(ValueError, match=key):
        TrainSpec(**bad)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_cpu_contract(tiny_mnist_root):
    from lcsim.pregen.data import load_dataset

    data = load_dataset("mnist", tiny_mnist_root, device="cuda")
    r = train(small_model(), data, spec(bf16=True, channels_last=True), device="cuda")
    assert r.status == "complete" and r.epochs[-1].val_accuracy > 0.5


def _count_host_reads(monkeypatch):
    calls = []
    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        orig = getattr(torch.Tensor, name)

        def wrapped(self, *a, _orig=orig, **k):
            calls.append(1)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    return calls


@pytest.mark.parametrize("check_every, max_reads", [(1000, 1), (4, 13 // 4 + 1)])
def test_an_epoch_reads_the_device_only_at_checks(check_every, max_reads, tiny_mnist_data,
                                                  monkeypatch):
    # 205 examples / batch 16 = 13 batches; a host read per batch would give >= 13. SGD here:
    # torch's Adam reads its step counters with .item(), but those live on the CPU even on CUDA
    model = small_model()
    opt = make_optimizer("momentum", model.parameters(), 0.01)
    s = spec(batch_size=16, check_every=check_every, l2_weight=1e-4)
    calls = _count_host_reads(monkeypatch)
    from lcsim.pregen.trainer import train_epoch

    loss = train_epoch(model, tiny_mnist_data, opt, s, generator=torch.Generator().manual_seed(0))
    monkeypatch.undo()
    assert math.isfinite(loss) and len(calls) <= max_reads


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_epoch_has_no_per_batch_sync(tiny_mnist_root):
    import warnings

    from lcsim.pregen.data import load_dataset
    from lcsim.pregen.trainer import train_epoch

    data = load_dataset("mnist", tiny_mnist_root, device="cuda")
    model = small_model().cuda()
    opt = make_optimizer("adam", model.parameters(), 1e-3)
    s = spec(batch_size=16, check_every=1000)
    g = torch.Generator(device="cuda").manual_seed(0)
    train_epoch(model, data, opt, s, generator=g)  # warm-up (lazy init may sync)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_epoch(model, data, opt, s, generator=g)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert len(caught) <= 4  # the end-of-epoch reads, not one per batch (13 batches)
