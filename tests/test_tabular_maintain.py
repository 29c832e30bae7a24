"""tabular.maintain: merge keeps every foreign file, both layouts read whole with pandas,
appends to a merged table stay visible, repair removes duplicate commits only."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from lcsim.tabular import LookupTable, TableError, TableWriter
from lcsim.tabular.lock import RangeLock, TableLockError
from lcsim.tabular.maintain import merge_table, repair_table
from lcsim.tabular.testing import make_meta, make_results, write_table
from lcsim.tabular.validate import validate_table

from lcsim.cli import main

T = 4


def curve(i, e):
    return 0.1 + 0.02 * i + 0.03 * e


def other(i, e):  # a second training of the same config: different numbers
    return curve(i, e) + 0.001


@pytest.fixture
def tdir(tmp_path):
    return write_table(tmp_path / "t", 10, T, curve, per_shard=3, status={4: "diverged"})


def _readme_read(d) -> pd.DataFrame:
    """The README's pandas recipe: every committed row, whatever the layout."""
    configs = pd.read_parquet(d / "configs")
    curves = pd.read_parquet(d / "curves")
    curves = curves[curves.config_id.isin(configs.config_id)]
    return curves.sort_values(["config_id", "epoch"]).reset_index(drop=True)


def _expected(t: LookupTable) -> pd.DataFrame:
    return t.curves_frame().sort_values(["config_id", "epoch"]).reset_index(drop=True)


def test_merge_in_place_keeps_the_users_files(tdir):
    (tdir / "notes.txt").write_text("trained on the lab box")
    (tdir / "plots").mkdir()
    (tdir / "plots" / "acc.png").write_bytes(b"\x89PNG fake")
    (tdir / "configs" / "README").write_text("mine")
    before = LookupTable.open(tdir, cache=False)
    shards_before = {p.name for p in (tdir / "configs").glob("*.parquet")}
    assert main(["table", "merge", "--table", str(tdir)]) == 0
    assert (tdir / "notes.txt").read_text() == "trained on the lab box"
    assert (tdir / "plots" / "acc.png").read_bytes() == b"\x89PNG fake"
    assert (tdir / "configs" / "README").read_text() == "mine"
    merged = {p.name for p in (tdir / "configs").glob("*.parquet")}
    assert len(merged) == 1 and not merged & shards_before
    assert {p.name for p in (tdir / "curves").glob("*.parquet")} == merged
    assert not [p for p in tdir.iterdir() if p.name.startswith((".configs-", ".merge"))]
    after = LookupTable.open(tdir, cache=False)
    np.testing.assert_array_equal(before.acc, after.acc)
    np.testing.assert_array_equal(before.status, after.status)
    assert validate_table(tdir).ok


