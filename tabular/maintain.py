"""Table maintenance under the whole-table lock: merge shards, repair duplicates.

`merge_table(dir, out=None)` (`lcsim table merge`) refuses an invalid table, then compacts
every committed shard into one shard pair `configs/<t>-merged-<uuid>.parquet` +
`curves/<...>` sorted by (config_id, epoch), data unchanged. The merged table keeps the
sharded layout (one folder per side), so `pd.read_parquet("DIR/curves")` reads every row of
a merged table, of a sharded one, and of a merged table that a resumed `pregen run` appended
to. In place it removes exactly the shard files it merged (and the top-level
`configs.parquet` / `curves.parquet` of a table merged by an older lcsim); anything else in
the directory (a user's notes, plots, other files inside configs/ or curves/) stays.
The switch is one pair of directory renames of `configs/` (the merged configs shard, with
any foreign files moved over, replaces the old folder), so a reader sees the old shards or
the merged one, except for the instant between the two renames.

`repair_table(dir)` (`lcsim table repair`) removes duplicate commits: for each config id
committed more than once, the earliest committed copy (by the configs shard's modification
time, then name) stays and the others go: a shard holding only duplicates is removed, a shard
holding others too is rewritten without the duplicate rows. Nothing else is touched.

Both hold `RangeLock(dir, WHOLE)`, so they refuse to run while a generator writes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .lock import WHOLE, RangeLock
from .schema import (
    MERGED_CONFIGS,
    META_FILE,
    TableError,
    configs_schema,
    curves_schema,
    list_shards,
    meta_bytes,
    read_meta,
)
from .table import _read_shards, _space_of, resolve_table
from .writer import _atomic_bytes, _fsync_dir, write_parquet_atomic

__all__ = ["RepairReport", "merge_table", "repair_table"]


def _merged_name() -> str:
    return f"{int(time.time())}-merged-{uuid.uuid4().hex[:12]}.parquet"


def merge_table(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Compact a valid table into one shard pair (module docstring). In place unless `out`
    (which must not exist) is given; returns the merged table's directory."""
    from .validate import validate_table

    d = resolve_table(path)
    target = Path(out) if out is not None else d
    if out is not None and target.exists():
        raise TableError(f"{target}: merge output must not exist yet")
    lock = RangeLock(d, WHOLE, command=f"lcsim table merge --table {d}") if out is None else None
    if lock is not None:
        lock.acquire()
    try:
        rep = validate_table(d)
        if not rep.ok:
            hint = (f"; `lcsim table repair --table {d}` removes duplicate commits"
                    if any("duplicate" in e for e in rep.errors) else "")
            raise TableError(f"{d}: refusing to merge an invalid table ({len(rep.errors)} "
                             f"errors; first: {rep.errors[0]}); run `lcsim table validate "
                             f"--table {d}`{hint}")
        shards = list_shards(d)
        meta, cfg, cur = _read_shards(d, shards)
        if (d / META_FILE).exists():
            meta = json.loads((d / META_FILE).read_text())
        meta = {**meta, "merged_from_shards": _commits(shards.pairs)}
        kv = meta_bytes(meta)
        cfg = cfg.sort_by("config_id").cast(configs_schema(_space_of(meta)))
        cur = cur.sort_by([("config_id", "ascending"), ("epoch", "ascending")])
        cfg = cfg.replace_schema_metadata(kv)
        cur = cur.cast(curves_schema()).replace_schema_metadata(kv)
        text = json.dumps(meta, indent=1, sort_keys=True).encode()
        name = _merged_name()
        if out is not None:
            _merge_to_new(target, name, cfg, cur, text)
        else:
            _merge_in_place(d, shards, name, cfg, cur, text)
    finally:
        if lock is not None:
            lock.release()
    return target


def _commits(pairs) -> int:
    """Shards committed by writers behind these pairs: a merged pair counts what it merged."""
    n = 0
    for c, _ in pairs:
        merged = c.name == MERGED_CONFIGS or "-merged-" in c.name
        n += int(read_meta(pq.read_schema(c).metadata, str(c)).get(
            "merged_from_shards", 1)) if merged else 1
    return n


