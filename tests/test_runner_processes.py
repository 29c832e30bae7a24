"""Process-level faults of `lcsim pregen run`, tested the way they reach users.

Two runs of the same command at once (the second refuses, naming the holder); overlapping
and disjoint --index-ranges; the parent alone killed (SIGKILL, SIGTERM, SIGINT) while K = 2
spawned workers train, then a resume; Ctrl-C to the whole process group; a stop inside the
process; a result handed in twice. Tables are the tiny 10x10 MNIST (conftest), 2 epochs,
--max-train 32; `LCSIM_INJECT_DELAY` slows chosen configs so that a stop surely lands with
configs in flight.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from lcsim.pregen.runner import RunConfig, RunStopped, run
from lcsim.pregen.workers import ENV_DELAY
from lcsim.tabular.lock import RangeLock, TableLockError
from lcsim.tabular.table import LookupTable
from lcsim.tabular.validate import validate_table
from lcsim.tabular.writer import held_ids

REPO = Path(__file__).resolve().parents[1]


def _cfg(root: Path, out: Path, **kw) -> RunConfig:
    base = dict(out=str(out), space="mnist", dataset="mnist", data_root=str(root),
                n_configs=4, epochs=2, max_train=32, seed=3, progress=False)
    return RunConfig(**{**base, **kw})


def _cmd(root: Path, out: Path, n: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lcsim", "pregen", "run", "--space", "mnist", "--data-root",
            str(root), "--n-configs", str(n), "--epochs", "2", "--max-train", "32", "--seed",
            "3", "--out", str(out), "--no-progress", *extra]


def _env(delay: float, ids: range) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1",
            ENV_DELAY: ",".join(f"{i}:{delay}" for i in ids)}


def _wait_for(cond, timeout: float, what: str, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _shard_pids(out: Path) -> set[int]:
    # shard names are <unix time>-<pid of the committing process>-<uuid>.parquet
    return {int(p.name.split("-")[1]) for p in (out / "configs").glob("*.parquet")}


def test_two_runs_of_one_command_at_once_the_second_refuses_naming_the_holder(
        tiny_mnist10_root, tmp_path):
    out = tmp_path / "t"
    cmd, env = _cmd(tiny_mnist10_root, out, 3), _env(0.6, range(3))
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # a second terminal, a job submitted twice
    second = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    res = {p: p.communicate(timeout=300) for p in (first, second)}
    assert sorted(p.returncode for p in res) == [0, 2], {p.pid: r for p, r in res.items()}
    winner, loser = sorted(res, key=lambda p: p.returncode)
    err = res[loser][1]
    assert "is being written by another process" in err
    assert f"(pid {winner.pid} on host {platform.node()}, started 20" in err
    assert "'lcsim pregen run --space mnist" in err and "ids 0..2" in err
    assert "Traceback" not in err
    assert "complete 3" in res[winner][0]
    assert _shard_pids(out) == {winner.pid}  # the refused run wrote nothing
    rep = validate_table(out)
    assert rep.ok and rep.n_configs == 3, rep.errors


def test_overlapping_range_is_refused_before_writing_and_disjoint_runs(tiny_mnist10_root,
                                                                        tmp_path):
    out = tmp_path / "t"
    with RangeLock(out, (0, 4), command="lcsim pregen run --index-range 0:4"):
        with pytest.raises(TableLockError, match="'lcsim pregen run --index-range 0:4'"):
            run(_cfg(tiny_mnist10_root, out, n_configs=6, index_range=(2, 6)))
        assert not (out / "meta.json").exists() and not (out / "configs").exists()
        run(_cfg(tiny_mnist10_root, out, n_configs=6, index_range=(4, 6)))  # disjoint: runs
    assert held_ids(out) == {4, 5}


@pytest.mark.slow
def test_overlapping_index_ranges_at_once_refuse_and_disjoint_ones_both_finish(
        tiny_mnist10_root, tmp_path):
    out = tmp_path / "t"
    env = _env(0.6, range(6))
    a = subprocess.Popen(_cmd(tiny_mnist10_root, out, 6, "--index-range", "0:3"), cwd=REPO,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    b = subprocess.Popen(_cmd(tiny_mnist10_root, out, 6, "--index-range", "2:5"), cwd=REPO,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    res = {p: p.communicate(timeout=300) for p in (a, b)}
    assert sorted(p.returncode for p in res) == [0, 2]
    loser = max(res, key=lambda p: p.returncode)
    assert "is being written by another process" in res[loser][1]
    # disjoint ranges at once, on the same table: both finish
    procs = [subprocess.Popen(_cmd(tiny_mnist10_root, out, 6, "--index-range", r), cwd=REPO,
                              env=_env(0.3, range(6)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in ("0:3", "3:6")]
    for p in procs:
        o, e = p.communicate(timeout=300)
        assert p.returncode == 0, e
    rep = validate_table(out)
    assert rep.ok and rep.n_configs == 6, rep.errors
    assert held_ids(out) == set(range(6))


@pytest.mark.parametrize("sig", [
    pytest.param(signal.SIGKILL, id="SIGKILL"),
    pytest.param(signal.SIGTERM, id="SIGTERM", marks=pytest.mark.slow),
    pytest.param(signal.SIGINT, id="SIGINT", marks=pytest.mark.slow),
])
def test_killing_only_the_parent_of_spawned_workers_leaves_none_and_resumes(
        sig, tiny_mnist10_root, tmp_path):
    n, out = 5, tmp_path / "t"
    proc = subprocess.Popen(_cmd(tiny_mnist10_root, out, n, "--workers-per-device", "2"),
                            cwd=REPO, env=_env(0.7, range(n)), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: out.exists() and len(held_ids(out)) >= 1, 240, "a first commit",
                  proc)
        family = psutil.Process(proc.pid).children(recursive=True)
        workers = [p for p in family if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, [p.cmdline() for p in family]
        os.kill(proc.pid, sig)  # the main process alone, not its group
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _wait_for(lambda: not _alive(family), 20, f"the run's processes {family} to end")
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig)
    if sig != signal.SIGKILL:
        name = signal.Signals(sig).name
        assert f"stopped by {name}, " in stdout and " in flight dropped" in stdout, stdout
        dropped = int(stdout.split(f"stopped by {name}, ")[1].split()[0])
        assert 1 <= dropped <= 2
        assert "re-run the same command to resume" in stderr and "Traceback" not in stderr
    committed = held_ids(out)
    assert 1 <= len(committed) < n, "the kill must land mid-run"
    assert _shard_pids(out) == {proc.pid}  # workers never write; only the runner commits
    rep = validate_table(out)
    assert rep.ok, rep.errors
    if sig != signal.SIGKILL:
        assert not rep.warnings, rep.warnings  # a clean stop leaves nothing partial

    summary = run(_cfg(tiny_mnist10_root, out, n_configs=n))  # the resume
    assert summary.held_before == len(committed) and summary.planned == n - len(committed)
    t = LookupTable.open(out, cache=False)  # refuses duplicates
    assert list(t.ids) == list(range(n))
    assert validate_table(out).ok


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_cleanly_and_resumes(tiny_mnist10_root, tmp_path):
    n, out = 5, tmp_path / "t"
    proc = subprocess.Popen(_cmd(tiny_mnist10_root, out, n, "--workers-per-device", "2"),
                            cwd=REPO, env=_env(0.7, range(n)), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: out.exists() and len(held_ids(out)) >= 1, 240, "a first commit", proc)
    family = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped by SIGINT, " in stdout
    _wait_for(lambda: not _alive(family), 20, "the workers to end")
    rep = validate_table(out)
    assert rep.ok and not rep.warnings, (rep.errors, rep.warnings)
    run(_cfg(tiny_mnist10_root, out, n_configs=n))
    assert list(LookupTable.open(out, cache=False).ids) == list(range(n))


def test_sigterm_in_process_drops_the_config_in_flight_and_the_next_run_resumes(
        tiny_mnist10_root, tmp_path, monkeypatch):
    out = tmp_path / "t"
    monkeypatch.setenv(ENV_DELAY, "1:1.0")  # config 1 surely in flight when the signal comes

    def terminate_after_first_commit():
        _wait_for(lambda: out.exists() and len(held_ids(out)) >= 1, 120, "a first commit")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_after_first_commit, daemon=True).start()
    with pytest.raises(RunStopped) as e:
        run(_cfg(tiny_mnist10_root, out))
    s = e.value.summary
    assert (s.stopped_by, s.dropped, sum(s.counts.values())) == ("SIGTERM", 1, 1)
    assert e.value.signum == signal.SIGTERM and "1 config(s) in flight dropped" in str(e.value)
    assert held_ids(out) == {0}
    rep = validate_table(out)
    assert rep.ok and not rep.warnings, (rep.errors, rep.warnings)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    monkeypatch.delenv(ENV_DELAY)
    summary = run(_cfg(tiny_mnist10_root, out))
    assert summary.held_before == 1 and summary.planned == 3
    assert list(LookupTable.open(out, cache=False).ids) == [0, 1, 2, 3]


@pytest.mark.parametrize("path", ["in-process", pytest.param("dask", marks=pytest.mark.slow)])
def test_a_config_handed_in_twice_is_committed_once(path, tiny_mnist10_root, tmp_path,
                                                    monkeypatch):
    # what a retried or lost-and-rerun task amounts to: a second result for the same config
    import lcsim.pregen.runner as runner

    real_plan = runner.plan

    def plan_twice(cfg, held, **kw):
        jobs = real_plan(cfg, held, **kw)
        return [*jobs, replace(jobs[0])]

    monkeypatch.setattr(runner, "plan", plan_twice)
    out = tmp_path / "t"
    cfg = _cfg(tiny_mnist10_root, out, n_configs=2)
    if path == "dask":
        from distributed import LocalCluster

        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                          dashboard_address=None) as cluster:
            summary = run(replace(cfg, dask_scheduler=cluster.scheduler_address))
    else:
        summary = run(cfg)
    assert summary.skipped == 1 and sum(summary.counts.values()) == 2
    assert list(LookupTable.open(out, cache=False).ids) == [0, 1]
    assert validate_table(out).ok
