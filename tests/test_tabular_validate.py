"""`lcsim table validate` rejects each kind of broken table with a message naming it;
`lcsim table merge` compacts without changing data and refuses invalid tables
(tests/test_tabular_maintain.py: merge keeps foreign files, layouts, repair)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lcsim.tabular import LookupTable, TableError
from lcsim.tabular.testing import write_table
from lcsim.tabular.validate import merge_table, validate_table

from lcsim.cli import main

T = 6


def curve(i, e):
    return 0.1 + (0.5 + 0.03 * (i % 10)) * (1 - np.exp(-e / (1 + i % 4)))


@pytest.fixture
def tdir(tmp_path):
    return write_table(tmp_path / "t", 12, T, curve, per_shard=4, status={5: "diverged"})


def shard(d, kind, k=0):
    """The shard of `kind` holding config ids 4k..4k+3 (shard names are random)."""
    for p in (d / kind).glob("[!.]*.parquet"):
        if 4 * k in pq.read_table(p, columns=["config_id"]).column(0).to_pylist():
            return p
    raise AssertionError(f"no {kind} shard holds config {4 * k}")


def rewrite(path, edit=None, meta_edit=None):
    """Rewrite a shard through pandas, keeping its schema and lcsim metadata."""
    t = pq.read_table(path)
    kv = dict(t.schema.metadata)
    if edit is not None:
        df = edit(t.to_pandas())
        t = pa.Table.from_pandas(df, schema=t.schema, preserve_index=False)
    if meta_edit is not None:
        m = json.loads(kv[b"lcsim"])
        meta_edit(m)
        kv[b"lcsim"] = json.dumps(m).encode()
    pq.write_table(t.replace_schema_metadata(kv), path)


def errors(d):
    rep = validate_table(d)
    assert not rep.ok
    return "\n".join(rep.errors)


def test_a_written_table_is_valid(tdir, capsys):
    rep = validate_table(tdir)
    assert rep.ok, rep.errors
    assert rep.n_configs == 12 and rep.n_shards == 3
    assert main(["table", "validate", "--table", str(tdir)]) == 0
    assert "valid" in capsys.readouterr().out


def test_truncated_parquet(tdir, capsys):
    p = shard(tdir, "curves", 1)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    msg = errors(tdir)
    assert p.name in msg and "truncated or corrupt" in msg
    assert main(["table", "validate", "--table", str(tdir)]) == 1
    assert "truncated" in capsys.readouterr().out


def test_foreign_parquet(tdir):
    p = tdir / "configs" / "zz-foreign.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(p)
    (tdir / "curves" / "zz-foreign.parquet").write_bytes(p.read_bytes())
    msg = errors(tdir)
    assert "zz-foreign.parquet: foreign Parquet file, not an lcsim table shard" in msg


def test_wrong_schema_version(tdir):
    p = shard(tdir, "configs", 2)
    rewrite(p, meta_edit=lambda m: m.update(schema_version=99))
    msg = errors(tdir)
    assert p.name in msg and "schema_version 99 is not supported" in msg
    with pytest.raises(TableError, match="schema_version 99"):
        LookupTable.open(tdir)


def test_duplicated_config_epoch(tdir):
    p = shard(tdir, "curves", 0)
    rewrite(p, lambda df: pd.concat([df, df.iloc[[3]]], ignore_index=True))
    msg = errors(tdir)
    assert p.name in msg and "duplicated (config_id 0, epoch 4)" in msg and "rows 3 and" in msg
    with pytest.raises(TableError, match=r"\(config_id 0, epoch 4\) appears 2 times"):
        LookupTable.open(tdir, cache=False)


def test_missing_epoch(tdir):
    p = shard(tdir, "curves", 1)
    rewrite(p, lambda df: df[~((df.config_id == 6) & (df.epoch == 3))])
    msg = errors(tdir)
    assert p.name in msg and "config_id 6 (complete): column 'epoch': missing epoch(s) [3]" in msg


def test_out_of_range_hyperparameter(tdir):
    p = shard(tdir, "configs", 0)
    rewrite(p, lambda df: df.assign(dropout=np.where(df.config_id == 2, 1.5, df.dropout)))
    msg = errors(tdir)
    assert f"{p.name}: row 2 (config_id 2): column 'dropout'" in msg
    assert "outside the allowed range [0, 0.9]" in msg


def test_config_that_is_not_its_sobol_point(tdir):
    p = shard(tdir, "configs", 0)
    rewrite(p, lambda df: df.assign(dropout=np.where(df.config_id == 1, 0.123, df.dropout)))
    assert "is not Sobol point 1 (seed 0)" in errors(tdir)


def test_nan_accuracy_in_complete_config(tdir):
    p = shard(tdir, "curves", 0)
    rewrite(p, lambda df: df.assign(val_accuracy=np.where(
        (df.config_id == 1) & (df.epoch == 2), np.nan, df.val_accuracy)))
    msg = errors(tdir)
    assert f"{p.name}: row {T + 1}: column 'val_accuracy' is NaN in a complete config" in msg


def test_nan_accuracy_is_allowed_in_a_diverged_config(tdir):
    p = shard(tdir, "curves", 1)  # holds config 5, diverged after T // 2 epochs
    rewrite(p, lambda df: df.assign(val_accuracy=np.where(
        (df.config_id == 5) & (df.epoch == T // 2), np.nan, df.val_accuracy)))
    assert validate_table(tdir).ok


def test_accuracy_out_of_range_and_negative_seconds(tdir):
    p = shard(tdir, "curves", 2)
    rewrite(p, lambda df: df.assign(val_accuracy=df.val_accuracy * 100,
                                    solo_seconds=-df.solo_seconds))
    msg = errors(tdir)
    assert "column 'val_accuracy' is outside [0, 1]" in msg
    assert "column 'solo_seconds' is negative" in msg


def test_metadata_disagreement_across_shards(tdir):
    p = shard(tdir, "curves", 2)
    rewrite(p, meta_edit=lambda m: m.update(epochs=T + 1))
    assert f"{p.name}: metadata disagrees with the table: epochs is {T + 1}" in errors(tdir)


def test_wrong_column_type(tdir):
    p = shard(tdir, "curves", 0)
    t = pq.read_table(p)
    t = t.set_column(1, "epoch", t.column("epoch").cast(pa.int64()))
    pq.write_table(t, p)
    assert "column 'epoch' has type int64, expected int32" in errors(tdir)


def test_leftovers_of_killed_writers_are_warnings(tdir):
    (tdir / "curves" / ".tmp-123-9-abc.parquet").write_bytes(b"PAR1 half")
    orphan = tdir / "curves" / "999-1-dead.parquet"
    orphan.write_bytes(shard(tdir, "curves", 0).read_bytes())
    rep = validate_table(tdir)
    assert rep.ok, rep.errors
    text = "\n".join(rep.warnings)
    assert "999-1-dead.parquet: curves shard with no configs shard" in text
    assert ".tmp-123-9-abc.parquet: temp file" in text


def test_merge_keeps_data_and_compacts(tdir, tmp_path):
    before = LookupTable.open(tdir, cache=False)
    out = merge_table(tdir, tmp_path / "merged")
    assert sorted(p.name for p in out.iterdir()) == ["configs", "curves", "meta.json"]
    assert [len(list((out / s).iterdir())) for s in ("configs", "curves")] == [1, 1]
    after = LookupTable.open(out)
    for k in ("ids", "status", "n_recorded", "acc", "train_loss", "val_loss",
              "train_seconds", "solo_seconds", "eval_seconds", "concurrency", "features"):
        np.testing.assert_array_equal(getattr(before, k), getattr(after, k))
    pd.testing.assert_frame_equal(before.configs_frame(), after.configs_frame())
    cur = pd.read_parquet(out / "curves")
    assert cur.equals(cur.sort_values(["config_id", "epoch"]))
    assert validate_table(out).ok


def test_merge_in_place(tdir):
    before = LookupTable.open(tdir, cache=False)
    assert main(["table", "merge", "--table", str(tdir)]) == 0
    assert [len(list((tdir / s).iterdir())) for s in ("configs", "curves")] == [1, 1]
    np.testing.assert_array_equal(before.acc, LookupTable.open(tdir).acc)


def test_merge_refuses_an_invalid_table(tdir, tmp_path):
    rewrite(shard(tdir, "curves", 0), lambda df: df[df.epoch != 2])
    with pytest.raises(TableError, match="refusing to merge an invalid table"):
        merge_table(tdir, tmp_path / "m")
    assert not (tmp_path / "m").exists()
