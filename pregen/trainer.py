"""The one training loop, used by table generation and by the live methods.

Optimizers come from torch.optim (with torch's own `weight_decay` where a space's recipe sets
one, LCBench) and learning-rate schedules from torch.optim.lr_scheduler (stepped once per
epoch; "cosine" anneals over the run's T epochs to eta_min 1e-8, as LCBench did). Batches
come from `DeviceData.batches` (data already on the device). The loss on each batch is
`loss_fn(logits, y)` (cross-entropy by default) plus the Table I L2 penalty
`l2_weight * sum ||W||^2` over the weight tensors of every Conv and Linear layer (not biases,
not batch-norm parameters).

Per epoch the trainer reports an `EpochRecord`: epoch (1..T), train_loss (mean loss_fn value
over the epoch's minibatches, as trained: dropout on, penalty excluded), val_loss and
val_accuracy (the validation split, taken from the training data; NaN when the data has no
validation split, i.e. was loaded with val_size=0), train_seconds and
eval_seconds (wall time measured around the epoch and the evaluation, with a device
synchronisation before each clock read). The running loss is summed on the device and
checked for finiteness every `check_every` batches and at the end of the epoch, so there is
no host sync per batch. A non-finite training or validation loss (or a mean training loss
above `spec.max_loss`, off by default) ends the run with status "diverged"; the epochs
recorded before it are kept. A callback returning True ends the run
with status "stopped".

`train` builds its optimizer and schedule from the spec (`make_optimizer`, `make_scheduler`),
or takes them from the caller (`optimizer=`, `scheduler=`): any torch.optim optimizer, with
hooks (hypergradient descent) or without learning rate (Prodigy), goes through the same loop.

Batches of an epoch come from `epoch_batches` (shuffled by a seeded generator; a last batch
of one example is dropped, since batch norm cannot train on it) and losses are summed by
`RunningLoss`; the population loop of hpo_sim.live calls both, so the rules live here once.
(A little over 400 lines: the loop, its factories and these rules are one contract.)

Seeds: `spec.seed` is split with np.random.SeedSequence into init / data-order / dropout
seeds; dropout draws run inside `fork_seeded`, so the caller's global RNG is untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lcsim.pregen.data import DeviceData
from lcsim.pregen.models import build_model, count_params, fork_seeded, forward_flops
from torch import nn

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "EpochRecord",
    "RunningLoss",
    "TrainResult",
    "TrainSpec",
    "batches_per_epoch",
    "epoch_batches",
    "evaluate",
    "l2_params",
    "l2_penalty",
    "make_optimizer",
    "make_scheduler",
    "seeds",
    "train",
    "train_config",
    "train_epoch",
]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
SCHEDULES = ("constant", "exponential", "inv_sqrt", "step", "cosine")
_COSINE_ETA_MIN = 1e-8  # LCBench's cosine_annealing_eta_min

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[["EpochRecord"], "bool | None"]


@dataclass(frozen=True)
class TrainSpec:
    """How to train; train_config overrides the fields its space's recipe names."""

    epochs: int = 20  # not stated in the paper; ours (tables: runner.DEFAULT_EPOCHS)
    batch_size: int = 128  # not stated in the paper; ours (table generation)
    optimizer: str = "adam"  # paper; one of OPTIMIZERS
    lr: float = 1e-3  # Adam's customary default
    momentum: float = 0.9  # for "momentum" and "nesterov" only
    schedule: str = "constant"  # one of SCHEDULES, stepped per epoch
    step_size: int = 10  # epochs between decays of the "step" schedule
    step_gamma: float = 0.1  # factor per "step" decay (the usual staircase)
    l2_weight: float = 0.0  # lambda of the penalty lambda * sum ||W||^2
    weight_decay: float = 0.0  # torch.optim's weight_decay (all parameters), LCBench's
    seed: int = 0  # init, data order, dropout (split by SeedSequence)
    bf16: bool = False  # autocast matmuls/convs to bfloat16 (meant for CUDA)
    channels_last: bool = False  # NHWC memory format (faster convs on CUDA tensor cores)
    check_every: int = 50  # batches between finiteness checks (each one is a host sync)
    # Mean epoch loss above this also counts as diverged. inf by default: the contract is
    # "non-finite", and Table I configs whose loss explodes but stays finite are real curves
    # (near-chance accuracy) in the paper's tables. Set e.g. 1e3 for cross-entropy to cut
    # runs whose logits have blown up (lr 1e3 with Adam stays finite: ~1e15).
    max_loss: float = math.inf
    eval_batch_size: int = 1024  # evaluation only; no gradients, so larger is fine

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"TrainSpec.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"TrainSpec.batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainSpec.optimizer={self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainSpec.schedule={self.schedule!r}; choose from {SCHEDULES}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainSpec.lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.l2_weight) and self.l2_weight >= 0):
            raise ValueError(f"TrainSpec.l2_weight must be >= 0, got {self.l2_weight}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"TrainSpec.weight_decay must be >= 0, got {self.weight_decay}")
        if not self.max_loss > 0:
            raise ValueError(f"TrainSpec.max_loss must be > 0, got {self.max_loss}")
        if self.step_size < 1 or self.check_every < 1 or self.eval_batch_size < 1:
            raise ValueError(f"TrainSpec: step_size, check_every, eval_batch_size must be >= 1, "
                             f"got {self.step_size}, {self.check_every}, {self.eval_batch_size}")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1..T
    train_loss: float  # mean loss_fn over the epoch's minibatches (no L2 penalty)
    val_loss: float  # mean cross-entropy on the validation split
    val_accuracy: float  # fraction correct in [0, 1]
    train_seconds: float  # measured, device-synchronised
    eval_seconds: float  # measured, device-synchronised
    lr: float  # learning rate used during this epoch


@dataclass(frozen=True)
class TrainResult:
    status: str  # "complete" | "diverged" | "stopped" (callback returned True)
    epochs: tuple[EpochRecord, ...]
    error: str | None = None  # why it diverged
    n_params: int | None = None  # set by train_config
    flops: int | None = None  # forward FLOPs per example, set by train_config

    @property
    def final_accuracy(self) -> float:
        return self.epochs[-1].val_accuracy if self.epochs else float("nan")


def seeds(seed: int) -> tuple[int, int, int]:
    """(init, data order, dropout) seeds derived from one seed."""
    children = np.random.SeedSequence(seed).spawn(3)
    return tuple(int(c.generate_state(1)[0]) for c in children)


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float,
                   momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """torch.optim optimizer by name; RMSprop and Adam keep torch's other defaults."""
    wd = weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS}")


