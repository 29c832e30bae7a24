"""The population engine EPBT, PBT and Baseline 1 share: batches, training, measurement.

Built on `hpo_sim.live.population` (stacked members, torch.func): every member trains on the
same shuffled batches of an epoch (one order per epoch from a seeded torch.Generator) in one
forward/backward pass (`population.train_epoch`); PBD's teacher predictions are therefore
computed once per batch. Selection changes the population by building new stacked
populations from indices (`Population.take` / `Population.cat`, with `StackedOptimizer.take`
/ `cat` alongside), so elites are never touched by training.

`train_and_measure` is one generation of any of the three methods (E epochs at the
method's learning rates, BN recalibration, fitness); `generation_rows` turns the state
arrays of the individuals alive after a generation into result records (`epbt.results`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from lcsim.hpo_sim.live.common import child_seeds, seed_int, torch_generator
from lcsim.hpo_sim.live.epbt.config import EPBTConfig, pbd_alpha, step_lr
from lcsim.hpo_sim.live.epbt.taylorglo import as_target, taylorglo_loss
from lcsim.hpo_sim.live.population import (
    HSpace,
    Population,
    StackedOptimizer,
    evaluate,
    recalibrate_bn,
    train_epoch,
)
from lcsim.pregen.trainer import epoch_batches
from torch import Tensor, nn

__all__ = ["Engine", "generation_rows", "new_state", "pbd_target", "soft_cross_entropy",
           "train_and_measure"]


def pbd_target(teacher_probs: Tensor, y: Tensor, alpha: float) -> Tensor:
    """alpha * teacher [B, C] + (1 - alpha) * one-hot(y [B]) -> [B, C]; rows sum to 1."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"PBD alpha must be in [0, 1], got {alpha}")
    onehot = as_target(y, teacher_probs.shape[-1], teacher_probs.dtype)
    return alpha * teacher_probs + (1.0 - alpha) * onehot


def soft_cross_entropy(logits: Tensor, target: Tensor, _params: object = None) -> Tensor:
    """Per-member cross-entropy: logits [P, B, C], target labels [B] or soft [B, C] -> [P]."""
    x = as_target(target, logits.shape[-1], torch.float32)
    return -(x * torch.log_softmax(logits.float(), -1)).sum(-1).mean(-1)


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
        self.init_seed = seed_int(s_init)
        self.gen = torch_generator(s_batch)  # data order and dropout
        plain_val = list(data.batches("val", 1024, shuffle=False, augment=False))
        self.val = plain_val
        if val_copies > 1:  # paper 4.1: 1,250 validation images x 20 augmented = 25,000
            g_val = torch_generator(s_val)
            self.val = [b for _ in range(val_copies)
                        for b in data.batches("val", 1024, augment=True, generator=g_val)]
        self.test = list(data.batches("test", 1024, shuffle=False))
        vx = torch.cat([x for x, _ in plain_val])
        vy = torch.cat([y for _, y in plain_val])
        n = min(behaviour_size, len(vy))  # fewer validation images than N: use them all
        pick = np.sort(np.random.default_rng(s_beh).choice(len(vy), n, replace=False))
        self.beh_x, self.beh_y = vx[pick], vy[pick]

    def new_population(self, size: int) -> Population:
        """`size` members, member j built by `factory(seed_j)`, seed_j = child j of the run's
        init seed (the same members whatever the size)."""
        return Population.from_models([self.factory(s)
                                       for s in child_seeds(self.init_seed, size)],
                                      device=self.device)

    def train_epoch(self, pop: Population, opt: StackedOptimizer, loss_fn, params,
                    teacher: Population | None = None, alpha: float = 0.0) -> np.ndarray:
        """One epoch for every member; `loss_fn(logits [P,B,C], target, params) -> [P]`.

        With a teacher and alpha > 0 the target is the PBD mixture [B, C], else the labels [B].
        Returns the mean training loss per member [P].
        """
        target = None
        if teacher is not None and alpha > 0:
            def target(x: Tensor, y: Tensor) -> Tensor:
                with torch.no_grad():
                    probs = torch.softmax(teacher.forward(x, train=False)[0].float(), -1)
                return pbd_target(probs, y, alpha)

        losses = train_epoch(pop, opt, self.data, self.batch_size, order=self.gen,
                             generator=self.gen, loss_fn=loss_fn, member_params=params,
                             target=target)
        return losses.double().cpu().numpy()

    def recalibrate(self, pop: Population) -> int:
        """BN running statistics of every member from `bn_batches` training batches."""
        if not pop.has_batchnorm:
            return 0
        it = epoch_batches(self.data, self.batch_size, generator=self.gen)
        batches = [b for _, b in zip(range(self.bn_batches), it, strict=False)]
        return recalibrate_bn(pop, None, batches)

    def measure(self, pop: Population) -> dict[str, np.ndarray]:
        """Fitness (val accuracy over the `val_copies` copies), test accuracy, behaviour
        [P, N] bool, diverged [P] bool.

        Call `recalibrate` first where BN statistics may be stale.
        """
        with torch.no_grad():  # per tensor: no [P, D] copy of every member's weights
            finite = torch.stack([torch.isfinite(v).flatten(1).all(1)
                                  for v in pop.params.values()]).all(0)
        diverged = (~finite).cpu().numpy()
        _, val_acc = evaluate(pop, self.val)
        _, test_acc = evaluate(pop, self.test)
        with torch.no_grad():
            beh = (pop.forward(self.beh_x, train=False).argmax(-1) == self.beh_y).cpu().numpy()
        fitness = np.where(diverged, 0.0, val_acc.cpu().numpy())  # a NaN model is unfit
        return {"fitness": fitness, "test_accuracy": test_acc.cpu().numpy(),
                "behaviour": beh, "diverged": diverged}


