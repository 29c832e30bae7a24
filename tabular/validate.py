"""Full check of a table directory (`lcsim table validate --table DIR`).

`validate_table(dir)` returns a Report of errors and warnings; each error names the file,
the column and the (0-based) row in that file. Checked: every file is readable Parquet
(truncated files fail here) carrying lcsim metadata (foreign Parquet fails) of this
schema version, the same table identity in every shard and meta.json (dataset, space,
epochs, seeds), column names and types; configs: unique non-negative ids across shards,
status values, every hyperparameter through the space's own validation, hyperparameters
equal to the Sobol point of their id (when the table has a Sobol seed), n_params / flops
>= 0; curves: config ids present in the paired configs shard, epochs 1..T, exactly one row
per (config, epoch), no missing epoch (complete configs: all of 1..T; others: 1..k),
accuracies in [0, 1] and no NaN accuracy or time in a complete config, seconds >= 0,
concurrency >= 1. Warnings: orphan curves shards and temp files (killed writers), extra
columns, shards measured on different devices.

`merge_table` and `repair_table` live in `tabular.maintain` (re-exported here).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import (
    IDENTITY_KEYS,
    META_FILE,
    SCHEMA_VERSION,
    STATUSES,
    TableError,
    configs_schema,
    curves_schema,
    list_shards,
    read_meta,
)
from .table import _space_of, resolve_table

__all__ = ["Report", "validate_table", "merge_table", "repair_table"]

_MAX_PER_CHECK = 5  # errors listed per check and file before "... and N more"


@dataclass
class Report:
    path: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_configs: int = 0
    n_shards: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def _many(self, where: str, rows: np.ndarray, what: str) -> None:
        """One error per offending row (capped); `what` is formatted with the row."""
        rows = np.asarray(rows)
        for r in rows[:_MAX_PER_CHECK]:
            self.errors.append(f"{where}: row {int(r)}: {what.format(r=int(r))}")
        if len(rows) > _MAX_PER_CHECK:
            self.errors.append(f"{where}: ... and {len(rows) - _MAX_PER_CHECK} more rows "
                               "with the same problem")


def _rel(p: Path, d: Path) -> str:
    try:
        return str(p.relative_to(d))
    except ValueError:
        return str(p)


def _open(path: Path, d: Path, rep: Report, expected: pa.Schema, ref: dict | None
          ) -> tuple[pa.Table | None, dict | None]:
    """Read one file; check it is lcsim Parquet of this version and table, with the
    expected columns. Returns (table, its metadata) or (None, None) after an error."""
    name = _rel(path, d)
    try:
        pf = pq.ParquetFile(path)
        table = pf.read()
    except (pa.ArrowInvalid, OSError) as e:
        rep.errors.append(f"{name}: not a readable Parquet file, truncated or corrupt ({e})")
        return None, None
    try:
        meta = read_meta(table.schema.metadata, name)
    except TableError as e:
        rep.errors.append(str(e))
        return None, None
    if ref is not None:
        diff = [f"{k} is {meta.get(k)!r}, table has {ref.get(k)!r}" for k in IDENTITY_KEYS
                if meta.get(k) != ref.get(k)]
        if diff:
            rep.errors.append(f"{name}: metadata disagrees with the table: {'; '.join(diff)}")
            return None, None
    bad = False
    for f in expected:
        if f.name not in table.column_names:
            rep.errors.append(f"{name}: column {f.name!r} is missing")
            bad = True
        elif not table.schema.field(f.name).type.equals(f.type):
            rep.errors.append(f"{name}: column {f.name!r} has type "
                              f"{table.schema.field(f.name).type}, expected {f.type}")
            bad = True
    extra = [c for c in table.column_names if c not in expected.names]
    if extra:
        rep.warnings.append(f"{name}: extra column(s) {extra} are ignored by lcsim")
    return (None, None) if bad else (table, meta)


def validate_table(path: str | os.PathLike) -> Report:
    """Check a table directory (or shipped table name); see the module docstring."""
    d = resolve_table(path)
    rep = Report(path=d)
    shards = list_shards(d)
    ref = None
    if (d / META_FILE).exists():
        try:
            ref = json.loads((d / META_FILE).read_text())
            if ref.get("schema_version") != SCHEMA_VERSION:
                rep.errors.append(f"{META_FILE}: schema_version {ref.get('schema_version')!r} "
                                  f"is not supported (this lcsim reads {SCHEMA_VERSION})")
                return rep
        except ValueError as e:
            rep.errors.append(f"{META_FILE}: not valid JSON ({e})")
            return rep
    else:
        rep.warnings.append(f"{META_FILE} is missing; the first shard's metadata is used")
    if not shards.pairs:
        rep.errors.append(f"{d}: no committed shards (configs/*.parquet or configs.parquet)")
    for p in shards.orphans:
        rep.warnings.append(f"{_rel(p, d)}: curves shard with no configs shard (a writer "
                            "killed before committing); readers ignore it")
    for p in shards.temps:
        rep.warnings.append(f"{_rel(p, d)}: temp file of a writer in flight or killed; "
                            "readers ignore it")
    seen: dict[int, str] = {}
    devices: set[str] = set()
    sobol: dict[str, Any] | None = None
    for cpath, upath in shards.pairs:
        rep.n_shards += 1
        if ref is None:
            try:
                ref = read_meta(pq.read_schema(cpath).metadata, _rel(cpath, d))
            except (TableError, pa.ArrowInvalid, OSError):
                pass  # reported by _open below
        space = _space_of(ref) if ref else None
        cfg, cmeta = _open(cpath, d, rep, configs_schema(space), ref)
        if upath is None:
            rep.errors.append(f"{_rel(cpath, d)}: committed configs shard has no curves shard")
            continue
        cur, umeta = _open(upath, d, rep, curves_schema(), ref)
        if cfg is None or cur is None:
            continue
        devices.update(str(m.get("device")) for m in (cmeta, umeta))
        if space is not None and ref.get("sobol_seed") is not None and sobol is None:
            sobol = {"space": space, "seed": int(ref["sobol_seed"]), "configs": []}
        status = _check_configs(cfg, _rel(cpath, d), ref, space, sobol, seen, rep)
        _check_curves(cur, _rel(upath, d), status, int(ref["epochs"]), rep)
    rep.n_configs = len(seen)
    if len(devices) > 1:
        rep.warnings.append(f"shards were measured on different devices {sorted(devices)}; "
                            "their seconds are not comparable")
    return rep


def _check_configs(t: pa.Table, name: str, meta: dict, space, sobol, seen: dict[int, str],
                   rep: Report) -> dict[int, str]:
    ids = t.column("config_id").to_numpy(zero_copy_only=False)
    if t.column("config_id").null_count:
        rep._many(name, np.nonzero(t.column("config_id").is_null().to_numpy(
            zero_copy_only=False))[0], "column 'config_id' is null")
        return {}
    rep._many(name, np.nonzero(ids < 0)[0], "column 'config_id' is negative")
    status = t.column("status").to_pylist()
    rep._many(name, np.array([r for r, s in enumerate(status) if s not in STATUSES]),
              f"column 'status' must be one of {list(STATUSES)}")
    dups = []
    for r, i in enumerate(ids.tolist()):
        if i in seen:
            dups.append(f"{name}: row {r}: column 'config_id': config_id {i} is already in "
                        f"{seen[i]} (duplicate config across shards)")
        else:
            seen[i] = name
    rep.errors.extend(dups[:_MAX_PER_CHECK])
    for col in ("n_params", "flops"):
        v = t.column(col).to_numpy(zero_copy_only=False)
        rep._many(name, np.nonzero(~np.isnan(v.astype(float)) & (v.astype(float) < 0))[0],
                  f"column {col!r} is negative")
    if space is None:
        bad = []
        for r, s in enumerate(t.column("hyperparameters").to_pylist()):
            try:
                ok = isinstance(json.loads(s), dict)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad.append(r)
        rep._many(name, np.array(bad), "column 'hyperparameters' is not a JSON object")
    else:
        expect = None
        if sobol is not None and len(ids):
            need = int(ids.max()) + 1
            if need > len(sobol["configs"]):  # grow by doubling: one-config shards stay linear
                n = max(need, 2 * len(sobol["configs"]))
                sobol["configs"] = space.configs(0, n, sobol["seed"])
            expect = sobol["configs"]
        for p in space.params:
            vals = t.column(p.name).to_pylist()
            errs = []
            for r, v in enumerate(vals):
                try:
                    p.validate(v)
                except ValueError as e:
                    errs.append(f"{name}: row {r} (config_id {ids[r]}): column {p.name!r}: {e}")
                    continue
                if expect is not None and ids[r] >= 0 and not _same(v, expect[ids[r]][p.name]):
                    errs.append(f"{name}: row {r} (config_id {ids[r]}): column {p.name!r}: "
                                f"{v!r} is not Sobol point {ids[r]} (seed {sobol['seed']}) "
                                f"which has {expect[ids[r]][p.name]!r}")
            rep.errors.extend(errs[:_MAX_PER_CHECK])
            if len(errs) > _MAX_PER_CHECK:
                rep.errors.append(f"{name}: ... and {len(errs) - _MAX_PER_CHECK} more rows "
                                  f"with a bad {p.name!r}")
    return dict(zip(ids.tolist(), status, strict=True))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _check_curves(t: pa.Table, name: str, status: dict[int, str], T: int, rep: Report) -> None:
    cid = t.column("config_id").to_numpy(zero_copy_only=False)
    ep = t.column("epoch").to_numpy(zero_copy_only=False).astype(np.int64)
    sid = np.array(sorted(status), dtype=np.int64)
    scomplete = np.array([status[i] == "complete" for i in sid.tolist()], dtype=bool)
    pos = np.searchsorted(sid, cid).clip(max=max(len(sid) - 1, 0))
    known = (sid[pos] == cid) if len(sid) else np.zeros(len(cid), bool)
    rep._many(name, np.nonzero(~known)[0],
              "column 'config_id' has no row in the paired configs shard")
    rep._many(name, np.nonzero((ep < 1) | (ep > T))[0], f"column 'epoch' is outside 1..{T}")
    complete = known & scomplete[pos] if len(sid) else known
    acc = t.column("val_accuracy").to_numpy(zero_copy_only=False).astype(float)
    rep._many(name, np.nonzero((acc < 0) | (acc > 1))[0],
              "column 'val_accuracy' is outside [0, 1]")
    rep._many(name, np.nonzero(np.isnan(acc) & complete)[0],
              "column 'val_accuracy' is NaN in a complete config")
    for col in ("train_seconds", "solo_seconds", "eval_seconds"):
        v = t.column(col).to_numpy(zero_copy_only=False).astype(float)
        rep._many(name, np.nonzero(v < 0)[0], f"column {col!r} is negative")
        rep._many(name, np.nonzero(np.isnan(v) & complete)[0],
                  f"column {col!r} is NaN in a complete config")
    conc = t.column("concurrency").to_numpy(zero_copy_only=False).astype(float)
    rep._many(name, np.nonzero(conc < 1)[0], "column 'concurrency' is below 1")
    # exactly one row per (config, epoch)
    order = np.lexsort((ep, cid))
    same = (np.diff(cid[order]) == 0) & (np.diff(ep[order]) == 0)
    for j in np.nonzero(same)[0][:_MAX_PER_CHECK]:
        a, b = order[j], order[j + 1]
        rep.errors.append(f"{name}: rows {a} and {b}: duplicated (config_id {cid[a]}, epoch "
                          f"{ep[a]}); there must be exactly one row per (config, epoch)")
    # no missing epochs: complete -> 1..T, others -> 1..k (k = last recorded epoch)
    ok = known & (ep >= 1) & (ep <= T)
    row = pos[ok]
    present = np.zeros((len(sid), T), dtype=bool)
    present[row, ep[ok] - 1] = True
    last = np.where(present.any(axis=1), T - np.argmax(present[:, ::-1], axis=1), 0)
    upto = np.where(scomplete, T, last) if len(sid) else last
    lacking = np.nonzero(present.sum(axis=1) < upto)[0]
    for r in lacking[:_MAX_PER_CHECK]:
        miss = [e + 1 for e in range(int(upto[r])) if not present[r, e]]
        rep.errors.append(f"{name}: config_id {sid[r]} ({status[int(sid[r])]}): column 'epoch': "
                          f"missing epoch(s) {miss[:10]}")
    if len(lacking) > _MAX_PER_CHECK:
        rep.errors.append(f"{name}: ... and {len(lacking) - _MAX_PER_CHECK} more configs with "
                          "missing epochs")


from .maintain import merge_table, repair_table  # noqa: E402  (they call validate_table)
