"""Table generation: train Sobol configs 0..n-1 for T epochs and write each through tabular.

`run(RunConfig(...))` (CLI: `lcsim pregen run`) first takes the table lock on its id range
(`tabular.lock.RangeLock`: a second run on an overlapping range is refused at once, naming
the holder, before anything is written; disjoint `--index-range`s run side by side). It plans
the configs that the table directory does not hold yet (re-running the same command resumes;
a killed run loses at most the configs in flight), trains each with
`pregen.trainer.train_config` (the space's recipe: Table I: Adam and the config's learning
rate and L2 weight, as the paper, batch 128 and no augmentation, which the paper does not
state: ours, recorded in the metadata; lcbench-mlp: SGD with momentum, weight decay and batch
size from the config, cosine annealing), and commits each finished config as one atomic
shard with `tabular.writer.TableWriter`, in this process only, under the lock, skipping any
id already committed (workers hand results back: `pregen.workers`). SIGINT and SIGTERM stop
it cleanly (`pregen.lifecycle`): nothing partial is written, the configs in flight are
dropped and counted (`RunStopped`), and the next run resumes. With several workers the
configs go heaviest-first with light ones interleaved, by forward FLOPs (`order_jobs`); with
one worker in all they go by id, so a run stopped early leaves a clean Sobol prefix 0..k-1.
What the table's metadata records, and how a row is re-trained from it, is `pregen.recipe`.

Scheduling never changes what is trained: a config's training seed is derived from
(seed, config_id) alone (`config_seed`), the data split from `split_seed`, so a config gives
the same curve whichever worker, device order or resume trains it (up to the device's own
floating-point non-determinism on CUDA).

Where it runs (`pregen.workers` holds the per-device gate and fault injection):
- one worker in total (the CPU default): in this process, no spawn;
- otherwise K worker processes per device in `--devices` (torch.multiprocessing spawn, made
  to die with this process: `pregen.lifecycle`), the main process handing out configs
  longest-first as slots free up;
- `--dask-scheduler ADDR`: one task per config on a dask.distributed cluster
  (`pregen.dask_runner`; one config at a time per Dask worker process).

Time columns (the metadata's `time_measurement` says which applies):
- `train_seconds`: each epoch's training pass as measured by the trainer, device possibly
  shared; `concurrency`: configs that trained on the device during the epoch
  (`workers.EpochConcurrency`);
- `solo_seconds`: with one config per device, = train_seconds (it ran alone); with K > 1,
  the config is re-trained from its seed for `solo_epochs` epoch(s) after its run while the
  device's other workers pause at their epoch boundaries, and every epoch is given the mean
  of those measured solo epochs (an epoch's work does not change from epoch to epoch).

Default epochs: 20 for MNIST, 50 for CIFAR-10 and digits (`DEFAULT_EPOCHS`, the project's
brief; digits: LCBench's 50).
Choi et al.'s text gives no number for T; it says MNIST's top curves converge "within one or
two epochs" and most curves "before reaching the half of the preset total training epoch",
so T = 20 leaves MNIST curves room to flatten, and CIFAR-10's batch-norm curves, which "begin
to climb after around tenth epoch", need the longer 50.

(Over 400 lines: a run's plan, its lock and stop handling and the scheduling loop that
commits belong together; the metadata is `pregen.recipe`, the per-device side
`pregen.workers`, the processes `pregen.lifecycle`.)
"""

from __future__ import annotations

import collections
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lcsim.pregen.recipe import build_run_meta, check_resume, config_seed, time_measurement
from lcsim.pregen.workers import Job, Outcome

__all__ = [
    "DEFAULT_EPOCHS",
    "RunConfig",
    "Job",
    "Outcome",
    "RunStopped",
    "RunSummary",
    "config_seed",
    "time_measurement",
    "order_jobs",
    "plan",
    "run",
]

log = logging.getLogger("lcsim.pregen")

DEFAULT_EPOCHS = {"mnist": 20, "cifar10": 50, "cifar100": 50, "svhn": 20, "svhn-extra": 20,
                  "digits": 50}


