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
    assert main(["table", "info", "--table", str(tdir)]) == 0
    out = capsys.readouterr().out
    assert "configs    20   complete 19   diverged 1" in out
    best = curve(19, np.array([T]))[0]
    assert f"p100 {best:.4f}" in out
    # 19 complete x 5 epochs + 2 diverged epochs, 36 s each = 0.97 h
    assert "training solo 0.97" in out
    assert "synthetic" in out and "schema v1" in out


def test_curves_prints_top_configs(tdir, capsys):
    assert main(["table", "curves", "--table", str(tdir), "--top", "3", "--bottom", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["config_id", "selection", "status", "e1"]
    assert [ln.split()[0] for ln in lines[1:]] == ["19", "18", "17", "0"]


def test_curves_export_csv_and_parquet(tdir, tmp_path):
    out = tmp_path / "c.csv"
    assert main(["table", "curves", "--table", str(tdir), "--random", "4", "--seed", "3",
                 "--out", str(out)]) == 0
    df = pd.read_csv(out)
    ids = LookupTable.open(tdir).random_k(4, seed=3)
    assert sorted(df.config_id.unique()) == sorted(ids) and len(df) == 4 * T - (
        T - T // 2 if 4 in ids else 0)
    assert {"dropout", "learning_rate", "val_accuracy", "selection"} <= set(df.columns)
    assert main(["table", "curves", "--table", str(tdir), "--top", "2", "--out",
                 str(tmp_path / "c.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "c.parquet")) == 2 * T


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["table", "info", "--table", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcsim table info: error: ") and "no such table directory" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["info", "curves", "validate", "merge", "status"])
def test_a_parquet_file_is_not_a_table_and_says_what_is(tdir, tmp_path, capsys, user_error,
                                                        command):
    export = tmp_path / "top.parquet"
    assert main(["table", "curves", "--table", str(tdir), "--out", str(export)]) == 0
    capsys.readouterr()
    assert main(["table", command, "--table", str(export)]) == 2
    line = user_error(f"table {command}")
    assert f"{export}: is a file, not a table; a table is a directory holding meta.json" in line


def test_empty_and_missing_directories_are_named(tmp_path, user_error):
    (tmp_path / "empty").mkdir()
    assert main(["table", "info", "--table", str(tmp_path / "empty")]) == 2
    assert "empty: no committed shards" in user_error("table info")
    assert main(["table", "status", "--table", str(tmp_path / "gone")]) == 2
    assert "gone: no such table directory" in user_error("table status")


def test_validate_exits_1_for_an_invalid_table_and_2_for_a_bad_command(tdir, capsys,
                                                                       user_error):
    (tdir / "configs" / "junk.parquet").write_bytes(b"not parquet")
    assert main(["table", "validate", "--table", str(tdir)]) == 1  # a result: INVALID
    assert "INVALID" in capsys.readouterr().out
    assert main(["table", "validate"]) == 2  # no table: a usage error
    assert "the following arguments are required: TABLE (or --table" in user_error(
        "table validate")


def test_curves_out_is_not_overwritten_without_force(tdir, tmp_path, user_error):
    out = tmp_path / "c.csv"
    out.write_text("mine")
    assert main(["table", "curves", "--table", str(tdir), "--top", "2", "--out", str(out)]) == 2
    assert "exists; use another name, or --force" in user_error("table curves")
    assert out.read_text() == "mine"
    assert main(["table", "curves", "--table", str(tdir), "--top", "2", "--out", str(out),
                 "--force"]) == 0
    assert len(pd.read_csv(out)) == 2 * T


def test_curves_more_configs_than_the_table_holds(tdir, user_error):
    assert main(["table", "curves", "--table", str(tdir), "--top", "500"]) == 2
    assert "k must be in 0..20 (table size), got 500" in user_error("table curves")


def test_appending_to_a_merged_table(tdir, tmp_path):
    merged = merge_table(tdir, tmp_path / "m")
    assert held_ids(merged) == set(range(20))
    TableWriter(merged, make_meta(T)).write(make_results(2, T, curve, start=20))
    t = LookupTable.open(merged)
    assert list(t.ids) == list(range(22)) and validate_table(merged).ok


def test_a_reader_that_leaves_early_gets_no_traceback(tdir):
    # `lcsim table info T | head -0`: the reader is gone before the first line (closed while
    # the interpreter still imports, so output never fits in the pipe's buffer first)
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "lcsim", "table", "info", "--table", str(tdir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_table_commands_take_the_table_as_a_positional_or_flag_once(tdir, capsys, user_error):
    assert main(["table", "info", str(tdir)]) == 0  # `lcsim table info default` as typed
    assert "configs    20" in capsys.readouterr().out
    assert main(["table", "validate", str(tdir), "--table", str(tdir)]) == 2
    assert "the table is given twice" in user_error("table validate")
    assert main(["table", "validate"]) == 2
    assert user_error("table validate").endswith("required: TABLE (or --table TABLE)")
    assert main(["pregen", "status", str(tdir)]) == 0
    assert "complete    19" in capsys.readouterr().out


def test_a_table_typed_without_table_flag_elsewhere_is_one_line_with_the_fix(tdir, user_error):
    assert main(["replay", str(tdir)]) == 2
    assert user_error("replay").endswith(
        f"unrecognized arguments: {tdir} (a table is named with --table: lcsim replay "
        f"--table {tdir})")
    assert main(["table", "info", "--table", str(tdir), "--bogus"]) == 2
    assert user_error("table info").endswith("unrecognized arguments: --bogus")
