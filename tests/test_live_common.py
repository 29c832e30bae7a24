"""hpo_sim.live.common: presets and their errors, typed configs, atomic result files, model
factory, data subsets, seeds, lazy method packages (`lcsim --help` without torch: in
tests/test_packaging.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from lcsim.hpo_sim.live import common
from lcsim.hpo_sim.live.common import (
    PresetError,
    build_config,
    child_seeds,
    load_data,
    load_preset,
    model_factory,
    preset_names,
    read_meta,
    seed_int,
    write_json,
    write_parquet,
)

from lcsim.errors import UserError

KEYS = {"required": ("dataset", "config"), "optional": ("val_size",)}


def test_every_method_ships_presets_and_they_load():
    from lcsim.hpo_sim.live.alrs.compare import PRESET_KEYS as ALRS
    from lcsim.hpo_sim.live.epbt.cli import PRESET_KEYS as EPBT
    from lcsim.hpo_sim.live.esgd.cli import PRESET_KEYS as ESGD

    for method, keys in (("alrs", ALRS), ("esgd", ESGD), ("epbt", EPBT)):
        names = preset_names(method)
        assert "mnist-small" in names
        for name in names:
            assert load_preset(method, name, **keys)["description"]


def test_a_preset_error_is_a_user_error():
    assert issubclass(PresetError, UserError) and issubclass(PresetError, ValueError)


def test_unknown_name_lists_the_shipped_presets():
    with pytest.raises(PresetError, match=r"unknown ESGD preset 'nope'; available: "
                                          r"cifar10-paper, mnist-small \(or a path"):
        load_preset("esgd", "nope", **KEYS)


@pytest.mark.parametrize("arg", ["missing.json", "sub/dir/preset"])
def test_a_missing_path_is_no_such_file_not_a_name(tmp_path, monkeypatch, arg):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PresetError, match=f"EPBT preset file {arg}: no such file"):
        load_preset("epbt", arg, **KEYS)


def _file(tmp_path, obj) -> str:
    p = tmp_path / "p.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(p)


def test_unknown_top_level_key_names_it_and_the_allowed_ones(tmp_path):
    path = _file(tmp_path, {"dataset": "mnist", "config": {}, "confg": {}})
    with pytest.raises(PresetError, match=r"unknown key\(s\) 'confg'; allowed: description, "
                                          r"dataset, config, val_size"):
        load_preset("esgd", path, **KEYS)


@pytest.mark.parametrize("obj, message", [
    ({"dataset": "mnist"}, "lacks the key(s) 'config'"),
    ("[1, 2]", "must be a JSON object, got list"),
    ('{"dataset": ', "is not valid JSON"),
])
def test_other_preset_mistakes_are_named(tmp_path, obj, message):
    with pytest.raises(PresetError) as e:
        load_preset("esgd", _file(tmp_path, obj), **KEYS)
    assert message in str(e.value) and "p.json" in str(e.value)


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    sizes: tuple[int, int] = (1, 2)

    def __post_init__(self):
        if self.rate < 0:
            raise ValueError(f"Inner.rate must be >= 0, got {self.rate}")


@dataclass(frozen=True)
class Outer:
    n: int = 1
    names: tuple[str, ...] = ()
    limit: int | None = None
    table: dict[str, float] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    flag: bool = False


def test_build_config_converts_json_values_to_the_field_types():
    cfg = build_config(Outer, {"n": 3, "names": ["a", "b"], "limit": None, "table": {"x": 1},
                               "inner": {"rate": 2, "sizes": [3, 4]}, "flag": True}, "w")
    assert cfg == Outer(3, ("a", "b"), None, {"x": 1.0}, Inner(2.0, (3, 4)), True)
    assert isinstance(cfg.inner.rate, float) and isinstance(cfg.table["x"], float)


@pytest.mark.parametrize("values, message", [
    ({"n": "two"}, "w.n: expected an integer, got 'two'"),
    ({"n": 2.5}, "w.n: expected an integer, got 2.5"),
    ({"n": True}, "w.n: expected an integer, got True"),
    ({"names": "abc"}, "w.names: expected a list, got the string 'abc'"),
    ({"names": ["a", 1]}, "w.names[1]: expected a string, got 1"),
    ({"limit": "x"}, "w.limit: expected an integer, got 'x'"),
    ({"table": [1]}, "w.table: expected an object, got [1]"),
    ({"inner": {"sizes": [1, 2, 3]}}, "w.inner.sizes: expected a list of 2, got [1, 2, 3]"),
    ({"inner": {"rates": 1}}, "w.inner: unknown key(s) 'rates'; allowed: rate, sizes"),
    ({"inner": {"rate": -1}}, "w.inner: Inner.rate must be >= 0, got -1.0"),
    ({"flag": "yes"}, "w.flag: expected true or false, got 'yes'"),
    ([1], "w: expected an object of settings, got [1]"),
])
def test_build_config_names_the_bad_value(values, message):
    with pytest.raises(PresetError) as e:
        build_config(Outer, values, "w")
    assert str(e.value) == message or str(e.value).startswith(message)


def test_write_parquet_is_atomic_and_keeps_the_metadata(tmp_path, monkeypatch):
    path = tmp_path / "r.parquet"
    write_parquet(pd.DataFrame({"a": [1, 2]}), path, {"device": "cpu", "root": tmp_path})
    assert read_meta(path) == {"device": "cpu", "root": str(tmp_path)}
    import pyarrow.parquet as pq

    def crash(table, where, **kw):  # a writer killed halfway: half a file on disk
        (where if hasattr(where, "write") else open(where, "wb")).write(b"PAR1 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        write_parquet(pd.DataFrame({"a": [3]}), path, {})
    assert pd.read_parquet(path)["a"].tolist() == [1, 2]  # the old file, intact
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]  # no temp file left


def test_read_meta_of_a_foreign_parquet_is_a_user_error(tmp_path):
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(UserError, match="no `lcsim` metadata"):
        read_meta(tmp_path / "f.parquet")


def test_write_json_replaces_atomically(tmp_path):
    write_json(tmp_path / "r.json", {"a": 1})
    write_json(tmp_path / "r.json", {"a": 2})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("spec, message", [
    ("mnist-cnn", "expected an object like"),
    ({"named": "mnist-cnn", "space": "mnist"}, "either 'named' or 'space' + 'config'"),
    ({"space": "mnist"}, "needs 'named', or 'space' with a 'config' object"),
    ({"named": "vgg"}, "m.named: unknown model 'vgg'; choose from mnist-cnn"),
    ({"nmaed": "mnist-cnn"}, "unknown key(s) 'nmaed'; allowed: named, space, config, name"),
])
def test_model_factory_names_a_bad_model(tiny_mnist_data, spec, message):
    with pytest.raises(PresetError, match=None) as e:
        model_factory(spec, tiny_mnist_data, "m")
    assert message in str(e.value)


def test_model_factory_builds_seeded_models_of_the_data_shape(tiny_mnist_data):
    import torch

    cfg = {"c1_filters": 2, "c2_filters": 2, "fc_units": 8, "filter_size": 3, "pool1": 2,
           "pool2": 2, "dropout": 0.0}  # activation / regularizer: the space's fixed values
    make = model_factory({"space": "mnist", "config": cfg}, tiny_mnist_data)
    a, b, c = make(1), make(1), make(2)
    vec = torch.nn.utils.parameters_to_vector
    assert torch.equal(vec(a.parameters()), vec(b.parameters()))
    assert not torch.equal(vec(a.parameters()), vec(c.parameters()))
    assert a(tiny_mnist_data.normalize(tiny_mnist_data.val_x[:2])).shape == (2, 10)


def test_load_data_keeps_the_first_training_examples(tiny_mnist_root, tiny_mnist_data):
    import torch

    data = load_data("mnist", str(tiny_mnist_root), train_examples=50)
    assert torch.equal(data.train_y, tiny_mnist_data.train_y[:50])
    assert torch.equal(data.val_y, tiny_mnist_data.val_y)  # the split is made before
    with pytest.raises(UserError, match=r"train_examples=999 must be in \[1, 205\]"):
        load_data("mnist", str(tiny_mnist_root), train_examples=999)


def test_seeds_come_from_seed_sequences():
    ss = np.random.SeedSequence(7)
    assert seed_int(7) == int(ss.generate_state(1)[0])
    kids = child_seeds(7, 3)
    assert kids == [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(7).spawn(3)]
    assert child_seeds(7, 3) == kids and len(set(kids)) == 3  # an int seed: reproducible
    seq = np.random.SeedSequence(7)
    assert child_seeds(seq, 2) == kids[:2] and child_seeds(seq, 1) == kids[2:]  # spawns on
    assert all(0 <= s < 2**31 for s in child_seeds(7, 50, below=2**31))


def test_method_packages_import_their_names_on_first_use():
    import lcsim.hpo_sim.live.esgd as pkg

    assert "ESGDResult" in dir(pkg) and "ESGDResult" in pkg.__all__
    assert pkg.ESGDResult.__module__ == "lcsim.hpo_sim.live.esgd.algorithm"
    with pytest.raises(AttributeError, match="has no attribute 'RunResult'"):
        pkg.RunResult  # noqa: B018
    assert common.lazy_exports  # the mechanism the packages share

