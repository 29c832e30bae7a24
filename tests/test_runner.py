"""Table generation (pregen.runner): resume after SIGKILL, OOM / NaN paths, Dask, status.

Runs train the first Sobol configs of the MNIST space on a tiny 10x10-pixel MNIST in the
real IDX format (conftest's `tiny_mnist10_root`: 10x10 so the heavy configs of the space,
up to 350 filters of 10x10, stay cheap on one CPU core): 80 train digits -> 64 train / 16
validation, cut to --max-train 32, 2 epochs. Process-level faults (two runs at once, killed
parents, SIGINT / SIGTERM) are in tests/test_runner_processes.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lcsim.pregen.runner import (
    Dispatcher,
    RunConfig,
    config_seed,
    order_jobs,
    run,
)
from lcsim.pregen.workers import ENV_NAN, ENV_OOM, DeviceGate, EpochConcurrency, Job, Outcome
from lcsim.tabular.status import table_status
from lcsim.tabular.table import LookupTable
from lcsim.tabular.writer import held_ids

N_CONFIGS = 6
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_root(tiny_mnist10_root) -> Path:
    return tiny_mnist10_root


def _cfg(root: Path, out: Path, **kw) -> RunConfig:
    base = dict(out=str(out), space="mnist", dataset="mnist", data_root=str(root),
                n_configs=N_CONFIGS, epochs=2, max_train=32, seed=3, progress=False)
    return RunConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory) -> LookupTable:
    """An uninterrupted local run of configs 0..5."""
    out = tmp_path_factory.mktemp("ref") / "table"
    summary = run(_cfg(data_root, out))
    assert summary.planned == N_CONFIGS
    return LookupTable.open(out, cache=False)


def _assert_same_table(a: LookupTable, b: LookupTable) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.acc, b.acc)  # accuracies: exactly equal
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-5)
    np.testing.assert_allclose(a.val_loss, b.val_loss, rtol=1e-5)


# --- pure parts -------------------------------------------------------------------------------


def test_config_seed_depends_only_on_seed_and_id():
    s = [config_seed(0, i) for i in range(100)]
    assert len(set(s)) == 100
    assert s == [config_seed(0, i) for i in range(100)]
    assert config_seed(1, 5) != config_seed(0, 5)
    assert all(0 <= v < 2**63 for v in s)


def test_order_jobs_starts_heaviest_and_interleaves_light():
    jobs = [Job(i, {}, 0, cost=c) for i, c in enumerate([5.0, 1.0, 9.0, 3.0, 7.0])]
    order = [j.config_id for j in order_jobs(jobs)]
    # by cost: 2 (9), 4 (7), 0 (5), 3 (3), 1 (1) -> heavy, light, heavy, light, middle
    assert order == [2, 1, 4, 3, 0]


def test_dispatcher_oom_lowers_concurrency_and_retries_then_gives_up():
    jobs = [Job(i, {}, 0, cost=1.0) for i in range(4)]
    d = Dispatcher(jobs, ["cuda:0"], limit=3, max_retries=1)
    got = [d.next_for("cuda:0") for _ in range(4)]
    assert [j.config_id for j in got[:3]] == [0, 1, 2] and got[3] is None  # limit 3
    oom = Outcome(1, "oom", error="CUDA out of memory")
    assert d.finished("cuda:0", got[1], oom) == "retry"
    assert d.limit["cuda:0"] == 2
    assert d.next_for("cuda:0") is None  # 2 in flight at limit 2
    d.finished("cuda:0", got[0], Outcome(0, "complete"))
    retry = d.next_for("cuda:0")
    assert (retry.config_id, retry.attempt) == (1, 1)  # the retried job goes first
    assert d.finished("cuda:0", retry, oom) == "give_up"
    assert d.limit["cuda:0"] == 1


def test_runconfig_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="index_range 5:3"):
        RunConfig(out=str(tmp_path), n_configs=10, index_range=(5, 3))
    with pytest.raises(ValueError, match="device 'gpu'"):
        RunConfig(out=str(tmp_path), devices=("gpu",))
    with pytest.raises(ValueError, match="unknown space"):
        RunConfig(out=str(tmp_path), space="imagenet")
    with pytest.raises(ValueError, match="name a device twice"):
        RunConfig(out=str(tmp_path), devices=("cpu", "cpu"))


def test_run_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    from lcsim.cli import main

    rc = main(["pregen", "run", "--space", "mnist", "--n-configs", "4", "--index-range",
               "3:9", "--out", str(tmp_path / "t"), "--no-progress"])
    assert rc == 2
    assert "index_range 3:9" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()  # nothing written


def _pregen_error(user_error, *argv):
    from lcsim.cli import main

    rc = main(["pregen", "run", "--space", "mnist", "--epochs", "1", "--max-train", "64",
               "--no-progress", *argv])
    assert rc == 2
    return user_error("pregen run")


def test_run_into_a_folder_of_foreign_files_refuses_before_writing(tmp_path, user_error):
    d = tmp_path / "mine"
    d.mkdir()
    pd.DataFrame({"a": [1, 2]}).to_parquet(d / "x.parquet")
    (d / "notes.txt").write_text("mine")
    line = _pregen_error(user_error, "--n-configs", "1", "--out", str(d))
    assert "not empty and not an lcsim table (it holds notes.txt, x.parquet)" in line
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt", "x.parquet"]  # untouched
    # foreign Parquet where a table's shards go: named, without Arrow's internals
    (d / "configs").mkdir()
    os.replace(d / "x.parquet", d / "configs" / "x.parquet")
    line = _pregen_error(user_error, "--n-configs", "1", "--out", str(d))
    assert line.endswith(f"{d / 'configs' / 'x.parquet'}: foreign Parquet file, not an lcsim "
                         "table shard (no 'lcsim' key-value metadata)")
    assert "FieldRef" not in line and "__fragment_index" not in line
    assert sorted(p.name for p in d.iterdir()) == ["configs", "notes.txt"]  # no meta.json
    assert not (d / "curves").exists()


@pytest.mark.parametrize("argv,message", [
    (["--n-configs", "-3"], "argument --n-configs: must be an integer >= 1, got -3"),
    (["--n-configs", "9", "--index-range", "5:2"],
     "argument --index-range: must be A:B with 0 <= A < B (ids A..B-1), got '5:2'"),
    (["--n-configs", "9", "--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
    (["--n-configs", "9", "--workers-per-device", "0"],
     "argument --workers-per-device: must be an integer >= 1, got 0"),
])
def test_run_careless_numbers_are_refused(tmp_path, user_error, argv, message):
    assert message in _pregen_error(user_error, *argv, "--out", str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()


def test_run_on_cuda_without_cuda_says_how_to_run_on_cpu(tmp_path, user_error):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    line = _pregen_error(user_error, "--n-configs", "1", "--devices", "cuda:0",
                         "--out", str(tmp_path / "t"))
    assert line.endswith("--devices cuda:0: no CUDA device is visible on this machine; run on "
                         "the CPU with --devices cpu")
    assert not (tmp_path / "t").exists()


def test_gate_solo_waits_for_epoch_boundaries_and_counts_concurrency():
    gate = DeviceGate()
    events: list[str] = []
    in_epoch = threading.Event()
    release = threading.Event()

    def trainer():
        with gate.training():
            conc = EpochConcurrency(gate)
            in_epoch.set()
            release.wait(5)  # "epoch 1" runs until released
            events.append("epoch1-end")
            conc.epoch_done()
            gate.epoch_boundary()  # steps out while the solo runs
            events.append("epoch2-start")
            conc.epoch_done()
            events.append(("conc", conc.values))

    t = threading.Thread(target=trainer)
    t.start()
    assert in_epoch.wait(5)

    def soloist():
        with gate.training():  # a second config shares the device for a moment
            pass
        with gate.solo():
            events.append("solo")

    s = threading.Thread(target=soloist)
    s.start()
    time.sleep(0.2)
    assert "solo" not in events  # the solo waits for the running epoch
    release.set()
    t.join(5)
    s.join(5)
    assert events.index("epoch1-end") < events.index("solo") < events.index("epoch2-start")
    # epoch 1 saw the second config start; epoch 2 ran alone
    assert events[-1] == ("conc", [2, 1])


# --- runs -------------------------------------------------------------------------------------


def test_reference_run_records_a_full_table(reference):
    t = reference
    assert list(t.ids) == list(range(N_CONFIGS))
    assert t.epochs == 2 and (t.n_recorded[t.status == "complete"] == 2).all()
    meta = t.meta
    assert meta["max_train"] == 32 and meta["n_train"] == 32 and meta["n_val"] == 16
    assert meta["seed"] == 3 and "solo_seconds = train_seconds" in meta["time_measurement"]
    assert (t.train_seconds[t.status == "complete"] > 0).all()
    np.testing.assert_array_equal(t.solo_seconds, t.train_seconds)  # one worker: ran alone
    assert (t.concurrency[t.status == "complete"] == 1).all()
    # some config learned something, and accuracies are fractions of the 16 val digits
    assert np.nanmax(t.acc) > 0.2
    np.testing.assert_allclose(t.acc * 16, np.round(t.acc * 16), atol=1e-9)


def test_the_metadata_records_the_code_and_the_whole_recipe(reference):
    import pyarrow.parquet as pq

    from lcsim.provenance import code_revision, package_version

    meta = reference.meta
    # package version, git revision and its dirty flag, from the one provenance builder
    assert meta["lcsim"] == package_version() and meta["code_revision"] == code_revision()
    assert meta["code_revision"].startswith("git:")  # the tests run from a checkout
    assert meta["train_spec"] == {**meta["train_spec"], "batch_size": 128, "optimizer": "adam",
                                  "epochs": 2, "bf16": False, "channels_last": False}
    assert {"lr", "l2_weight", "seed"}.isdisjoint(meta["train_spec"])  # per config
    assert meta["train_spec"]["max_loss"] == "inf"  # standard JSON: no Infinity
    json.loads((reference.path / "meta.json").read_text(), parse_constant=pytest.fail)
    assert meta["cpu_capability"] and meta["versions"]["torch"]
    assert meta["torch_threads"] == 1  # conftest's; a CPU re-training uses the same
    shard = next((reference.path / "configs").glob("*.parquet"))
    in_shard = json.loads(pq.read_schema(shard).metadata[b"lcsim"])
    assert in_shard["code_revision"] == meta["code_revision"]


def test_rerun_skips_held_configs(reference, data_root):
    summary = run(_cfg(data_root, reference.path))
    assert summary.planned == 0 and summary.held_before == N_CONFIGS


def test_killed_run_resumes_to_the_same_table(reference, data_root, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lcsim", "pregen", "run", "--space", "mnist",
           "--data-root", str(data_root), "--n-configs", str(N_CONFIGS), "--epochs", "2",
           "--max-train", "32", "--seed", "3", "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(held_ids(out)) >= 1:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run, as a killed job would be
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_with = held_ids(out)
    assert 1 <= len(killed_with) < N_CONFIGS, "the kill must land mid-run"
    assert killed_with == set(range(len(killed_with)))  # one worker goes by id: a prefix

    summary = run(_cfg(data_root, out))  # the same command again
    assert summary.held_before == len(killed_with)
    assert summary.planned == N_CONFIGS - len(killed_with)
    resumed = LookupTable.open(out, cache=False)  # opening checks ids are unique
    _assert_same_table(reference, resumed)


def test_injected_oom_and_nan_are_recorded_and_the_run_goes_on(data_root, tmp_path,
                                                               monkeypatch):
    # config 1: OOM on every attempt -> failed; config 2: OOM once -> retried, complete;
    # config 3: NaN loss from epoch 2 -> diverged with epoch 1 kept
    monkeypatch.setenv(ENV_OOM, "1,2:1")
    monkeypatch.setenv(ENV_NAN, "3:2")
    out = tmp_path / "faults"
    summary = run(_cfg(data_root, out, n_configs=5, max_oom_retries=1))
    assert summary.oom_retries == 2  # config 1 once, config 2 once
    t = LookupTable.open(out, cache=False)
    status = dict(zip(t.ids.tolist(), t.status.tolist(), strict=True))
    assert status == {0: "complete", 1: "failed", 2: "complete", 3: "diverged", 4: "complete"}
    cfgs = t.configs_frame().set_index("config_id")
    assert "out of memory" in cfgs.loc[1, "error"]
    assert "epoch 2" in cfgs.loc[3, "error"]  # the trainer's divergence message
    row = t.row(3)
    assert t.n_recorded[row] == 1 and np.isfinite(t.acc[row, 0]) and np.isnan(t.acc[row, 1])
    assert t.n_recorded[t.row(1)] == 0
    st = table_status(out)
    assert (st.complete, st.diverged, st.failed, st.remaining) == (3, 1, 1, 0)


def test_localcluster_run_equals_local_run(reference, data_root, tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "dask"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        summary = run(_cfg(data_root, out, dask_scheduler=cluster.scheduler_address))
    assert summary.counts["complete"] + summary.counts["diverged"] == N_CONFIGS
    _assert_same_table(reference, LookupTable.open(out, cache=False))


def test_resume_refuses_different_training_settings(reference, data_root):
    with pytest.raises(ValueError, match="seed: 3 in the table, 4 now"):
        run(_cfg(data_root, reference.path, seed=4))


def test_a_range_run_started_beside_one_with_other_settings_is_refused(data_root, tmp_path,
                                                                         monkeypatch):
    # run B (seed 4, ids 4..5) checks the table before run A (seed 3, ids 0..3) has written
    # meta.json, and A writes it before B's writer opens: B must still refuse
    import lcsim.tabular.writer as writer_mod

    out = tmp_path / "t"
    opened = writer_mod.TableWriter

    def a_wins_the_race(d, meta, **kw):
        opened(d, dict(meta, seed=3))  # run A's writer creates meta.json first
        return opened(d, meta, **kw)

    monkeypatch.setattr(writer_mod, "TableWriter", a_wins_the_race)
    with pytest.raises(ValueError, match="seed: 3 in the table, 4 now"):
        run(_cfg(data_root, out, seed=4, index_range=(4, 6)))
    assert held_ids(out) == set()  # refused before training anything


def test_index_range_trains_only_its_ids(data_root, tmp_path):
    out = tmp_path / "part"
    run(_cfg(data_root, out, index_range=(4, 6)))
    assert held_ids(out) == {4, 5}
    st = table_status(out)
    assert st.remaining == N_CONFIGS - 2 and st.n_configs == N_CONFIGS


def test_status_cli_reports_counts_and_eta(reference, capsys):
    from lcsim.cli import main

    assert main(["pregen", "status", "--table", str(reference.path), "--n-configs", "10"]) == 0
    text = capsys.readouterr().out
    assert f"complete    {int((reference.status == 'complete').sum())}" in text
    assert "remaining   4 of 10" in text and "configs/hour" in text and "eta" in text


@pytest.mark.slow
def test_worker_pool_two_per_device_measures_solo_time(reference, data_root, tmp_path):
    out = tmp_path / "pool"
    run(_cfg(data_root, out, workers_per_device=2))
    t = LookupTable.open(out, cache=False)
    _assert_same_table(reference, t)
    assert "Up to 2 configs shared a device" in t.meta["time_measurement"]
    done = t.status == "complete"
    assert (t.concurrency[done] >= 1).all() and (t.concurrency[done] <= 2).all()
    assert np.isfinite(t.solo_seconds[done]).all() and (t.solo_seconds[done] > 0).all()


def test_pool_path_is_used_with_two_workers(monkeypatch, data_root, tmp_path):
    # without spawning: the runner must hand a K=2 run to the pool, not train inline
    import lcsim.pregen.lifecycle as lifecycle
    from lcsim.tabular.testing import make_results

    seen = {}
    recs = {r.config_id: r for r in make_results(N_CONFIGS, 2, lambda i, e: 0.5 + 0 * e)}

    def fake_pool(cfg, disp, settle, stop):
        seen["limit"] = dict(disp.limit)
        while (job := disp.next_for("cpu")) is not None:
            settle("cpu", job, Outcome(job.config_id, "complete", 0.5, 2, device="cpu",
                                       record=recs[job.config_id]))
        return 0

    monkeypatch.setattr(lifecycle, "run_pool", fake_pool)
    summary = run(replace(_cfg(data_root, tmp_path / "p"), workers_per_device=2))
    assert seen["limit"] == {"cpu": 2} and summary.counts["complete"] == N_CONFIGS


@pytest.mark.slow
def test_localcluster_with_a_worker_process_equals_local_run(reference, data_root, tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "dask-proc"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                      dashboard_address=None) as cluster:
        run(_cfg(data_root, out, dask_scheduler=cluster.scheduler_address))
    t = LookupTable.open(out, cache=False)
    # two task threads: serialised per process, so scheduling cannot change the curves
    _assert_same_table(reference, t)
    assert "Dask run" in t.meta["time_measurement"]


def test_status_eta_from_shard_commit_times(tmp_path):
    from lcsim.tabular.testing import make_meta, make_results
    from lcsim.tabular.writer import TableWriter

    T = 2
    meta = make_meta(T, n_configs=10)
    w = TableWriter(tmp_path / "t", meta)
    recs = make_results(3, T, lambda i, e: 0.1 * e, seconds=1.0)  # train 1 s, eval 0.1 s
    paths = [w.write(r) for r in recs]
    t0 = time.time() - 1000
    for k, p in enumerate(paths):  # commits 100 s apart
        os.utime(p, (t0 + 100 * k, t0 + 100 * k))
    st = table_status(tmp_path / "t")
    # the session began at the first commit minus that config's 2 x (1 + 0.1) s
    span = 200 + 2 * 1.1
    assert st.remaining == 7 and st.complete == 3
    assert st.configs_per_hour == pytest.approx(3 / span * 3600)
    assert st.eta_seconds == pytest.approx(7 * span / 3)


# --- augmentation: a recorded switch, off in the paper's recipe -------------------------------


def test_choi_cifar_recipe_trains_without_augmentation_and_records_it(tiny_cifar10_root,
                                                                      tmp_path, monkeypatch):
    import json

    from lcsim.pregen import workers

    seen = []
    real = workers.load_run_data

    def spy(cfg, device):
        data = real(cfg, device)
        seen.append(data.augment)
        return data

    monkeypatch.setattr(workers, "load_run_data", spy)
    cfg = _cfg(tiny_cifar10_root, tmp_path / "t", space="cifar10", dataset="cifar10",
               n_configs=1, epochs=1, max_train=16)
    assert cfg.augment == ()  # the paper mentions no augmentation: none by default
    run(cfg)
    assert len(seen) == 2 and set(seen) == {()}  # the probe's data and the worker's
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["augment"] == [] and meta["dataset"] == "cifar10"
    # switched on, it is recorded, and a resume with another recipe is refused
    run(_cfg(tiny_cifar10_root, tmp_path / "u", space="cifar10", dataset="cifar10",
             n_configs=1, epochs=1, max_train=16, augment=("crop", "flip")))
    assert json.loads((tmp_path / "u" / "meta.json").read_text())["augment"] == ["crop", "flip"]
    from lcsim.tabular.schema import TableError

    with pytest.raises(TableError, match=r"augment: \['crop', 'flip'\] in the table, \[\] now"):
        run(_cfg(tiny_cifar10_root, tmp_path / "u", space="cifar10", dataset="cifar10",
                 n_configs=2, epochs=1, max_train=16))


def test_augment_flag_is_parsed_and_bad_ops_are_refused(tmp_path, user_error):
    line = _pregen_error(user_error, "--n-configs", "1", "--augment", "crop,rotate",
                         "--out", str(tmp_path / "t"))
    assert "argument --augment: unknown augmentation 'rotate'" in line
    assert not (tmp_path / "t").exists()
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        RunConfig(out=str(tmp_path), augment=("blur",))


@pytest.mark.parametrize("dataset, refused", [("cifar10", True), ("mnist", False)])
def test_resuming_a_table_from_before_augment_was_recorded(tmp_path, dataset, refused):
    """Such a table trained with the dataset's then default (CIFAR: crop + flip)."""
    import json

    from lcsim.pregen.runner import check_resume
    from lcsim.tabular.schema import META_FILE, TableError

    (tmp_path / META_FILE).write_text(json.dumps({"dataset": dataset, "seed": 0}))
    now = {"dataset": dataset, "seed": 0, "augment": []}
    if refused:
        with pytest.raises(TableError, match=r"augment: \['crop', 'flip'\] in the table"):
            check_resume(tmp_path, now)
        check_resume(tmp_path, {**now, "augment": ["crop", "flip"]})  # --augment crop,flip
    else:
        check_resume(tmp_path, now)
