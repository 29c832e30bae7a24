"""ALRS: automatic initial learning rate from the sign of the LR gradient (Algorithm 1).

Algorithm 1 as reconstructed in ../shared/DESIGN.md. ALRS keeps a per-parameter ADJUSTMENT (the
last optimizer step's weight change, zero at first) and gamma = 1. For each batch the loss is
evaluated at W + gamma * ADJUSTMENT through `torch.func.functional_call` with gamma a
differentiable scalar; one backward pass gives d loss / d gamma (the LR gradient: ADJUSTMENT is
proportional to the LR for SGD and Adam) and the weight gradients at the shifted point. The
optimizer steps from W with those gradients, ADJUSTMENT <- W_new - W_old, and W_old is copied
back. Every num_batches // 50 batches: increase if >= 90% of the recorded LR gradients are
negative and their sum is negative, else decrease; the optimizer's LR becomes the search's value.
When the search is done, ALRS returns value / 10.

The listing's ADJUSTMENT line has two readings (`ALRSConfig.adjustment`, recorded in results):
- "last" (DESIGN.md's reconstruction, the default): the optimizer steps from W with the
  gradients taken at W + gamma * ADJUSTMENT, and ADJUSTMENT <- W_new - W_old is the last step
  alone, so the LR gradient always measures one step at the current LR.
- "cumulative" (the listing read literally): the weights are shifted to W + ADJUSTMENT before
  OPT.step(), which then steps from the shifted point, and ADJUSTMENT <- p - OLD_PARAMS is the
  old shift plus the new step: the sum of every step since the start (or the last reset), a
  virtual training run from W that ALRS probes along its whole displacement.
Both agree on the first batch (ADJUSTMENT = 0) and differ from the second on. Measured
(`lcsim live alrs-compare --preset mnist-small --adjustment last|cumulative`, 3 seeds, shared
CPU): "last" picks Adam 0.0047 / SGD momentum 0.013 (geometric means), both within the
grid's best three rates, final loss 0.155 / 0.227; "cumulative" picks 0.00030 / 0.00093,
below them, final loss 0.47 / 1.49. Seed study variation 6.6% / 7.7% vs 7.3% / 12.9%; cost
0.77 / 0.76 vs 0.67 / 0.71 epochs. (Table 4, MNIST: Adam 0.0017, SGD 0.016.)

Choices the reconstruction leaves open:
- The optimizer state (momentum buffer, Adam moments) accumulates across ALRS batches, as in
  the paper (which restores only the weights), so ADJUSTMENT is the optimizer's steady-state
  step at the trial LR (e.g. ~10x lr * g for SGD momentum 0.9). Weights, buffers (BatchNorm
  statistics), the optimizer state and the LR are restored bitwise when ALRS ends (also on an
  exception).
- When a signal changes the LR by a factor, ADJUSTMENT is scaled by the same factor, so the
  first LR gradient of the next window measures a step at the new LR. Unscaled, the window after
  a decrease from a too-large LR starts with a stale, too-long step, and one such gradient in a
  window of k <= 10 already breaks the 90% rule (measured: a spurious second decrease that cost
  ~15 signals to undo on the linear-regression test).
- A non-finite loss or LR gradient (LR far too large) counts as a positive LR gradient, skips
  the optimizer step, resets ADJUSTMENT to zero and the optimizer state to its state at the
  start of ALRS (measured: without the state reset, SGD momentum seeded at 0.044 on MNIST went
  through lr 4.4, kept a ~1e12 momentum buffer and decreased the LR to 1e-19 in 838 batches).
- A batch evaluated with ADJUSTMENT = 0 (the first one, and the one after a reset) has an LR
  gradient of exactly 0 and no sign to read: it is paid for (cost) but not put in a window.
- Dropout and other layers that draw from torch's global RNG run inside torch.random.fork_rng
  seeded from `seed`, so ALRS is reproducible and leaves the caller's RNG state alone.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from lcsim.hpo_sim.live.alrs.search import SBF, ParameterSearch, SBFConfig
from torch import nn
from torch.func import functional_call

__all__ = ["ADJUSTMENTS", "ALRSConfig", "ALRSResult", "LRGradientProbe", "SignalRecord", "alrs"]

ADJUSTMENTS = ("last", "cumulative")  # the two readings of the listing's ADJUSTMENT line

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ALRSConfig:
    initial_lr: float = 1.0  # the paper's recommended LR seed
    signals_per_epoch: int = 50  # a signal every num_batches // 50 batches (paper)
    negative_fraction: float = 0.9  # increase iff >= 90% of LR gradients < 0 and sum < 0 (paper)
    divisor: float = 10.0  # returned LR = search value / 10 (paper, Section 6.1)
    search: SBFConfig = field(default_factory=SBFConfig)  # used when no search is passed
    max_batches: int | None = None  # safety cap; None: SBF's own limit (<= 120 signals)
    on_change: str = "rescale"  # ADJUSTMENT when a signal changes the LR: keep|rescale|reset
    adjustment: str = "last"  # the listing's ADJUSTMENT: "last" step (DESIGN) or "cumulative"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_lr) and self.initial_lr > 0):
            raise ValueError(
                f"ALRSConfig.initial_lr must be finite and > 0, got {self.initial_lr}"
            )
        if self.signals_per_epoch < 1:
            raise ValueError(
                f"ALRSConfig.signals_per_epoch must be >= 1, got {self.signals_per_epoch}"
            )
        if not 0 < self.negative_fraction <= 1:
            raise ValueError(
                f"ALRSConfig.negative_fraction must be in (0, 1], got {self.negative_fraction}"
            )
        if not self.divisor > 0:
            raise ValueError(f"ALRSConfig.divisor must be > 0, got {self.divisor}")
        if self.on_change not in ("keep", "rescale", "reset"):
            raise ValueError(
                f"ALRSConfig.on_change must be keep, rescale or reset, got {self.on_change!r}"
            )
        if self.max_batches is not None and self.max_batches < 1:
            raise ValueError(f"ALRSConfig.max_batches must be >= 1, got {self.max_batches}")
        if self.adjustment not in ADJUSTMENTS:
            raise ValueError(f"ALRSConfig.adjustment must be one of {', '.join(ADJUSTMENTS)}, "
                             f"got {self.adjustment!r}")


@dataclass(frozen=True)
class SignalRecord:
    """One increase/decrease decision of ALRS."""

    batch: int  # batches consumed when the signal was made (1-based count)
    lr: float  # LR the gradients were measured at
    n_negative: int  # LR gradients < 0 among the window
    grad_sum: float  # sum of the window's LR gradients
    signal: int  # +1 increase, -1 decrease
    value: float  # search value after the signal
    lower: float  # search limits after the signal (NaN if the search has none)
    upper: float
    phase: str  # search phase that handled the signal ("" if the search has none)


@dataclass(frozen=True)
class ALRSResult:
    lr: float  # the chosen initial LR: search value / divisor
    search_value: float  # the search's converged value before the division
    batches: int  # cost: forward+backward passes spent
    seconds: float  # cost: wall time
    num_batches: int  # batches per epoch (so batches / num_batches = epochs of cost)
    steps_per_signal: int
    complete: bool  # False if max_batches stopped the search before done()
    trace: tuple[SignalRecord, ...]
    lr_grads: tuple[float, ...]  # every batch's d loss / d gamma
    adjustment: str = "last"  # the ADJUSTMENT reading used (ALRSConfig.adjustment)

    @property
    def epochs(self) -> float:
        return self.batches / self.num_batches


class LRGradientProbe:
    """The per-batch step of Algorithm 1. Leaves the model's weights where they were.

    `step(x, y)` returns d loss / d gamma at gamma = 1 for the loss at W + gamma * ADJUSTMENT,
    lets the optimizer step with the weight gradients of that loss (from W for the "last"
    reading, from W + ADJUSTMENT for "cumulative"), stores the new displacement from W in
    `adjustment`, and copies W back. Buffers (BatchNorm statistics) and the optimizer state are
    not restored here; `alrs` restores them at the end.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                 adjustment: str = "last"):
        if adjustment not in ADJUSTMENTS:
            raise ValueError(f"adjustment must be one of {', '.join(ADJUSTMENTS)}, "
                             f"got {adjustment!r}")
        self.cumulative = adjustment == "cumulative"
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not self.params:
            raise ValueError("ALRS: the model has no trainable parameters")
        self.adjustment = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self._zero = True
        # Restored after a non-finite batch: a far-too-large LR can leave the momentum buffer
        # or Adam moments finite but astronomically large, poisoning every later step.
        self._initial_state = copy.deepcopy(optimizer.state_dict())

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        ref = next(iter(self.params.values()))
        gamma = torch.ones((), dtype=ref.dtype, device=ref.device, requires_grad=True)
        self.optimizer.zero_grad(set_to_none=True)
        shifted = {n: p + gamma * self.adjustment[n] for n, p in self.params.items()}
        loss = self.loss_fn(functional_call(self.model, shifted, (x,)), y)
        if not torch.isfinite(loss):
            self._restart()
            return math.inf
        loss.backward()
        lr_grad = float(gamma.grad)
        grads_finite = all(
            p.grad is None or bool(torch.isfinite(p.grad).all()) for p in self.params.values()
        )
        if not (math.isfinite(lr_grad) and grads_finite):
            self._restart()
            return math.inf
        with torch.no_grad():
            old = {n: p.detach().clone() for n, p in self.params.items()}
            if self.cumulative:  # the listing literally: OPT.step() from the shifted weights
                for n, p in self.params.items():
                    p.add_(self.adjustment[n])
            self.optimizer.step()
            for n, p in self.params.items():
                self.adjustment[n] = p - old[n]
                p.copy_(old[n])
        self._zero = False
        self.optimizer.zero_grad(set_to_none=True)
        return lr_grad

    @property
    def is_zero(self) -> bool:
        """True before the first step and after a reset (ADJUSTMENT is all zeros)."""
        return self._zero

    def rescale(self, factor: float) -> None:
        """Scale ADJUSTMENT when the LR changes by `factor` (a step is proportional to the LR)."""
        with torch.no_grad():
            for a in self.adjustment.values():
                a.mul_(factor)

    def _restart(self) -> None:
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(copy.deepcopy(self._initial_state))
        for g, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            g["lr"] = lr
        self.reset()

    def reset(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        for a in self.adjustment.values():
            a.zero_()
        self._zero = True


def _cycle(make_batches: Callable[[], Iterable[Batch]]) -> Iterator[Batch]:
    """Endless batches: a fresh pass (new shuffle) whenever one ends."""
    while True:
        empty = True
        for batch in make_batches():
            empty = False
            yield batch
        if empty:
            raise ValueError("ALRS: make_batches() yielded no batches")


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)  # tensor LRs (capturable/fused optimizers) stay tensors
        else:
            group["lr"] = lr


