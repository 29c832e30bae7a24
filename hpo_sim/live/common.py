"""What every live method shares: presets, result files, models, data and seeds.

- **Presets.** `load_preset(method, name_or_path, required=..., optional=...)` reads a shipped
  preset (`live/<method>/presets/<name>.json`) or a JSON file. Every mistake is a
  `PresetError` (a `UserError`: one line, exit 2 from the CLI) that names the preset and the
  key: a missing .json file, a name that is not shipped (the shipped ones are listed), a key
  that is not allowed (the allowed ones are listed), a missing key. `build_config(cls,
  values, where)` turns a JSON object into a frozen config dataclass, checking each value
  against the field's type ("two" where an integer is expected, a string where a list is)
  and turning the dataclass's own validation error into a PresetError.
- **Result files.** `write_parquet(df, path, meta)` writes atomically (temp file + rename: a
  killed run leaves the old file or none, never half a file) with `meta` as JSON under the
  Parquet key-value key `lcsim` (`META_KEY`); `read_meta(path)` reads it back;
  `write_csv` and `write_json` do the same for summaries and small records, and
  `replacing(path)` for any other writer. `meta` is built by
  `lcsim.provenance.provenance(device=..., ...)`, the builder every artifact uses.
- **Models and data.** `model_factory(spec, data)` turns a preset's model (`{"named": NAME}`
  or `{"space": SPACE, "config": {...}}`, optional `"name"` label) into `seed -> nn.Module`;
  `load_data(dataset, ...)` loads a dataset onto a device, optionally only its first
  `train_examples` training examples.
- `lazy_exports` lets a method package re-export its names on first use: `lcsim --help`
  imports every method's `cli` module, and that must not import torch.
- **Seeds.** `seed_int(seed)` and `child_seeds(seed, n)` derive integer seeds from
  `np.random.SeedSequence` (never seed arithmetic); `torch_generator(seed, device)` is a
  seeded torch.Generator.
- **Claims.** `Claim` is one paper claim judged on result frames: our value, the verdict
  (`holds`: True / False, None when not checkable, `missing` says which input is absent) and
  the inputs it was judged on. Each method's `claims` module computes them from the frames
  its result folder holds; `claims_frame` lays a list of them out as a table.

torch is imported inside the functions that need it, so the CLI's `--help` stays light.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from lcsim.tabular.schema import META_KEY  # the provenance key, as in tables

from lcsim.errors import PresetError, UserError, check_preset_keys

__all__ = [
    "META_KEY",
    "lazy_exports",
    "Claim",
    "PresetError",
    "build_config",
    "claims_frame",
    "check_model_spec",
    "child_seeds",
    "load_data",
    "load_preset",
    "model_factory",
    "preset_names",
    "read_meta",
    "replacing",
    "seed_int",
    "torch_generator",
    "write_csv",
    "write_json",
    "write_parquet",
]

_METHODS = {"alrs": "ALRS", "esgd": "ESGD", "epbt": "EPBT"}
MODEL_KEYS = ("named", "space", "config", "name")


# ---------------------------------------------------------------- presets
def _preset_dir(method: str):
    if method not in _METHODS:
        raise ValueError(f"no presets for method {method!r}; methods: {sorted(_METHODS)}")
    return resources.files(f"lcsim.hpo_sim.live.{method}") / "presets"


def preset_names(method: str) -> list[str]:
    """Names of the presets shipped for `method` (alrs, esgd, epbt)."""
    return sorted(p.name.removesuffix(".json") for p in _preset_dir(method).iterdir()
                  if p.name.endswith(".json"))


def load_preset(method: str, name_or_path: str | os.PathLike, *, required: Sequence[str],
                optional: Sequence[str] = ()) -> dict[str, Any]:
    """The preset JSON object, by shipped name or by path (ends in .json or names a folder).

    Its top-level keys must include `required` and be among `required` + `optional`
    + "description".
    """
    label = _METHODS.get(method, method)
    text_name = os.fspath(name_or_path)
    path = Path(text_name)
    if path.suffix == ".json" or os.sep in text_name or (os.altsep or os.sep) in text_name:
        if not path.is_file():
            raise PresetError(f"{label} preset file {path}: no such file")
        what, text = f"{label} preset file {path}", path.read_text()
    else:
        f = _preset_dir(method) / f"{text_name}.json"
        if not f.is_file():
            raise PresetError(f"unknown {label} preset {text_name!r}; available: "
                              f"{', '.join(preset_names(method))} (or a path to a .json file)")
        what, text = f"{label} preset {text_name!r}", f.read_text()
    try:
        preset = json.loads(text)
    except json.JSONDecodeError as e:
        raise PresetError(f"{what} is not valid JSON: {e}") from None
    return check_preset_keys(preset, what, required, ("description", *required, *optional))


def build_config(cls: type, values: Any, where: str) -> Any:
    """`cls(**values)` for a frozen config dataclass, values checked against the field types.

    JSON lists become tuples where the field is a tuple, nested objects become nested config
    dataclasses; a wrong type or an unknown key raises PresetError naming `where` + the key.
    """
    if not isinstance(values, dict):
        raise PresetError(f"{where}: expected an object of settings, got {values!r}")
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise PresetError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                          f"{', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kw = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        raise PresetError(f"{where}: {e}") from None


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        first = None
        for a in (a for a in args if a is not type(None)):
            try:
                return _convert(value, a, where)
            except PresetError as e:
                first = first or e
        raise first
    if dataclasses.is_dataclass(tp):
        return build_config(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise PresetError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise PresetError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise PresetError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise PresetError(f"{where}: expected a string, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            got = f"the string {value!r}" if isinstance(value, str) else repr(value)
            raise PresetError(f"{where}: expected a list, got {got}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise PresetError(f"{where}: expected a list of {len(args)}, got {value!r}")
            return tuple(_convert(v, a, f"{where}[{i}]")
                         for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        out = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise PresetError(f"{where}: expected an object, got {value!r}")
        item = args[1] if args else Any
        return {k: _convert(v, item, f"{where}.{k}") for k, v in value.items()}
    return value


# ---------------------------------------------------------------- result files
@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it when the block succeeds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(df, path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Write DataFrame `df` to `path` atomically (the table writer's fsync-and-rename),
    `meta` as JSON under META_KEY."""
    import pyarrow as pa
    from lcsim.tabular.writer import write_parquet_atomic

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           META_KEY: json.dumps(meta, default=str).encode()})
    write_parquet_atomic(table, Path(path))


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The META_KEY metadata of a Parquet file written by `write_parquet`."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    if raw is None:
        raise UserError(f"{path}: no `lcsim` metadata; not a result file of lcsim live")
    return json.loads(raw)


