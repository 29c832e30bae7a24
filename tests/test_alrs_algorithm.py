"""ALRS core (hpo_sim.live.alrs): weights untouched, exact LR gradient, known line-search step."""

from __future__ import annotations

import math

import pytest
import torch
from lcsim.hpo_sim.live.alrs import ALRSConfig, LRGradientProbe, alrs
from torch import nn
from torch.func import functional_call

OPTIMIZERS = {
    "sgd-momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "adam": lambda ps: torch.optim.Adam(ps),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01),
}


def tiny_cnn(seed: int) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Linear(4 * 8 * 8, 3),
        )


def image_batches(n_batches: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    data = [
        (torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g))
        for _ in range(n_batches)
    ]
    return lambda: iter(data)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_weights_buffers_and_optimizer_end_bitwise_unchanged(opt_name):
    model = tiny_cnn(0)
    opt = OPTIMIZERS[opt_name](model.parameters())
    # A couple of real steps first so the optimizer state and BN statistics are non-trivial.
    batches = image_batches(10, seed=1)
    for x, y in list(batches())[:2]:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    before = snapshot(model)
    opt_before = opt.state_dict()
    opt_before = {
        "state": {
            k: {n: v.clone() if torch.is_tensor(v) else v for n, v in s.items()}
            for k, s in opt_before["state"].items()
        },
        "lrs": [g["lr"] for g in opt.param_groups],
    }
    rng_before = torch.get_rng_state()

    result = alrs(model, opt, batches, 10, config=ALRSConfig(signals_per_epoch=5), seed=3)

    assert result.batches > 0 and result.complete
    after = snapshot(model)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k  # bitwise, buffers included
    assert [g["lr"] for g in opt.param_groups] == opt_before["lrs"]
    for k, s in opt.state_dict()["state"].items():
        for n, v in s.items():
            ref = opt_before["state"][k][n]
            assert torch.equal(v, ref) if torch.is_tensor(v) else v == ref, (k, n)
    assert all(p.grad is None for p in model.parameters())
    assert not model.training  # mode restored
    assert torch.equal(torch.get_rng_state(), rng_before)  # global RNG untouched


@pytest.mark.parametrize("opt_name", ["sgd-momentum", "adam"])
def test_lr_gradient_equals_finite_difference_along_adjustment(opt_name):
    torch.manual_seed(0)  # test-local model init only; the probe itself draws nothing
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    opt = OPTIMIZERS[opt_name](model.parameters())
    g = torch.Generator().manual_seed(2)
    (x1, y1), (x2, y2), (x3, y3) = [
        (
            torch.randn(12, 5, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (12,), generator=g),
        )
        for _ in range(3)
    ]
    probe = LRGradientProbe(model, opt, nn.functional.cross_entropy)
    assert probe.step(x1, y1) == 0.0  # ADJUSTMENT starts at zero
    probe.step(x2, y2)
    adj = {n: a.clone() for n, a in probe.adjustment.items()}
    assert any(a.abs().max() > 0 for a in adj.values())
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}

    def loss_at(gamma: float) -> float:
        shifted = {n: weights[n] + gamma * adj[n] for n in weights}
        return float(nn.functional.cross_entropy(functional_call(model, shifted, (x3,)), y3))

    h = 1e-5
    fd = (loss_at(1 + h) - loss_at(1 - h)) / (2 * h)
    lr_grad = probe.step(x3, y3)
    assert lr_grad == pytest.approx(fd, rel=1e-6, abs=1e-12)
    assert abs(fd) > 1e-6  # a real, non-degenerate derivative


