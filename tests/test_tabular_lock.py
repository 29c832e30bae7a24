"""tabular.lock: one writer per id range, stale locks taken over, idempotent locked commits."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import signal

import numpy as np
import pytest
from lcsim.tabular import TableError, TableWriter, held_ids
from lcsim.tabular.lock import HOLDERS, WHOLE, RangeLock, TableLockError, holders
from lcsim.tabular.testing import make_meta, make_results

T = 3


def curve(i, e):
    return 0.2 + 0.05 * i + 0.1 * e


def test_overlapping_range_is_refused_naming_the_holder(tmp_path):
    d = tmp_path / "t"
    with RangeLock(d, (0, 10), command="lcsim pregen run --out t"):
        with pytest.raises(TableLockError) as e:
            RangeLock(d, (5, 15)).acquire()
        msg = str(e.value)
        assert f"pid {os.getpid()} on host {platform.node()}, started 20" in msg
        assert "'lcsim pregen run --out t'" in msg and "ids 0..9" in msg
        assert "disjoint --index-range" in msg
        [h] = holders(d)  # the refused one left no holder behind
        assert h.range == (0, 10)


def test_disjoint_ranges_hold_side_by_side_and_whole_conflicts_with_any(tmp_path):
    d = tmp_path / "t"
    with RangeLock(d, (0, 5)), RangeLock(d, range(5, 9)):
        assert sorted(h.range for h in holders(d)) == [(0, 5), (5, 9)]
        with pytest.raises(TableLockError, match="ids 5..8"):
            RangeLock(d, WHOLE).acquire()
    assert holders(d) == []
    with RangeLock(d, WHOLE):  # released: free for the whole table
        pass
    assert not list(d.glob(".lcsim-lock*"))  # the last holder out leaves no lock files


def _hold_and_die(d: str, conn) -> None:
    lock = RangeLock(d, (0, 100), command="doomed run")
    lock.acquire()
    conn.send(os.getpid())
    signal.pause()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, caplog):
    d = tmp_path / "t"
    d.mkdir()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_hold_and_die, args=(str(d), child))
    p.start()
    pid = parent.recv()
    with pytest.raises(TableLockError, match=f"'doomed run' \\(pid {pid} "):
        RangeLock(d, (50, 60)).acquire()
    os.kill(pid, signal.SIGKILL)
    p.join()
    assert len(list((d / HOLDERS).glob("*.json"))) == 1  # its file is still there
    assert holders(d) == []  # ... but nobody holds it
    with caplog.at_level("WARNING", logger="lcsim.tabular"):
        lock = RangeLock(d, (50, 60)).acquire()
    assert f"taking over a stale lock of {d}: 'doomed run' (pid {pid}" in caplog.text
    assert [h.pid for h in holders(d)] == [os.getpid()]
    lock.release()


def test_a_run_that_made_the_directory_and_wrote_nothing_leaves_nothing(tmp_path):
    d = tmp_path / "new"
    RangeLock(d, (0, 3)).acquire().release()
    assert not d.exists()


def test_locked_writer_skips_committed_ids_and_refuses_ids_outside_its_range(tmp_path):
    d = tmp_path / "t"
    recs = make_results(8, T, curve)
    with RangeLock(d, (0, 6)) as lock:
        w = TableWriter(d, make_meta(T), lock=lock)
        assert w.write(recs[0:2]) is not None
        # committed behind this writer's back (an old unlocked writer): still seen
        TableWriter(d, make_meta(T)).write(recs[3])
        assert w.write([recs[1], recs[2], recs[3]]) is not None  # only 2 is new
        assert w.write(recs[2]) is None and w.skipped == [1, 3, 2]
        with pytest.raises(TableError, match=r"config_id\(s\) \[6, 7\] are outside the locked "
                                             r"range 0..5"):
            w.write(recs[5:8])
    assert held_ids(d) == {0, 1, 2, 3}
    from lcsim.tabular.table import LookupTable

    t = LookupTable.open(d, cache=False)
    np.testing.assert_allclose(t.acc[:, -1], [curve(i, T) for i in range(4)])


def test_a_writer_whose_lock_file_vanished_stops_before_writing(tmp_path):
    d = tmp_path / "t"
    with RangeLock(d, (0, 6)) as lock:
        w = TableWriter(d, make_meta(T), lock=lock)
        for p in (d / HOLDERS).glob("*.json"):
            p.unlink()  # e.g. someone "cleaned up" the lock files
        with pytest.raises(TableLockError, match="lock file was removed"):
            w.write(make_results(1, T, curve))
    assert held_ids(d) == set()


def test_status_names_the_run_writing_the_table(tmp_path, capsys):
    from lcsim.cli import main

    d = tmp_path / "t"
    TableWriter(d, make_meta(T)).write(make_results(2, T, curve))
    assert main(["table", "status", "--table", str(d)]) == 0
    assert "writer      none running" in capsys.readouterr().out
    with RangeLock(d, (2, 8), command="lcsim pregen run --out t --index-range 2:8"):
        assert main(["table", "status", "--table", str(d)]) == 0
        out = capsys.readouterr().out
    assert f"writer      'lcsim pregen run --out t --index-range 2:8' (pid {os.getpid()}" in out
    assert "holds ids 2..7" in out