@dataclass(frozen=True)
class RunConfig:
    """One table-generation run. The CLI flags of `lcsim pregen run` map onto these fields."""

    out: str  # table directory (created; resumed if it exists)
    space: str = "mnist"  # search space (Table I)
    dataset: str | None = None  # None: the space's own (mnist, cifar10; digits for lcbench-mlp)
    data_root: str | None = None  # None: $LCSIM_DATA_ROOT, else the shipped MNIST subset
    n_configs: int = 20_000  # Sobol ids 0..n-1 (Choi et al. trained 20,000 per dataset)
    epochs: int | None = None  # None: DEFAULT_EPOCHS[dataset]
    index_range: tuple[int, int] | None = None  # train only ids a..b-1 of 0..n-1 (split by hand)
    devices: tuple[str, ...] = ("cpu",)  # one worker group per device
    workers_per_device: int = 1  # configs trained at once per device
    sobol_seed: int = 0  # seed of the scrambled Sobol sequence (which configs)
    seed: int = 0  # training seeds: config_seed(seed, config_id)
    split_seed: int = 0  # train/validation split of the training data
    val_size: int | None = None  # None: pregen.data.default_val_size
    max_train: int | None = None  # keep only the first N training examples (tests, CPU)
    batch_size: int = 128  # not stated in the paper; ours (unused where the recipe sets it)
    # train-time augmentation (pregen.augment ops); none: the paper mentions none
    augment: tuple[str, ...] = ()
    solo_epochs: int = 1  # epochs timed alone per config when a device is shared
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # channels_last on CUDA (ignored on CPU)
    max_oom_retries: int = 2  # retries of a config after CUDA OOM, each at lower concurrency
    dask_scheduler: str | None = None  # dask.distributed scheduler address
    progress: bool = True  # tqdm bar and a log line per finished config
    notes: str | None = None  # free text stored in the metadata (what this table is)

    def __post_init__(self):
        from lcsim.tabular.spaces import get_space

        space = get_space(self.space)  # raises naming the space
        if self.dataset is None:
            object.__setattr__(self, "dataset", space.default_dataset)
        if self.n_configs < 1:
            raise ValueError(f"n_configs must be >= 1, got {self.n_configs}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.epochs is None and self.dataset not in DEFAULT_EPOCHS:
            raise ValueError(f"no default epochs for dataset {self.dataset!r}; pass epochs")
        if self.index_range is not None:
            a, b = self.index_range
            if not 0 <= a < b <= self.n_configs:
                raise ValueError(f"index_range {a}:{b} must satisfy 0 <= a < b <= n_configs "
                                 f"({self.n_configs})")
        if not self.devices:
            raise ValueError("devices must name at least one device (cpu, cuda:0, ...)")
        if len(set(self.devices)) != len(self.devices):
            raise ValueError(f"devices {list(self.devices)} name a device twice; use "
                             "workers_per_device for several configs per device")
        for d in self.devices:
            if not (d == "cpu" or d == "cuda" or d.startswith("cuda:")):
                raise ValueError(f"device {d!r} is not cpu, cuda or cuda:N")
        if self.workers_per_device < 1:
            raise ValueError(f"workers_per_device must be >= 1, got {self.workers_per_device}")
        if self.max_train is not None and self.max_train < 1:
            raise ValueError(f"max_train must be >= 1, got {self.max_train}")
        if self.solo_epochs < 1:
            raise ValueError(f"solo_epochs must be >= 1, got {self.solo_epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        from lcsim.pregen.augment import check_augment

        object.__setattr__(self, "augment", check_augment(self.augment))
        if self.max_oom_retries < 0:
            raise ValueError(f"max_oom_retries must be >= 0, got {self.max_oom_retries}")

    @property
    def T(self) -> int:
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS[self.dataset]

    @property
    def ids(self) -> range:
        a, b = self.index_range or (0, self.n_configs)
        return range(a, b)

    @property
    def concurrent(self) -> bool:
        """Whether configs share a device (then solo times are measured separately)."""
        return self.workers_per_device > 1 and self.dask_scheduler is None


@dataclass
class RunSummary:
    planned: int = 0  # configs this run set out to train (held ones excluded)
    held_before: int = 0  # configs of the id range already in the directory
    counts: collections.Counter = field(default_factory=collections.Counter)  # by status
    seconds: float = 0.0
    oom_retries: int = 0
    skipped: int = 0  # results handed in for configs already committed (not written again)
    dropped: int = 0  # configs in flight when a stop came (not written; a re-run trains them)
    stopped_by: str | None = None  # "SIGINT" / "SIGTERM" if the run was stopped


def order_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Heaviest first, light ones interleaved: h1, l1, h2, l2, ...

    The heaviest configs start first (longest-processing-time-first, so no long config is
    left to run alone at the end); pairing each heavy one with a light one mixes the
    concurrent configs of a device. Ties break by config id, so the order is deterministic.
    """
    by_cost = sorted(jobs, key=lambda j: (-j.cost, j.config_id))
    out, lo, hi = [], 0, len(by_cost) - 1
    while lo <= hi:
        out.append(by_cost[lo])
        if lo != hi:
            out.append(by_cost[hi])
        lo, hi = lo + 1, hi - 1
    return out


def _flops(space, config: dict[str, Any], in_shape: tuple[int, ...], num_classes: int) -> int:
    import torch
    from lcsim.pregen.models import build_model, forward_flops

    full = space.full(config)
    try:  # the meta device builds without allocating or initialising weights
        with torch.device("meta"):
            model = build_model(space.name, full, in_shape=in_shape, num_classes=num_classes)
        return int(forward_flops(model, in_shape))
    except (NotImplementedError, RuntimeError, TypeError):
        model = build_model(space.name, full, in_shape=in_shape, num_classes=num_classes)
        return int(forward_flops(model, in_shape))


def plan(cfg: RunConfig, held: Iterable[int], *, in_shape: tuple[int, ...],
         num_classes: int) -> list[Job]:
    """Jobs for the ids of cfg not yet held: by id with one worker in all, else `order_jobs`."""
    from lcsim.tabular.spaces import get_space

    space = get_space(cfg.space)
    held = set(held)
    a, b = cfg.ids.start, cfg.ids.stop
    configs = space.configs(a, b, cfg.sobol_seed)
    jobs = [Job(i, c, config_seed(cfg.seed, i), _flops(space, c, in_shape, num_classes))
            for i, c in zip(range(a, b), configs, strict=True) if i not in held]
    if _one_worker(cfg):
        # One worker: nothing to pack, so go by id; a run stopped early leaves a Sobol prefix.
        return jobs
    return order_jobs(jobs)


def _one_worker(cfg: RunConfig) -> bool:
    return cfg.workers_per_device * len(cfg.devices) == 1 and cfg.dask_scheduler is None


# --- scheduling -------------------------------------------------------------------------------


class Dispatcher:
    """Which job goes to which device next, and what happens after an out-of-memory.

    Jobs leave the queue in order whenever a device has fewer jobs in flight than its
    limit (initially workers_per_device). A job that ran out of memory lowers its device's
    limit by one (not below 1) and goes back to the front of the queue with attempt + 1;
    after max_retries retries it is given up (the runner records it as failed).
    """

    def __init__(self, jobs: Sequence[Job], devices: Sequence[str], limit: int,
                 max_retries: int):
        self.queue = collections.deque(jobs)
        self.limit = {d: limit for d in devices}
        self.inflight = {d: 0 for d in devices}
        self.max_retries = max_retries

    def next_for(self, device: str) -> Job | None:
        if not self.queue or self.inflight[device] >= self.limit[device]:
            return None
        self.inflight[device] += 1
        return self.queue.popleft()

    def finished(self, device: str, job: Job, outcome: Outcome) -> str:
        """'done', 'retry' (requeued) or 'give_up' (out of memory too often)."""
        self.inflight[device] -= 1
        if outcome.status != "oom":
            return "done"
        self.limit[device] = max(1, self.limit[device] - 1)
        if job.attempt >= self.max_retries:
            return "give_up"
        self.queue.appendleft(replace(job, attempt=job.attempt + 1))
        return "retry"

    @property
    def idle(self) -> bool:
        return not self.queue and not any(self.inflight.values())


# --- the run ----------------------------------------------------------------------------------


class RunStopped(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM; `summary` says what it did and what it dropped.
    A KeyboardInterrupt, so that no `except Exception` on the way up swallows it."""

    def __init__(self, summary: RunSummary, signum: int):
        self.summary, self.signum = summary, signum
        super().__init__(f"stopped by {summary.stopped_by}: {summary.dropped} config(s) in "
                         "flight dropped (nothing partial written); re-run the same command "
                         "to resume")


class _Progress:
    """tqdm bar (configs done, configs/hour, ETA) and one log line per finished config."""

    def __init__(self, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.t0 = time.perf_counter()
        self.enabled = enabled
        self.bar = tqdm(total=total, unit="cfg", desc="pregen", disable=not enabled,
                        file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def done(self, o: Outcome) -> None:
        self.bar.update(1)
        rate = self.bar.n / max(time.perf_counter() - self.t0, 1e-9) * 3600
        self.bar.set_postfix_str(f"{rate:.1f} cfg/h")
        acc = "n/a" if o.final_accuracy is None else f"{o.final_accuracy:.4f}"
        msg = (f"config {o.config_id}: {o.status}, {o.epochs} epochs, final val acc {acc}, "
               f"{o.seconds:.1f}s on {o.device}" + (f" ({o.error})" if o.error else ""))
        log.info(msg)
        if self.enabled:
            self.bar.write(msg, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _failed_record(space, job: Job, error: str, in_shape, num_classes):
    import torch
    from lcsim.pregen.models import build_model, count_params
    from lcsim.tabular.writer import ConfigResult

    with torch.device("meta"):
        n_params = count_params(build_model(space.name, space.full(job.config),
                                            in_shape=in_shape, num_classes=num_classes))
    return ConfigResult(config_id=job.config_id, config=job.config, status="failed",
                        n_params=n_params, flops=int(job.cost), error=error)


def run(cfg: RunConfig) -> RunSummary:
    """Generate (or resume) the table cfg.out; see the module docstring.

    Holds the table lock on cfg.ids for the whole run (`tabular.lock.RangeLock`): a run on
    an overlapping range of the same directory raises TableLockError naming it, before
    anything is written. SIGINT / SIGTERM stop the run cleanly: RunStopped (a
    KeyboardInterrupt) carries the summary with the configs in flight that were dropped.
    """
    from lcsim.pregen.lifecycle import Stopped, StopSignals
    from lcsim.tabular.lock import RangeLock
    from lcsim.tabular.writer import check_table_dir, held_ids

    t0 = time.perf_counter()
    summary = RunSummary()
    # a folder of other files, or unreadable shards, are refused before the lock is written
    check_table_dir(cfg.out)
    held_ids(cfg.out)
    with StopSignals() as stop:
        lock = RangeLock(cfg.out, cfg.ids)
        try:
            lock.acquire()
            _run_locked(cfg, lock, stop, summary)
        except Stopped as e:
            summary.stopped_by = signal_name(e.signum)
            summary.seconds = time.perf_counter() - t0
            raise RunStopped(summary, e.signum) from None
        finally:
            lock.release()
    summary.seconds = time.perf_counter() - t0
    return summary


def signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _run_locked(cfg: RunConfig, lock, stop, summary: RunSummary) -> None:
    from lcsim.pregen.lifecycle import Stopped
    from lcsim.pregen.workers import Worker, device_name, load_run_data
    from lcsim.tabular.spaces import get_space
    from lcsim.tabular.writer import TableWriter

    from lcsim.errors import user_errors

    space = get_space(cfg.space)
    with user_errors():  # a data root, dataset or --val-size that cannot work
        probe = load_run_data(cfg, "cpu")  # shapes and split sizes for planning and metadata
    if cfg.dask_scheduler is not None:
        desc = f"{cfg.devices[0]} on dask.distributed workers (scheduler {cfg.dask_scheduler})"
    else:
        desc = "; ".join(device_name(d) for d in cfg.devices)
    meta = build_run_meta(cfg, probe, desc, one_worker=_one_worker(cfg))
    check_resume(cfg.out, meta)
    with stop.committing():
        writer = TableWriter(cfg.out, meta, lock=lock)  # creates DIR/meta.json, or checks it
    # again: a run on a disjoint range may have created meta.json since the first check
    # (the writer compares the table's identity only, not the training settings)
    check_resume(cfg.out, meta)
    held = writer.held()
    summary.held_before = len(held & set(cfg.ids))
    jobs = plan(cfg, held, in_shape=probe.in_shape, num_classes=probe.num_classes)
    summary.planned = len(jobs)
    log.info("pregen: %d configs to train (%d of ids %d..%d already held) in %s",
             len(jobs), summary.held_before, cfg.ids.start, cfg.ids.stop - 1, cfg.out)
    if not jobs:
        return
    disp = Dispatcher(jobs, ["dask"] if cfg.dask_scheduler else list(cfg.devices),
                      cfg.workers_per_device, cfg.max_oom_retries)
    progress = _Progress(len(jobs), cfg.progress)

    def settle(device: str, job: Job, o: Outcome) -> None:
        with stop.committing():  # a stop waits until this result is committed and counted
            action = disp.finished(device, job, o)
            if action == "retry":
                summary.oom_retries += 1
                log.warning("config %d: out of memory on %s; retrying at concurrency %d",
                            job.config_id, device, disp.limit[device])
                return
            record = o.record
            if action == "give_up":
                record = _failed_record(space, job, o.error or "out of memory",
                                        probe.in_shape, probe.num_classes)
                o = replace(o, status="failed")
            if writer.write(record) is None:
                summary.skipped += 1  # committed before (a duplicate hand-in): not again
                return
            summary.counts[o.status] += 1
            progress.done(o)

    try:
        if cfg.dask_scheduler is not None:
            from lcsim.pregen.dask_runner import run_dask

            summary.dropped = run_dask(cfg, disp, settle)
        elif _one_worker(cfg):
            dev = cfg.devices[0]
            worker = Worker(cfg, dev)  # one worker in all: train in this process
            while (job := disp.next_for(dev)) is not None:
                summary.dropped = 1  # until its result is in hand
                outcome = worker.run(job)
                summary.dropped = 0
                settle(dev, job, outcome)
        else:
            from lcsim.pregen.lifecycle import run_pool

            summary.dropped = run_pool(cfg, disp, settle, stop)
    finally:
        progress.close()
    if stop.signum is not None:
        raise Stopped(stop.signum)