def regression_problem(n=6400, d=10, batch=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, 1, generator=g, dtype=torch.float64) + 0.1 * torch.randn(
        n, 1, generator=g, dtype=torch.float64
    )
    order = torch.Generator().manual_seed(seed + 1)

    def batches():
        perm = torch.randperm(n, generator=order)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            yield x[idx], y[idx]

    # Exact line search from w = 0 along the full-batch gradient of the mean squared error.
    grad = -2 * x.T @ y / n
    hess = 2 * x.T @ x / n
    eta_star = float(grad.T @ grad / (grad.T @ hess @ grad))
    return batches, n // batch, eta_star


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_linear_regression_sgd_finds_the_line_search_step(seed):
    batches, num_batches, eta_star = regression_problem(seed=seed)
    model = nn.Linear(10, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = alrs(model, opt, batches, num_batches, loss_fn=nn.functional.mse_loss)
    assert result.complete
    assert eta_star / 3 <= result.search_value <= 3 * eta_star, (result.search_value, eta_star)
    assert result.lr == pytest.approx(result.search_value / 10)
    # Cost: about one epoch of batches.
    assert result.batches <= 1.25 * num_batches
    assert result.epochs == result.batches / num_batches
    assert len(result.lr_grads) == result.batches
    assert len(result.trace) == (result.batches - 1) // result.steps_per_signal


def test_signal_rule_follows_the_90_percent_and_sum_conditions():
    batches, num_batches, _ = regression_problem()
    model = nn.Linear(10, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    result = alrs(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        batches,
        num_batches,
        loss_fn=nn.functional.mse_loss,
    )
    k = result.steps_per_signal
    assert k == num_batches // 50
    assert result.lr_grads[0] == 0.0  # ADJUSTMENT = 0: warm-up batch, in no window
    for rec in result.trace:
        window = result.lr_grads[rec.batch - k : rec.batch]
        assert rec.n_negative == sum(g < 0 for g in window)
        expected = 1 if (rec.n_negative >= 0.9 * k and sum(window) < 0) else -1
        assert rec.signal == expected
    assert {r.signal for r in result.trace} == {1, -1}


def test_same_seed_same_trace_and_different_seed_differs_with_dropout():
    def run(seed):
        model = tiny_cnn(0)
        opt = torch.optim.Adam(model.parameters())
        return alrs(
            model, opt, image_batches(10, 1), 10, config=ALRSConfig(signals_per_epoch=5), seed=seed
        )

    a, b, c = run(0), run(0), run(1)
    assert a.lr_grads == b.lr_grads and a.lr == b.lr
    assert a.lr_grads != c.lr_grads


def test_non_finite_loss_counts_as_decrease_and_keeps_weights():
    model = tiny_cnn(0)
    before = snapshot(model)

    def nan_loss(out, y):
        return nn.functional.cross_entropy(out, y) * math.nan

    result = alrs(
        model,
        torch.optim.Adam(model.parameters()),
        image_batches(10, 1),
        10,
        loss_fn=nan_loss,
        config=ALRSConfig(signals_per_epoch=5),
    )
    assert all(r.signal == -1 for r in result.trace)
    assert all(g == math.inf for g in result.lr_grads)
    assert all(torch.equal(before[k], v) for k, v in snapshot(model).items())


def test_max_batches_caps_the_cost():
    model = tiny_cnn(0)
    result = alrs(
        model,
        torch.optim.Adam(model.parameters()),
        image_batches(10, 1),
        10,
        config=ALRSConfig(max_batches=7),
    )
    assert result.batches == 7 and not result.complete


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"initial_lr": 0.0}, "initial_lr"),
        ({"negative_fraction": 1.5}, "negative_fraction"),
        ({"signals_per_epoch": 0}, "signals_per_epoch"),
        ({"divisor": -1.0}, "divisor"),
        ({"on_change": "drop"}, "on_change"),
    ],
)
def test_bad_config_is_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ALRSConfig(**kwargs)


def test_bad_num_batches_is_named():
    model = tiny_cnn(0)
    with pytest.raises(ValueError, match="num_batches"):
        alrs(model, torch.optim.Adam(model.parameters()), image_batches(2, 1), 0)


