"""The worker side of table generation: train one config, time it, hand the result back.

`Worker` holds what one worker process (or the main process, or a Dask worker) needs: the
dataset on its device and the per-device gate. `Worker.run(job)` trains one config with
`pregen.trainer.train_config`, adds its solo time, and returns an `Outcome` carrying the
finished `ConfigResult`; CUDA out-of-memory comes back as status "oom", so the runner can
retry the config at a lower concurrency (`pregen.runner`).

Workers never write the table. The runner process commits every result itself, through
its `TableWriter` under the table lock it holds (`tabular.lock.RangeLock`): a worker whose
runner died has nobody to hand its result to, so it commits nothing, and there is no window
between "is my parent alive?" and the commit, because the process that commits is the one
holding the lock. The same holds for Dask tasks (their results travel back to the client,
which commits each once; a rerun or a late duplicate is skipped by the writer's
already-committed check). `pregen.lifecycle` makes spawned workers die with their parent.

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
    LCSIM_INJECT_DELAY="4:1.5" config 4 sleeps 1.5 s after each epoch (stop and kill tests
                               need a config surely in flight)
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lcsim.provenance import device_name

if TYPE_CHECKING:
    from lcsim.pregen.runner import RunConfig

__all__ = ["DeviceGate", "EpochConcurrency", "Faults", "Job", "Outcome", "Worker", "device_name",
           "load_run_data", "run_train_spec", "ENV_OOM", "ENV_NAN", "ENV_DELAY"]

ENV_OOM = "LCSIM_INJECT_OOM"
ENV_NAN = "LCSIM_INJECT_NAN"
ENV_DELAY = "LCSIM_INJECT_DELAY"


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


def _parse(text: str, var: str, cast: type = int) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        cid, _, n = part.partition(":")
        try:
            out[int(cid)] = cast(n) if n else cast(0)
        except ValueError:
            raise ValueError(f"${var}: bad entry {part!r}; expected ID or ID:N, "
                             f"comma-separated (got {text!r})") from None
    return out


@dataclass(frozen=True)
class Faults:
    """Injected failures, by config id. oom[id] = attempts that fail (0 = all);
    nan[id] = first epoch whose loss is NaN (0 means epoch 1); delay[id] = seconds slept
    after each epoch."""

    oom: dict[int, int]
    nan: dict[int, int]
    delay: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Faults:
        return cls(_parse(os.environ.get(ENV_OOM, ""), ENV_OOM),
                   _parse(os.environ.get(ENV_NAN, ""), ENV_NAN),
                   _parse(os.environ.get(ENV_DELAY, ""), ENV_DELAY, float))

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
    """What a worker reports for one job: the result to commit, unless status is oom."""

    config_id: int
    status: str  # complete / diverged (record to commit) or oom (the runner decides)
    final_accuracy: float | None = None
    epochs: int = 0  # epochs recorded
    seconds: float = 0.0  # wall seconds the worker spent on the job (training + solo)
    error: str | None = None
    device: str = ""
    record: Any = None  # tabular.writer.ConfigResult to commit (None for oom)


# TrainSpec fields a table does not fix: the per-config values and the seed
PER_CONFIG = ("lr", "l2_weight", "seed")


def run_train_spec(cfg: RunConfig, device: str, seed: int = 0):
    """The TrainSpec a run trains with on `device` (bf16 / channels_last on CUDA only)."""
    import torch
    from lcsim.pregen.trainer import TrainSpec

    cuda = torch.device(device).type == "cuda"
    # optimizer, schedule and the config's own values come from the space's recipe
    # (train_config applies it)
    return TrainSpec(epochs=cfg.T, batch_size=cfg.batch_size, seed=seed,
                     bf16=cuda and cfg.bf16, channels_last=cuda and cfg.channels_last)


def spec_record(spec) -> dict[str, Any]:
    """The TrainSpec fields stored in the table metadata (`train_spec`): all but PER_CONFIG.
    A non-finite float (max_loss = inf) is written as the string "inf": standard JSON has
    no Infinity, and other readers of the metadata must be able to parse it."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(spec).items() if k not in PER_CONFIG}


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
    """Trains jobs on one device and returns each result (it never writes the table).

    gate: the device's DeviceGate when several configs share the device, else None.
    """

    def __init__(self, cfg: RunConfig, device: str, gate: DeviceGate | None = None):
        from lcsim.tabular.spaces import get_space

        self.cfg, self.device, self.gate = cfg, device, gate
        self.space = get_space(cfg.space)
        self.data = load_run_data(cfg, device)
        self.spec = run_train_spec(cfg, device)
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
        return Outcome(job.config_id, res.status,
                       final_accuracy=res.final_accuracy if res.epochs else None,
                       epochs=len(res.epochs), error=res.error,
                       seconds=time.perf_counter() - t0, device=self.device,
                       record=self._record(job, res, solo, conc))

    def _train(self, job: Job):
        import torch.nn.functional as F
        from lcsim.pregen.trainer import train_config

        nan_from = self.faults.nan_from_epoch(job.config_id)
        delay = self.faults.delay.get(job.config_id, 0.0)
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
                if delay:
                    time.sleep(delay)
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

    def _record(self, job: Job, res, solo: list[float], conc: list[int]):
        from lcsim.tabular.writer import ConfigResult

        ep = res.epochs
        return ConfigResult(
            config_id=job.config_id, config=job.config, status=res.status,
            val_accuracy=[r.val_accuracy for r in ep], train_loss=[r.train_loss for r in ep],
            val_loss=[r.val_loss for r in ep], train_seconds=[r.train_seconds for r in ep],
            solo_seconds=solo, eval_seconds=[r.eval_seconds for r in ep],
            concurrency=conc if ep else 1, n_params=res.n_params, flops=res.flops,
            error=res.error)
