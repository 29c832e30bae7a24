"""The learning-curve table schema: column types, the version, and the file-level metadata.

A table is a directory of Parquet shard pairs (`configs/*.parquet`, `curves/*.parquet`); a
merged table is the same with one pair. (Tables merged by an older lcsim hold one pair at
the top, `configs.parquet` + `curves.parquet`: still read, no longer written, and converted
by `lcsim table merge`.) Every file carries the table's
metadata as JSON under the Parquet key-value key `lcsim` (`META_KEY`), so a single shard
copied out of its directory still says what it is.

configs: one row per config
    config_id  int64    Sobol index of the config (any non-negative id for imported tables)
    <param>    int64 / float64 / string, one column per free hyperparameter of the space;
               tables with no known space (imported) hold `hyperparameters` (JSON object text)
               and `source_config` (the id the data had before import) instead
    n_params   int64    trainable parameters (null if unknown)
    flops      int64    forward FLOPs per example (null if unknown)
    status     string   complete / diverged / failed
    error      string   why it diverged or failed (null when complete)

curves: one row per config and trained epoch (epochs are numbered 1..T; no epoch 0)
    config_id      int64
    epoch          int32
    val_accuracy   float64  fraction in [0, 1] on the validation split (not the test split)
    train_loss     float64  mean training loss over the epoch
    val_loss       float64
    train_seconds  float64  measured wall seconds of the epoch, device possibly shared
    solo_seconds   float64  seconds of the epoch for this config alone on the device
    eval_seconds   float64  measured seconds of the validation pass
    concurrency    int32    configs sharing the device during the epoch (1 = alone)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from lcsim.errors import UserError
from lcsim.provenance import provenance

__all__ = [
    "SCHEMA_VERSION",
    "META_KEY",
    "STATUSES",
    "IDENTITY_KEYS",
    "CURVE_FLOATS",
    "TableError",
    "configs_schema",
    "curves_schema",
    "build_meta",
    "meta_bytes",
    "read_meta",
    "check_meta_compatible",
    "META_FILE",
    "MERGED_CONFIGS",
    "MERGED_CURVES",
    "ShardList",
    "list_shards",
]

SCHEMA_VERSION = 1
META_KEY = b"lcsim"
STATUSES = ("complete", "diverged", "failed")
# Metadata that must agree between every shard of one table (resume must not mix tables).
IDENTITY_KEYS = ("schema_version", "dataset", "space", "epochs", "sobol_seed", "split_seed")
CURVE_FLOATS = ("val_accuracy", "train_loss", "val_loss", "train_seconds", "solo_seconds",
                "eval_seconds")
_ARROW_TYPES = {"int": pa.int64(), "logint": pa.int64(), "float": pa.float64(),
                "logfloat": pa.float64(),
                "cat": pa.string()}


class TableError(UserError, ValueError):
    """A table that breaks the format; the message names the file, column and row."""


def configs_schema(space: Any | None) -> pa.Schema:
    """Arrow schema of the configs table for a `lcsim.tabular.spaces.Space`, or None (imported)."""
    if space is None:
        hp = [pa.field("hyperparameters", pa.string(), nullable=False),
              pa.field("source_config", pa.string())]
    else:
        hp = [pa.field(p.name, _ARROW_TYPES[p.kind], nullable=False) for p in space.params]
    return pa.schema([
        pa.field("config_id", pa.int64(), nullable=False),
        *hp,
        pa.field("n_params", pa.int64()),
        pa.field("flops", pa.int64()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
    ])


def curves_schema() -> pa.Schema:
    return pa.schema([
        pa.field("config_id", pa.int64(), nullable=False),
        pa.field("epoch", pa.int32(), nullable=False),
        *[pa.field(c, pa.float64()) for c in CURVE_FLOATS],
        pa.field("concurrency", pa.int32()),
    ])


def build_meta(*, dataset: str, space: str | None, epochs: int, sobol_seed: int | None,
               split_seed: int | None, device: str, time_measurement: str,
               num_classes: int | None = None, **extra: Any) -> dict[str, Any]:
    """The table metadata dict stored in meta.json and in every shard (JSON under `lcsim`).

    `time_measurement` is a sentence on how train_seconds and solo_seconds were measured.
    `num_classes` defaults to the space's (needed by ETR-1: chance accuracy 1 / classes).
    Extra keyword arguments are stored as they are (must be JSON-serialisable).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise TableError(f"metadata: epochs must be a positive integer, got {epochs!r}")
    if num_classes is None and space is not None:
        from lcsim.tabular.spaces import get_space
        num_classes = get_space(space).num_classes
    prov = provenance()  # the builder every lcsim artifact uses
    meta = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "space": space,
        "epochs": epochs,
        "num_classes": num_classes,
        "sobol_seed": sobol_seed,
        "split_seed": split_seed,
        "device": device,
        "lcsim": prov["lcsim"],
        "versions": prov["versions"],
        "code_revision": prov["code_revision"],
        "time_measurement": time_measurement,
        "created": prov["created"],
        **extra,
    }
    _check_strict_json(meta)  # fail here, not in the middle of a write
    return meta