def _inv_sqrt(epoch: int) -> float:  # lr at epoch t (1-based) = lr0 / sqrt(t)
    return 1.0 / math.sqrt(epoch + 1)


def _one(epoch: int) -> float:
    return 1.0


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, *, step_size: int = 10,
                   step_gamma: float = 0.1,
                   epochs: int | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """torch.optim.lr_scheduler schedule by name, meant to be stepped once per epoch.

    constant; exponential: lr0 * 0.95^(t-1); inv_sqrt: lr0 / sqrt(t); step: lr0 * gamma^floor(
    (t-1) / step_size); cosine: CosineAnnealingLR with T_max = epochs (required) and eta_min
    1e-8, so epoch t trains at 1e-8 + (lr0 - 1e-8) (1 + cos(pi (t-1) / T)) / 2; t = 1..T.
    """
    sch = torch.optim.lr_scheduler
    if name == "constant":
        return sch.LambdaLR(optimizer, _one)
    if name == "exponential":
        return sch.ExponentialLR(optimizer, gamma=0.95)
    if name == "inv_sqrt":
        return sch.LambdaLR(optimizer, _inv_sqrt)
    if name == "step":
        return sch.StepLR(optimizer, step_size=step_size, gamma=step_gamma)
    if name == "cosine":
        if epochs is None or epochs < 1:
            raise ValueError(f"the cosine schedule needs epochs >= 1 (its T_max), got {epochs}")
        return sch.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=_COSINE_ETA_MIN)
    raise ValueError(f"unknown schedule {name!r}; choose from {SCHEDULES}")


