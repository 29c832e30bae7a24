"""Append finished configs to a table directory, one atomic shard pair per `write`.

Commit protocol (several processes may write into one directory at once, each holding its
own id range, `tabular.lock.RangeLock`):
1. the curves shard is written to `curves/.tmp-<name>`, fsynced, and renamed (os.replace,
   atomic on POSIX) to `curves/<name>`;
2. the configs shard likewise to `configs/<name>`; this rename commits the shard.
Readers take curves only from shards whose configs file exists, so a writer killed at any
point leaves either nothing visible or a complete pair; a killed writer's leftovers (`.tmp-*`
files, a curves shard with no configs shard) are ignored by readers and reported by
`lcsim table validate` as warnings. Shard names are `<unix time>-<pid>-<uuid>.parquet`, unique
across processes and hosts. `held_ids(dir)` reads only the configs shards, so a generator can
resume by skipping the ids a directory already holds.

Idempotent commits: a writer given the `RangeLock` it holds commits only ids inside that
range, checks the lock is still its own, and skips any id already committed (the configs
folder is re-listed just before each commit, new shards' ids read), so a config is never
committed twice, whatever retried or resumed work hands it in again. Only lock holders
commit in a locked range, so the check cannot race with another commit of the same id.

A table merged by an older lcsim (`configs.parquet` + `curves.parquet` at the top of the
directory) is refused for appending: its rows would split between two layouts, and a reader
of one folder would get part of the table. `lcsim table merge --table DIR` moves them into
the folders.

A writer starts only in a new or empty directory or in a table (`check_table_dir`): a folder
of other files is refused before anything is written into it. The first writer records the
table metadata in `meta.json` (created atomically: temp file + hard link, which fails if
another writer got there first); every shard also carries its
writer's metadata under the Parquet key `lcsim`. A writer opening a directory whose
meta.json differs in dataset / space / epochs / seeds / schema version raises TableError.

(Over 400 lines: the commit protocol, its idempotency index and the directory checks are one
write discipline.)
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import (
    MERGED_CONFIGS,
    MERGED_CURVES,
    META_FILE,
    STATUSES,
    TableError,
    check_meta_compatible,
    configs_schema,
    curves_schema,
    list_shards,
    meta_bytes,
    read_meta,
)

__all__ = ["ConfigResult", "TableWriter", "check_table_dir", "held_ids", "write_parquet_atomic"]

log = logging.getLogger("lcsim.tabular")

_EPOCH_FIELDS = ("val_accuracy", "train_loss", "val_loss", "train_seconds", "solo_seconds",
                 "eval_seconds")


@dataclass(frozen=True)
class ConfigResult:
    """One finished config, as the generator hands it to `TableWriter.write`.

    Per-epoch sequences all have length k = epochs trained (epoch 1..k): k = T for a
    complete config, k <= T for a diverged one (values may be NaN at the diverging epoch),
    usually 0 for a failed one. `config` holds the free hyperparameters of the table's
    space (validated on write); for a table with no space (imported) any JSON object.
    `concurrency` is per epoch, or one int for every epoch.
    """

    config_id: int  # Sobol index
    config: Mapping[str, Any]
    status: str = "complete"  # complete / diverged / failed
    val_accuracy: Sequence[float] = ()  # fraction in [0, 1], validation split
    train_loss: Sequence[float] = ()
    val_loss: Sequence[float] = ()
    train_seconds: Sequence[float] = ()  # measured wall seconds, device maybe shared
    solo_seconds: Sequence[float] = ()  # seconds alone on the device
    eval_seconds: Sequence[float] = ()
    concurrency: Sequence[int] | int = 1  # configs sharing the device in that epoch
    n_params: int | None = None
    flops: int | None = None  # forward FLOPs per example
    error: str | None = None  # why it diverged / failed
    source_config: str | None = None  # original id, imported tables only
    _k: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.config_id, int | np.integer) or self.config_id < 0:
            raise TableError(f"ConfigResult.config_id must be a non-negative int, "
                             f"got {self.config_id!r}")
        if self.status not in STATUSES:
            raise TableError(f"config {self.config_id}: status {self.status!r} is not one of "
                             f"{list(STATUSES)}")
        lengths = {f: len(getattr(self, f)) for f in _EPOCH_FIELDS}
        k = lengths["val_accuracy"]
        bad = {f: n for f, n in lengths.items() if n != k}
        if bad:
            raise TableError(f"config {self.config_id}: per-epoch fields differ in length "
                             f"(val_accuracy has {k}, {bad})")
        if not isinstance(self.concurrency, int | np.integer) and len(self.concurrency) != k:
            raise TableError(f"config {self.config_id}: concurrency has "
                             f"{len(self.concurrency)} values for {k} epochs")
        object.__setattr__(self, "_k", k)


def _atomic_bytes(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write a small file atomically; with exclusive, only if `path` does not exist yet
    (returns False when another process created it first). The file gets the usual
    0666 & ~umask mode (mkstemp's 0600 would hide meta.json from the other users of a
    shared table)."""
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # fails if path exists: first writer wins
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to a temp file next to `path`, fsync, and rename it into place."""
    # ".tmp-<stem>.partial": readers and globs (`*.parquet`) skip it
    tmp = path.parent / f".tmp-{path.stem}.partial"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)  # make the rename itself durable
    except OSError:
        pass
    finally:
        os.close(fd)


class TableWriter:
    """Appends `ConfigResult`s to the table directory `directory` (created if missing).

    `meta` is the table metadata (`tabular.schema.build_meta`). With `lock` (the
    `tabular.lock.RangeLock` this process holds on the directory), commits are idempotent
    (module docstring): ids outside the lock's range are refused, ids already committed are
    skipped (`skipped` lists them). Without a lock, ids are not checked against other
    processes' shards; `lcsim table validate` reports any duplicates.
    """

    def __init__(self, directory: str | os.PathLike, meta: Mapping[str, Any], *,
                 lock: Any | None = None):
        from .table import _space_of

        self.dir = Path(directory)
        self.meta = dict(meta)
        for k in ("schema_version", "dataset", "space", "epochs"):
            if k not in self.meta:
                raise TableError(f"TableWriter: metadata lacks {k!r}; build it with "
                                 "lcsim.tabular.schema.build_meta")
        if (self.dir / MERGED_CONFIGS).exists():
            raise TableError(
                f"{self.dir} holds a table merged by an older lcsim ({MERGED_CONFIGS} and "
                "curves.parquet at the top): appending would split its rows between two "
                f"layouts. Run `lcsim table merge --table {self.dir}` once (it moves them into "
                "configs/ and curves/), then run this command again")
        if lock is not None:
            lock.check()
        self.lock = lock
        self.epochs = int(self.meta["epochs"])
        self.space = _space_of(self.meta)
        self._configs_schema = configs_schema(self.space)
        check_table_dir(self.dir)
        for sub in ("configs", "curves"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        mpath = self.dir / META_FILE
        text = json.dumps(self.meta, indent=1, sort_keys=True).encode()
        if not mpath.exists():
            _atomic_bytes(mpath, text, exclusive=True)
        existing = json.loads(mpath.read_text())
        check_meta_compatible(existing, self.meta,
                              f"{mpath} (resume must not mix tables: open a new directory)")
        self._written: set[int] = set()
        self._held = _HeldIndex(self.dir) if lock is not None else None
        self.skipped: list[int] = []  # ids handed in again after their commit (not written)

    def held(self) -> set[int]:
        """Ids committed in the directory now (with a lock: cheap, incremental)."""
        if self._held is None:
            return held_ids(self.dir)
        return self._held.refresh()

    def write(self, records: ConfigResult | Iterable[ConfigResult]) -> Path | None:
        """Commit one or more records as one shard pair; returns the configs shard path, or
        None if nothing was left to write (with a lock: every id already committed)."""
        recs = [records] if isinstance(records, ConfigResult) else list(records)
        if not recs:
            return None
        ids = [int(r.config_id) for r in recs]
        counts = Counter(ids)
        dup = sorted({i for i, c in counts.items() if c > 1} | (set(ids) & self._written))
        if dup and self.lock is None:
            raise TableError(f"{self.dir}: config_id(s) {dup[:10]} already written by this "
                             "writer or repeated in one write")
        if self.lock is not None:
            self.lock.check()
            outside = [i for i in ids if not self.lock.covers(i)]
            if outside:
                a, b = self.lock.range
                raise TableError(f"{self.dir}: config_id(s) {outside[:10]} are outside the "
                                 f"locked range {a}..{b - 1} of this writer")
            held = self._held.refresh()
            again = sorted({i for i in ids if i in held} | set(dup))
            if again:
                log.warning("%s: config_id(s) %s already committed; not writing them again",
                            self.dir, again[:10])
                self.skipped.extend(again)
            keep, seen = [], set(held)
            for r in recs:  # the first of repeated ids in one call is kept
                if int(r.config_id) not in seen:
                    keep.append(r)
                    seen.add(int(r.config_id))
            recs, ids = keep, [int(r.config_id) for r in keep]
            if not recs:
                return None
        cfg, cur = self._tables(recs)
        name = f"{int(time.time())}-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
        write_parquet_atomic(cur, self.dir / "curves" / name)
        target = self.dir / "configs" / name
        write_parquet_atomic(cfg, target)  # this rename commits the shard
        self._written.update(ids)
        if self._held is not None:
            self._held.add(target, ids)
        return target

    def _tables(self, recs: list[ConfigResult]) -> tuple[pa.Table, pa.Table]:
        T = self.epochs
        cols: dict[str, list] = {f.name: [] for f in self._configs_schema}
        for r in recs:
            if r._k > T:
                raise TableError(f"config {r.config_id}: {r._k} epochs recorded, table has "
                                 f"{T}")
            if r.status == "complete" and r._k != T:
                raise TableError(f"config {r.config_id}: complete but {r._k} of {T} epochs")
            _check_values(r)
            cols["config_id"].append(int(r.config_id))
            if self.space is None:
                cols["hyperparameters"].append(json.dumps(dict(r.config), sort_keys=True))
                cols["source_config"].append(r.source_config)
            else:
                try:
                    cfg = self.space.validate(r.config)
                except ValueError as e:
                    raise TableError(f"config {r.config_id}: {e}") from None
                for n in self.space.names:
                    cols[n].append(cfg[n])
            cols["n_params"].append(None if r.n_params is None else int(r.n_params))
            cols["flops"].append(None if r.flops is None else int(r.flops))
            cols["status"].append(r.status)
            cols["error"].append(r.error)
        kv = meta_bytes(self.meta)
        cfg = pa.table(cols, schema=self._configs_schema.with_metadata(kv))
        ks = [r._k for r in recs]
        cur = {
            "config_id": np.repeat(np.array(cols["config_id"], dtype=np.int64), ks),
            "epoch": np.concatenate([np.arange(1, k + 1) for k in ks]).astype(np.int32),
        }
        for f in _EPOCH_FIELDS:
            cur[f] = np.concatenate([np.asarray(getattr(r, f), dtype=np.float64).reshape(-1)
                                     for r in recs])
        cur["concurrency"] = np.concatenate([
            np.full(r._k, r.concurrency) if isinstance(r.concurrency, int | np.integer)
            else np.asarray(r.concurrency) for r in recs]).astype(np.int32)
        return cfg, pa.table(cur, schema=curves_schema().with_metadata(kv))


def _check_values(r: ConfigResult) -> None:
    """Refuse values that `lcsim table validate` would reject, before anything is written."""
    acc = np.asarray(r.val_accuracy, dtype=np.float64)
    if ((acc < 0) | (acc > 1)).any():
        raise TableError(f"config {r.config_id}: val_accuracy {acc[(acc < 0) | (acc > 1)][0]!r}"
                         " is outside [0, 1] (a fraction, not percent)")
    if r.status == "complete" and np.isnan(acc).any():
        raise TableError(f"config {r.config_id}: complete but val_accuracy has NaN at epoch "
                         f"{int(np.argmax(np.isnan(acc))) + 1}; record it as diverged")
    for f in ("train_seconds", "solo_seconds", "eval_seconds"):
        v = np.asarray(getattr(r, f), dtype=np.float64)
        if (v < 0).any():
            raise TableError(f"config {r.config_id}: {f} has a negative value {v[v < 0][0]!r}")


class _HeldIndex:
    """Committed ids of a directory, kept up to date by re-listing configs/ and reading only
    the shards not seen before (a few ms for 20,000 shards)."""

    def __init__(self, d: Path):
        self.dir = d
        self.by_file: dict[str, list[int]] = {}
        self.ids: Counter = Counter()

    def refresh(self) -> set[int]:
        files = {}
        with os.scandir(self.dir / "configs") as it:  # only this side: commits live here
            for e in it:
                if e.name.endswith(".parquet") and not e.name.startswith("."):
                    files[e.path] = Path(e.path)
        for gone in set(self.by_file) - set(files):
            self.ids.subtract(self.by_file.pop(gone))
        new = [files[f] for f in files if f not in self.by_file]
        if len(new) > 20:  # a resumed table: one threaded scan instead of a read per file
            for f, ids in _scan_ids(new).items():
                self.add(f, ids)
        for f in new:
            if str(f) not in self.by_file:
                self.add(f, _read_ids(f))
        return {i for i, n in self.ids.items() if n > 0}

    def add(self, path: Path, ids: Sequence[int]) -> None:
        if str(path) not in self.by_file:
            self.by_file[str(path)] = list(ids)
            self.ids.update(ids)


def _scan_ids(files: list[Path]) -> dict[Path, list[int]]:
    """{file: its config ids} in one pyarrow.dataset scan ({} if any file is unreadable: the
    caller then reads file by file, naming the bad one)."""
    import pyarrow.dataset as ds

    try:
        t = ds.dataset([str(f) for f in files], format="parquet").to_table(
            columns=["config_id", "__filename"])
    except (pa.ArrowInvalid, OSError):
        return {}
    out: dict[Path, list[int]] = {f: [] for f in files}
    by_name = {str(f): f for f in files}
    for name, cid in zip(t.column("__filename").to_pylist(),
                         t.column("config_id").to_pylist(), strict=True):
        out[by_name[name]].append(cid)
    return out


def _read_ids(path: Path) -> list[int]:
    try:
        return pq.read_table(path, columns=["config_id"]).column("config_id").to_pylist()
    except (pa.ArrowInvalid, OSError) as e:
        raise TableError(f"{path}: a configs shard is unreadable ({e}); run "
                         f"`lcsim table validate --table {path.parent.parent}`") from None


_TABLE_ENTRIES = (META_FILE, "configs", "curves", MERGED_CONFIGS, MERGED_CURVES)


def check_table_dir(directory: str | os.PathLike) -> None:
    """TableError unless `directory` is missing, empty (hidden files aside) or a table (it
    holds meta.json, configs/, curves/ or a merged pair): a folder of other files is not
    turned into a table by accident. A table may keep the user's own files beside it."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise TableError(f"{d}: is a file; a table is a directory (give a new directory)")
    if not d.is_dir() or any((d / e).exists() for e in _TABLE_ENTRIES):
        return
    foreign = sorted(e.name for e in os.scandir(d) if not e.name.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise TableError(f"{d}: not empty and not an lcsim table (it holds {shown}); a table "
                         f"directory holds {META_FILE} with configs/ and curves/ shards. Give "
                         "a new or empty directory, or a table to add to")


def held_ids(directory: str | os.PathLike) -> set[int]:
    """Config ids committed in a table directory (reads only the configs shards); an empty
    set for a directory that does not exist yet."""
    d = Path(directory)
    if not d.exists():
        return set()
    files = [c for c, _ in list_shards(d).pairs]
    if not files:
        return set()
    import pyarrow.dataset as ds

    try:
        t = ds.dataset([str(f) for f in files], format="parquet").to_table(columns=["config_id"])
    except (pa.ArrowInvalid, OSError):
        for f in files:  # name the file, without Arrow's internals
            try:
                kv = pq.read_schema(f).metadata
            except (pa.ArrowInvalid, OSError):
                raise TableError(f"{f}: not a readable Parquet file (truncated or corrupt); "
                                 f"run `lcsim table validate --table {d}`") from None
            read_meta(kv, str(f))  # a foreign Parquet file
        raise TableError(f"{d}: the configs shards cannot be read together; run "
                         f"`lcsim table validate --table {d}`") from None
    return set(t.column("config_id").to_pylist())