@pytest.mark.parametrize("at", [".configs-old-", "configs"])
def test_an_interrupted_merge_leaves_the_table_and_the_users_files_as_they_were(tdir, at,
                                                                                monkeypatch):
    import lcsim.tabular.maintain as maintain

    (tdir / "configs" / "README").write_text("mine")
    before = sorted(p.name for p in (tdir / "configs").iterdir())
    rename, fired = os.rename, []

    def interrupted(src, dst):  # one Ctrl-C, at one of the two renames of the switch
        if not fired and os.path.basename(dst).startswith(at):
            fired.append(dst)
            raise KeyboardInterrupt
        rename(src, dst)

    monkeypatch.setattr(maintain.os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        merge_table(tdir)
    monkeypatch.undo()
    assert (tdir / "configs" / "README").read_text() == "mine"
    assert sorted(p.name for p in (tdir / "configs").iterdir()) == before
    assert not [p for p in tdir.iterdir() if p.name.startswith(".configs-")]
    assert validate_table(tdir).ok


def test_pandas_reads_every_row_of_sharded_merged_and_appended_tables(tdir):
    pd.testing.assert_frame_equal(_readme_read(tdir), _expected(LookupTable.open(tdir)),
                                  check_dtype=False)
    merge_table(tdir)
    pd.testing.assert_frame_equal(_readme_read(tdir), _expected(LookupTable.open(tdir)),
                                  check_dtype=False)
    with RangeLock(tdir, (10, 12)) as lock:  # what a resumed `pregen run` does
        TableWriter(tdir, make_meta(T), lock=lock).write(make_results(2, T, curve, start=10))
    t = LookupTable.open(tdir)
    assert list(t.ids) == list(range(12))
    merge_table(tdir)  # a merged pair counts the commits it merged
    assert json.loads((tdir / "meta.json").read_text())["merged_from_shards"] == 4 + 1
    got = _readme_read(tdir)
    pd.testing.assert_frame_equal(got, _expected(t), check_dtype=False)
    assert set(got.config_id) == set(range(12))


def test_a_table_merged_by_an_older_lcsim_is_refused_for_appends_until_merged(tdir, tmp_path):
    # the old layout: configs.parquet + curves.parquet at the top of the directory
    old = tmp_path / "old"
    new = merge_table(tdir, tmp_path / "m")
    old.mkdir()
    for side in ("configs", "curves"):
        [f] = (new / side).glob("*.parquet")
        shutil.copy(f, old / f"{side}.parquet")
    shutil.copy(new / "meta.json", old / "meta.json")
    before = LookupTable.open(old, cache=False)
    with pytest.raises(TableError,
                       match=r"merged by an older lcsim .* Run `lcsim table merge --table "):
        TableWriter(old, make_meta(T))
    merge_table(old)  # converts it: the rows move into the folders
    assert not (old / "configs.parquet").exists() and not (old / "curves.parquet").exists()
    np.testing.assert_array_equal(before.acc, LookupTable.open(old, cache=False).acc)
    TableWriter(old, make_meta(T)).write(make_results(1, T, curve, start=10))
    assert len(_readme_read(old).config_id.unique()) == 11


def test_merge_and_repair_refuse_while_a_run_holds_the_table(tdir):
    with RangeLock(tdir, (20, 30), command="lcsim pregen run"):
        with pytest.raises(TableLockError, match="'lcsim pregen run'"):
            merge_table(tdir)
        with pytest.raises(TableLockError, match="ids 20..29"):
            repair_table(tdir)


def _age(path, seconds_ago: float) -> None:
    t = os.stat(path).st_mtime - seconds_ago
    os.utime(path, (t, t))


def test_repair_keeps_the_earliest_commit_and_changes_no_other_row(tdir, capsys):
    clean = _readme_read(tdir)
    for p in (tdir / "configs").glob("*.parquet"):
        _age(p, 100)  # the original commits are the earliest
    w = TableWriter(tdir, make_meta(T))
    dup_only = w.write(make_results(1, T, other, start=2))  # config 2 again, alone
    mixed = w.write([*make_results(1, T, other, start=7),  # config 7 again ...
                     *make_results(2, T, curve, start=10)])  # ... with new configs 10, 11
    with pytest.raises(TableError, match=r"committed more than once: 2, 7; .*lcsim table repair"):
        LookupTable.open(tdir, cache=False)
    assert not validate_table(tdir).ok

    assert main(["table", "repair", "--table", str(tdir)]) == 0
    out = capsys.readouterr().out
    assert "config id(s) 2, 7 were committed more than once" in out
    assert f"removed 1 duplicate shard(s): {dup_only.name}" in out
    assert f"rewrote 1 shard(s) without their duplicate rows: {mixed.name}" in out
    assert not dup_only.exists() and not (tdir / "curves" / dup_only.name).exists()
    assert pq.read_table(mixed).column("config_id").to_pylist() == [10, 11]

    rep = validate_table(tdir)
    assert rep.ok and not rep.warnings, (rep.errors, rep.warnings)
    after = _readme_read(tdir)
    expected = pd.concat([clean, _readme_read_rows(make_results(2, T, curve, start=10))])
    expected = expected.sort_values(["config_id", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(after, expected, check_dtype=False)  # row by row
    t = LookupTable.open(tdir, cache=False)
    np.testing.assert_allclose(t.curve(2), curve(2, np.arange(1, T + 1)))  # the earliest
    assert repair_table(tdir).lines()[0].endswith("nothing changed")


def _readme_read_rows(recs) -> pd.DataFrame:
    rows = []
    for r in recs:
        k = len(r.val_accuracy)
        rows.append(pd.DataFrame({
            "config_id": r.config_id, "epoch": np.arange(1, k + 1, dtype=np.int32),
            "val_accuracy": r.val_accuracy, "train_loss": r.train_loss,
            "val_loss": r.val_loss, "train_seconds": r.train_seconds,
            "solo_seconds": r.solo_seconds, "eval_seconds": r.eval_seconds,
            "concurrency": np.full(k, r.concurrency, dtype=np.int32)}))
    return pd.concat(rows)


@pytest.mark.parametrize("name", ["digits-mlp", "mnist-10k-cpu"])
def test_the_readme_pandas_read_gets_every_row_of_the_shipped_tables(name):
    from lcsim.tabular.table import DATA_DIR

    got = _readme_read(DATA_DIR / name)
    t = LookupTable.open(name)
    pd.testing.assert_frame_equal(got, _expected(t), check_dtype=False)
    assert got.config_id.nunique() == int((t.n_recorded > 0).sum())  # failed: no rows
    assert len(pd.read_parquet(DATA_DIR / name / "configs")) == len(t)


def test_status_does_not_count_a_merged_shard_as_one_commit_of_the_session(tdir):
    from lcsim.tabular.status import table_status

    merge_table(tdir)
    TableWriter(tdir, make_meta(T)).write(make_results(1, T, curve, start=10))
    st = table_status(tdir)  # one commit after the merge: too few to time a session
    assert st.rate_source.startswith("recorded seconds") and st.held == 11
