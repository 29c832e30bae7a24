"""The population engine EPBT, PBT and Baseline 1 share: batches, training, measurement.

Built on `hpo_sim.live.population` (stacked members, torch.func): every member trains on the
same shuffled batches of an epoch (one order per epoch from a seeded torch.Generator) in one
forward/backward pass; PBD's teacher predictions are therefore computed once per batch.
Selection changes the population by building new stacked populations from indices
(`Population.take` / `Population.cat`), with the optimizer state gathered alongside, so
elites are never touched by training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from lcsim.hpo_sim.live.population import (
    Population,
    StackedOptimizer,
    evaluate,
    recalibrate_bn,
    train_step,
)
from lcsim.hpo_sim.live.taylorglo import as_target
from torch import Tensor, nn

__all__ = ["Engine", "pbd_target", "take_optimizer", "cat_optimizers"]


def pbd_target(teacher_probs: Tensor, y: Tensor, alpha: float) -> Tensor:
    """alpha * teacher [B, C] + (1 - alpha) * one-hot(y [B]) -> [B, C]; rows sum to 1."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"PBD alpha must be in [0, 1], got {alpha}")
    onehot = as_target(y, teacher_probs.shape[-1], teacher_probs.dtype)
    return alpha * teacher_probs + (1.0 - alpha) * onehot


class Engine:
    """Data, batches and the population operations of one run (seeded from `seed`).

    `factory(seed) -> nn.Module` builds one member's model, initialised from `seed`
    (e.g. `pregen.models.build_named_model(..., seed=seed)`).
    """

    def __init__(self, data, factory: Callable[[int], nn.Module], *, seed: int, batch_size: int,
                 behaviour_size: int, bn_batches: int, val_copies: int = 1,
                 device: str = "cpu"):
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:  # "cuda" means the current device
            dev = torch.device("cuda", torch.cuda.current_device())
        if data.device != dev:
            raise ValueError(f"data is on {data.device} but device={device!r}; load it with "
                             f"load_dataset(..., device={device!r}) or data.to({device!r})")
        self.data, self.factory, self.device = data, factory, device
        self.batch_size, self.bn_batches = batch_size, bn_batches
        s_rng, s_init, s_batch, s_beh, s_val = np.random.SeedSequence(seed).spawn(5)
        self.rng = np.random.default_rng(s_rng)          # genetic / PBT decisions
        self.init_seed = int(s_init.generate_state(1)[0])
        self.gen = torch.Generator().manual_seed(int(s_batch.generate_state(1)[0]))
        plain_val = list(data.batches("val", 1024, shuffle=False, augment=False))
        self.val = plain_val
        if val_copies > 1:  # paper 4.1: 1,250 validation images x 20 augmented = 25,000
            g_val = torch.Generator().manual_seed(int(s_val.generate_state(1)[0]))
            self.val = [b for _ in range(val_copies)
                        for b in data.batches("val", 1024, augment=True, generator=g_val)]
        self.test = list(data.batches("test", 1024, shuffle=False))
        vx = torch.cat([x for x, _ in plain_val])
        vy = torch.cat([y for _, y in plain_val])
        n = min(behaviour_size, len(vy))  # fewer validation images than N: use them all
        pick = np.sort(np.random.default_rng(s_beh).choice(len(vy), n, replace=False))
        self.beh_x, self.beh_y = vx[pick], vy[pick]

    def new_population(self, size: int) -> Population:
        """`size` members, member j built by `factory(seed_j)` with seed_j from SeedSequence."""
        seeds = np.random.SeedSequence(self.init_seed).generate_state(size)
        return Population.from_models([self.factory(int(sd)) for sd in seeds],
                                      device=self.device)

    def _train_batches(self):
        return self.data.batches("train", self.batch_size, shuffle=True, generator=self.gen)

    def train_epoch(self, pop: Population, opt: StackedOptimizer, loss_fn, params,
                    teacher: Population | None = None, alpha: float = 0.0) -> np.ndarray:
        """One epoch for every member; `loss_fn(logits [P,B,C], target, params) -> [P]`.

        With a teacher and alpha > 0 the target is the PBD mixture [B, C], else the labels [B].
        Returns the mean training loss per member [P].
        """
        total = torch.zeros(pop.size, dtype=torch.float64)
        n = 0
        for x, y in self._train_batches():
            target = y
            if teacher is not None and alpha > 0:
                with torch.no_grad():
                    probs = torch.softmax(teacher.forward(x, train=False)[0].float(), -1)
                target = pbd_target(probs, y, alpha)
            losses = train_step(pop, opt, x, target, loss_fn=loss_fn, member_params=params,
                                generator=self.gen)
            total += losses.double().cpu()
            n += 1
        pop.zero_grad()
        return (total / max(n, 1)).numpy()

    def recalibrate(self, pop: Population) -> int:
        """BN running statistics of every member from `bn_batches` training batches."""
        if not pop.has_batchnorm:
            return 0
        it = self._train_batches()
        batches = [b for _, b in zip(range(self.bn_batches), it, strict=False)]
        return recalibrate_bn(pop, None, batches)

    def measure(self, pop: Population) -> dict[str, np.ndarray]:
        """Fitness (val accuracy over the `val_copies` copies), test accuracy, behaviour
        [P, N] bool, diverged [P] bool.

        Call `recalibrate` first where BN statistics may be stale.
        """
        diverged = (~torch.isfinite(pop.flat()).all(1)).cpu().numpy()
        _, val_acc = evaluate(pop, self.val)
        _, test_acc = evaluate(pop, self.test)
        with torch.no_grad():
            beh = (pop.forward(self.beh_x, train=False).argmax(-1) == self.beh_y).cpu().numpy()
        fitness = np.where(diverged, 0.0, val_acc.cpu().numpy())  # a NaN model is unfit
        return {"fitness": fitness, "test_accuracy": test_acc.cpu().numpy(),
                "behaviour": beh, "diverged": diverged}


def take_optimizer(opt: StackedOptimizer, pop: Population, idx) -> StackedOptimizer:
    """An optimizer for `pop` (built from old members `idx`) carrying their state."""
    idx = [int(j) for j in idx]
    i = torch.as_tensor(idx, dtype=torch.long, device=opt.lr.device)
    new = StackedOptimizer(pop, [opt.kinds[j] for j in idx], opt.lr[i],
                           momentum=opt.momentum[i])
    new.restore_({"buf": {k: v[i] for k, v in opt.buf.items()},
                  "sq": {k: v[i] for k, v in opt.sq.items()}, "step": opt.step_count[i]})
    return new


def cat_optimizers(opts: list[StackedOptimizer], pop: Population) -> StackedOptimizer:
    """One optimizer for `Population.cat` of the populations of `opts`, states in order."""
    new = StackedOptimizer(pop, sum((list(o.kinds) for o in opts), []),
                           torch.cat([o.lr for o in opts]),
                           momentum=torch.cat([o.momentum for o in opts]))
    new.restore_({"buf": {k: torch.cat([o.buf[k] for o in opts]) for k in new.buf},
                  "sq": {k: torch.cat([o.sq[k] for o in opts]) for k in new.sq},
                  "step": torch.cat([o.step_count for o in opts])})
    return new
