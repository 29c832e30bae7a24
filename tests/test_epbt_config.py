"""EPBT's configuration and schedules (hpo_sim.live.epbt.config) and the PBD target (engine)."""

import numpy as np
import pytest
import torch
from lcsim.hpo_sim.live.epbt import EPBTConfig, pbd_alpha, pbd_target, step_lr


def test_pbd_targets_are_convex_combinations_summing_to_one():
    g = torch.Generator().manual_seed(0)
    teacher = torch.softmax(torch.randn(7, 5, generator=g), -1)
    y = torch.randint(0, 5, (7,), generator=g)
    for alpha in (0.0, 0.3, 1.0):
        t = pbd_target(teacher, y, alpha)
        assert torch.allclose(t.sum(-1), torch.ones(7))
        assert (t >= 0).all() and (t <= 1).all()
        onehot = torch.nn.functional.one_hot(y, 5).float()
        assert torch.allclose(t, alpha * teacher + (1 - alpha) * onehot)
    with pytest.raises(ValueError, match="alpha"):
        pbd_target(teacher, y, 1.5)


def test_pbd_alpha_ramps_linearly_from_zero_to_alpha_max():
    a = [pbd_alpha(e, 200, 0.8) for e in range(201)]
    assert a[0] == 0 and a[-1] == pytest.approx(0.8) and np.all(np.diff(a) > 0)


def test_step_lr_is_torchs_multistep_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1 * 1.5)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[60, 120, 160], gamma=0.3)
    for e in range(200):
        want = opt.param_groups[0]["lr"]
        got = step_lr(np.array([1.5]), np.array([0.3]), e, 200, 0.1, (0.3, 0.6, 0.8))[0]
        assert got == pytest.approx(want)
        opt.step()
        sched.step()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="method"):
        EPBTConfig(method="nope")
    with pytest.raises(ValueError, match="elites"):
        EPBTConfig(population=4, elites=4)
