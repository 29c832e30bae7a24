"""LookupTable: a learning-curve table held as dense numpy arrays for fast replay.

`LookupTable.open(path)` reads a table directory (its shard pairs) or a shipped table
by name (`"default"`, or a directory name under `tabular/data/`). Curves become dense
`[n_configs, T]` float64 arrays built with one numpy scatter; the arrays (and the configs
table as Arrow IPC bytes) are cached in `DIR/.lcsim-cache.npz`, keyed by the shard list with
sizes and mtimes, so later opens read one file. A read-only directory (a shipped table under
site-packages) caches in the user cache dir instead (`$LCSIM_CACHE_DIR`, else
`$XDG_CACHE_HOME/lcsim` or `~/.cache/lcsim`); if no cache can be written the table still opens.

Opening checks the cheap invariants (schema version, unique config ids, one row per
(config, epoch), epochs in 1..T and contiguous, complete configs have all T epochs) and
raises `TableError`; a config committed twice is refused with its shards named and the fix
(`lcsim table repair`). `tabular.validate` does the full check.

Measured with `OMP_NUM_THREADS=1 python benchmarks/table_open.py` (20,000 configs x 50
epochs, shared and loaded 2-core CPU box, two runs): first open 0.8-1.05 s CPU from 100
shards (0.4-0.64 s merged), cached open 0.045-0.05 s CPU (0.02 s merged); 1,000 random
`accuracy()` look-ups 2.0-2.6 ms CPU vs 2.0-2.1 s for a pandas boolean filter per look-up
(780-1,060x).

(Over 400 lines: the read API, the dense build and the shard reading with its checks are one
contract: what a table may hold when it is opened.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import cache as _cache
from .jsonfeatures import encode_json, json_encoder
from .schema import (
    CURVE_FLOATS,
    MERGED_CONFIGS,
    MERGED_CURVES,
    META_FILE,
    SCHEMA_VERSION,
    STATUSES,
    TableError,
    check_meta_compatible,
    configs_schema,
    curves_schema,
    list_shards,
    read_meta,
)

__all__ = ["LookupTable", "resolve_table", "shipped_tables", "DATA_DIR"]

TABLE_LAYOUT = (f"a table is a directory holding {META_FILE} with configs/ and curves/ Parquet "
                f"shards (or the merged {MERGED_CONFIGS} + {MERGED_CURVES}); give that "
                "directory")

DATA_DIR = Path(__file__).resolve().parent / "data"
_ARRAYS = ("acc", "train_loss", "val_loss", "train_seconds", "solo_seconds", "eval_seconds")
# curves column -> dense array attribute
_COLUMN_OF = dict(zip(_ARRAYS, CURVE_FLOATS, strict=True))
# everything a LookupTable holds as arrays (and caches); _encoder: JSON feature encoding
_ALL_ARRAYS = (*_ARRAYS, "concurrency", "ids", "status", "n_recorded", "features", "_encoder")


def shipped_tables() -> list[str]:
    """Names of the tables shipped in tabular/data/ (directories holding a meta.json)."""
    if not DATA_DIR.is_dir():
        return []
    return sorted(p.name for p in DATA_DIR.iterdir() if (p / META_FILE).exists())


def resolve_table(path: str | os.PathLike) -> Path:
    """A table directory from a path, a shipped table name, or "default". A path to one of
    a table's Parquet files means its table directory."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.is_file() and p.suffix == ".parquet":
        if p.name in (MERGED_CONFIGS, MERGED_CURVES):
            return p.parent
        if p.parent.name in ("configs", "curves"):
            return p.parent.parent
    name = str(path)
    if name == "default":
        marker = DATA_DIR / "DEFAULT"
        if not marker.exists():
            raise TableError(
                "no default table is shipped yet (tabular/data/DEFAULT is missing); "
                "pass a table directory, or make one with `lcsim pregen run` / "
                f"`lcsim table import`. Shipped tables: {shipped_tables() or 'none'}")
        name = marker.read_text().strip()
        if not (DATA_DIR / name).is_dir():
            raise TableError(f"tabular/data/DEFAULT names {name!r}, which is not a directory "
                             "under tabular/data/")
    if "/" not in name and os.sep not in name and (DATA_DIR / name).is_dir():
        return DATA_DIR / name
    if p.exists():
        raise TableError(f"{path}: is a file, not a table; {TABLE_LAYOUT}")
    raise TableError(f"{path}: no such table directory, and not a shipped table name "
                     f"(shipped: {shipped_tables() or 'none'}; or 'default')")