def _check_strict_json(meta: dict[str, Any]) -> None:
    # NaN / Infinity would be written as bare tokens that strict JSON readers (DuckDB, jq,
    # JavaScript) refuse, so the table's metadata would be unreadable outside Python
    for key, value in meta.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TableError(f"metadata: {key!r} is not strict JSON ({e}): "
                             f"{value!r:.200}") from None


def meta_bytes(meta: dict[str, Any]) -> dict[bytes, bytes]:
    """Parquet key-value metadata for a shard."""
    return {META_KEY: json.dumps(meta, sort_keys=True).encode()}


def read_meta(kv: dict[bytes, bytes] | None, where: str) -> dict[str, Any]:
    """Parse and version-check the `lcsim` metadata of a Parquet schema; `where` names the file."""
    if not kv or META_KEY not in kv:
        raise TableError(f"{where}: foreign Parquet file, not an lcsim table shard "
                         f"(no '{META_KEY.decode()}' key-value metadata)")
    try:
        meta = json.loads(kv[META_KEY])
    except ValueError as e:
        raise TableError(f"{where}: the lcsim metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise TableError(f"{where}: the lcsim metadata is not a JSON object")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise TableError(f"{where}: schema_version {version!r} is not supported "
                         f"(this lcsim reads version {SCHEMA_VERSION})")
    return meta


def check_meta_compatible(a: dict[str, Any], b: dict[str, Any], where: str) -> None:
    """Raise TableError if two metadata dicts describe different tables (IDENTITY_KEYS)."""
    diff = [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in IDENTITY_KEYS if a.get(k) != b.get(k)]
    if diff:
        raise TableError(f"{where}: metadata belongs to a different table ({'; '.join(diff)})")


# --- directory layout -------------------------------------------------------------------------
# DIR/meta.json, DIR/configs/<stem>.parquet + DIR/curves/<stem>.parquet (shard pairs sharing a
# stem), and (old merged layout, read only) DIR/configs.parquet + DIR/curves.parquet. Files
# whose names start with "." are temp files of writers in flight (and the lock files of
# tabular.lock); pyarrow and pandas skip them too.

META_FILE = "meta.json"
MERGED_CONFIGS = "configs.parquet"
MERGED_CURVES = "curves.parquet"


class ShardList:
    """The files of a table directory.

    pairs:   [(configs file, curves file or None)], committed shards, merged pair first
    orphans: curves shards with no configs shard (a writer killed between its two renames)
    temps:   temp files of writers in flight or killed
    """

    def __init__(self, pairs: list[tuple[Path, Path | None]], orphans: list[Path],
                 temps: list[Path]):
        self.pairs, self.orphans, self.temps = pairs, orphans, temps

    def files(self) -> list[Path]:
        return [p for pair in self.pairs for p in pair if p is not None]


def list_shards(directory: str | Path) -> ShardList:
    d = Path(directory)
    if not d.is_dir():
        raise TableError(f"{d}: not a table directory (it does not exist or is a file)")
    pairs: list[tuple[Path, Path | None]] = []
    if (d / MERGED_CONFIGS).exists():
        cur = d / MERGED_CURVES
        pairs.append((d / MERGED_CONFIGS, cur if cur.exists() else None))
    temps: list[Path] = []
    conf: dict[str, Path] = {}
    curv: dict[str, Path] = {}
    for sub, into in (("configs", conf), ("curves", curv)):
        if not (d / sub).is_dir():
            continue
        with os.scandir(d / sub) as it:
            for e in it:
                if e.name.startswith("."):
                    temps.append(Path(e.path))
                elif e.name.endswith(".parquet"):
                    into[e.name] = Path(e.path)
    for name in sorted(conf):
        pairs.append((conf[name], curv.get(name)))
    orphans = [curv[n] for n in sorted(curv) if n not in conf]
    return ShardList(pairs, orphans, sorted(temps))