def write_csv(df, path: str | os.PathLike) -> None:
    """Write DataFrame `df` to `path` as CSV (no index) atomically."""
    with replacing(Path(path)) as tmp:
        df.to_csv(tmp, index=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as JSON to `path` atomically."""
    with replacing(Path(path)) as tmp:
        tmp.write_text(json.dumps(obj, default=str))


# ---------------------------------------------------------------- models and data
def check_model_spec(spec: Any, where: str = "model") -> None:
    """PresetError unless `spec` is {"named": NAME} or {"space": SPACE, "config": {...}}
    (either with an optional "name")."""
    if not isinstance(spec, dict):
        raise PresetError(f"{where}: expected an object like {{\"named\": \"mnist-cnn\"}} or "
                          f"{{\"space\": \"mnist\", \"config\": {{...}}}}, got {spec!r}")
    unknown = sorted(set(spec) - set(MODEL_KEYS))
    if unknown:
        raise PresetError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                          f"{', '.join(MODEL_KEYS)}")
    if "named" in spec:
        if "space" in spec or "config" in spec:
            raise PresetError(f"{where}: give either 'named' or 'space' + 'config', not both")
    elif "space" not in spec or not isinstance(spec.get("config"), dict):
        raise PresetError(f"{where}: needs 'named', or 'space' with a 'config' object")


def model_factory(spec: Any, data, where: str = "model") -> Callable[[int], Any]:
    """`seed -> nn.Module` for a preset's model spec, sized for `data` (in_shape, classes).

    {"named": NAME} is one of pregen.models.NAMED_MODELS (wrn-D-K for a wide ResNet);
    {"space": SPACE, "config": {...}}
    is the space's CNN with the config on top of the space's fixed values. "name" only labels.
    """
    from lcsim.pregen.models import NAMED_MODELS, build_model, build_named_model, is_named_model
    from lcsim.tabular.spaces import get_space

    check_model_spec(spec, where)
    kw = {"in_shape": data.in_shape, "num_classes": data.num_classes}
    if "named" in spec:
        name = spec["named"]
        if not is_named_model(name):
            raise PresetError(f"{where}.named: unknown model {name!r}; choose from "
                              f"{', '.join(NAMED_MODELS)} or wrn-D-K (a wide ResNet, depth "
                              "D = 6n + 4, width K, e.g. wrn-28-10)")
        return lambda seed: build_named_model(name, seed=seed, **kw)
    space = get_space(spec["space"])
    full = {**space.fixed, **spec["config"]}
    return lambda seed: build_model(space.name, full, seed=seed, **kw)


def load_data(dataset: str, data_root: str | None = None, *, device: str = "cpu",
              val_size: int | None = None, train_examples: int | None = None,
              augment: Sequence[str] | None = None):
    """pregen.data.load_dataset on `device`; with `train_examples`, the first N training
    examples only (the validation split is taken before, from the whole training split).
    `augment`: train-time ops (pregen.augment; None: the dataset's default)."""
    from lcsim.pregen.augment import check_augment
    from lcsim.pregen.data import DATASETS, load_dataset

    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if augment is not None:
        try:
            augment = check_augment(augment)
        except ValueError as e:
            raise UserError(f"augment: {e}") from None
    data = load_dataset(dataset, data_root, val_size=val_size, device=device, augment=augment)
    if train_examples is not None:
        n = data.train_y.shape[0]
        if not 0 < train_examples <= n:
            raise UserError(f"train_examples={train_examples} must be in [1, {n}] for "
                            f"{dataset} ({n} training examples after the validation split)")
        data = dataclasses.replace(data, train_x=data.train_x[:train_examples],
                                   train_y=data.train_y[:train_examples])
    return data


# ---------------------------------------------------------------- seeds
def _sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def seed_int(seed: int | np.random.SeedSequence, *, below: int = 2**32) -> int:
    """One integer seed in [0, below) drawn from SeedSequence `seed` (or SeedSequence(seed))."""
    return int(_sequence(seed).generate_state(1)[0]) % below


def child_seeds(seed: int | np.random.SeedSequence, n: int, *,
                below: int = 2**32) -> list[int]:
    """`seed_int` of each of n children spawned from SeedSequence `seed`.

    Spawning advances a SeedSequence passed in (a second call gives new children); an int
    seed gives the same n seeds every time.
    """
    return [seed_int(c, below=below) for c in _sequence(seed).spawn(n)]


def torch_generator(seed: int | np.random.SeedSequence, device="cpu"):
    """A torch.Generator on `device` seeded with `seed_int(seed)`."""
    import torch

    return torch.Generator(device=device).manual_seed(seed_int(seed))


# ---------------------------------------------------------------- claims
@dataclasses.dataclass(frozen=True)
class Claim:
    """A paper's claim judged on our results; the verdict is computed, never written down."""

    claim: str  # what is claimed, in a few words ("ESGD best fitness never worsens")
    scope: str  # which results it was judged on ("mnist / adam", "esgd", "seed 0")
    value: float  # our number
    holds: bool | None  # the verdict; None: not checkable (see `missing`)
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)  # what it was judged on
    paper: Any = None  # the paper's number or statement, where it gives one
    missing: str = ""  # why it is not checkable: the input that is absent

    def __post_init__(self):
        if self.holds is None and not self.missing:
            raise ValueError(f"Claim {self.claim!r}: a claim that is not checkable must say "
                             "which input is missing")


def claims_frame(claims: Sequence[Claim]):
    """One row per claim: claim, scope, value, holds, paper, missing, inputs (JSON text)."""
    import pandas as pd

    return pd.DataFrame([{"claim": c.claim, "scope": c.scope, "value": c.value,
                          "holds": c.holds, "paper": c.paper, "missing": c.missing,
                          "inputs": json.dumps(c.inputs, default=str)} for c in claims],
                        columns=["claim", "scope", "value", "holds", "paper", "missing",
                                 "inputs"])


# ---------------------------------------------------------------- packages
def lazy_exports(package: str, exports: dict[str, Sequence[str]]):
    """(__getattr__, __dir__, __all__) for a package that re-exports `exports` (submodule ->
    names) and imports a submodule only when one of its names is first used (PEP 562)."""
    where = {name: mod for mod, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)
