"""The processes of a generation run: workers that die with their parent, clean stops.

Worker processes (K per device, torch.multiprocessing spawn, one ProcessPoolExecutor per
device) never outlive the runner:
- on Linux each asks the kernel for SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG,
  through ctypes), then checks that the parent did not die before the request;
- everywhere, a daemon thread polls the parent pid once a second and exits the process
  when it changes (the portable fallback; also covers a PDEATHSIG lost to a thread exit);
- they ignore SIGINT: a terminal's Ctrl-C reaches the whole process group, and the runner
  alone decides what stops and what is dropped.
Even a worker that lingered could not write: results travel back to the runner, which
commits them under its table lock (`pregen.workers`).

`StopSignals` turns SIGINT and SIGTERM into a clean stop of the runner: the handler records
the signal and raises `Stopped` in the main thread (interrupting training or waiting), except
inside `committing()`, where the raise waits until the shard is committed, so nothing partial
becomes visible. The runner then kills its workers, drops the configs in flight (counted in
the summary), releases the lock and exits; re-running the same command resumes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Stopped", "StopSignals", "die_with_parent", "kill_pool", "run_pool"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Stopped(Exception):
    """Raised in the runner's main thread by SIGINT / SIGTERM (outside a commit)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT / SIGTERM handlers for the duration of a run (main thread only; elsewhere the
    process's own handlers stay and `signum` stays None)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._committing = 0
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if first and not self._committing:
            raise Stopped(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        """A section a signal must not cut: the stop is raised after it."""
        self._committing += 1
        try:
            yield
        finally:
            self._committing -= 1
        if self.signum is not None and not self._committing:
            raise Stopped(self.signum)

    def check(self) -> None:
        if self.signum is not None:
            raise Stopped(self.signum)


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when `parent_pid` ends (module docstring)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still applies
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)

    def watchdog() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watchdog, name="lcsim-parent-watchdog", daemon=True).start()


_POOL_WORKER: Any = None  # the Worker of a pool process (set by _pool_init)


def _pool_init(cfg, device: str, gate, parent_pid: int, threads: int) -> None:
    global _POOL_WORKER
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    from lcsim.pregen.workers import Worker

    _POOL_WORKER = Worker(cfg, device, gate)


def _pool_run(job):
    return _POOL_WORKER.run(job)


def cpu_threads(cfg) -> int:
    """Torch threads per CPU worker: the cores shared out, unless OMP_NUM_THREADS says."""
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    n_cpu_workers = cfg.workers_per_device * sum(d == "cpu" for d in cfg.devices)
    return max(1, (os.cpu_count() or 1) // max(1, n_cpu_workers))


def kill_pool(pool) -> None:
    """End a ProcessPoolExecutor's workers now (SIGKILL), not after their current job."""
    if hasattr(pool, "kill_workers"):  # Python >= 3.14
        pool.kill_workers()
        return
    # before 3.14 the executor has no public way to stop a running job: its worker table
    for p in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(OSError, ValueError):
            p.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def run_pool(cfg, disp, settle: Callable[[str, Any, Any], None], stop: StopSignals) -> int:
    """K spawned worker processes per device, the runner handing out jobs as slots free up
    and committing results as they come (`settle`). Returns the number of jobs in flight
    when a stop came (0 otherwise): their workers are killed, their results dropped."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor

    import torch.multiprocessing as tmp
    from lcsim.pregen.workers import DeviceGate

    ctx = tmp.get_context("spawn")  # CUDA cannot be used in forked children
    pools: dict[str, ProcessPoolExecutor] = {}
    inflight: dict = {}
    try:
        for d in cfg.devices:
            gate = DeviceGate(ctx) if cfg.workers_per_device > 1 else None
            threads = cpu_threads(cfg) if d == "cpu" else 1
            pools[d] = ProcessPoolExecutor(
                cfg.workers_per_device, mp_context=ctx, initializer=_pool_init,
                initargs=(cfg, d, gate, os.getpid(), threads))

        def fill() -> None:
            for d in cfg.devices:
                while (job := disp.next_for(d)) is not None:
                    inflight[pools[d].submit(_pool_run, job)] = (d, job)

        fill()
        while inflight:
            done, _ = wait(inflight, timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                d, job = inflight.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    stop.check()  # a signal that also reached the workers: a stop
                    raise RuntimeError(
                        f"a worker process on {d} died while training config "
                        f"{job.config_id} (killed from outside, or out of host memory); "
                        "configs in flight were dropped: re-run the same command to "
                        "resume") from None
                settle(d, job, outcome)
            fill()
        return 0
    except Stopped:
        # commit what already finished, drop the rest
        for fut in [f for f in inflight if f.done() and not f.exception()]:
            d, job = inflight.pop(fut)
            with contextlib.suppress(Stopped):
                settle(d, job, fut.result())
        return len(inflight)
    finally:
        for p in pools.values():
            kill_pool(p) if inflight else p.shutdown(wait=True, cancel_futures=True)