def l2_params(model: nn.Module) -> list[torch.Tensor]:
    """The tensors the L2 penalty covers: weights of Conv and Linear layers."""
    return [m.weight for m in model.modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]


def l2_penalty(params: list[torch.Tensor]) -> torch.Tensor:
    """sum ||W||^2 over params (a 0-d tensor on their device)."""
    return torch.stack([p.pow(2).sum() for p in params]).sum()


def _drop_last(n: int, batch_size: int) -> bool:
    # A last batch of one example would break batch norm in training mode; drop it.
    return n % batch_size == 1


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Training batches in one epoch over n examples (what `epoch_batches` yields)."""
    return n // batch_size if _drop_last(n, batch_size) else math.ceil(n / batch_size)


def epoch_batches(data: DeviceData, batch_size: int, *, generator: torch.Generator,
                  augment: bool | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One training epoch of data's train split: (x [B, ...], y [B]) batches, shuffled and
    augmented by `generator`, without a last batch of one example."""
    n = data.train_y.shape[0]
    return data.batches("train", batch_size, shuffle=True, generator=generator,
                        augment=augment, drop_last=_drop_last(n, batch_size))


class RunningLoss:
    """Example-weighted mean of batch losses, summed on the device (no host sync per batch).

    `shape` () for one model, (P,) for one loss per population member.
    """

    def __init__(self, shape: tuple[int, ...] = (), *, device: torch.device | str = "cpu"):
        self.total = torch.zeros(shape, device=device)  # sum of loss * batch size
        self.seen = 0  # examples

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.total += loss.detach() * n
        self.seen += n

    def mean(self) -> torch.Tensor:
        return self.total / max(self.seen, 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


def train_epoch(
    model: nn.Module,
    data: DeviceData,
    optimizer: torch.optim.Optimizer,
    spec: TrainSpec,
    *,
    generator: torch.Generator,
    loss_fn: LossFn | None = None,
    penalized: list[torch.Tensor] | None = None,
) -> float:
    """Train one epoch over data's train split; return the mean loss_fn value.

    The return is non-finite if the loss (or the L2 penalty) became non-finite; the epoch then
    stops at the next check (every spec.check_every batches), as it does when the running mean
    exceeds spec.max_loss. `generator` (on data.device) drives shuffling and augmentation;
    dropout draws from torch's global RNG, so seed it with `fork_seeded` around the call.
    `penalized` defaults to `l2_params(model)`.
    """
    loss_fn = loss_fn or F.cross_entropy
    if spec.l2_weight > 0 and penalized is None:
        penalized = l2_params(model)
    model.train()
    running = RunningLoss(device=data.device)
    penalty = torch.zeros((), device=data.device)  # sum of penalty terms (overflow check)

    def mean() -> float:  # one host sync
        m, p = torch.stack((running.mean(), penalty)).tolist()
        return m if math.isfinite(p) else float("nan")

    for i, (x, y) in enumerate(epoch_batches(data, spec.batch_size, generator=generator)):
        if spec.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(data.device, spec.bf16):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        full = loss
        if spec.l2_weight > 0:
            pen = spec.l2_weight * l2_penalty(penalized)
            full = loss + pen
            penalty += pen.detach()
        optimizer.zero_grad(set_to_none=True)
        full.backward()
        optimizer.step()
        running.add(loss, y.shape[0])
        if (i + 1) % spec.check_every == 0:
            m = mean()
            if not (math.isfinite(m) and m <= spec.max_loss):
                return m
    return mean()


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, split: str = "val", *,
             batch_size: int = 1024, bf16: bool = False,
             channels_last: bool = False) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0, 1]) of model on a split; one host sync at the end."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=data.device)
    correct = torch.zeros((), device=data.device, dtype=torch.int64)
    n = 0
    try:
        for x, y in data.batches(split, batch_size, augment=False):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(data.device, bf16):
                logits = model(x)
            logits = logits.float()
            loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            n += y.shape[0]
    finally:
        model.train(was_training)
    return loss.item() / n, correct.item() / n