def alrs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    make_batches: Callable[[], Iterable[Batch]],
    num_batches: int,
    *,
    loss_fn: LossFn | None = None,
    search: ParameterSearch | None = None,
    config: ALRSConfig = ALRSConfig(),
    seed: int = 0,
) -> ALRSResult:
    """Run ALRS and return the chosen initial LR with its trace and cost.

    `make_batches()` returns one pass over the training data (x [B, ...], y [B]) and is called
    again when a pass ends; `num_batches` is the length of one pass (sets the signal window).
    `optimizer` must be built on `model`'s parameters; any torch.optim optimizer works. Model
    weights, buffers, optimizer state and LR are the same bitwise afterwards.
    """
    if num_batches < 1:
        raise ValueError(f"alrs: num_batches must be >= 1, got {num_batches}")
    loss_fn = loss_fn or nn.functional.cross_entropy
    search = search if search is not None else SBF(config.initial_lr, config.search)
    steps = max(1, num_batches // config.signals_per_epoch)
    probe = LRGradientProbe(model, optimizer, loss_fn, config.adjustment)

    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    opt_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    ref = next(iter(probe.params.values()))
    rng_devices = [ref.device] if ref.device.type == "cuda" else []

    trace: list[SignalRecord] = []
    lr_grads: list[float] = []
    window: list[float] = []
    batches = 0
    t0 = time.perf_counter()
    try:
        model.train()
        _set_lr(optimizer, search.value)
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed)
            for x, y in _cycle(make_batches):
                if search.done() or (config.max_batches and batches >= config.max_batches):
                    break
                fresh = probe.is_zero
                lr_grad = probe.step(x, y)
                batches += 1
                lr_grads.append(lr_grad)
                if fresh and math.isfinite(lr_grad):
                    continue  # ADJUSTMENT = 0: the LR gradient is exactly 0, no sign to read
                window.append(lr_grad)
                if len(window) < steps:
                    continue
                n_neg = sum(g < 0 for g in window)
                total = sum(window)
                lr_now = search.value
                if n_neg >= config.negative_fraction * steps and total < 0:
                    search.increase()
                    signal = 1
                else:
                    search.decrease()
                    signal = -1
                window = []
                if config.on_change == "rescale":
                    probe.rescale(search.value / lr_now)
                elif config.on_change == "reset":
                    probe.reset()
                _set_lr(optimizer, search.value)
                trace.append(
                    SignalRecord(
                        batch=batches,
                        lr=lr_now,
                        n_negative=n_neg,
                        grad_sum=total,
                        signal=signal,
                        value=search.value,
                        lower=float(getattr(search, "lower", math.nan)),
                        upper=float(getattr(search, "upper", math.nan)),
                        phase=str(getattr(search, "phase", "")),
                    )
                )
        if ref.device.type == "cuda":
            torch.cuda.synchronize(ref.device)
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        optimizer.load_state_dict(opt_state)
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
    seconds = time.perf_counter() - t0
    value = float(search.value)
    return ALRSResult(
        lr=value / config.divisor,
        search_value=value,
        batches=batches,
        seconds=seconds,
        num_batches=num_batches,
        steps_per_signal=steps,
        complete=search.done(),
        trace=tuple(trace),
        lr_grads=tuple(lr_grads),
        adjustment=config.adjustment,
    )
