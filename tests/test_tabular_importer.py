"""`lcsim table import`: a long CSV of curves becomes a valid, replayable table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lcsim.tabular import LookupTable, TableError
from lcsim.tabular.importer import import_csv
from lcsim.tabular.validate import validate_table

from lcsim.cli import main

T = 4


def long_csv(path, n=5, *, hp=None, drop=None, extra=None):
    rows = []
    for c in range(n):
        for e in range(1, T + 1):
            h = hp(c) if hp else {"lr": 10.0 ** -(1 + c % 3), "width": 16 * (1 + c),
                                  "act": ["relu", "tanh"][c % 2]}
            rows.append({"config": f"run-{c}", "epoch": e, "accuracy": 0.1 * c + 0.05 * e,
                         "seconds": 1.0 + c, "hyperparameters": json.dumps(h) if e == 1 else ""})
    df = pd.DataFrame(rows)
    if drop is not None:
        df = df.drop(index=drop)
    if extra is not None:
        df = extra(df)
    df.to_csv(path, index=False)
    return path


def test_import_without_space_round_trips(tmp_path):
    csv = long_csv(tmp_path / "c.csv")
    t = LookupTable.open(import_csv(csv, tmp_path / "t", num_classes=10))
    assert validate_table(tmp_path / "t").ok
    assert list(t.ids) == [0, 1, 2, 3, 4] and t.space is None and t.num_classes == 10
    np.testing.assert_allclose(t.curve(3), 0.3 + 0.05 * np.arange(1, T + 1))
    assert t.seconds(2, T) == pytest.approx(3.0 * T)
    assert t.configs_frame().source_config.tolist() == [f"run-{c}" for c in range(5)]
    assert t.config(1) == {"lr": 0.01, "width": 32, "act": "tanh"}
    # features: lr on a log scale (spans 2 decades), width linear, act categorical
    assert t.features.shape == (5, 3) and ((t.features >= 0) & (t.features <= 1)).all()
    assert t.nearest({"lr": 0.0101, "width": 33, "act": "tanh"}) == 1
    assert t.meta["sobol_seed"] is None and "imported from c.csv" in t.meta["time_measurement"]


def test_import_with_space_gives_typed_columns(tmp_path):
    from lcsim.tabular.spaces import MNIST_SPACE
    cfgs = MNIST_SPACE.configs(0, 3, seed=5)
    csv = long_csv(tmp_path / "c.csv", n=3, hp=lambda c: cfgs[c],
                   extra=lambda df: df.assign(config=df.config.str.replace("run-", "1")))
    out = tmp_path / "t"
    assert main(["table", "import", str(csv), "--out", str(out), "--space", "mnist"]) == 0
    t = LookupTable.open(out)
    assert list(t.ids) == [10, 11, 12] and t.num_classes == 10
    assert t.config(11) == cfgs[1]
    assert t.configs_frame().dtypes["c1_filters"] == np.int64
    assert validate_table(out).ok


def test_import_rejects_out_of_space_hyperparameters(tmp_path):
    csv = long_csv(tmp_path / "c.csv", n=2,
                   extra=lambda df: df.assign(config=df.config.str.replace("run-", "")))
    with pytest.raises(TableError, match="line 2: config '0'.*missing"):
        import_csv(csv, tmp_path / "t", space="mnist")


def test_missing_epoch_without_status_is_an_error(tmp_path):
    csv = long_csv(tmp_path / "c.csv", drop=[T * 2 + 1])  # run-2 epoch 2
    with pytest.raises(TableError, match=r"config 'run-2' is missing epoch\(s\) \[2\]"):
        import_csv(csv, tmp_path / "t")


def test_stopped_early_needs_a_status(tmp_path):
    csv = long_csv(tmp_path / "c.csv", drop=[T - 1])  # run-0 lacks its last epoch
    with pytest.raises(TableError, match="add a 'status' column"):
        import_csv(csv, tmp_path / "t")
    csv2 = long_csv(tmp_path / "d.csv", drop=[T - 1], extra=lambda df: df.assign(
        status=np.where(df.config == "run-0", "diverged", "complete")))
    t = LookupTable.open(import_csv(csv2, tmp_path / "t2"))
    assert t.status[0] == "diverged" and t.n_recorded[0] == T - 1


def test_percent_and_cumulative_seconds(tmp_path):
    csv = long_csv(tmp_path / "c.csv", extra=lambda df: df.assign(
        accuracy=df.accuracy * 100, seconds=df.seconds * df.epoch))
    with pytest.raises(TableError, match="pass --percent"):
        import_csv(csv, tmp_path / "t")
    t = LookupTable.open(import_csv(csv, tmp_path / "t2", percent=True,
                                    cumulative_seconds=True))
    np.testing.assert_allclose(t.solo_seconds[1], 2.0)
    np.testing.assert_allclose(t.acc[1], 0.1 + 0.05 * np.arange(1, T + 1))


def test_duplicate_row_and_bad_json_are_named(tmp_path):
    csv = long_csv(tmp_path / "c.csv", extra=lambda df: pd.concat([df, df.iloc[[5]]]))
    with pytest.raises(TableError, match="lines 7 and 22: config 'run-1' epoch 2 appears twice"):
        import_csv(csv, tmp_path / "t")
    csv = long_csv(tmp_path / "d.csv", extra=lambda df: df.assign(
        hyperparameters=np.where(df.index == 4, "{not json", df.hyperparameters)))
    with pytest.raises(TableError, match="line 6: column 'hyperparameters' is not valid JSON"):
        import_csv(csv, tmp_path / "t")


def test_missing_column_is_named(tmp_path):
    csv = long_csv(tmp_path / "c.csv", extra=lambda df: df.drop(columns="seconds"))
    with pytest.raises(TableError, match=r"missing column\(s\) \['seconds'\]"):
        import_csv(csv, tmp_path / "t")
