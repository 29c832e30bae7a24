"""TableWriter: atomic shard pairs, concurrent writers, killed writers, resume."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest
from lcsim.tabular import ConfigResult, LookupTable, TableError, TableWriter, held_ids
from lcsim.tabular.testing import make_meta, make_results
from lcsim.tabular.validate import validate_table

T = 5


def curve(i, e):
    return 0.2 + 0.7 * (1 - np.exp(-e / (1 + i % 3)))


def _write_ids(d: str, ids: list[int], per_shard: int) -> None:
    # child process: one writer, its own share of the ids
    w = TableWriter(d, make_meta(T))
    recs = {r.config_id: r for r in make_results(max(ids) + 1, T, curve)}
    for s in range(0, len(ids), per_shard):
        w.write([recs[i] for i in ids[s:s + per_shard]])


def _write_then_die(d: str, when: str) -> None:
    # child process: SIGKILL itself at a chosen point inside the commit protocol
    import lcsim.tabular.writer as tw

    real = tw.write_parquet_atomic

    def hooked(table, path):
        if when == "mid-temp" and path.parent.name == "curves":
            tmp = path.parent / f".tmp-{path.name}"
            import pyarrow.parquet as pq
            pq.write_table(table, tmp)
            tmp.write_bytes(tmp.read_bytes()[:100])  # half-written temp file
            os.kill(os.getpid(), signal.SIGKILL)
        if when == "before-commit" and path.parent.name == "configs":
            os.kill(os.getpid(), signal.SIGKILL)  # curves renamed, configs never
        real(table, path)

    tw.write_parquet_atomic = hooked
    w = TableWriter(d, make_meta(T))
    w.write(make_results(1, T, curve, start=7))


def _write_forever(d: str) -> None:
    w = TableWriter(d, make_meta(T))
    i = 100
    while True:
        w.write(make_results(2, T, curve, start=i))
        i += 2


@pytest.fixture(scope="module")
def ctx():
    # forkserver: children fork from a clean server that imported lcsim and scipy once (fast),
    # never from this process, which holds pyarrow's threads
    c = mp.get_context("forkserver")
    c.set_forkserver_preload(
        ["lcsim.tabular.spaces", "lcsim.tabular.testing", "lcsim.tabular.validate"])
    return c


def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path, ctx):
    d = str(tmp_path / "t")
    n, k = 24, 4
    procs = [ctx.Process(target=_write_ids, args=(d, list(range(j, n, k)), 1 + j % 2))
             for j in range(k)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert held_ids(d) == set(range(n))
    t = LookupTable.open(d)
    assert list(t.ids) == list(range(n))
    for i in (0, 5, 23):
        np.testing.assert_array_equal(t.curve(i), curve(i, np.arange(1, T + 1)))
    assert validate_table(d).ok


@pytest.mark.parametrize("when", ["mid-temp", "before-commit"])
def test_killed_writer_leaves_no_partial_shard(tmp_path, ctx, when):
    d = tmp_path / "t"
    w = TableWriter(d, make_meta(T))
    w.write(make_results(3, T, curve))
    p = ctx.Process(target=_write_then_die, args=(str(d), when))
    p.start()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    # readers see the three committed configs only; config 7 is not held
    assert held_ids(d) == {0, 1, 2}
    assert list(LookupTable.open(d).ids) == [0, 1, 2]
    rep = validate_table(d)
    assert rep.ok and rep.warnings  # the leftover is reported, not an error
    # resume: the killed config is written again, and nothing is duplicated
    TableWriter(d, make_meta(T)).write(make_results(1, T, curve, start=7))
    assert list(LookupTable.open(d).ids) == [0, 1, 2, 7]
    assert validate_table(d).ok


def test_writer_killed_at_a_random_moment(tmp_path, ctx):
    d = tmp_path / "t"
    TableWriter(d, make_meta(T))
    p = ctx.Process(target=_write_forever, args=(str(d),))
    p.start()
    deadline = time.monotonic() + 60
    while len(list((d / "configs").glob("[!.]*.parquet"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    t = LookupTable.open(d)
    assert len(t) >= 6 and (t.status == "complete").all()
    assert not np.isnan(t.acc).any()  # every committed config has all its epochs
    assert validate_table(d).ok


def test_held_ids_of_missing_directory_is_empty(tmp_path):
    assert held_ids(tmp_path / "nothing") == set()


def test_resume_into_a_different_table_is_refused(tmp_path):
    d = tmp_path / "t"
    TableWriter(d, make_meta(T)).write(make_results(2, T, curve))
    with pytest.raises(TableError, match="resume must not mix tables.*epochs: 5 vs 6"):
        TableWriter(d, make_meta(T + 1))
    with pytest.raises(TableError, match="sobol_seed: 0 vs 3"):
        TableWriter(d, make_meta(T, seed=3))


def test_bad_records_are_refused_before_anything_is_written(tmp_path):
    d = tmp_path / "t"
    w = TableWriter(d, make_meta(T))
    good = make_results(2, T, curve)
    with pytest.raises(TableError, match="dropout"):
        w.write([good[0], _fields(good[1], config={**good[1].config, "dropout": 2.0})])
    with pytest.raises(TableError, match="complete but 3 of 5 epochs"):
        w.write(_fields(good[0], **{f: getattr(good[0], f)[:3] for f in _EPOCHS}))
    with pytest.raises(TableError, match="status 'done'"):
        _fields(good[0], status="done")
    with pytest.raises(TableError, match="per-epoch fields differ"):
        _fields(good[0], train_loss=[1.0])
    with pytest.raises(TableError, match="outside \\[0, 1\\] \\(a fraction, not percent\\)"):
        w.write(_fields(good[0], val_accuracy=np.asarray(good[0].val_accuracy) * 100))
    nan_acc = np.asarray(good[0].val_accuracy).copy()
    nan_acc[2] = np.nan
    with pytest.raises(TableError, match="NaN at epoch 3; record it as diverged"):
        w.write(_fields(good[0], val_accuracy=nan_acc))
    assert held_ids(d) == set()
    w.write(good)
    with pytest.raises(TableError, match=r"config_id\(s\) \[0\] already written"):
        w.write(good[0])


_EPOCHS = ("val_accuracy", "train_loss", "val_loss", "train_seconds", "solo_seconds",
           "eval_seconds")


def _fields(r: ConfigResult, **changes) -> ConfigResult:
    import dataclasses
    return dataclasses.replace(r, **changes)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"lr": [1e-3, float("-inf")]}])
def test_metadata_that_is_not_strict_json_is_refused_naming_the_key(bad):
    with pytest.raises(TableError, match="'baseline_acc' is not strict JSON"):
        make_meta(3, baseline_acc=bad)
    assert make_meta(3, baseline_acc=0.5)["baseline_acc"] == 0.5
