"""`lcsim live esgd`: presets, Parquet output with provenance, resume, the Table 1 summary."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from lcsim.hpo_sim.live.esgd import ESGDConfig
from lcsim.hpo_sim.live.esgd_cli import PRESETS, load_preset

from lcsim.cli import main

TINY_MODEL = {"space": "mnist", "config": {
    "c1_filters": 2, "c2_filters": 2, "fc_units": 8, "filter_size": 3, "pool1": 2, "pool2": 2,
    "dropout": 0.0, "activation": "relu", "regularizer": "batchnorm"}}


@pytest.mark.parametrize("name", PRESETS)
def test_shipped_presets_are_valid(name):
    preset = load_preset(name)
    cfg = ESGDConfig.from_dict(preset["config"])
    assert cfg.rho == 2 and cfg.elite_fraction == 0.6
    if name == "cifar10-paper":  # Table 4
        assert (cfg.mu, cfg.lam, cfg.epochs_per_generation) == (128, 768, 20)
        assert preset["model"] == {"named": "resnet20"}
        assert cfg.pool.p_adam == 0 and cfg.pool.p_nesterov == 1 and cfg.pool.momentum == (
            0.9, 0.9)
        assert cfg.pool.lr_range("nesterov", 3) == (0.9, 1.1) and cfg.sigma(2) == 0.005
        assert [cfg.pool.base(e) for e in (1, 80, 81, 121, 122)] == [0.1, 0.1, 0.01, 0.01,
                                                                     0.001]


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown ESGD preset 'nope'"):
        load_preset("nope")


def test_cli_writes_parquet_records_and_resumes(tmp_path, tiny_mnist_root, capsys):
    preset = {"dataset": "mnist", "val_size": 20, "model": TINY_MODEL,
              "config": {"mu": 3, "lam": 4, "generations": 2, "batch_size": 32,
                         "fitness_examples": 50, "recal_batches": 1, "elite_fraction": 0.67}}
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps(preset))
    out = tmp_path / "out"
    argv = ["live", "esgd", "--preset", str(pfile), "--method", "all", "--out", str(out),
            "--data-root", str(tiny_mnist_root), "--train-examples", "64"]
    assert main(argv) == 0
    for method in ("esgd", "population", "no-evolution", "single"):
        rec = pd.read_parquet(out / method / "records.parquet")
        assert set(rec.generation) == {0, 1, 2}
        meta = json.loads(pq.read_schema(out / method / "records.parquet").metadata[b"lcsim"])
        assert meta["method"] == method and meta["train_examples"] == 64
        assert meta["config"]["mu"] == 3 and "code_revision" in meta and "torch" in meta
    esgd = pd.read_parquet(out / "esgd" / "records.parquet")
    kids = esgd[esgd.offspring]
    assert len(kids) == 8 and all(len(p) == 2 for p in kids.parents)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.method) == ["esgd", "population", "no-evolution", "single"]
    assert summary.top15_test_error.between(0, 1).all()
    capsys.readouterr()
    assert main(argv) == 0  # second time: everything is done already
    assert capsys.readouterr().out.count("done already, skipped") == 4
