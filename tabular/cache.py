"""The dense-array cache beside a table: `DIR/.lcsim-cache.npz`, else the user cache dir.

Holds every dense array, the metadata and the configs table (Arrow IPC bytes), keyed by the
table's file list with sizes and mtimes (a new or rewritten shard changes the key). Written
atomically (temp file + rename); a damaged or stale cache is rebuilt, never trusted. A
shipped table (package data) or a read-only table directory caches in
`$LCSIM_CACHE_DIR`, else `$XDG_CACHE_HOME/lcsim` or `~/.cache/lcsim`; with neither writable
the table still opens, uncached.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .schema import SCHEMA_VERSION

__all__ = ["cache_key", "load", "save", "CACHE_NAME"]

CACHE_NAME = ".lcsim-cache.npz"
_CACHE_FORMAT = 1  # bump when what the cache holds or how arrays are derived changes


def cache_key(files: list[Path]) -> str:
    h = hashlib.sha256(f"{_CACHE_FORMAT}/{SCHEMA_VERSION}".encode())
    for f in files:
        if not f.exists():
            continue
        st = f.stat()
        h.update(f"{f.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _user_cache_file(d: Path) -> Path:
    root = os.environ.get("LCSIM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lcsim")
    tag = hashlib.sha256(str(d.resolve()).encode()).hexdigest()[:20]
    return Path(root) / "tables" / f"{tag}.npz"


_SHIPPED = Path(__file__).resolve().parent / "data"


def _cache_files(d: Path) -> list[Path]:
    # shipped tables are package data: never write beside them, even in an editable checkout
    if d.resolve().is_relative_to(_SHIPPED):
        return [_user_cache_file(d)]
    return [d / CACHE_NAME, _user_cache_file(d)]


def load(d: Path, key: str) -> tuple[dict[str, Any], pa.Table, dict[str, np.ndarray]] | None:
    """(meta, configs table, arrays) from a cache matching `key`, or None."""
    for f in _cache_files(d):
        if not f.exists():
            continue
        try:
            with np.load(f, allow_pickle=False) as z:
                if str(z["_key"]) != key:
                    continue
                arrays = {k: z[k] for k in z.files if not k.startswith("_")}
                meta = json.loads(str(z["_meta"]))
                ipc = z["_configs"].tobytes()
                arrays["_encoder"] = z["_encoder"]
            configs = pa.ipc.open_stream(ipc).read_all()
        except (OSError, ValueError, KeyError, EOFError, pa.ArrowInvalid):
            continue  # a damaged cache is rebuilt, never trusted
        return meta, configs, arrays
    return None


def save(d: Path, key: str, meta: dict[str, Any], configs: pa.Table,
         arrays: dict[str, np.ndarray]) -> None:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, configs.schema) as w:
        w.write_table(configs)
    payload = {k: v for k, v in arrays.items() if not k.startswith("_")}
    payload.update(_key=np.array(key), _meta=np.array(json.dumps(meta)),
                   _configs=np.frombuffer(sink.getvalue(), dtype=np.uint8),
                   _encoder=np.asarray(arrays["_encoder"]))
    for f in _cache_files(d):
        try:
            f.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-cache-", suffix=".npz", dir=f.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **payload)
                os.replace(tmp, f)  # atomic: readers see the old cache or the new one
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return
        except OSError:
            continue  # read-only directory: try the user cache dir; else no cache