def _merge_to_new(target: Path, name: str, cfg: pa.Table, cur: pa.Table, meta: bytes) -> None:
    tmp = target.parent / f".{target.name}.merge-{uuid.uuid4().hex[:8]}"
    try:
        for sub in ("configs", "curves"):
            (tmp / sub).mkdir(parents=True)
        write_parquet_atomic(cur, tmp / "curves" / name)
        write_parquet_atomic(cfg, tmp / "configs" / name)
        _atomic_bytes(tmp / META_FILE, meta)
        os.rename(tmp, target)  # atomic: OUT appears complete or not at all
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _merge_in_place(d: Path, shards, name: str, cfg: pa.Table, cur: pa.Table,
                    meta: bytes) -> None:
    merged = {p for pair in shards.pairs for p in pair if p is not None}
    (d / "curves").mkdir(exist_ok=True)
    write_parquet_atomic(cur, d / "curves" / name)  # no configs shard yet: invisible
    fresh = d / f".configs-merge-{uuid.uuid4().hex[:8]}"
    fresh.mkdir()
    old = d / f".configs-old-{uuid.uuid4().hex[:8]}"
    try:
        write_parquet_atomic(cfg, fresh / name)
        if (d / "configs").is_dir():
            for e in os.scandir(d / "configs"):  # foreign files stay in configs/
                if Path(e.path) not in merged:
                    os.rename(e.path, fresh / e.name)
            os.rename(d / "configs", old)
        os.rename(fresh, d / "configs")  # the switch: the merged shard is now committed
    except BaseException:
        (d / "curves" / name).unlink(missing_ok=True)
        if not (d / "configs").exists() and old.exists():
            os.rename(old, d / "configs")
        if fresh.exists() and (d / "configs").is_dir():  # the user's files go back first
            for e in os.scandir(fresh):
                if e.name != name:
                    os.rename(e.path, d / "configs" / e.name)
        raise
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    _atomic_bytes(d / META_FILE, meta)
    for p in merged:  # exactly the files merged, then the emptied old folder
        (old / p.name if p.parent == d / "configs" else p).unlink(missing_ok=True)
    if old.exists():
        old.rmdir()  # fails loudly if anything unexpected is left in it
    for sub in ("configs", "curves", "."):
        _fsync_dir(d / sub)


@dataclass
class RepairReport:
    path: Path
    duplicates: list[int] = field(default_factory=list)  # ids committed more than once
    removed: list[str] = field(default_factory=list)  # shard names removed (both sides)
    rewritten: list[str] = field(default_factory=list)  # shards rewritten without duplicates

    def lines(self) -> list[str]:
        if not self.duplicates:
            return [f"{self.path}: no config is committed twice; nothing changed"]
        ids = ", ".join(map(str, self.duplicates[:20]))
        more = f" and {len(self.duplicates) - 20} more" if len(self.duplicates) > 20 else ""
        return [f"{self.path}: config id(s) {ids}{more} were committed more than once; kept "
                "the earliest committed copy of each",
                f"removed {len(self.removed)} duplicate shard(s): {', '.join(self.removed)}"
                if self.removed else "removed no shard",
                f"rewrote {len(self.rewritten)} shard(s) without their duplicate rows: "
                f"{', '.join(self.rewritten)}" if self.rewritten else "rewrote no shard"]


def repair_table(path: str | os.PathLike) -> RepairReport:
    """Remove duplicate commits, keeping the earliest committed copy (module docstring)."""
    d = resolve_table(path)
    rep = RepairReport(path=d)
    with RangeLock(d, WHOLE, command=f"lcsim table repair --table {d}"):
        pairs = list_shards(d).pairs
        ids_of = {}
        for c, _ in pairs:
            try:
                ids_of[c] = pq.read_table(c, columns=["config_id"]).column(
                    "config_id").to_numpy()
            except (pa.ArrowInvalid, OSError) as e:
                raise TableError(f"{c}: not a readable configs shard ({e}); `lcsim table "
                                 f"validate --table {d}` lists what is wrong") from None
        order = sorted(pairs, key=lambda p: (os.stat(p[0]).st_mtime_ns, p[0].name))
        seen: set[int] = set()
        dups: set[int] = set()
        for c, u in order:
            ids = ids_of[c]
            listed = ids.tolist()
            again = np.fromiter((i in seen for i in listed), bool, len(listed))  # O(ids)
            seen.update(listed)
            if not again.any():
                continue
            dups.update(ids[again].tolist())
            if again.all():
                c.unlink()  # uncommit first: readers then ignore its curves shard
                if u is not None:
                    u.unlink(missing_ok=True)
                rep.removed.append(c.name)
            else:
                _rewrite_without(c, u, ids[again])
                rep.rewritten.append(c.name)
        rep.duplicates = sorted(dups)
    return rep


def _rewrite_without(c: Path, u: Path | None, drop: np.ndarray) -> None:
    """Rewrite one shard pair without the rows of config ids `drop` (curves first: until
    the configs side is rewritten, the dropped ids' curve rows are simply missing here)."""
    if u is not None:
        t = pq.read_table(u)
        keep = ~np.isin(t.column("config_id").to_numpy(), drop)
        write_parquet_atomic(t.filter(pa.array(keep)), u)
    t = pq.read_table(c)
    keep = ~np.isin(t.column("config_id").to_numpy(), drop)
    write_parquet_atomic(t.filter(pa.array(keep)), c)
