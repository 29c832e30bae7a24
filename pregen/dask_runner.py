"""`lcsim pregen run --dask-scheduler ADDR`: the same configs as dask.distributed tasks.

One task per config, submitted heaviest-first (task priority follows the runner's order).
Each Dask worker process keeps one `pregen.workers.Worker` per run (dataset loaded once,
on the run's first device as that worker sees it: start one Dask worker process per GPU with
CUDA_VISIBLE_DEVICES set). A task trains its config and returns the `Outcome` with the
finished `ConfigResult`; the client (the `pregen run` process, holding the table lock)
commits it. So Dask workers never write the table, `--out` need only be on the client's
disk, and a cancelled task (its result never read), a task rerun after its worker was lost
(one result per future), or the same config handed in twice (the writer skips an id already
committed) never commits a config twice. An out-of-memory task is resubmitted with
attempt + 1 up to max_oom_retries times, then recorded as failed by the runner.

One config at a time per Dask worker process: tasks that run as threads of one process are
serialised by a lock, because the trainer seeds dropout through torch's process-global RNG
(`models.fork_seeded`), so two configs training in threads of one process would draw from
each other's stream and their curves would depend on scheduling (measured: a 2-thread
worker changed accuracies). Hence solo_seconds = train_seconds per process; start one Dask
worker process per device (`dask worker ADDR --nworkers 1 --nthreads 1` with
CUDA_VISIBLE_DEVICES) so that no other config shares the device while one is timed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lcsim.pregen.lifecycle import Stopped
from lcsim.pregen.workers import Job, Outcome, Worker

__all__ = ["run_dask", "dask_task"]

_LOCK = threading.Lock()  # one config at a time per process (see the module docstring)
_WORKERS: dict[Any, Worker] = {}  # per Dask worker process: (run config, device) -> Worker


def dask_task(cfg, job: Job) -> Outcome:
    """Train one config on a Dask worker (runs in the worker process, maybe in a thread)."""
    device = cfg.devices[0]
    key = (cfg, device)
    with _LOCK:
        worker = _WORKERS.get(key)
        if worker is None:
            worker = _WORKERS[key] = Worker(cfg, device)
        return worker.run(job)


def run_dask(cfg, disp, settle: Callable[[str, Job, Outcome], None]) -> int:
    """Submit every job of `disp` (a runner.Dispatcher over the one pseudo-device 'dask');
    returns the number of tasks in flight when a stop came (cancelled, results dropped)."""
    from distributed import Client, as_completed

    client = Client(cfg.dask_scheduler)
    job_of: dict[str, Job] = {}
    pending: dict[str, Any] = {}
    try:
        n = len(disp.queue)
        disp.limit["dask"] = n + 1  # Dask does the per-worker concurrency itself
        futures = as_completed()
        order = 0

        def submit() -> None:
            nonlocal order
            while (job := disp.next_for("dask")) is not None:
                fut = client.submit(dask_task, cfg, job, pure=False,
                                    key=f"lcsim-pregen-{job.config_id}-{job.attempt}-{order}",
                                    priority=n - order)
                job_of[fut.key], pending[fut.key] = job, fut
                futures.add(fut)
                order += 1

        submit()
        for fut in futures:
            job = job_of.pop(fut.key)
            outcome = fut.result()
            del pending[fut.key]
            settle("dask", job, outcome)
            submit()  # a retried job is back in the queue
        return 0
    except Stopped:
        client.cancel(list(pending.values()))
        return len(pending)
    finally:
        client.close()
