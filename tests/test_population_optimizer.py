"""StackedOptimizer (hpo_sim.live.population.optimizer): torch.optim's updates per member,
and kind, hyperparameters and state travelling with members through take / cat / put_."""

from __future__ import annotations

import copy

import pytest
import torch
from lcsim.hpo_sim.live.population import Population, StackedOptimizer, train_step
from lcsim.pregen.trainer import make_optimizer
from torch import nn


def members(bn_net, n: int, seed: int = 0) -> list[nn.Module]:
    return [bn_net(seed * 100 + j, dtype=torch.float64) for j in range(n)]


# kind, lr, momentum per member: different per member, as ESGD / EPBT draw them
CASES = {
    "sgd": (["sgd"] * 3, [0.1, 0.05, 0.2], [0.0] * 3),
    "momentum": (["momentum"] * 3, [0.1, 0.05, 0.02], [0.9, 0.5, 0.1]),
    "nesterov": (["nesterov"] * 3, [0.1, 0.05, 0.02], [0.9, 0.5, 0.1]),
    "adam": (["adam"] * 3, [1e-2, 3e-3, 1e-3], [0.0] * 3),
    "mixed": (["sgd", "adam", "nesterov", "momentum"], [0.1, 1e-2, 0.05, 0.03],
              [0.0, 0.0, 0.9, 0.6]),
}


def _torch_opt(kind, params, lr, mom, wd):
    if wd == 0:  # the project's own factory (torch.optim underneath)
        return make_optimizer(kind, params, lr, mom)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=mom, nesterov=kind == "nesterov",
                           weight_decay=wd)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("wd", [0.0, 1e-3])
@pytest.mark.parametrize("batched", [True, False])
def test_stacked_optimizer_equals_torch_optim_per_member(case, wd, batched, bn_net,
                                                         random_batches):
    kinds, lrs, moms = CASES[case]
    P = len(kinds)
    models = members(bn_net, P, seed=1)
    pop = Population.from_models(models, batched=batched)
    opt = StackedOptimizer(pop, kinds, lrs, momentum=moms, weight_decay=wd)
    data = random_batches(6, P, seed=2)
    refs = [copy.deepcopy(m) for m in models]
    ropts = [_torch_opt(k, r.parameters(), lr, mo, wd)
             for k, r, lr, mo in zip(kinds, refs, lrs, moms, strict=True)]
    for x, y in data:
        losses = train_step(pop, opt, x, y)
        for j, (r, o) in enumerate(zip(refs, ropts, strict=True)):
            r.train()
            o.zero_grad()
            loss = nn.functional.cross_entropy(r(x[j]), y[j])
            loss.backward()
            o.step()
            torch.testing.assert_close(losses[j], loss.detach())
    for j, r in enumerate(refs):
        for name, p in r.named_parameters():
            torch.testing.assert_close(pop.params[name][j].detach(), p.detach(),
                                       rtol=1e-9, atol=1e-11)
        for name, b in r.named_buffers():  # BN running stats advance like the module's own
            torch.testing.assert_close(pop.buffers[name][j], b)


def test_stacked_optimizer_lr_change_is_per_member(bn_net, random_batches):
    pop = Population.from_models(members(bn_net, 2))
    opt = StackedOptimizer(pop, ["sgd", "sgd"], [0.1, 0.1])
    before = pop.snapshot()
    opt.lr[1] = 0.0  # a schedule may change one member's lr between steps
    (x, y), = random_batches(1, 2)
    train_step(pop, opt, x, y)
    name = "0.weight"
    assert not torch.equal(pop.params[name][0], before.params[name][0])
    assert torch.equal(pop.params[name][1], before.params[name][1])


def test_stacked_optimizer_rejects_bad_values(bn_net):
    pop = Population.from_models(members(bn_net, 2))
    with pytest.raises(ValueError, match="unknown optimizer kind"):
        StackedOptimizer(pop, ["sgd", "rmsprop"], 0.1)
    with pytest.raises(ValueError, match="lr"):
        StackedOptimizer(pop, ["sgd", "sgd"], [0.1, -1.0])
    with pytest.raises(ValueError, match="one kind per member"):
        StackedOptimizer(pop, ["sgd"], 0.1)


def test_optimizer_take_and_cat_follow_the_population(bn_net, random_batches):
    pop = Population.from_models(members(bn_net, 3, seed=13))
    opt = StackedOptimizer(pop, ["adam", "nesterov", "sgd"], [0.01, 0.1, 0.2], momentum=0.8,
                           weight_decay=[0.0, 1e-3, 0.0])
    for x, y in random_batches(2, 3, seed=14):
        train_step(pop, opt, x, y)
    # a selection [1, 1, 0] + a clone of 2, trained on: must equal the originals trained on
    sub = pop.take([1, 1, 0])
    sub_opt = opt.take(sub, [1, 1, 0])
    extra = pop.take([2])
    both = Population.cat([sub, extra])
    both_opt = StackedOptimizer.cat(both, [sub_opt, opt.take(extra, [2])])
    assert both_opt.kinds == ["nesterov", "nesterov", "adam", "sgd"]
    (x, y), = random_batches(1, None, seed=15)
    train_step(pop, opt, x, y)
    train_step(both, both_opt, x, y)
    for k in pop.params:
        for j, src in enumerate([1, 1, 0, 2]):
            torch.testing.assert_close(both.params[k][j], pop.params[k][src])
    with pytest.raises(ValueError, match="bound to a population"):
        opt.take(extra, [0, 1])


def test_put_is_the_inverse_of_take(bn_net, random_batches):
    pop = Population.from_models(members(bn_net, 4, seed=16))
    opt = StackedOptimizer(pop, ["sgd", "adam", "momentum", "nesterov"], 0.05, momentum=0.5)
    snap = pop.snapshot()
    sub = pop.take([3, 1])
    sub_opt = opt.take(sub, [3, 1])
    (x, y), = random_batches(1, None, seed=17)
    train_step(sub, sub_opt, x, y)
    pop.put_([3, 1], sub)
    opt.put_([3, 1], sub_opt)
    for k in pop.params:
        assert torch.equal(pop.params[k][[3, 1]], sub.params[k])
        assert torch.equal(pop.params[k][[0, 2]], snap.params[k][[0, 2]])
        assert torch.equal(opt.buf[k][[3, 1]], sub_opt.buf[k])
    assert opt.kinds == ["sgd", "adam", "momentum", "nesterov"]
    assert opt.step_count.tolist() == [0, 1, 0, 0]


def test_take_and_cat_carry_every_hyperparameter(bn_net):
    # the surgery ESGD and EPBT both use: Nesterov, betas, eps and weight decay travel too
    pop = Population.from_models(members(bn_net, 3, seed=18))
    opt = StackedOptimizer(pop, ["nesterov", "adam", "momentum"], [0.1, 0.01, 0.2],
                           momentum=[0.9, 0.0, 0.5], betas=([0.8, 0.85, 0.9], 0.99),
                           eps=[1e-6, 1e-7, 1e-8], weight_decay=[1e-3, 2e-3, 0.0])
    sub = pop.take([2, 0])
    both = Population.cat([sub, pop.take([1])])
    new = StackedOptimizer.cat(both, [opt.take(sub, [2, 0]), opt.take(pop.take([1]), [1])])
    for j, src in enumerate([2, 0, 1]):
        assert new.hyperparameters(j) == opt.hyperparameters(src)
        for name in ("momentum", "nesterov", "beta1", "beta2", "eps", "weight_decay"):
            assert getattr(new, name)[j] == getattr(opt, name)[src], name
