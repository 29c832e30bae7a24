"""`lcsim live epbt`: presets, the engine's data checks, the closing tables, a whole run with
its result layout, resume, the --out guard and bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.live.common import build_config, load_preset, preset_names, read_meta
from lcsim.hpo_sim.live.epbt import Engine, EPBTConfig, closing_tables
from lcsim.hpo_sim.live.epbt import results as layout
from lcsim.hpo_sim.live.epbt.cli import PRESET_KEYS

from lcsim.cli import main

TINY_PRESET = {
    "dataset": "mnist", "val_size": 40,
    "model": {"space": "mnist", "config": {
        "c1_filters": 2, "c2_filters": 2, "fc_units": 8, "filter_size": 3, "pool1": 2,
        "pool2": 2, "dropout": 0.0, "activation": "relu", "regularizer": "batchnorm"}},
    "config": {"population": 4, "elites": 2, "generations": 2, "epochs_per_generation": 1,
               "batch_size": 32, "behaviour_size": 20, "bn_batches": 2, "novelty_period": 1}}


@pytest.mark.parametrize("name", preset_names("epbt"))
def test_presets_build_valid_configs(name):
    preset = load_preset("epbt", name, **PRESET_KEYS)
    cfg = build_config(EPBTConfig, preset["config"], name)
    assert cfg.elites < cfg.population
    if name.startswith("cifar10"):  # paper 4.1
        assert (cfg.population, cfg.elites, cfg.generations, cfg.epochs_per_generation) == (
            40, 20, 25, 8)
        assert preset["val_size"] == 1250 and cfg.val_copies == 20
        # Baseline 1: flips, translations and cutout, on all 50,000 images; 5 runs
        assert preset["augment"] == ["crop", "flip", "cutout:16"] and cfg.baseline_full_train
        assert preset["seeds"] == [0, 1, 2, 3, 4]
        assert "4,160" in preset["description"] and "8,000" in preset["description"]
    if name == "cifar10-paper":
        assert preset["model"] == {"named": "resnet32"}
        assert preset["methods"] == ["epbt", "pbt", "baseline"]
    if name == "cifar10-wrn":  # Fig. 3: EPBT vs Baseline 1 on WRN-10-12 ... WRN-28-5
        assert preset["model"] == {"named": "wrn-28-5"} and preset["methods"] == [
            "epbt", "baseline"]
    if name == "svhn-paper":  # paper 4.2
        assert preset["dataset"] == "svhn-extra" and preset["val_size"] == 30_000
        assert preset["augment"] == [] and preset["methods"] == ["epbt", "baseline"]
        assert (cfg.generations, cfg.epochs_per_generation) == (40, 1)
        assert [int(round(f * cfg.total_epochs)) for f in cfg.milestones] == [20, 30]
        assert cfg.baseline_decay == 0.1 and len(preset["seeds"]) == 5


def _curve(method, seed, accs):
    return pd.DataFrame({"method": method, "seed": seed, "generation": range(len(accs)),
                         "epoch": [2 * (g + 1) for g in range(len(accs))],
                         "individual": range(len(accs)), "fitness": accs,
                         "test_accuracy": accs})


def test_closing_tables_mean_std_and_epochs_to_pass():
    rec = pd.concat([
        _curve("baseline", 0, [0.5, 0.7, 0.80]), _curve("baseline", 1, [0.5, 0.7, 0.84]),
        _curve("epbt", 0, [0.6, 0.83, 0.9]), _curve("epbt", 1, [0.6, 0.75, 0.85]),
    ])
    t = closing_tables(rec).set_index("method")
    assert t.loc["baseline", "final_test_acc_mean"] == pytest.approx(0.82)
    assert t.loc["baseline", "final_test_acc_std"] == pytest.approx(np.std([0.8, 0.84],
                                                                           ddof=1))
    # EPBT seed 0 passes 0.82 at epoch 4, seed 1 at epoch 6 -> mean 5
    assert t.loc["baseline", "epbt_epochs_to_pass"] == 5
    assert t.loc["baseline", "epbt_runs_passing"] == "2/2"


def test_augmented_validation_copies_multiply_the_fitness_set(tiny_images, bn_net):
    kw = dict(seed=0, batch_size=16, behaviour_size=10, bn_batches=1)
    one = Engine(tiny_images, bn_net, **kw)
    three = Engine(tiny_images, bn_net, val_copies=3, **kw)
    n1 = sum(len(y) for _, y in one.val)
    assert sum(len(y) for _, y in three.val) == 3 * n1
    assert len(three.beh_y) == 10


def test_engine_refuses_data_on_another_device(tiny_images, bn_net):
    with pytest.raises(ValueError, match="data is on cpu"):
        Engine(tiny_images, bn_net, seed=0, batch_size=16, behaviour_size=10, bn_batches=1,
               device="meta")


def _argv(tmp_path, root, preset, *extra):
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps(preset))
    return ["live", "epbt", "--preset", str(pfile), "--out", str(tmp_path / "out"),
            "--data-root", str(root), "--no-progress", *extra]


def test_cli_writes_each_run_and_the_tables_and_resumes(tmp_path, tiny_mnist_root, capsys):
    argv = _argv(tmp_path, tiny_mnist_root, TINY_PRESET, "--method", "epbt", "baseline",
                 "--seeds", "0", "1")
    assert main(argv) == 0
    out = tmp_path / "out"
    runs = layout.run_dirs(out)
    assert [layout.parse_run_dir(d) for d in runs] == [
        ("baseline", 0), ("baseline", 1), ("epbt", 0), ("epbt", 1)]
    rec = pd.read_parquet(layout.run_dir(out, "epbt", 1) / layout.RECORDS)
    assert tuple(rec.columns[:len(layout.RECORD_COLUMNS)]) == layout.RECORD_COLUMNS
    assert set(rec.seed) == {1} and set(rec.generation) == {0, 1}
    meta = read_meta(layout.run_dir(out, "epbt", 1) / layout.LINEAGE)
    assert meta["config"]["seed"] == 1 and meta["config"]["population"] == 4
    assert meta["device"] == "cpu" and meta["code_revision"]
    summary = pd.read_csv(out / layout.SUMMARY)
    assert set(summary.method) == {"epbt", "baseline"} and (summary.seeds == 2).all()
    before = (layout.run_dir(out, "epbt", 0) / layout.RECORDS).read_bytes()
    capsys.readouterr()
    assert main([a for a in argv if a != "--no-progress"]) == 0  # finished runs are kept
    assert capsys.readouterr().out.count("done already, skipped") == 4
    assert (layout.run_dir(out, "epbt", 0) / layout.RECORDS).read_bytes() == before


def test_other_settings_are_refused_and_force_replaces_every_run(tmp_path, tiny_mnist_root,
                                                                 capsys):
    out = tmp_path / "out"
    assert main(_argv(tmp_path, tiny_mnist_root, TINY_PRESET, "--method", "baseline")) == 0
    capsys.readouterr()
    other = _argv(tmp_path, tiny_mnist_root, TINY_PRESET, "--method", "baseline",
                  "--generations", "1")
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "lcsim live epbt: error: --out" in err and "config.generations: 2 -> 1" in err
    assert "baseline-seed0" in err
    assert main([*other, "--force"]) == 0
    rec = pd.read_parquet(layout.run_dir(out, "baseline", 0) / layout.RECORDS)
    assert set(rec.generation) == {0}  # the new run, not the stale one


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope"], "unknown EPBT preset 'nope'; available: cifar10-paper, "
                           "cifar10-wrn, mnist-small, svhn-paper"),
    (["--preset", "missing.json"], "EPBT preset file missing.json: no such file"),
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--seeds", "0", "-1"], "argument --seeds: must be an integer >= 0, got -1"),
    (["--population", "0"], "argument --population: must be an integer >= 1, got 0"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, user_error, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["live", "epbt", "--out", str(tmp_path / "out"), *argv])
    assert rc == 2 and message in user_error("live epbt")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    ({"seed": [0]}, "unknown key(s) 'seed'; allowed: description, dataset, model, config, "
                    "val_size, augment, seeds, methods"),
    ({"seeds": [0, -1]}, "seeds must be a list of integers >= 0, got [0, -1]"),
    ({"seeds": "0 1"}, "seeds must be a list of integers >= 0, got '0 1'"),
    ({"methods": ["epbt", "cma"]}, "methods ['epbt', 'cma']: choose from"),
    ({"augment": ["crop", "blur"]}, "augment: unknown augmentation 'blur'"),
    ({"config": {**TINY_PRESET["config"], "population": "two"}},
     "config.population: expected an integer, got 'two'"),
    ({"config": {**TINY_PRESET["config"], "milestones": "0.5"}},
     "config.milestones: expected a list, got the string '0.5'"),
    ({"config": {**TINY_PRESET["config"], "pbt": {"frac": 0.9}}},
     "config.pbt: PBTConfig.frac must be in (0, 0.5], got 0.9"),
])
def test_bad_presets_are_one_line_errors(tmp_path, tiny_mnist_root, capsys, change, message):
    rc = main(_argv(tmp_path, tiny_mnist_root, {**TINY_PRESET, **change}))
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("lcsim live epbt: error: EPBT preset")
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_svhn_extra_run_from_a_preset_with_its_seeds_methods_and_a_wide_resnet(
        tmp_path, tiny_svhn_root):
    preset = {"dataset": "svhn-extra", "val_size": 20, "augment": ["flip", "cutout:8"],
              "model": {"named": "resnet20"}, "seeds": [0, 1], "methods": ["baseline"],
              "config": {"population": 2, "elites": 1, "generations": 2,
                         "epochs_per_generation": 1, "batch_size": 64, "behaviour_size": 10,
                         "bn_batches": 1}}
    argv = _argv(tmp_path, tiny_svhn_root, preset, "--model", "wrn-10-1")
    assert main(argv) == 0
    out = tmp_path / "out"
    assert [layout.parse_run_dir(d) for d in layout.run_dirs(out)] == [
        ("baseline", 0), ("baseline", 1)]  # the preset's seeds and methods
    meta = read_meta(layout.run_dir(out, "baseline", 1) / layout.RECORDS)
    # train (120) + extra (60) = 180 images; Baseline 1 trains on all of them, val included
    assert meta["train_examples"] == 180 and meta["config"]["baseline_full_train"]
    assert meta["augment"] == ["flip", "cutout:8"] and meta["model"] == "wrn-10-1"
    summary = pd.read_csv(out / layout.SUMMARY).iloc[0]
    assert summary.seeds == 2 and summary.member_epochs == 2  # one member, 2 epochs
    assert summary.final_test_acc_min <= summary.final_test_acc_mean <= summary.final_test_acc_max
    assert summary.final_test_acc_se == pytest.approx(summary.final_test_acc_std / np.sqrt(2))
