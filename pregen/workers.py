"""The worker side of table generation: train one config, time it, write it.

`Worker` holds what one worker process (or the main process, or a Dask worker) needs: the
dataset on its device, the tabular writer, the per-device gate. `Worker.run(job)` trains one
config with `pregen.trainer.train_config`, adds its solo time, and commits it as one shard;
it reports CUDA out-of-memory back to the runner instead of writing, so the runner can retry
the config at a lower concurrency (`pregen.runner`).

`DeviceGate` lets K configs train at once on one device and lets one of them take the
device alone for its solo timing: the others pause at their next epoch boundary (they are
never interrupted inside an epoch), the solo epochs run, and the others resume. It works
across worker processes (multiprocessing primitives) or threads (threading primitives, for
Dask workers that run several tasks as threads of one process).

Fault injection (tests only, read from the environment so that spawned worker processes and
Dask workers see it too):
    LCSIM_INJECT_OOM="3,7:1"   config 3 raises torch.cuda.OutOfMemoryError on every attempt;
                               config 7 on its first attempt only (then it trains normally)
    LCSIM_INJECT_NAN="5,9:2"   config 5's training loss becomes NaN from epoch 1 (so the
                               trainer marks it diverged); config 9's from epoch 2
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lcsim.provenance import device_name

if TYPE_CHECKING:
    from lcsim.pregen.runner import RunConfig

__all__ = ["DeviceGate", "EpochConcurrency", "Faults", "Job", "Outcome", "Worker", "device_name",
           "load_run_data", "ENV_OOM", "ENV_NAN"]

ENV_OOM = "LCSIM_INJECT_OOM"
ENV_NAN = "LCSIM_INJECT_NAN"


class _Cell:
    """A plain int holder with the `.value` interface of multiprocessing.Value."""

    def __init__(self, v: int = 0):
        self.value = v


class DeviceGate:
    """Count the configs training on one device; give one config the device alone on request.

    `training()` brackets a config's training; `epoch_boundary()` is called between its
    epochs: if a solo timing is waiting, the config steps out until the solo is done.
    `solo()` waits until no config is inside an epoch, then holds the device.
    `snapshot()` gives (configs training now, configs that ever started training), from which
    `EpochConcurrency` derives how many configs shared the device during an epoch.
    """

    def __init__(self, ctx: Any | None = None):
        # ctx: a multiprocessing context for process workers; None for threads of one process.
        if ctx is None:
            self._cond = threading.Condition()
            self._running, self._entries, self._solo = _Cell(), _Cell(), _Cell()
        else:
            self._cond = ctx.Condition()
            # plain shared ints, guarded by _cond's lock
            self._running = ctx.Value("i", 0, lock=False)
            self._entries = ctx.Value("q", 0, lock=False)
            self._solo = ctx.Value("i", 0, lock=False)

    def _enter(self, new: bool) -> None:
        with self._cond:
            while self._solo.value:
                self._cond.wait()
            self._running.value += 1
            if new:
                self._entries.value += 1

    def _leave(self) -> None:
        with self._cond:
            self._running.value -= 1
            self._cond.notify_all()

    @contextmanager
    def training(self) -> Iterator[None]:
        self._enter(new=True)
        try:
            yield
        finally:
            self._leave()

    def snapshot(self) -> tuple[int, int]:
        with self._cond:
            return self._running.value, self._entries.value

    def epoch_boundary(self) -> None:
        """Between two epochs of a config inside `training()`: let a waiting solo run."""
        with self._cond:
            if not self._solo.value:
                return
        self._leave()
        self._enter(new=False)

    @contextmanager
    def solo(self) -> Iterator[None]:
        """Hold the device alone (call outside `training()`)."""
        with self._cond:
            while self._solo.value:  # one solo at a time
                self._cond.wait()
            self._solo.value = 1
            while self._running.value > 0:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._solo.value = 0
                self._cond.notify_all()


class EpochConcurrency:
    """Configs that shared the device during each epoch of one config, from gate snapshots.

    Epoch t's value is the largest of: configs training when it started, configs training
    when it ended, and 1 + configs that started training during it. It is an upper bound
    when a config both started and ended within the epoch, exact otherwise. With no gate
    (one config per device) every epoch is 1.
    """

    def __init__(self, gate: DeviceGate | None):
        self.gate = gate
        self.values: list[int] = []
        self._last = gate.snapshot() if gate is not None else (1, 0)

    def epoch_done(self) -> None:
        if self.gate is None:
            self.values.append(1)
            return
        now = self.gate.snapshot()
        (run0, ent0), (run1, ent1) = self._last, now
        self.values.append(max(1, run0, run1, 1 + ent1 - ent0))
        self._last = now


def _parse(text: str, var: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        cid, _, n = part.partition(":")
        try:
            out[int(cid)] = int(n) if n else 0
        except ValueError:
            raise ValueError(f"${var}: bad entry {part!r}; expected ID or ID:N, "
                             f"comma-separated (got {text!r})") from None
    return out


@dataclass(frozen=True)
class Faults:
    """Injected failures, by config id. oom[id] = attempts that fail (0 = all);
    nan[id] = first epoch whose loss is NaN (0 means epoch 1)."""

    oom: dict[int, int]
    nan: dict[int, int]

    @classmethod
    def from_env(cls) -> Faults:
        return cls(_parse(os.environ.get(ENV_OOM, ""), ENV_OOM),
                   _parse(os.environ.get(ENV_NAN, ""), ENV_NAN))

    def maybe_oom(self, config_id: int, attempt: int) -> None:
        """Raise torch.cuda.OutOfMemoryError if config_id's attempt (0-based) is injected."""
        if config_id in self.oom:
            n = self.oom[config_id]
            if n == 0 or attempt < n:
                import torch

                raise torch.cuda.OutOfMemoryError(
                    f"CUDA out of memory (injected by ${ENV_OOM} for config {config_id}, "
                    f"attempt {attempt})")

    def nan_from_epoch(self, config_id: int) -> int | None:
        if config_id not in self.nan:
            return None
        return max(1, self.nan[config_id])


