"""Training and evaluation steps on a Population: one step, one epoch, evaluation, BN.

`train_step` is one optimizer step of every member; `train_epoch` is one epoch of them over
a DeviceData's training split, its batches from `pregen.trainer.epoch_batches` (the trainer's
rule: shuffled by a seeded generator, a last batch of one example dropped) and its losses
summed by `pregen.trainer.RunningLoss` (on the device, one host sync at the end).

Why a population epoch does not go through `pregen.trainer.train_epoch`: that loop trains one
model, and a non-finite loss ends its epoch (the run is then "diverged"). In a population one
member's NaN must not stop the others, so losses stay per member ``[P]`` and divergence is
judged per member by the method (ESGD: fitness; EPBT: non-finite weights). The members'
optimizer is a `StackedOptimizer` (per-member tensors of hyperparameters, no param groups)
and ESGD gives each member its own data order (``x [P, B, ...]``), which a model's forward
pass cannot take. What both loops must agree on, batching and loss accumulation, is one
function each in `pregen.trainer`, called from both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from lcsim.hpo_sim.live.population.optimizer import StackedOptimizer
from lcsim.hpo_sim.live.population.stack import Population, member_index
from lcsim.pregen.trainer import RunningLoss, epoch_batches
from torch import Tensor, nn

__all__ = ["cross_entropy_per_member", "evaluate", "recalibrate_bn", "train_epoch",
           "train_step"]

LossFn = Callable[[Tensor, Tensor, object], Tensor]
Target = Callable[[Tensor, Tensor], Tensor]


def cross_entropy_per_member(logits: Tensor, y: Tensor, member_params: object = None) -> Tensor:
    """Mean cross-entropy per member: logits ``[P, B, C]``, y ``[P, B]`` or ``[B]`` -> ``[P]``."""
    P, B, C = logits.shape
    if y.dim() == 1:
        y = y.expand(P, B)
    return F.cross_entropy(logits.reshape(P * B, C), y.reshape(P * B),
                           reduction="none").reshape(P, B).mean(1)


def train_step(
    pop: Population, opt: StackedOptimizer, x: Tensor, y: Tensor, *,
    loss_fn: LossFn | None = None, member_params: object = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One optimizer step for every member; returns the per-member training losses ``[P]``.

    x: ``[P, B, ...]`` (own batches) or ``[B, ...]`` (shared); y: ``[P, B]`` or ``[B]`` (or any
    targets `loss_fn` understands). `loss_fn(logits [P, B, C], y, member_params) -> [P]` lets
    each member have its own loss (e.g. TaylorGLO parameters ``[P, k]`` in `member_params`);
    default: mean cross-entropy. Each member's gradient is that of its own loss because the
    members share no parameters and the objective is the sum of their losses.
    """
    loss_fn = loss_fn or cross_entropy_per_member
    pop.zero_grad()
    logits = pop.forward(x, train=True, generator=generator)
    losses = loss_fn(logits, y, member_params)
    if losses.shape != (pop.size,):
        raise ValueError(f"loss_fn must return one loss per member, shape ({pop.size},), got "
                         f"{tuple(losses.shape)}")
    losses.sum().backward()
    opt.step()
    return losses.detach()


def train_epoch(
    pop: Population, opt: StackedOptimizer, data, batch_size: int, *,
    order: torch.Generator | Sequence[torch.Generator], generator: torch.Generator,
    loss_fn: LossFn | None = None, member_params: object = None, target: Target | None = None,
) -> Tensor:
    """One epoch of every member over `data`'s training split (a pregen DeviceData); returns
    the mean training loss per member ``[P]`` (example-weighted, as `pregen.trainer`'s).

    `order`: one torch.Generator (all members see the same shuffled batches, ``x [B, ...]``)
    or one per member (each its own order, ``x [P, B, ...]``). `generator` drives dropout
    (it may be `order` itself). `target(x, y)` replaces the labels given to `loss_fn`, per
    shared batch (EPBT's distillation mixture); `loss_fn` / `member_params` as in `train_step`.
    """
    if isinstance(order, torch.Generator):
        batches = epoch_batches(data, batch_size, generator=order)
    else:
        if len(order) != pop.size:
            raise ValueError(f"train_epoch: {len(order)} data-order generators for "
                             f"{pop.size} members")
        streams = [epoch_batches(data, batch_size, generator=g) for g in order]
        batches = ((torch.stack([b[0] for b in bs]), torch.stack([b[1] for b in bs]))
                   for bs in zip(*streams, strict=True))  # each member its own order
    running = RunningLoss((pop.size,), device=pop.device)
    for x, y in batches:
        t = y if target is None else target(x, y)
        losses = train_step(pop, opt, x, t, loss_fn=loss_fn, member_params=member_params,
                            generator=generator)
        running.add(losses, y.shape[-1])
    pop.zero_grad()
    return running.mean()


