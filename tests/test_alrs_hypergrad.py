"""Online hypergradient descent wrapper (hpo_sim.live.hypergrad) against hand computation."""

from __future__ import annotations

import pytest
import torch
from lcsim.hpo_sim.live.alrs import HypergradientLR


def quadratic_step(
    w: torch.nn.Parameter, opt: torch.optim.Optimizer, a: torch.Tensor
) -> torch.Tensor:
    """One step on f(w) = 0.5 * sum(a * w^2); returns the gradient used."""
    opt.zero_grad()
    (0.5 * (a * w**2).sum()).backward()
    g = w.grad.detach().clone()
    opt.step()
    return g


def test_sgd_rule_is_lr_plus_beta_g_dot_previous_g():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    a = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    opt = torch.optim.SGD([w], lr=0.1)
    hd = HypergradientLR(opt, beta=0.01)
    g1 = quadratic_step(w, opt, a)
    assert hd.lrs == [0.1]  # no previous direction: first step unchanged
    g2 = quadratic_step(w, opt, a)
    expected = 0.1 + 0.01 * float(g2 @ g1)
    assert hd.lrs[-1] == pytest.approx(expected, rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
    g3 = quadratic_step(w, opt, a)
    assert hd.lrs[-1] == pytest.approx(expected + 0.01 * float(g3 @ g2), rel=1e-12)


def test_adam_rule_uses_the_adam_direction():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    a = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    opt = torch.optim.Adam([w], lr=0.05)
    hd = HypergradientLR(opt, beta=1e-3)
    w0 = w.detach().clone()
    quadratic_step(w, opt, a)
    u1 = (w0 - w.detach()) / 0.05  # Adam's first direction: ~sign(g)
    assert torch.allclose(u1, torch.sign(a * w0), atol=1e-6)
    g2 = quadratic_step(w, opt, a)
    assert hd.lrs[-1] == pytest.approx(0.05 + 1e-3 * float(g2 @ u1), rel=1e-9)


def test_lr_grows_on_a_slow_descent_and_shrinks_on_oscillation():
    a = torch.tensor([1.0, 1.0], dtype=torch.float64)

    def run(lr0: float) -> list[float]:
        w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
        opt = torch.optim.SGD([w], lr=lr0)
        hd = HypergradientLR(opt, beta=0.05)
        for _ in range(5):
            quadratic_step(w, opt, a)
        return hd.lrs

    slow = run(0.1)  # gradients keep their sign: g_t . g_{t-1} > 0
    assert all(b > a_ for a_, b in zip(slow[1:], slow[2:], strict=False))
    fast = run(1.9)  # overshoots every step: g_t . g_{t-1} < 0
    assert fast[2] < fast[1] < fast[0]


def test_lr_is_clamped_at_zero_and_hooks_detach():
    w = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    a = torch.tensor([1.0], dtype=torch.float64)
    opt = torch.optim.SGD([w], lr=1.9)
    hd = HypergradientLR(opt, beta=100.0)
    for _ in range(3):
        quadratic_step(w, opt, a)
    assert min(hd.lrs) == 0.0
    hd.remove()
    n = len(hd.lrs)
    opt.param_groups[0]["lr"] = 0.3
    quadratic_step(w, opt, a)
    assert len(hd.lrs) == n and opt.param_groups[0]["lr"] == 0.3


def test_bad_beta_is_named():
    w = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="beta"):
        HypergradientLR(torch.optim.SGD([w], lr=0.1), beta=-1.0)
