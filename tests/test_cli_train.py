"""`lcsim train`: prints the config and one line of real metrics per epoch; clear errors."""

import json
import shutil

import pytest
from lcsim.tabular.spaces import MNIST_SPACE

from lcsim.cli import main

SMALL = {"c1_filters": 4, "c2_filters": 8, "fc_units": 16, "filter_size": 3, "pool1": 2,
         "pool2": 2, "learning_rate": 3e-3, "l2_weight": 0.0, "dropout": 0.1}


def _epoch_lines(out):
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 7 and parts[0].isdigit():
            rows.append([float(v) for v in parts])
    return rows


def test_train_prints_config_and_one_line_per_epoch(tiny_mnist_root, capsys):
    rc = main(["train", "--space", "mnist", "--dataset", "mnist", "--data-root",
               str(tiny_mnist_root), "--config", json.dumps(SMALL), "--epochs", "2",
               "--batch-size", "32", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    assert json.dumps(MNIST_SPACE.validate(SMALL), sort_keys=True) in out
    rows = _epoch_lines(out)
    assert [r[0] for r in rows] == [1, 2]
    for _, train_loss, val_loss, val_acc, train_s, eval_s, _eta in rows:
        assert 0 < train_loss < 10 and 0 < val_loss < 10 and 0 <= val_acc <= 1
        assert train_s > 0 and eval_s >= 0
    assert "status complete" in out and "205 train / 51 val" in out


def test_config_from_a_file(tiny_mnist_root, tmp_path, capsys):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(SMALL))
    rc = main(["train", "--space", "mnist", "--data-root", str(tiny_mnist_root),
               "--config", str(path), "--epochs", "1"])
    assert rc == 0 and len(_epoch_lines(capsys.readouterr().out)) == 1


def test_index_selects_the_sobol_config(capsys):
    rc = main(["train", "--space", "cifar10", "--index", "5", "--sobol-seed", "3",
               "--dry-run"])
    out = capsys.readouterr().out
    from lcsim.tabular.spaces import CIFAR10_SPACE

    assert rc == 0 and CIFAR10_SPACE.to_json(CIFAR10_SPACE.config_at(5, 3)) in out
    assert "params" in out and "FLOPs" in out


def test_out_of_range_config_names_the_parameter(capsys):
    rc = main(["train", "--space", "mnist", "--config",
               json.dumps({**SMALL, "filter_size": 11}), "--dry-run"])
    assert rc == 2 and "filter_size" in capsys.readouterr().err


def test_missing_dataset_is_a_message_not_a_traceback(tmp_path, capsys):
    rc = main(["train", "--space", "cifar10", "--data-root", str(tmp_path), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "cifar-10-batches-py" in err and "--download" in err


def test_malformed_config_json_is_a_user_error_with_exit_2(capsys):
    assert main(["train", "--space", "mnist", "--config", "{not json", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcsim train: error: --config '{not json' is neither a JSON object")
    assert "Traceback" not in err and err.count("\n") == 1


def test_cuda_device_without_cuda_says_how_to_run_on_cpu(user_error):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert main(["train", "--space", "mnist", "--device", "cuda", "--epochs", "1"]) == 2
    assert user_error("train") == ("lcsim train: error: --device cuda: no CUDA device is "
                                   "visible on this machine; run on the CPU with --device cpu")


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
    (["--index", "-1"], "argument --index: must be an integer >= 0, got -1"),
    (["--config", "[1, 2]"], "--config must be a JSON object, got [1, 2]"),
    (["--config", "missing.json"], "--config 'missing.json' is neither a JSON object nor a "
                                   "readable JSON file"),
])
def test_careless_arguments_are_one_line_with_exit_2(user_error, argv, message):
    assert main(["train", "--space", "mnist", "--dry-run", *argv]) == 2
    assert message in user_error("train")


def test_bf16_is_one_switch_off_by_default_for_train():
    from lcsim.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["train", "--space", "mnist"]).bf16 is False
    assert parse(["train", "--space", "mnist", "--bf16"]).bf16 is True
    assert parse(["pregen", "run", "--space", "mnist", "--n-configs", "1", "--out", "x"]).bf16
    assert not parse(["pregen", "run", "--space", "mnist", "--n-configs", "1", "--out", "x",
                      "--no-bf16"]).bf16


def test_train_augmentation_is_off_by_default_and_switchable(tiny_cifar10_root, capsys):
    cfg = {"c1_filters": 8, "c2_filters": 32, "c3_filters": 64, "c4_filters": 64,
           "fc_units": 10, "filter_size": 2, "learning_rate": 1e-3, "l2_weight": 0.0,
           "activation": "relu", "regularizer": "none"}
    base = ["train", "--space", "cifar10", "--data-root", str(tiny_cifar10_root), "--config",
            json.dumps(cfg), "--epochs", "1", "--batch-size", "32"]
    assert main(base) == 0
    assert "augment none" in capsys.readouterr().out  # the paper's recipe: none
    assert main([*base, "--augment", "crop,flip,cutout:8"]) == 0
    assert "augment crop,flip,cutout:8" in capsys.readouterr().out


def test_train_bad_augmentation_is_one_line(user_error):
    assert main(["train", "--space", "mnist", "--augment", "crop,,flip"]) == 2
    assert "argument --augment: unknown augmentation ''" in user_error("train")


# --- lcsim train --table T --id I: a row re-trained with the table's recipe ------------------


@pytest.fixture(scope="module")
def small_table(tiny_mnist10_root, tmp_path_factory):
    from lcsim.pregen.runner import RunConfig, run

    out = tmp_path_factory.mktemp("row") / "t"
    run(RunConfig(out=str(out), space="mnist", dataset="mnist",
                  data_root=str(tiny_mnist10_root), n_configs=3, epochs=3, max_train=24,
                  val_size=12, seed=5, split_seed=2, batch_size=8, progress=False))
    return out


def test_a_generated_row_is_reproduced_exactly(small_table, tiny_mnist10_root, capsys):
    from lcsim.pregen.recipe import retrain, stored_curve
    from lcsim.tabular.table import LookupTable

    t = LookupTable.open(small_table, cache=False)
    assert t.meta["train_spec"]["batch_size"] == 8 and t.meta["cpu_capability"]
    res = retrain(t, 2)
    stored = stored_curve(t, 2)
    assert [r.val_accuracy for r in res.epochs] == stored["val_accuracy"].tolist()
    assert [r.train_loss for r in res.epochs] == stored["train_loss"].tolist()
    assert [r.val_loss for r in res.epochs] == stored["val_loss"].tolist()

    assert main(["train", "--table", str(small_table), "--id", "2"]) == 0
    out = capsys.readouterr().out
    assert "reproduced exactly: 3 epoch(s), accuracies and losses equal" in out
    rows = [ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3"] and all(r[-1] == "yes" for r in rows)


def test_a_row_trained_with_another_seed_is_reported_not_reproduced(small_table, capsys):
    meta = json.loads((small_table / "meta.json").read_text())
    copy = small_table.parent / "other-seed"
    shutil.copytree(small_table, copy, ignore=shutil.ignore_patterns(".lcsim*"))
    meta["seed"] = 6  # what `lcsim train --seed` used to do: not the table's derived seed
    (copy / "meta.json").write_text(json.dumps(meta))
    assert main(["train", "--table", str(copy), "--id", "1", "--epochs", "2"]) == 1
    out = capsys.readouterr().out
    assert "not reproduced: epoch 1: " in out and " NO" in out


def test_train_table_errors_name_the_problem(small_table, capsys):
    assert main(["train", "--table", str(small_table), "--id", "7"]) == 2
    assert "--id 7: config_id 7 is not in this table" in capsys.readouterr().err
    assert main(["train", "--table", str(small_table)]) == 2
    assert "--table and --id go together" in capsys.readouterr().err
    assert main(["train", "--table", str(small_table), "--id", "0", "--epochs", "9"]) == 2
    assert "the table has epochs 1..3" in capsys.readouterr().err


def test_the_shipped_table_row_3_is_reproduced_exactly(tiny_mnist_root, monkeypatch, capsys):
    import torch
    from lcsim.tabular.table import LookupTable

    from lcsim.provenance import device_name

    m = LookupTable.open("mnist-10k-cpu").meta
    made = (m["versions"]["torch"].split("+")[0], m.get("cpu_capability"), m["device"])
    here = (torch.__version__.split("+")[0], torch.backends.cpu.get_cpu_capability(),
            device_name("cpu"))
    if made != here:
        pytest.skip(f"bit-exact CPU re-training needs the table's torch build and CPU kernels "
                    f"(table: {made}; here: {here})")
    monkeypatch.setenv("LCSIM_DATA_ROOT", str(tiny_mnist_root))  # must not replace its data
    assert main(["train", "--table", "mnist-10k-cpu", "--id", "3"]) == 0
    out = capsys.readouterr().out
    assert "reproduced exactly: 20 epoch(s), accuracies and losses equal to the table's" in out
