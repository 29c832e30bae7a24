"""Population (hpo_sim.live.population.stack): forward, member surgery, seeding, fallback."""

from __future__ import annotations

import pytest
import torch
from lcsim.hpo_sim.live.population import Population, StackedOptimizer, train_step
from torch import nn


def members(bn_net, n: int, seed: int = 0, dropout: float = 0.0) -> list[nn.Module]:
    return [bn_net(seed * 100 + j, dropout=dropout, dtype=torch.float64) for j in range(n)]


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_forward_matches_each_member(batched, shared, bn_net, random_batches):
    models = members(bn_net, 3)
    pop = Population.from_models(models, batched=batched)
    (x, _), = random_batches(1, None if shared else 3)
    out = pop.forward(x, train=False)
    assert out.shape == (3, 5, 3)
    for j, m in enumerate(models):
        m.eval()
        torch.testing.assert_close(out[j], m(x if shared else x[j]))


def test_forward_rejects_bad_shape(bn_net):
    pop = Population.from_models(members(bn_net, 2))
    with pytest.raises(ValueError, match="expected"):
        pop.forward(torch.zeros(3, 5, 1, 8, 8, dtype=torch.float64), train=False)


def test_copy_take_cat_and_restore_are_exact(bn_net, random_batches):
    pop = Population.from_models(members(bn_net, 4, seed=5))
    opt = StackedOptimizer(pop, ["sgd", "adam", "momentum", "nesterov"], [0.1, 0.01, 0.1, 0.1],
                           momentum=0.9)
    snap, ostate = pop.snapshot(), opt.state()
    for x, y in random_batches(2, 4, seed=6):
        train_step(pop, opt, x, y)
    # copy parent 1 (adam, with moments) onto child 3: weights, buffers, optimizer and state
    pop.copy_([3], [1])
    opt.copy_([3], [1])
    assert opt.kinds[3] == "adam" and float(opt.lr[3]) == pytest.approx(0.01)
    for k in pop.params:
        assert torch.equal(pop.params[k][3], pop.params[k][1])
        assert torch.equal(opt.buf[k][3], opt.buf[k][1])
    for k in pop.buffers:
        assert torch.equal(pop.buffers[k][3], pop.buffers[k][1])
    # the copied child then trains exactly as its parent does on the same batch
    (x, y), = random_batches(1, None, seed=7)
    train_step(pop, opt, x, y)
    for k in pop.params:
        assert torch.equal(pop.params[k][3], pop.params[k][1])
    # back-off: restore members 0 and 2 exactly
    pop.restore_(snap, [0, 2])
    opt.restore_(ostate, [0, 2])
    for k in pop.params:
        assert torch.equal(pop.params[k][[0, 2]], snap.params[k][[0, 2]])
        assert not torch.equal(pop.params[k][1], snap.params[k][1])
    # take / cat: indexed clones
    both = Population.cat([pop.take([2, 0]), pop.take([1])])
    assert len(both) == 3
    for k in pop.params:
        assert torch.equal(both.params[k][0], pop.params[k][2])
        assert torch.equal(both.params[k][2], pop.params[k][1])
        assert both.params[k].is_leaf and both.params[k].requires_grad
    torch.testing.assert_close(both.flat([1]), pop.flat([0]))


def test_member_module_matches_stack(bn_net, random_batches):
    models = members(bn_net, 2, seed=8)
    pop = Population.from_models(models)
    m = pop.member(1)
    (x, _), = random_batches(1, None)
    m.eval()
    models[1].eval()
    torch.testing.assert_close(m(x), models[1](x))


def test_dropout_is_seeded_and_leaves_global_rng_alone(bn_net, random_batches):
    pop = Population.from_models(members(bn_net, 2, dropout=0.5))
    (x, _), = random_batches(1, None)
    state = torch.random.get_rng_state()
    a = pop.forward(x, train=True, generator=torch.Generator().manual_seed(1))
    b = pop.forward(x, train=True, generator=torch.Generator().manual_seed(1))
    c = pop.forward(x, train=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])
    with pytest.raises(ValueError, match="Generator"):
        pop.forward(x, train=True)


class _ItemNet(nn.Module):
    """A model vmap cannot batch: data-dependent control flow through .item()."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2).double()

    def forward(self, x):
        out = self.lin(x)
        return out * 2 if out.sum().item() > 0 else out


def test_unbatchable_model_falls_back_to_loop():
    models = []
    for j in range(2):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(j)
            models.append(_ItemNet())
    pop = Population.from_models(models, example_ndim=1)
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="falling back"):
        out = pop.forward(x, train=False)
    assert pop.batched is False
    for j, m in enumerate(models):
        torch.testing.assert_close(out[j], m(x))


def test_from_factory_is_seeded():
    def factory():  # draws its initialisation from torch's (forked, seeded) global RNG
        return nn.Linear(8, 3)

    a = Population.from_factory(factory, 3, seed=4, example_ndim=1)
    b = Population.from_factory(factory, 3, seed=4, example_ndim=1)
    c = Population.from_factory(factory, 3, seed=5, example_ndim=1)
    assert torch.equal(a.flat(), b.flat())
    assert not torch.equal(a.flat(), c.flat())
    assert not torch.equal(a.flat([0]), a.flat([1]))