@torch.no_grad()
def evaluate(
    pop: Population, batches: Iterable[tuple[Tensor, Tensor]], *, idx=None,
    max_members: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy loss and accuracy of members `idx` on `batches` (eval mode).

    batches: ``(x [B, ...], y [B])`` shared by all members (a fixed list, so the numbers are
    deterministic). `max_members` bounds how many members run at once (memory). Returns
    ``(loss [k], accuracy [k])`` as float64 example-weighted means.
    """
    i = member_index(idx, pop.size, pop.device)
    batches = list(batches)
    if not batches:
        raise ValueError("evaluate needs at least one batch")
    chunk = max_members or len(i)
    losses, accs = [], []
    for c0 in range(0, len(i), chunk):
        ci = i[c0:c0 + chunk]
        whole = len(ci) == pop.size
        pp = pop.params if whole else {k: v.detach()[ci] for k, v in pop.params.items()}
        bb = pop.buffers if whole else {k: v[ci] for k, v in pop.buffers.items()}
        tot_l = torch.zeros(len(ci), dtype=torch.float64, device=pop.device)
        tot_c = torch.zeros_like(tot_l)
        n = 0
        for x, y in batches:
            logits = pop.forward(x, train=False, params=pp, buffers=bb)
            B = y.shape[0]
            tot_l += cross_entropy_per_member(logits, y).double() * B
            tot_c += (logits.argmax(-1) == y).double().sum(1)
            n += B
        losses.append(tot_l / n)
        accs.append(tot_c / n)
    return torch.cat(losses), torch.cat(accs)


@torch.no_grad()
def recalibrate_bn(pop: Population, idx, batches: Iterable) -> int:
    """Recompute the batch-norm running statistics of members `idx` from training batches.

    Mirrors torch.optim.swa_utils.update_bn for each member: running mean / var reset, then
    the exact (cumulative) average over `batches` of the batch statistics.
    Unlike update_bn, layers other than batch-norm stay in eval mode, so dropout does not
    disturb the statistics and the result is deterministic. `batches` yield ``x`` or
    ``(x, y)`` with x ``[B, ...]`` shared by the members. Returns the number of batches used
    (0 if the model has no batch-norm).
    """
    bns = [m for m in pop.base.modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return 0
    i = member_index(idx, pop.size, pop.device)
    if i.numel() == 0:
        return 0
    pp = {k: v.detach()[i] for k, v in pop.params.items()}
    bb = {k: v[i].clone() for k, v in pop.buffers.items()}
    for k, v in bb.items():
        if k.endswith("running_mean") or k.endswith("num_batches_tracked"):
            v.zero_()
        elif k.endswith("running_var"):
            v.fill_(1)
    saved = [m.momentum for m in bns]
    n = 0
    try:
        for b in batches:
            x = b[0] if isinstance(b, tuple | list) else b
            pop.base.eval()
            for m in bns:
                m.train()
                # momentum 1/(n+1) at batch n is the cumulative average that momentum=None
                # gives; None itself reads num_batches_tracked with .item(), which vmap refuses
                m.momentum = 1.0 / (n + 1)
            fn = pop._forward_vmap if pop.batched is not False else pop._forward_loop
            fn(pp, bb, x, True)
            n += 1
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
        pop.base.eval()
    if n == 0:
        raise ValueError("recalibrate_bn got no batches")
    for k, v in pop.buffers.items():
        v[i] = bb[k]
    return n