@dataclass(frozen=True)
class Job:
    config_id: int  # Sobol index
    config: dict[str, Any]  # free hyperparameters
    seed: int  # training seed, runner.config_seed(run seed, config_id)
    cost: float  # forward FLOPs per example (for ordering only)
    attempt: int = 0  # 0 = first try; > 0 after CUDA OOM


@dataclass(frozen=True)
class Outcome:
    """What a worker reports for one job; the shard is already written unless status is oom."""

    config_id: int
    status: str  # complete / diverged (written) or oom (not written: the runner decides)
    final_accuracy: float | None = None
    epochs: int = 0  # epochs recorded
    seconds: float = 0.0  # wall seconds the worker spent on the job (training + solo + write)
    error: str | None = None
    device: str = ""




def load_run_data(cfg: RunConfig, device: str):
    """The run's dataset on `device`: seeded train/val split, train cut to cfg.max_train."""
    from lcsim.pregen.data import load_dataset

    data = load_dataset(cfg.dataset, cfg.data_root, val_size=cfg.val_size,
                        split_seed=cfg.split_seed, device=device, augment=cfg.augment)
    if cfg.max_train is not None and cfg.max_train < data.train_y.shape[0]:
        # the first N of the (already seeded, shuffled) training split
        data = replace(data, train_x=data.train_x[:cfg.max_train],
                       train_y=data.train_y[:cfg.max_train])
    return data


