"""Population steps (hpo_sim.live.population.steps): per-member losses, one epoch on the
trainer's batching rules, evaluation and batch-norm recalibration."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from lcsim.hpo_sim.live.population import (
    Population,
    StackedOptimizer,
    cross_entropy_per_member,
    evaluate,
    recalibrate_bn,
    train_epoch,
    train_step,
)
from lcsim.pregen.trainer import epoch_batches
from torch import nn


def members(bn_net, n: int, seed: int = 0, dtype=torch.float64) -> list[nn.Module]:
    return [bn_net(seed * 100 + j, dtype=dtype) for j in range(n)]


def make_subset(data, n: int):
    """The first n training examples of `data`, repeating them to reach n if needed."""
    reps = -(-n // data.train_y.shape[0])
    return dataclasses.replace(data, train_x=data.train_x.repeat(reps, 1, 1, 1)[:n],
                               train_y=data.train_y.repeat(reps)[:n])


def test_per_member_loss_fn_gets_member_params(bn_net, random_batches):
    # loss_j = c_j * CE: for plain SGD that is SGD on CE with lr * c_j, member by member
    models = members(bn_net, 2, seed=3)
    pop_a, pop_b = Population.from_models(models), Population.from_models(models)
    c = torch.tensor([0.5, 2.0], dtype=torch.float64)
    opt_a = StackedOptimizer(pop_a, ["sgd"] * 2, 0.1)
    opt_b = StackedOptimizer(pop_b, ["sgd"] * 2, (0.1 * c).tolist())
    seen = []

    def scaled(logits, y, mp):
        seen.append(mp)
        return cross_entropy_per_member(logits, y) * mp

    for x, y in random_batches(3, 2, seed=4):
        train_step(pop_a, opt_a, x, y, loss_fn=scaled, member_params=c)
        train_step(pop_b, opt_b, x, y)
    assert all(s is c for s in seen)
    for k in pop_a.params:
        torch.testing.assert_close(pop_a.params[k], pop_b.params[k])


def test_loss_fn_must_return_one_loss_per_member(bn_net, random_batches):
    pop = Population.from_models(members(bn_net, 2))
    opt = StackedOptimizer(pop, ["sgd"] * 2, 0.1)
    (x, y), = random_batches(1, 2)
    with pytest.raises(ValueError, match="one loss per member"):
        train_step(pop, opt, x, y, loss_fn=lambda lg, yy, mp: lg.mean())


def test_evaluate_matches_members_in_eval_mode(bn_net, random_batches):
    models = members(bn_net, 3, seed=9)
    pop = Population.from_models(models)
    batches = random_batches(3, None, seed=10)
    loss, acc = evaluate(pop, batches, max_members=2)
    for j, m in enumerate(models):
        m.eval()
        with torch.no_grad():
            ls = [nn.functional.cross_entropy(m(x), y, reduction="sum") for x, y in batches]
            cs = [(m(x).argmax(1) == y).sum() for x, y in batches]
        assert float(loss[j]) == pytest.approx(float(sum(ls)) / 15, rel=1e-12)
        assert float(acc[j]) == pytest.approx(float(sum(cs)) / 15)
    sub_loss, _ = evaluate(pop, batches, idx=[2])
    assert float(sub_loss[0]) == pytest.approx(float(loss[2]), rel=1e-12)


def test_recalibrate_bn_equals_swa_update_bn_per_member(bn_net, random_batches):
    models = members(bn_net, 3, seed=11)
    pop = Population.from_models(models)
    # give the stats something to forget
    with torch.no_grad():
        for k, v in pop.buffers.items():
            if k.endswith("running_mean"):
                v.add_(5.0)
    before = {k: v.clone() for k, v in pop.buffers.items()}
    batches = [x for x, _ in random_batches(4, None, seed=12)]
    n = recalibrate_bn(pop, [0, 2], batches)
    assert n == 4
    assert torch.equal(pop.buffers["1.running_mean"][1], before["1.running_mean"][1])
    for j in (0, 2):
        ref = pop.member(j)
        torch.optim.swa_utils.update_bn([(x,) for x in batches], ref)
        torch.testing.assert_close(pop.buffers["1.running_mean"][j], ref[1].running_mean)
        torch.testing.assert_close(pop.buffers["1.running_var"][j], ref[1].running_var)
        assert not torch.allclose(pop.buffers["1.running_mean"][j],
                                  before["1.running_mean"][j])
    assert pop.base[1].momentum == 0.1  # module settings restored




def test_train_epoch_uses_the_trainers_batches_and_weighs_losses_by_examples(bn_net,
                                                                            tiny_images):
    # 97 examples at batch 16: the trainer's rule drops the last batch of one
    data = make_subset(tiny_images, 97)
    pop = Population.from_models(members(bn_net, 2, seed=20, dtype=torch.float32))
    twin = Population.from_models(members(bn_net, 2, seed=20, dtype=torch.float32))
    opt = StackedOptimizer(pop, ["sgd", "momentum"], [0.1, 0.05], momentum=0.9)
    topt = StackedOptimizer(twin, ["sgd", "momentum"], [0.1, 0.05], momentum=0.9)
    mean = train_epoch(pop, opt, data, 16, order=torch.Generator().manual_seed(3),
                       generator=torch.Generator().manual_seed(4))
    batches = list(epoch_batches(data, 16, generator=torch.Generator().manual_seed(3)))
    assert [len(y) for _, y in batches] == [16] * 6  # 96 of 97: no batch of one
    total, seen = torch.zeros(2), 0
    g = torch.Generator().manual_seed(4)
    for x, y in batches:
        total += train_step(twin, topt, x, y, generator=g) * len(y)
        seen += len(y)
    torch.testing.assert_close(mean, total / seen)
    for k in pop.params:
        torch.testing.assert_close(pop.params[k], twin.params[k])


def test_train_epoch_gives_each_member_its_own_order(bn_net, tiny_images):
    pop = Population.from_models(members(bn_net, 2, seed=21, dtype=torch.float32))
    opt = StackedOptimizer(pop, ["sgd", "sgd"], 0.1)
    orders = [torch.Generator().manual_seed(s) for s in (5, 6)]
    train_epoch(pop, opt, tiny_images, 32, order=orders, generator=torch.Generator())
    for j, seed in enumerate((5, 6)):  # member j alone, in its own order, ends the same
        alone = Population.from_models([members(bn_net, 2, seed=21, dtype=torch.float32)[j]])
        aopt = StackedOptimizer(alone, ["sgd"], 0.1)
        train_epoch(alone, aopt, tiny_images, 32, order=torch.Generator().manual_seed(seed),
                    generator=torch.Generator())
        torch.testing.assert_close(alone.flat(), pop.flat([j]))
    with pytest.raises(ValueError, match="3 data-order generators for 2 members"):
        train_epoch(pop, opt, tiny_images, 32, order=orders + orders[:1],
                    generator=torch.Generator())


def test_a_diverging_member_does_not_stop_the_others(bn_net, tiny_images):
    pop = Population.from_models(members(bn_net, 2, seed=22, dtype=torch.float32))
    opt = StackedOptimizer(pop, ["sgd", "sgd"], [1e12, 0.05])
    mean = train_epoch(pop, opt, tiny_images, 16, order=torch.Generator().manual_seed(0),
                       generator=torch.Generator())
    assert not torch.isfinite(mean[0]) and torch.isfinite(mean[1])
    assert torch.isfinite(pop.flat([1])).all()
