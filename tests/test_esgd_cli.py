"""`lcsim live esgd`: presets, Parquet output with provenance, resume, --out guard, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from lcsim.hpo_sim.live.common import build_config, load_preset, preset_names, read_meta
from lcsim.hpo_sim.live.esgd import ESGDConfig
from lcsim.hpo_sim.live.esgd import results as layout
from lcsim.hpo_sim.live.esgd.cli import PRESET_KEYS

from lcsim.cli import main

TINY_MODEL = {"space": "mnist", "config": {
    "c1_filters": 2, "c2_filters": 2, "fc_units": 8, "filter_size": 3, "pool1": 2, "pool2": 2,
    "dropout": 0.0, "activation": "relu", "regularizer": "batchnorm"}}
TINY_PRESET = {"dataset": "mnist", "val_size": 20, "model": TINY_MODEL,
               "config": {"mu": 3, "lam": 4, "generations": 2, "batch_size": 32,
                          "fitness_examples": 50, "recal_batches": 1, "elite_fraction": 0.67}}


@pytest.mark.parametrize("name", preset_names("esgd"))
def test_shipped_presets_are_valid(name):
    preset = load_preset("esgd", name, **PRESET_KEYS)
    cfg = build_config(ESGDConfig, preset["config"], name)
    assert cfg.rho == 2 and cfg.elite_fraction == 0.6
    if name == "cifar10-paper":  # Table 4
        assert (cfg.mu, cfg.lam, cfg.epochs_per_generation) == (128, 768, 20)
        assert preset["model"] == {"named": "resnet20"}
        assert cfg.pool.p_adam == 0 and cfg.pool.p_nesterov == 1 and cfg.pool.momentum == (
            0.9, 0.9)
        assert cfg.pool.lr_range("nesterov", 3) == (0.9, 1.1) and cfg.sigma(2) == 0.005
        assert [cfg.pool.base(e) for e in (1, 80, 81, 121, 122)] == [0.1, 0.1, 0.01, 0.01,
                                                                     0.001]


def _argv(tmp_path, root, preset=TINY_PRESET, *extra):
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps(preset))
    return ["live", "esgd", "--preset", str(pfile), "--out", str(tmp_path / "out"),
            "--data-root", str(root), "--train-examples", "64", *extra]


def test_cli_writes_parquet_records_and_resumes(tmp_path, tiny_mnist_root, capsys):
    out = tmp_path / "out"
    argv = _argv(tmp_path, tiny_mnist_root, TINY_PRESET, "--method", "all")
    assert main(argv) == 0
    for method in ("esgd", "population", "no-evolution", "single"):
        rec = pd.read_parquet(layout.method_dir(out, method) / layout.RECORDS)
        assert tuple(rec.columns) == layout.RECORD_COLUMNS
        assert set(rec.generation) == {0, 1, 2}
        final = pd.read_parquet(layout.method_dir(out, method) / layout.FINAL)
        assert tuple(final.columns) == layout.FINAL_COLUMNS
        meta = read_meta(layout.method_dir(out, method) / layout.RECORDS)
        assert meta["method"] == method and meta["train_examples"] == 64
        assert meta["config"]["mu"] == 3 and meta["code_revision"] and meta["device"] == "cpu"
        assert meta["device_name"].startswith("cpu") and "torch" in meta["versions"]
    esgd = pd.read_parquet(out / "esgd" / layout.RECORDS)
    kids = esgd[esgd.offspring]
    assert len(kids) == 8 and all(len(p) == 2 for p in kids.parents)
    summary = pd.read_csv(out / layout.SUMMARY)
    assert list(summary.method) == ["esgd", "population", "no-evolution", "single"]
    # Table 1's top 15 as a range [theta_1, theta_15], the mean kept beside it
    assert (summary.top15_fitness_low == summary.best_fitness).all()
    assert (summary.top15_fitness_low <= summary.top15_fitness_mean).all()
    assert (summary.top15_fitness_mean <= summary.top15_fitness_high).all()
    assert summary.top15_test_error_low.between(0, 1).all()
    assert (summary.top15_test_error_low <= summary.top15_test_error_high).all()
    gens = pd.read_parquet(layout.method_dir(out, "esgd") / layout.GENERATIONS)
    assert list(gens.generation) == [0, 1, 2] and (gens.m == 2).all()
    assert (gens.best_fitness <= gens.m_elitist_fitness).all()
    meta = read_meta(layout.method_dir(out, "esgd") / layout.GENERATIONS)
    assert meta["config"]["fitness_on"] == "train" and meta["fitness_examples_used"] == 50
    capsys.readouterr()
    assert main(argv) == 0  # second time: everything is done already
    assert capsys.readouterr().out.count("done already, skipped") == 4


def test_other_settings_in_out_are_refused_then_replaced_with_force(tmp_path, tiny_mnist_root,
                                                                     capsys):
    out = tmp_path / "out"
    assert main(_argv(tmp_path, tiny_mnist_root, TINY_PRESET, "--method", "single",
                      "--no-progress")) == 0
    before = (out / "single" / layout.RECORDS).read_bytes()
    capsys.readouterr()
    other = _argv(tmp_path, tiny_mnist_root, TINY_PRESET, "--method", "single", "--seed", "5",
                  "--no-progress")
    assert main(other) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcsim live esgd: error: --out") and "config.seed: 0 -> 5" in err
    assert "--force" in err and "single" in err
    assert (out / "single" / layout.RECORDS).read_bytes() == before  # nothing lost
    assert main([*other, "--force"]) == 0
    meta = read_meta(out / "single" / layout.RECORDS)
    assert meta["config"]["seed"] == 5


@pytest.mark.parametrize("change, message", [
    ({"configs": {}}, "unknown key(s) 'configs'; allowed: description, dataset, model, config"),
    ({"config": {**TINY_PRESET["config"], "mu": "two"}}, "config.mu: expected an integer, "
                                                        "got 'two'"),
    ({"config": {**TINY_PRESET["config"], "pool": {"sgd_lr": "0.1"}}},
     "config.pool.sgd_lr: expected a list, got the string '0.1'"),
    ({"config": {**TINY_PRESET["config"], "mu": 0}}, "ESGDConfig.mu must be >= 1, got 0"),
    ({"model": {"named": "vgg"}}, "model.named: unknown model 'vgg'"),
])
def test_bad_presets_are_one_line_errors(tmp_path, tiny_mnist_root, capsys, change, message):
    rc = main(_argv(tmp_path, tiny_mnist_root, {**TINY_PRESET, **change}, "--no-progress"))
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("lcsim live esgd: error: ESGD preset")
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before writing anything


@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (["--mu", "0"], "argument --mu: must be an integer >= 1, got 0"),
    (["--train-examples", "0"], "argument --train-examples: must be an integer >= 1, got 0"),
    (["--device", "cuda"], "--device cuda: no CUDA device is visible on this machine; run on "
                           "the CPU with --device cpu"),
    (["--preset", "nope"], "unknown ESGD preset 'nope'; available: cifar10-paper, mnist-small "
                           "(or a path to a .json file)"),
])
def test_bad_flags_are_one_line_errors(tmp_path, tiny_mnist_root, user_error, monkeypatch,
                                       flags, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["live", "esgd", "--out", str(tmp_path / "out"), "--data-root",
               str(tiny_mnist_root), *flags])
    assert rc == 2 and user_error("live esgd") == f"lcsim live esgd: error: {message}"
    assert not (tmp_path / "out").exists()


def test_fitness_on_the_whole_training_set_without_a_validation_split(tmp_path,
                                                                      tiny_mnist_root):
    preset = {**TINY_PRESET, "val_size": 0,
              "config": {**TINY_PRESET["config"], "fitness_examples": 0}}
    assert main(_argv(tmp_path, tiny_mnist_root, preset, "--method", "esgd", "single")) == 0
    meta = read_meta(tmp_path / "out" / "esgd" / layout.RECORDS)
    # the paper's protocol: no validation split, fitness on all training examples used
    assert meta["val_examples"] == 0 and meta["fitness_examples_used"] == 64
    rec = pd.read_parquet(tmp_path / "out" / "single" / layout.RECORDS)
    assert rec.fitness.notna().all() and len(rec) == 3  # single trains without validation


def test_fitness_on_val_without_a_validation_split_is_refused(tmp_path, tiny_mnist_root,
                                                              user_error):
    preset = {**TINY_PRESET, "val_size": 0,
              "config": {**TINY_PRESET["config"], "fitness_on": "val"}}
    assert main(_argv(tmp_path, tiny_mnist_root, preset)) == 2
    assert "fitness_on='val' needs a validation split" in user_error("live esgd")
    assert not list((tmp_path / "out").glob("*/records.parquet"))
