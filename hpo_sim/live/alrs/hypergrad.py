"""Online hypergradient descent on the learning rate (Baydin et al., ICLR 2018).

A thin wrapper over any torch.optim optimizer: step hooks adjust its param_group LR with
    lr_t = lr_{t-1} + beta * g_t . u_{t-1},
where g_t is the current gradient and u_{t-1} the previous update direction, recovered from the
previous step as u = -(W_after - W_before) / lr. For plain SGD u is the previous gradient
(SGD-HD: lr += beta * g_t . g_{t-1}); for SGD with momentum and Adam it is their update
direction (SGDN-HD, Adam-HD), exactly Baydin et al.'s rule for each. The hypergradient
-g_t . u_{t-1} is the online cousin of ALRS's LR gradient: ALRS reads its sign at fixed weights
to pick one initial rate, HD descends it while training.

Baydin et al.'s settings are the defaults of the comparison (alrs.compare): initial LR 1e-3,
beta = 1e-3 for SGD / SGD-momentum and 1e-7 for Adam. The LR is clamped at 0 (a negative
rate would ascend the loss; Baydin et al. do not discuss it).
"""

from __future__ import annotations

import math

import torch

__all__ = ["HypergradientLR"]


class HypergradientLR:
    """Attach online hypergradient LR adaptation to `optimizer` (all its param groups).

    Use the optimizer as usual (`zero_grad`, `backward`, `step`); `lrs` records the LR used at
    every step. `remove()` detaches the hooks. Every param group shares one LR.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, beta: float):
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"HypergradientLR.beta must be finite and >= 0, got {beta}")
        self.optimizer = optimizer
        self.beta = beta
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.lr = float(optimizer.param_groups[0]["lr"])
        self.lrs: list[float] = []
        self.hypergrads: list[float] = []
        self._direction: list[torch.Tensor] | None = None  # u_{t-1}, one tensor per param
        self._before: list[torch.Tensor] = []
        self._handles = [
            optimizer.register_step_pre_hook(self._pre),
            optimizer.register_step_post_hook(self._post),
        ]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()

    @torch.no_grad()
    def _pre(self, optimizer, args, kwargs) -> None:
        if self._direction is not None:
            dot = sum(
                (p.grad * u).sum()
                for p, u in zip(self.params, self._direction, strict=True)
                if p.grad is not None
            )
            h = float(dot)  # one host sync per step: the LR is a Python float in torch.optim
            self.hypergrads.append(h)
            if math.isfinite(h):
                self.lr = max(self.lr + self.beta * h, 0.0)
        for g in optimizer.param_groups:
            g["lr"] = self.lr
        self.lrs.append(self.lr)
        self._before = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def _post(self, optimizer, args, kwargs) -> None:
        if self.lr > 0:
            self._direction = [
                (b - p) / self.lr for p, b in zip(self.params, self._before, strict=True)
            ]
        # At lr = 0 the step is empty and carries no direction; keep the last one.
        self._before = []