def train(
    model: nn.Module,
    data: DeviceData,
    spec: TrainSpec,
    *,
    device: str | torch.device,
    callback: Callback | None = None,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> TrainResult:
    """Train `model` (in place) for spec.epochs on data's train split, evaluating on val.

    `data` must already live on `device` (load_dataset(..., device=...) or data.to(device)).
    `optimizer`: a torch.optim optimizer over model's parameters; None builds spec.optimizer
    at spec.lr. `scheduler` is stepped once per epoch; None builds spec.schedule for a built
    optimizer and none for a given one (it keeps control of its learning rate).
    `callback(record)` runs after every epoch; returning True stops the run.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if data.device != device:
        raise ValueError(f"data is on {data.device} but device={device}; "
                         f"load it with load_dataset(..., device={str(device)!r})")
    model.to(device)
    if spec.channels_last:
        model.to(memory_format=torch.channels_last)
    if optimizer is None:
        optimizer = make_optimizer(spec.optimizer, model.parameters(), spec.lr, spec.momentum,
                                   spec.weight_decay)
        if scheduler is None:
            scheduler = make_scheduler(spec.schedule, optimizer, step_size=spec.step_size,
                                       step_gamma=spec.step_gamma, epochs=spec.epochs)
    _, data_seed, dropout_seed = seeds(spec.seed)
    gen = torch.Generator(device=device).manual_seed(data_seed)
    penalized = l2_params(model)
    records: list[EpochRecord] = []
    with fork_seeded(dropout_seed, device):
        for epoch in range(1, spec.epochs + 1):
            lr = optimizer.param_groups[0]["lr"]
            _sync(device)
            t0 = time.perf_counter()
            train_loss = train_epoch(model, data, optimizer, spec, generator=gen,
                                     loss_fn=loss_fn, penalized=penalized)
            _sync(device)
            t1 = time.perf_counter()
            if not (math.isfinite(train_loss) and train_loss <= spec.max_loss):
                return TrainResult("diverged", tuple(records),
                                   f"training loss {train_loss:g} in epoch {epoch} (lr={lr:g}"
                                   f", max_loss={spec.max_loss:g})")
            has_val = data.val_y.shape[0] > 0  # val_size=0: nothing to evaluate
            val_loss, val_acc = evaluate(model, data, "val", batch_size=spec.eval_batch_size,
                                         bf16=spec.bf16, channels_last=spec.channels_last
                                         ) if has_val else (math.nan, math.nan)
            _sync(device)
            t2 = time.perf_counter()
            if has_val and not math.isfinite(val_loss):
                return TrainResult("diverged", tuple(records),
                                   f"non-finite validation loss in epoch {epoch} (lr={lr:g})")
            if scheduler is not None:
                scheduler.step()
            rec = EpochRecord(epoch, train_loss, val_loss, val_acc, t1 - t0, t2 - t1, lr)
            records.append(rec)
            if callback is not None and callback(rec) and epoch < spec.epochs:
                return TrainResult("stopped", tuple(records))
    return TrainResult("complete", tuple(records))


def train_config(
    space: Any,
    config: Mapping[str, Any],
    data: DeviceData,
    spec: TrainSpec,
    device: str | torch.device,
    *,
    callback: Callback | None = None,
    loss_fn: LossFn | None = None,
) -> TrainResult:
    """Build the model of a space's config and train it (what table generation runs).

    The space's recipe sets the optimizer, the schedule and the TrainSpec fields it maps from
    the config (Table I: Adam, learning_rate and l2_weight; lcbench-mlp: SGD with momentum,
    cosine, learning_rate, momentum, weight_decay, batch_size); everything else (epochs,
    seed, device options, Table I's batch 128) comes from spec. The model is initialised
    from the init seed of spec.seed. The result carries n_params and flops.
    """
    full = space.full(config)
    spec = replace(spec, **space.recipe.overrides(full))
    init_seed, _, _ = seeds(spec.seed)
    model = build_model(space.name, full, in_shape=data.in_shape,
                        num_classes=data.num_classes, seed=init_seed)
    n_params, flops = count_params(model), forward_flops(model, data.in_shape)
    result = train(model, data, spec, device=device, callback=callback, loss_fn=loss_fn)
    return replace(result, n_params=n_params, flops=flops)
