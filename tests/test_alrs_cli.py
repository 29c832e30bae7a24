"""`lcsim live alrs` and `lcsim live alrs-compare`: outputs, the result layout, the --out
guard and bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from lcsim.hpo_sim.live.alrs import compare as alrs_compare
from lcsim.hpo_sim.live.alrs import results as layout
from lcsim.hpo_sim.live.common import read_meta

from lcsim.cli import main

SMALL_MODEL = {"name": "tiny-cnn", "space": "mnist", "config": {
    "c1_filters": 4, "c2_filters": 8, "fc_units": 16, "filter_size": 3, "pool1": 2,
    "pool2": 2, "dropout": 0.0, "activation": "relu", "regularizer": "none"}}
EXPERIMENT = {"dataset": "mnist", "model": SMALL_MODEL, "optimizers": ["adam"], "epochs": 1,
              "batch_size": 32, "seeds": [0], "standard_lr": {"adam": 1e-3},
              "grid": {"adam": [1e-3, 1e-2, 1e-1]}, "methods": ["alrs", "standard", "grid"]}


def _compare(tmp_path, root, experiments, *extra):
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"description": "test", "device": "cpu",
                                  "experiments": experiments}))
    return main(["live", "alrs-compare", "--preset", str(preset), "--out",
                 str(tmp_path / "out"), "--data-root", str(root), "--no-progress", *extra])


def test_cli_compare_writes_the_layout_and_resumes(tiny_mnist_root, tmp_path, capsys,
                                                   monkeypatch):
    assert _compare(tmp_path, tiny_mnist_root, [EXPERIMENT]) == 0
    out = tmp_path / "out"
    runs = pd.read_parquet(out / layout.RUNS)
    assert tuple(runs.columns) == layout.RUN_COLUMNS
    assert set(runs["method"]) == {"alrs", "standard", "grid"}
    assert (out / layout.loss_plot("adam")).stat().st_size > 1000
    assert (out / layout.SUMMARY_MD).read_text().startswith("| experiment")
    meta = read_meta(out / layout.SUMMARY)
    assert meta["device"] == "cpu" and meta["experiments"][0]["epochs"] == 1
    assert meta["preset"]["description"] == "test" and meta["code_revision"]
    assert meta["augment"] == {"mnist-tiny-cnn-1ep": []}  # recorded, here MNIST's none
    assert "grid best 3" in capsys.readouterr().out
    # every file is in the layout, so --force can replace them all
    written = {p.name for p in out.iterdir() if not p.name.startswith(".")} - {"lcsim-run.json"}
    assert written == {p.name for r in layout.RESULTS for p in out.glob(r)}
    assert written >= {layout.RUN_FILES, layout.RUNS, layout.SEED_STUDY, layout.SUMMARY}

    def boom(*a, **k):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(alrs_compare, "_one_run", boom)
    monkeypatch.setattr(alrs_compare, "_alrs_rate", boom)
    assert _compare(tmp_path, tiny_mnist_root, [EXPERIMENT]) == 0  # resumes from runs/*.json
    pd.testing.assert_frame_equal(pd.read_parquet(out / layout.RUNS), runs)


def test_cli_compare_adjustment_is_a_setting_of_the_folder(tiny_mnist_root, tmp_path,
                                                          capsys):
    exp = {**EXPERIMENT, "methods": ["alrs"]}
    assert _compare(tmp_path, tiny_mnist_root, [exp], "--adjustment", "cumulative") == 0
    runs = pd.read_parquet(tmp_path / "out" / layout.RUNS)
    assert (runs["alrs_adjustment"] == "cumulative").all()
    assert read_meta(tmp_path / "out" / layout.RUNS)["experiments"][0]["alrs_adjustment"] \
        == "cumulative"
    assert _compare(tmp_path, tiny_mnist_root, [exp]) == 2  # the other reading: refused
    assert "adjustment" in capsys.readouterr().err


def test_cli_compare_refuses_other_settings_unless_forced(tiny_mnist_root, tmp_path, capsys):
    assert _compare(tmp_path, tiny_mnist_root, [{**EXPERIMENT, "methods": ["standard"]}]) == 0
    one_epoch = pd.read_parquet(tmp_path / "out" / layout.RUNS).train_batches.iloc[0]
    capsys.readouterr()
    other = [{**EXPERIMENT, "methods": ["standard"], "epochs": 2}]
    assert _compare(tmp_path, tiny_mnist_root, other) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcsim live alrs-compare: error: --out") and "--force" in err
    assert _compare(tmp_path, tiny_mnist_root, other, "--force") == 0
    runs = pd.read_parquet(tmp_path / "out" / layout.RUNS)
    assert runs.train_batches.tolist() == [2 * one_epoch]  # the new run, not the stale one
    assert len(list((tmp_path / "out" / layout.RUN_FILES).iterdir())) == 1


@pytest.mark.parametrize("experiments, message", [
    ([{**EXPERIMENT, "optimizers": "adam"}],
     "experiments[0].optimizers: expected a list, got the string 'adam'"),
    ([{**EXPERIMENT, "epochs": "two"}], "experiments[0].epochs: expected an integer, got 'two'"),
    ([{**EXPERIMENT, "epoch": 2}], "experiments[0]: unknown key(s) 'epoch'; allowed:"),
    ([], "experiments: expected a non-empty list of experiments"),
])
def test_bad_presets_are_one_line_errors(tiny_mnist_root, tmp_path, capsys, experiments,
                                         message):
    assert _compare(tmp_path, tiny_mnist_root, experiments) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcsim live alrs-compare: error: ALRS preset") and message in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["alrs-compare", "--preset", "nope", "--out", "OUT"],
     "lcsim live alrs-compare: error: unknown ALRS preset 'nope'; available: mnist-small, "
     "paper"),
    (["alrs-compare", "--preset", "mnist-small", "--device", "cuda", "--out", "OUT"],
     "lcsim live alrs-compare: error: --device cuda: no CUDA device is visible"),
    (["alrs", "--device", "cuda"], "lcsim live alrs: error: --device cuda: no CUDA device"),
    (["alrs", "--batch-size", "0"], "lcsim live alrs: error: argument --batch-size: must be an "
                                    "integer >= 1, got 0"),
    (["alrs", "--seed", "-1"], "lcsim live alrs: error: argument --seed: must be an integer >= "
                               "0, got -1"),
    (["alrs", "--dataset", "foo"], "lcsim live alrs: error: unknown dataset 'foo'; choose from "
                                   "mnist, cifar10"),
    (["alrs", "--optimizer", "adamw"], "lcsim live alrs: error: --optimizer 'adamw': choose "
                                       "from sgd, momentum, nesterov, rmsprop, adam"),
    (["alrs", "--initial-lr", "-1"], "lcsim live alrs: error: --initial-lr: ALRSConfig"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, user_error, argv, message, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert main(["live", *argv]) == 2
    assert user_error(f"live {argv[0]}").startswith(message)
    assert not (tmp_path / "OUT").exists()


def test_cli_alrs_prints_rate_and_cost(tiny_mnist_root, tmp_path, capsys, monkeypatch):
    from lcsim.pregen import models

    # The CLI's wiring is under test, not mnist-cnn's 0.85 M parameters: build the tiny net.
    def tiny_named(name, *, in_shape, num_classes, seed=0):
        assert name == "mnist-cnn"
        return models.build_model("mnist", SMALL_MODEL["config"], in_shape=in_shape,
                                  num_classes=num_classes, seed=seed)

    monkeypatch.setattr(models, "build_named_model", tiny_named)
    trace = tmp_path / "trace.json"
    rc = main(["live", "alrs", "--dataset", "mnist", "--data-root", str(tiny_mnist_root),
               "--model", "mnist-cnn", "--optimizer", "adam", "--batch-size", "64",
               "--trace", str(trace)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "ALRS learning rate:" in captured.out and "batches" in captured.out
    assert "batches per epoch" in captured.err  # the log line --no-progress silences
    saved = json.loads(trace.read_text())
    assert saved["lr"] == pytest.approx(saved["search_value"] / 10)
    assert saved["adjustment"] == "last"  # DESIGN.md's reading unless --adjustment
    assert main(["live", "alrs", "--data-root", str(tiny_mnist_root), "--batch-size", "64",
                 "--adjustment", "cumulative", "--trace", str(trace)]) == 0
    assert "ADJUSTMENT reading 'cumulative'" in capsys.readouterr().out
    assert json.loads(trace.read_text())["adjustment"] == "cumulative"
    assert saved["trace"] and {"signal", "value", "lower", "upper", "phase"} <= set(
        saved["trace"][0])