@pytest.mark.parametrize("on_change", ["keep", "rescale", "reset"])
def test_every_adjustment_policy_finds_the_line_search_step(on_change):
    batches, num_batches, eta_star = regression_problem(seed=0)
    model = nn.Linear(10, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = alrs(
        model,
        opt,
        batches,
        num_batches,
        loss_fn=nn.functional.mse_loss,
        config=ALRSConfig(on_change=on_change),
    )
    assert eta_star / 3 <= result.search_value <= 3 * eta_star


def test_non_finite_batch_resets_adjustment_and_optimizer_state():
    """A far-too-large LR can leave the momentum buffer huge; after a non-finite batch the
    probe starts over from the optimizer state it was given (here: empty)."""
    torch.manual_seed(0)  # test-local init
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    poison = {"on": False}

    def loss_fn(out, y):
        loss = nn.functional.cross_entropy(out, y)
        return loss * math.inf if poison["on"] else loss

    probe = LRGradientProbe(model, opt, loss_fn)
    batches = list(image_batches(3, seed=1)())
    probe.step(*batches[0])
    probe.step(*batches[1])
    assert len(opt.state) > 0 and not probe.is_zero
    poison["on"] = True
    assert probe.step(*batches[2]) == math.inf
    assert len(opt.state) == 0  # back to the state at the probe's start
    assert probe.is_zero and all(not a.any() for a in probe.adjustment.values())
    assert opt.param_groups[0]["lr"] == 0.1  # the LR under test is kept


def _probe_pair(seed: int = 0):
    """The same model, plain SGD and batches for both ADJUSTMENT readings."""
    def make(adjustment):
        torch.manual_seed(seed)  # test-local init
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.3)
        return model, LRGradientProbe(model, opt, nn.functional.cross_entropy, adjustment)

    g = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.randn(12, 5, generator=g, dtype=torch.float64),
                torch.randint(0, 3, (12,), generator=g)) for _ in range(3)]
    return make("last"), make("cumulative"), batches


def test_adjustment_readings_agree_on_step_one_and_differ_after():
    (m_last, last), (m_cum, cum), batches = _probe_pair()
    w0 = {n: p.detach().clone() for n, p in m_last.named_parameters()}
    # step 1: ADJUSTMENT = 0 for both, so the same gradient, the same step
    assert last.step(*batches[0]) == cum.step(*batches[0]) == 0.0
    step1 = {n: a.clone() for n, a in last.adjustment.items()}
    for n in step1:
        assert torch.equal(step1[n], cum.adjustment[n])
    # step 2: both take the gradient at W + step1 (the same LR gradient), but "last" keeps
    # only the new step while "cumulative" adds it to the old shift: they differ by step1
    assert last.step(*batches[1]) == pytest.approx(cum.step(*batches[1]), rel=1e-12)
    for n in step1:
        assert torch.allclose(cum.adjustment[n] - last.adjustment[n], step1[n], atol=1e-12)
        assert step1[n].abs().max() > 0
    # so from step 3 on the LR gradients differ; the weights never move in either reading
    assert last.step(*batches[2]) != pytest.approx(cum.step(*batches[2]), rel=1e-6)
    for m in (m_last, m_cum):
        for n, p in m.named_parameters():
            assert torch.equal(p, w0[n])


def test_cumulative_adjustment_is_the_sum_of_plain_sgd_steps():
    _, (model, cum), batches = _probe_pair(seed=3)
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    shift = {n: torch.zeros_like(v) for n, v in w.items()}
    for x, y in batches:  # a virtual SGD run from W: shift += -lr * grad(W + shift)
        cum.step(x, y)
        at = {n: (w[n] + shift[n]).requires_grad_(True) for n in w}
        loss = nn.functional.cross_entropy(functional_call(model, at, (x,)), y)
        grads = torch.autograd.grad(loss, list(at.values()))
        shift = {n: shift[n] - 0.3 * gr for n, gr in zip(at, grads, strict=True)}
        for n in w:
            assert torch.allclose(cum.adjustment[n], shift[n], atol=1e-12)


@pytest.mark.parametrize("adjustment", ["last", "cumulative"])
def test_both_readings_are_recorded_and_leave_the_model_unchanged(adjustment):
    model = tiny_cnn(0)
    before = snapshot(model)
    result = alrs(model, torch.optim.Adam(model.parameters()), image_batches(10, 1), 10,
                  config=ALRSConfig(signals_per_epoch=5, adjustment=adjustment), seed=0)
    assert result.adjustment == adjustment and result.complete
    assert all(torch.equal(before[k], v) for k, v in snapshot(model).items())


def test_unknown_adjustment_reading_is_named():
    with pytest.raises(ValueError, match="adjustment.*'total'"):
        ALRSConfig(adjustment="total")
