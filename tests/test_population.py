"""Stacked populations (hpo_sim.live.population): forward, functional optimizer, surgery, BN."""

from __future__ import annotations

import copy

import pytest
import torch
from lcsim.hpo_sim.live.population import (
    Population,
    StackedOptimizer,
    cross_entropy_per_member,
    evaluate,
    recalibrate_bn,
    train_step,
)
from lcsim.pregen.trainer import make_optimizer
from torch import nn


def _net(dropout: float = 0.0) -> nn.Module:
    # no conv bias before BN: its true gradient is 0, and Adam would turn float noise in it
    # into full-size steps (m / sqrt(v) of noise), which no tolerance can compare
    layers = [nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
              nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(3 * 6 * 6, 4))
    return nn.Sequential(*layers).double()


def _models(n: int, seed: int = 0, dropout: float = 0.0) -> list[nn.Module]:
    out = []
    for j in range(n):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 100 + j)
            out.append(_net(dropout))
    return out


def _data(n_batches: int, P: int | None, B: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lead = (P, B) if P else (B,)
    return [(torch.randn(*lead, 1, 6, 6, generator=g, dtype=torch.float64),
             torch.randint(0, 4, lead, generator=g)) for _ in range(n_batches)]


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_forward_matches_each_member(batched, shared):
    models = _models(3)
    pop = Population.from_models(models, batched=batched)
    (x, _), = _data(1, None if shared else 3)
    out = pop.forward(x, train=False)
    assert out.shape == (3, 5, 4)
    for j, m in enumerate(models):
        m.eval()
        torch.testing.assert_close(out[j], m(x if shared else x[j]))


def test_forward_rejects_bad_shape():
    pop = Population.from_models(_models(2))
    with pytest.raises(ValueError, match="expected"):
        pop.forward(torch.zeros(3, 5, 1, 6, 6, dtype=torch.float64), train=False)


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
def test_stacked_optimizer_equals_torch_optim_per_member(case, wd, batched):
    kinds, lrs, moms = CASES[case]
    P = len(kinds)
    models = _models(P, seed=1)
    pop = Population.from_models(models, batched=batched)
    opt = StackedOptimizer(pop, kinds, lrs, momentum=moms, weight_decay=wd)
    data = _data(6, P, seed=2)
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


def test_stacked_optimizer_lr_change_is_per_member():
    pop = Population.from_models(_models(2))
    opt = StackedOptimizer(pop, ["sgd", "sgd"], [0.1, 0.1])
    before = pop.snapshot()
    opt.lr[1] = 0.0  # a schedule may change one member's lr between steps
    (x, y), = _data(1, 2)
    train_step(pop, opt, x, y)
    name = "4.weight"
    assert not torch.equal(pop.params[name][0], before.params[name][0])
    assert torch.equal(pop.params[name][1], before.params[name][1])


def test_stacked_optimizer_rejects_bad_values():
    pop = Population.from_models(_models(2))
    with pytest.raises(ValueError, match="unknown optimizer kind"):
        StackedOptimizer(pop, ["sgd", "rmsprop"], 0.1)
    with pytest.raises(ValueError, match="lr"):
        StackedOptimizer(pop, ["sgd", "sgd"], [0.1, -1.0])
    with pytest.raises(ValueError, match="one kind per member"):
        StackedOptimizer(pop, ["sgd"], 0.1)


def test_per_member_loss_fn_gets_member_params():
    # loss_j = c_j * CE: for plain SGD that is SGD on CE with lr * c_j, member by member
    models = _models(2, seed=3)
    pop_a, pop_b = Population.from_models(models), Population.from_models(models)
    c = torch.tensor([0.5, 2.0], dtype=torch.float64)
    opt_a = StackedOptimizer(pop_a, ["sgd"] * 2, 0.1)
    opt_b = StackedOptimizer(pop_b, ["sgd"] * 2, (0.1 * c).tolist())
    seen = []

    def scaled(logits, y, mp):
        seen.append(mp)
        return cross_entropy_per_member(logits, y) * mp

    for x, y in _data(3, 2, seed=4):
        train_step(pop_a, opt_a, x, y, loss_fn=scaled, member_params=c)
        train_step(pop_b, opt_b, x, y)
    assert all(s is c for s in seen)
    for k in pop_a.params:
        torch.testing.assert_close(pop_a.params[k], pop_b.params[k])


def test_loss_fn_must_return_one_loss_per_member():
    pop = Population.from_models(_models(2))
    opt = StackedOptimizer(pop, ["sgd"] * 2, 0.1)
    (x, y), = _data(1, 2)
    with pytest.raises(ValueError, match="one loss per member"):
        train_step(pop, opt, x, y, loss_fn=lambda lg, yy, mp: lg.mean())


def test_copy_take_cat_and_restore_are_exact():
    pop = Population.from_models(_models(4, seed=5))
    opt = StackedOptimizer(pop, ["sgd", "adam", "momentum", "nesterov"], [0.1, 0.01, 0.1, 0.1],
                           momentum=0.9)
    snap, ostate = pop.snapshot(), opt.state()
    for x, y in _data(2, 4, seed=6):
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
    (x, y), = _data(1, None, seed=7)
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


def test_member_module_matches_stack():
    models = _models(2, seed=8)
    pop = Population.from_models(models)
    m = pop.member(1)
    (x, _), = _data(1, None)
    m.eval()
    models[1].eval()
    torch.testing.assert_close(m(x), models[1](x))


def test_evaluate_matches_members_in_eval_mode():
    models = _models(3, seed=9)
    pop = Population.from_models(models)
    batches = _data(3, None, seed=10)
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


def test_recalibrate_bn_equals_swa_update_bn_per_member():
    models = _models(3, seed=11)
    pop = Population.from_models(models)
    # give the stats something to forget
    with torch.no_grad():
        for k, v in pop.buffers.items():
            if k.endswith("running_mean"):
                v.add_(5.0)
    before = {k: v.clone() for k, v in pop.buffers.items()}
    batches = [x for x, _ in _data(4, None, seed=12)]
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


def test_dropout_is_seeded_and_leaves_global_rng_alone():
    pop = Population.from_models(_models(2, dropout=0.5))
    (x, _), = _data(1, None)
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
    a = Population.from_factory(_net, 3, seed=4)
    b = Population.from_factory(_net, 3, seed=4)
    c = Population.from_factory(_net, 3, seed=5)
    assert torch.equal(a.flat(), b.flat())
    assert not torch.equal(a.flat(), c.flat())
    assert not torch.equal(a.flat([0]), a.flat([1]))


def test_optimizer_take_and_cat_follow_the_population():
    pop = Population.from_models(_models(3, seed=13))
    opt = StackedOptimizer(pop, ["adam", "nesterov", "sgd"], [0.01, 0.1, 0.2], momentum=0.8,
                           weight_decay=[0.0, 1e-3, 0.0])
    for x, y in _data(2, 3, seed=14):
        train_step(pop, opt, x, y)
    # a selection [1, 1, 0] + a clone of 2, trained on: must equal the originals trained on
    sub = pop.take([1, 1, 0])
    sub_opt = opt.take(sub, [1, 1, 0])
    extra = pop.take([2])
    both = Population.cat([sub, extra])
    both_opt = StackedOptimizer.cat(both, [sub_opt, opt.take(extra, [2])])
    assert both_opt.kinds == ["nesterov", "nesterov", "adam", "sgd"]
    (x, y), = _data(1, None, seed=15)
    train_step(pop, opt, x, y)
    train_step(both, both_opt, x, y)
    for k in pop.params:
        for j, src in enumerate([1, 1, 0, 2]):
            torch.testing.assert_close(both.params[k][j], pop.params[k][src])
    with pytest.raises(ValueError, match="bound to a population"):
        opt.take(extra, [0, 1])


def test_put_is_the_inverse_of_take():
    pop = Population.from_models(_models(4, seed=16))
    opt = StackedOptimizer(pop, ["sgd", "adam", "momentum", "nesterov"], 0.05, momentum=0.5)
    snap = pop.snapshot()
    sub = pop.take([3, 1])
    sub_opt = opt.take(sub, [3, 1])
    (x, y), = _data(1, None, seed=17)
    train_step(sub, sub_opt, x, y)
    pop.put_([3, 1], sub)
    opt.put_([3, 1], sub_opt)
    for k in pop.params:
        assert torch.equal(pop.params[k][[3, 1]], sub.params[k])
        assert torch.equal(pop.params[k][[0, 2]], snap.params[k][[0, 2]])
        assert torch.equal(opt.buf[k][[3, 1]], sub_opt.buf[k])
    assert opt.kinds == ["sgd", "adam", "momentum", "nesterov"]
    assert opt.step_count.tolist() == [0, 1, 0, 0]