def train_and_measure(eng: Engine, cfg: EPBTConfig, space: HSpace, pop: Population,
                      opt: StackedOptimizer, h: np.ndarray, g: int, loss_fn,
                      teacher: Population | None, schedule: str) -> dict:
    """E epochs of generation g for all members of `pop`, then BN recalibration and fitness.

    h [P, d] rows of `space`; schedule "step" (EPBT, Baseline 1: `step_lr` from h's lr_scale /
    lr_decay, momentum from h) or "constant" (PBT: h's own lr).
    """
    T, E = cfg.total_epochs, cfg.epochs_per_generation
    theta = (torch.as_tensor(h[:, :8], dtype=torch.float32, device=eng.device)
             if loss_fn is taylorglo_loss else None)
    if schedule == "step":
        opt.momentum[:] = torch.as_tensor(h[:, space.index("momentum")],
                                          device=opt.momentum.device)
    alpha = 0.0
    for e in range(g * E, (g + 1) * E):
        if schedule == "step":
            lr = step_lr(h[:, space.index("lr_scale")], h[:, space.index("lr_decay")], e, T,
                         cfg.base_lr, cfg.milestones)
        else:  # PBT: the member's own constant lr
            lr = h[:, space.index("lr")]
        opt.lr[:] = torch.as_tensor(lr, device=opt.lr.device)
        alpha = pbd_alpha(e, T, cfg.alpha_max) if teacher is not None else 0.0
        losses = eng.train_epoch(pop, opt, loss_fn, theta, teacher, alpha)
    eng.recalibrate(pop)  # BN statistics of the recombined, retrained members, before fitness
    m = eng.measure(pop)
    m.update(loss=losses, lr=np.asarray(lr, dtype=float) * np.ones(pop.size), alpha=alpha)
    return m


def new_state(h, ids, parent, partner, role, trained, m) -> dict:
    """Per-individual arrays [P] of a population after a generation (`m`: its measurement)."""
    return {"h": h, "id": ids, "parent": parent, "partner": partner,
            "role": np.asarray(role, dtype=object), "trained": trained,
            "fitness": m["fitness"], "test": m["test_accuracy"], "beh": m["behaviour"],
            "diverged": m["diverged"], "loss": m["loss"], "lr": m["lr"]}


def generation_rows(g: int, cfg: EPBTConfig, space: HSpace, s: dict, **extra) -> list[dict]:
    """Records of the individuals alive after generation g (state arrays `s`, [P] each)."""
    out = []
    for i in range(len(s["id"])):
        row = {"generation": g, "epoch": (g + 1) * cfg.epochs_per_generation,
               "individual": int(s["id"][i]), "parent": int(s["parent"][i]),
               "partner": int(s["partner"][i]), "role": str(s["role"][i]),
               "fitness": float(s["fitness"][i]), "test_accuracy": float(s["test"][i]),
               "train_loss": float(s["loss"][i]), "lr": float(s["lr"][i]),
               "trained_epochs": int(s["trained"][i]), "diverged": bool(s["diverged"][i])}
        row.update({f"h_{k}": v for k, v in space.as_dict(s["h"][i]).items()})
        row.update(extra)
        out.append(row)
    return out