class Worker:
    """Trains jobs on one device and writes each through one TableWriter.

    gate: the device's DeviceGate when several configs share the device, else None.
    parent_pid: in a pool worker, the runner's pid; a worker whose runner died (killed run)
    exits before writing, so a resumed run cannot get a duplicate from an orphan.
    """

    def __init__(self, cfg: RunConfig, meta: dict[str, Any], device: str,
                 gate: DeviceGate | None = None, parent_pid: int | None = None):
        import torch
        from lcsim.pregen.trainer import TrainSpec
        from lcsim.tabular.spaces import get_space
        from lcsim.tabular.writer import TableWriter

        self.cfg, self.device, self.gate, self.parent_pid = cfg, device, gate, parent_pid
        self.space = get_space(cfg.space)
        self.data = load_run_data(cfg, device)
        cuda = torch.device(device).type == "cuda"
        self.spec = TrainSpec(epochs=cfg.T, batch_size=cfg.batch_size, optimizer="adam",
                              bf16=cuda and cfg.bf16, channels_last=cuda and cfg.channels_last)
        self.writer = TableWriter(cfg.out, meta)
        self.faults = Faults.from_env()

    def run(self, job: Job) -> Outcome:
        import torch

        t0 = time.perf_counter()
        try:
            self.faults.maybe_oom(job.config_id, job.attempt)
            res, conc = self._train(job)
            solo = self._solo_seconds(job, res, conc)
        except torch.cuda.OutOfMemoryError as e:
            if torch.device(self.device).type == "cuda":
                torch.cuda.empty_cache()
            return Outcome(job.config_id, "oom", error=f"{type(e).__name__}: {e}",
                           seconds=time.perf_counter() - t0, device=self.device)
        self._write(job, res, solo, conc)
        return Outcome(job.config_id, res.status,
                       final_accuracy=res.final_accuracy if res.epochs else None,
                       epochs=len(res.epochs), error=res.error,
                       seconds=time.perf_counter() - t0, device=self.device)

    def _train(self, job: Job):
        import torch.nn.functional as F
        from lcsim.pregen.trainer import train_config

        nan_from = self.faults.nan_from_epoch(job.config_id)
        state = {"epoch": 1}
        gate = self.gate

        def loss_fn(logits, y):  # cross-entropy, NaN from an injected epoch (tests)
            loss = F.cross_entropy(logits, y)
            return loss * float("nan") if state["epoch"] >= nan_from else loss

        with gate.training() if gate is not None else nullcontext():
            conc = EpochConcurrency(gate)

            def callback(rec) -> None:
                conc.epoch_done()
                state["epoch"] = rec.epoch + 1
                if gate is not None:
                    gate.epoch_boundary()

            res = train_config(self.space, job.config, self.data,
                               replace(self.spec, seed=job.seed), self.device,
                               callback=callback, loss_fn=loss_fn if nan_from else None)
        if res.status not in ("complete", "diverged"):
            raise RuntimeError(f"config {job.config_id}: unexpected trainer status "
                               f"{res.status!r}")
        return res, conc.values[:len(res.epochs)]

    def _solo_seconds(self, job: Job, res, conc: list[int]) -> list[float]:
        """Per-epoch solo seconds: measured ones if the config ran alone, else a solo timing."""
        from lcsim.pregen.trainer import train_config

        measured = [r.train_seconds for r in res.epochs]
        if self.gate is None or all(c == 1 for c in conc):
            return measured  # it ran alone on the device: its measured time is its solo time
        with self.gate.solo():
            solo = train_config(self.space, job.config, self.data,
                                replace(self.spec, seed=job.seed, epochs=self.cfg.solo_epochs),
                                self.device)
        if not solo.epochs:  # diverged in its first epoch: no complete epoch was timed
            return [float("nan")] * len(measured)
        per_epoch = sum(r.train_seconds for r in solo.epochs) / len(solo.epochs)
        return [per_epoch] * len(measured)

    def _write(self, job: Job, res, solo: list[float], conc: list[int]) -> None:
        from lcsim.tabular.writer import ConfigResult

        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            os._exit(1)  # the runner is gone (killed): never write behind a resumed run
        ep = res.epochs
        self.writer.write(ConfigResult(
            config_id=job.config_id, config=job.config, status=res.status,
            val_accuracy=[r.val_accuracy for r in ep], train_loss=[r.train_loss for r in ep],
            val_loss=[r.val_loss for r in ep], train_seconds=[r.train_seconds for r in ep],
            solo_seconds=solo, eval_seconds=[r.eval_seconds for r in ep],
            concurrency=conc if ep else 1, n_params=res.n_params, flops=res.flops,
            error=res.error))