class LookupTable:
    """Dense view of one learning-curve table.

    Arrays (read-only; n = configs, T = epochs, rows sorted by config id):
        ids [n] int64; status [n] str; n_recorded [n] int64 (epochs trained, < T unless
        complete); acc, train_loss, val_loss, train_seconds (measured), solo_seconds,
        eval_seconds [n, T] float64, NaN after n_recorded; concurrency [n, T] int32 (0 where
        not recorded); features [n, d] float64 in the unit cube.
    Also: epochs (T), num_classes (int or None), space (lcsim.tabular.spaces.Space or None for an
    imported table of unknown space), meta (dict), path (Path or None).
    """

    def __init__(self, *, meta: dict[str, Any], configs: pa.Table, arrays: dict[str, np.ndarray],
                 path: Path | None = None):
        self.meta = meta
        self.path = path
        self.epochs = int(meta["epochs"])
        self.num_classes = meta.get("num_classes")
        self.space = _space_of(meta)
        self._configs = configs
        missing = set(_ALL_ARRAYS) - set(arrays)
        assert not missing, f"LookupTable needs arrays {sorted(missing)}"
        for k in _ALL_ARRAYS:
            v = arrays[k]
            v.setflags(write=False)
            setattr(self, k, v)
        n, T = len(self.ids), self.epochs
        assert self.acc.shape == (n, T) and self.status.shape == (n,), "dense array shapes"
        assert self.features.shape[0] == n
        self._cum: dict[str, np.ndarray] = {}

    # ----- construction ---------------------------------------------------------------------
    @classmethod
    def from_frames(cls, configs: Any, curves: Any, meta: Mapping[str, Any],
                    path: Path | None = None) -> LookupTable:
        """Build from a configs and a curves table (pandas DataFrames or pyarrow Tables,
        columns as in `tabular.schema`) and the metadata dict (`schema.build_meta`)."""
        meta = dict(meta)
        meta.setdefault("schema_version", SCHEMA_VERSION)
        if meta["schema_version"] != SCHEMA_VERSION:
            raise TableError(f"metadata: schema_version {meta['schema_version']!r} is not "
                             f"supported (this lcsim reads version {SCHEMA_VERSION})")
        if not isinstance(meta.get("epochs"), int) or meta["epochs"] < 1:
            raise TableError(f"metadata: epochs must be a positive integer, "
                             f"got {meta.get('epochs')!r}")
        space = _space_of(meta)
        cfg = _as_arrow(configs, configs_schema(space), "configs")
        cur = _as_arrow(curves, curves_schema(), "curves")
        arrays, cfg = _dense(cfg, cur, meta, space)
        return cls(meta=meta, configs=cfg, arrays=arrays, path=path)

    @classmethod
    def open(cls, path: str | os.PathLike, *, cache: bool = True) -> LookupTable:
        """Open a table directory, a shipped table name, or "default" (see module doc)."""
        d = resolve_table(path)
        shards = list_shards(d)
        if not shards.pairs:
            raise TableError(f"{d}: no committed shards (no configs/*.parquet or "
                             f"{MERGED_CONFIGS}); {TABLE_LAYOUT}")
        key = _cache.cache_key(shards.files() + [d / META_FILE]) if cache else ""
        hit = _cache.load(d, key) if cache else None
        if hit is not None:
            meta, configs, arrays = hit
            return cls(meta=meta, configs=configs, arrays=arrays, path=d)
        meta, cfg, cur = _read_shards(d, shards)
        _refuse_duplicates(d, shards, cfg)
        table = cls.from_frames(cfg, cur, meta, path=d)
        if cache:
            _cache.save(d, key, table.meta, table._configs,
                        {a: getattr(table, a) for a in _ALL_ARRAYS})
        return table

    def __setstate__(self, state: dict) -> None:
        # pickled to dask / multiprocessing workers: arrays come back writeable; freeze again
        self.__dict__.update(state)
        for v in state.values():
            if isinstance(v, np.ndarray):
                v.setflags(write=False)

    # ----- lookups --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return (f"LookupTable({len(self)} configs x {self.epochs} epochs, "
                f"space={self.meta.get('space')!r}, dataset={self.meta.get('dataset')!r}{where})")

    def row(self, config_id: int) -> int:
        """Row index of a config id in the dense arrays; KeyError if it is not in the table."""
        i = int(np.searchsorted(self.ids, config_id))
        if i >= len(self.ids) or self.ids[i] != config_id:
            raise KeyError(f"config_id {config_id!r} is not in this table "
                           f"({len(self.ids)} configs, ids {self.ids[0]}..{self.ids[-1]})")
        return i

    def rows(self, config_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row indices [k] of config ids [k] (vectorised `row`)."""
        ids = np.asarray(config_ids, dtype=np.int64)
        i = np.searchsorted(self.ids, ids).clip(max=len(self.ids) - 1)
        bad = self.ids[i] != ids
        if bad.any():
            raise KeyError(f"config_id {ids[bad][0]} is not in this table")
        return i

    def curve(self, config_id: int) -> np.ndarray:
        """Validation accuracy per epoch, shape [T] (NaN after n_recorded)."""
        return self.acc[self.row(config_id)]

    def accuracy(self, config_id: int, epoch: int) -> float:
        """Validation accuracy of a config after `epoch` (1..T) epochs."""
        if not 1 <= epoch <= self.epochs:
            raise ValueError(f"epoch {epoch!r} is outside 1..{self.epochs}")
        return float(self.acc[self.row(config_id), epoch - 1])

    def seconds(self, config_id: int, epochs: int, kind: str = "solo",
                include_eval: bool = False) -> float:
        """Training seconds of the first `epochs` epochs (0..T) of a config.

        kind "solo": the config alone on the device (the default time model); "measured":
        the wall time recorded while possibly sharing the device. Epochs after n_recorded
        (a diverged or failed config) cost nothing: the run did not train them.
        include_eval adds the validation passes' seconds.
        """
        if not 0 <= epochs <= self.epochs:
            raise ValueError(f"epochs {epochs!r} is outside 0..{self.epochs}")
        if epochs == 0:
            return 0.0
        cum = self._cumulative(kind, include_eval)
        return float(cum[self.row(config_id), epochs - 1])

    def _cumulative(self, kind: str, include_eval: bool) -> np.ndarray:
        names = {"solo": "solo_seconds", "measured": "train_seconds"}
        if kind not in names:
            raise ValueError(f"seconds kind must be 'solo' or 'measured', got {kind!r}")
        key = f"{kind}{'+eval' if include_eval else ''}"
        if key not in self._cum:
            s = np.nan_to_num(getattr(self, names[kind]), nan=0.0)
            if include_eval:
                s = s + np.nan_to_num(self.eval_seconds, nan=0.0)
            self._cum[key] = np.cumsum(s, axis=1)
        return self._cum[key]

    @property
    def final_accuracy(self) -> np.ndarray:
        """Accuracy after epoch T, shape [n]; NaN for configs that are not complete."""
        return np.where(self.status == "complete", self.acc[:, -1], np.nan)

    def goal(self, top_percent: float) -> float:
        """Accuracy that the top `top_percent`% of complete configs' final accuracies reach.

        goal(0.5) is the 99.5th percentile, by numpy's default linear interpolation between
        the two nearest order statistics (so it lies between two table values); goal(0) is
        the best final accuracy.
        """
        if not 0 <= top_percent <= 100:
            raise ValueError(f"top_percent must be in [0, 100], got {top_percent!r}")
        final = self.final_accuracy
        final = final[~np.isnan(final)]
        if final.size == 0:
            raise TableError("goal: the table has no complete config with a final accuracy")
        return float(np.percentile(final, 100.0 - top_percent))

    def _ranked(self) -> np.ndarray:
        """Ids of complete configs by final accuracy, best first; ties by smaller id."""
        final = self.final_accuracy
        ok = ~np.isnan(final)
        order = np.lexsort((self.ids[ok], -final[ok]))
        return self.ids[ok][order]

    def top_k(self, k: int) -> np.ndarray:
        """Ids of the k complete configs with the best final accuracy, best first (fewer if
        fewer than k are complete)."""
        return self._ranked()[: _check_k(k, len(self))]

    def bottom_k(self, k: int) -> np.ndarray:
        """Ids of the k complete configs with the worst final accuracy, worst first (fewer if
        fewer than k are complete)."""
        r = self._ranked()[::-1]
        return r[: _check_k(k, len(self))]

    def random_k(self, k: int, seed: int) -> np.ndarray:
        """Ids [k] of k distinct configs drawn uniformly (any status), in draw order."""
        rng = np.random.default_rng(seed)
        return rng.choice(self.ids, size=_check_k(k, len(self)), replace=False)

    def config(self, config_id: int) -> dict[str, Any]:
        """Hyperparameters of a config (free parameters; parsed JSON for imported tables)."""
        r = self._configs.slice(self.row(config_id), 1).to_pylist()[0]
        if self.space is None:
            return json.loads(r["hyperparameters"])
        return {n: r[n] for n in self.space.names}

    def nearest(self, config: Mapping[str, Any]) -> int:
        """Id of the table config nearest to `config` in unit-cube features (Euclidean);
        ties go to the smaller id. For configs not in the table (a model-based optimizer's
        proposal)."""
        if self.space is not None:
            x = self.space.to_unit([self.space.validate(config)])[0]
        else:
            x = encode_json([config], json.loads(str(self._encoder)))[0]
        d = ((self.features - x) ** 2).sum(axis=1)
        return int(self.ids[int(np.argmin(d))])

    def configs_frame(self):
        """pandas DataFrame of the configs table, sorted by config_id."""
        return self._configs.to_pandas()

    def curves_frame(self):
        """pandas DataFrame of the curves table (recorded epochs only), by config, epoch."""
        return self.curves_arrow().to_pandas()

    def curves_arrow(self) -> pa.Table:
        T = self.epochs
        mask = np.arange(1, T + 1)[None, :] <= self.n_recorded[:, None]
        r, e = np.nonzero(mask)
        cols = {"config_id": pa.array(self.ids[r]), "epoch": pa.array((e + 1).astype(np.int32))}
        for a, c in _COLUMN_OF.items():
            cols[c] = pa.array(getattr(self, a)[r, e])
        cols["concurrency"] = pa.array(self.concurrency[r, e])
        return pa.table(cols, schema=curves_schema())

    def configs_arrow(self) -> pa.Table:
        return self._configs


def _check_k(k: int, n: int) -> int:
    if not 0 <= k <= n:
        raise ValueError(f"k must be in 0..{n} (table size), got {k!r}")
    return int(k)


def _space_of(meta: Mapping[str, Any]):
    name = meta.get("space")
    if name is None:
        return None
    from lcsim.tabular.spaces import get_space
    return get_space(name)


def _as_arrow(obj: Any, schema: pa.Schema, what: str) -> pa.Table:
    if isinstance(obj, pa.Table):
        t = obj
    else:
        t = pa.Table.from_pandas(obj, preserve_index=False)
    missing = [f.name for f in schema if f.name not in t.column_names]
    if missing:
        raise TableError(f"{what}: missing column(s) {missing}; expected {schema.names}")
    try:
        return t.select(schema.names).cast(pa.schema([f.with_nullable(True) for f in schema]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise TableError(f"{what}: a column has the wrong type ({e})") from None


def _dense(cfg: pa.Table, cur: pa.Table, meta: Mapping[str, Any], space) -> tuple[dict, pa.Table]:
    """Dense arrays from the two tables (one scatter; no per-row Python)."""
    T = int(meta["epochs"])
    cfg = cfg.sort_by("config_id")
    ids = cfg.column("config_id").to_numpy()
    if len(ids) and (np.diff(ids) == 0).any():
        dup = ids[1:][np.diff(ids) == 0][0]
        raise TableError(f"configs: config_id {dup} appears more than once")
    if cfg.column("config_id").null_count or (len(ids) and ids[0] < 0):
        raise TableError("configs: config_id must be a non-negative integer (no nulls)")
    status = np.asarray(cfg.column("status").to_pylist(), dtype="U8")
    bad = ~np.isin(status, STATUSES)
    if bad.any():
        raise TableError(f"configs: config_id {ids[bad][0]} has status "
                         f"{cfg.column('status')[int(np.argmax(bad))].as_py()!r}; "
                         f"allowed {list(STATUSES)}")
    n = len(ids)
    cid = cur.column("config_id").to_numpy(zero_copy_only=False)
    ep = cur.column("epoch").to_numpy(zero_copy_only=False).astype(np.int64)
    r = np.searchsorted(ids, cid).clip(max=max(n - 1, 0))
    unknown = (ids[r] != cid) if n else np.ones(len(cid), bool)
    if unknown.any():
        raise TableError(f"curves: config_id {cid[unknown][0]} has curve rows but no configs "
                         "row")
    out_range = (ep < 1) | (ep > T)
    if out_range.any():
        raise TableError(f"curves: config_id {cid[out_range][0]} has epoch "
                         f"{ep[out_range][0]}; epochs are numbered 1..{T}")
    flat = r * T + (ep - 1)
    counts = np.bincount(flat, minlength=n * T)
    if (counts > 1).any():
        f = int(np.argmax(counts > 1))
        raise TableError(f"curves: (config_id {ids[f // T]}, epoch {f % T + 1}) appears "
                         f"{counts[f]} times; there must be exactly one row")
    present = counts.reshape(n, T).astype(bool)
    n_rec = present.sum(axis=1)
    # epochs must be 1..k with none missing, for every status: the last epoch equals the count
    last = np.where(present.any(axis=1), T - np.argmax(present[:, ::-1], axis=1), 0)
    gap = last != n_rec
    if gap.any():
        i = int(np.argmax(gap))
        missing = [e + 1 for e in range(int(last[i])) if not present[i, e]]
        raise TableError(f"curves: config_id {ids[i]} is missing epoch(s) {missing[:10]}")
    incomplete = (status == "complete") & (n_rec != T)
    if incomplete.any():
        i = int(np.argmax(incomplete))
        raise TableError(f"curves: config_id {ids[i]} is complete but has {n_rec[i]} of {T} "
                         "epochs")
    arrays: dict[str, np.ndarray] = {}
    for a, c in _COLUMN_OF.items():
        dense = np.full(n * T, np.nan)
        dense[flat] = cur.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
        arrays[a] = dense.reshape(n, T)
    conc = np.zeros(n * T, dtype=np.int32)
    conc[flat] = cur.column("concurrency").fill_null(0).to_numpy(zero_copy_only=False)
    arrays["concurrency"] = conc.reshape(n, T)
    arrays.update(ids=ids.astype(np.int64), status=status, n_recorded=n_rec.astype(np.int64))
    if space is not None:
        rows = cfg.select(space.names).to_pylist()
        arrays["features"] = space.to_unit(rows)
        arrays["_encoder"] = np.array("")
    else:
        hp = [json.loads(s) for s in cfg.column("hyperparameters").to_pylist()]
        enc = json_encoder(hp)
        arrays["features"] = encode_json(hp, enc)
        arrays["_encoder"] = np.array(json.dumps(enc))
    return arrays, cfg


# ----- reading shards -------------------------------------------------------------------------
def _read_shards(d: Path, shards) -> tuple[dict, pa.Table, pa.Table]:
    """(metadata, configs, curves) of the committed shard pairs, metadata checked per file."""
    meta_path = d / META_FILE
    meta = None
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise TableError(f"{meta_path}: not valid JSON ({e})") from None
    for cpath, upath in shards.pairs:
        if upath is None:
            raise TableError(f"{cpath}: committed configs shard has no curves shard "
                             f"({cpath.parent.parent / 'curves' / cpath.name})")
    try:
        # one threaded pyarrow.dataset scan per side: ~2x faster than file by file
        cfg, cmetas = _scan([c for c, _ in shards.pairs])
        cur, umetas = _scan([u for _, u in shards.pairs])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError):
        _find_bad_file(shards.files())  # raises a TableError naming the file
        raise
    devices: set[str] = set()
    for p, kv in zip(shards.files(), _interleave(cmetas, umetas), strict=True):
        m = read_meta(kv, str(p))
        if meta is None:
            meta = m
        check_meta_compatible(meta, m, str(p))
        devices.add(str(m.get("device")))
    if len(devices) > 1:  # writers on different machines: say so beside meta.json's device
        meta = {**meta, "shard_devices": sorted(devices)}
    space = _space_of(meta)
    try:
        cfg = cfg.cast(configs_schema(space))
        cur = cur.cast(curves_schema())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise TableError(f"{d}: shards have differing or wrong column types ({e}); run "
                         f"`lcsim table validate --table {d}` for details") from None
    return meta, cfg, cur


def _refuse_duplicates(d: Path, shards, cfg: pa.Table) -> None:
    """TableError naming the config ids committed more than once, their shards, and the fix."""
    ids = cfg.column("config_id").to_numpy(zero_copy_only=False)
    uniq, counts = np.unique(ids, return_counts=True)
    dup = uniq[counts > 1]
    if not len(dup):
        return
    where = []
    for c, _ in shards.pairs:  # the error path only: name the shards that hold them
        got = np.intersect1d(pq.read_table(c, columns=["config_id"]).column(
            "config_id").to_numpy(), dup)
        if len(got):
            where.append(f"{c.relative_to(d)} ({', '.join(map(str, got[:5].tolist()))})")
    ids_text = ", ".join(map(str, dup[:10].tolist())) + (" ..." if len(dup) > 10 else "")
    raise TableError(f"{d}: {len(dup)} config id(s) committed more than once: {ids_text}; "
                     f"in {'; '.join(where[:6])}{' ...' if len(where) > 6 else ''}. A table "
                     f"holds each config once: run `lcsim table repair --table {d}` (keeps the "
                     "earliest committed copy of each, removes the others)")


def _interleave(a: list, b: list) -> list:
    return [x for pair in zip(a, b, strict=True) for x in pair]


def _scan(files: list[Path]) -> tuple[pa.Table, list]:
    import pyarrow.dataset as ds

    dset = ds.dataset([str(f) for f in files], format="parquet")
    metas = [frag.physical_schema.metadata for frag in dset.get_fragments()]
    for f, frag_meta in zip(files, metas, strict=True):
        read_meta(frag_meta, str(f))  # a foreign file fails here, before columns are mixed
    table = dset.to_table()
    return table.replace_schema_metadata(None), metas


def _find_bad_file(files: list[Path]) -> None:
    for p in files:
        try:
            t = pq.read_table(p)
        except (pa.ArrowInvalid, OSError) as e:
            raise TableError(f"{p}: not a readable Parquet file, truncated or corrupt "
                             f"({e})") from None
        read_meta(t.schema.metadata, str(p))
