"""`lcsim table info|curves` on a small written table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcsim.tabular import LookupTable, TableWriter, held_ids
from lcsim.tabular.testing import make_meta, make_results, write_table
from lcsim.tabular.validate import merge_table, validate_table

from lcsim.cli import main

T = 5


def curve(i, e):
    return 0.1 + 0.01 * i + 0.02 * e


@pytest.fixture
def tdir(tmp_path):
    return write_table(tmp_path / "t", 20, T, curve, per_shard=8, status={4: "diverged"},
                       seconds=lambda i, e: 36.0 + 0 * e)


def test_info_reports_counts_percentiles_and_hours(tdir, capsys):
    assert main(["table", "info", str(tdir)]) == 0
    out = capsys.readouterr().out
    assert "configs    20   complete 19   diverged 1" in out
    best = curve(19, np.array([T]))[0]
    assert f"p100 {best:.4f}" in out
    # 19 complete x 5 epochs + 2 diverged epochs, 36 s each = 0.97 h
    assert "training solo 0.97" in out
    assert "synthetic" in out and "schema v1" in out


def test_curves_prints_top_configs(tdir, capsys):
    assert main(["table", "curves", str(tdir), "--top", "3", "--bottom", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["config_id", "selection", "status", "e1"]
    assert [ln.split()[0] for ln in lines[1:]] == ["19", "18", "17", "0"]


def test_curves_export_csv_and_parquet(tdir, tmp_path):
    out = tmp_path / "c.csv"
    assert main(["table", "curves", str(tdir), "--random", "4", "--seed", "3",
                 "--out", str(out)]) == 0
    df = pd.read_csv(out)
    ids = LookupTable.open(tdir).random_k(4, seed=3)
    assert sorted(df.config_id.unique()) == sorted(ids) and len(df) == 4 * T - (
        T - T // 2 if 4 in ids else 0)
    assert {"dropout", "learning_rate", "val_accuracy", "selection"} <= set(df.columns)
    assert main(["table", "curves", str(tdir), "--top", "2", "--out",
                 str(tmp_path / "c.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "c.parquet")) == 2 * T


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["table", "info", str(tmp_path / "nope")]) == 1
    assert "no such table directory" in capsys.readouterr().err


def test_appending_to_a_merged_table(tdir, tmp_path):
    merged = merge_table(tdir, tmp_path / "m")
    assert held_ids(merged) == set(range(20))
    TableWriter(merged, make_meta(T)).write(make_results(2, T, curve, start=20))
    t = LookupTable.open(merged)
    assert list(t.ids) == list(range(22)) and validate_table(merged).ok
