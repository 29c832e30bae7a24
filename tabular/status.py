"""Progress of a table being generated: counts by status, remaining ids, throughput, ETA.

Reads only the table directory (shard files and their modification times), so it works while
a generator is writing (`lcsim table status --table DIR`, alias `lcsim pregen status`).
"""

from __future__ import annotations

import collections
import json
import os
from dataclasses import dataclass

import numpy as np

from .schema import META_FILE, TableError, list_shards

__all__ = ["TableStatus", "table_status"]




@dataclass(frozen=True)
class TableStatus:
    directory: str
    n_configs: int | None  # the run's target (ids 0..n-1), from --n-configs or the metadata
    complete: int
    diverged: int
    failed: int
    held: int  # configs in the directory
    remaining: int | None  # of ids 0..n-1 not held yet
    configs_per_hour: float | None  # measured throughput of the latest session
    eta_seconds: float | None
    rate_source: str  # how configs_per_hour was measured
    writers: tuple[str, ...] = ()  # live runs holding the table (tabular.lock.Holder.describe)

    def lines(self) -> list[str]:
        def hms(s: float) -> str:
            s = int(round(s))
            return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"

        out = [f"table       {self.directory}",
               f"complete    {self.complete}", f"diverged    {self.diverged}",
               f"failed      {self.failed}",
               f"remaining   {'?' if self.remaining is None else self.remaining}"
               + (f" of {self.n_configs}" if self.n_configs is not None else "")]
        if self.configs_per_hour:
            out.append(f"throughput  {self.configs_per_hour:.1f} configs/hour "
                       f"({self.rate_source})")
        if self.eta_seconds is not None:
            out.append(f"eta         {hms(self.eta_seconds)}")
        out += [f"writer      {w}" for w in self.writers] or ["writer      none running"]
        return out


def _recorded_seconds(ds, curve_files: list):
    """Recorded seconds per config (sum over epochs of train + eval, / concurrency), a pandas
    Series by config_id, or None without curves."""
    files = [str(f) for f in curve_files if f is not None]
    if not files:
        return None
    df = ds.dataset(files, format="parquet").to_table(
        columns=["config_id", "train_seconds", "eval_seconds", "concurrency"]).to_pandas()
    if df.empty:
        return None
    sec = (df.train_seconds + df.eval_seconds) / df.concurrency.clip(lower=1)
    return sec.groupby(df.config_id).sum()


_SESSION_GAP = 600.0  # s between shard commits that start a new session (a stop and resume)


def table_status(directory: str | os.PathLike, n_configs: int | None = None) -> TableStatus:
    """Counts by status, remaining ids of 0..n-1 and an ETA from measured throughput.

    Throughput: configs committed per hour in the latest session (shard mtimes; a gap of
    more than 10 minutes starts a new session; the session starts at its first commit minus
    that config's recorded seconds); with fewer than 2 shards in it (or a merged table), the
    mean recorded seconds per config (train + eval, divided by the concurrency).
    """
    import pyarrow.dataset as ds

    from .lock import holders
    from .table import resolve_table

    d = resolve_table(directory)  # names a missing directory, or a file given as a table
    if not (d / META_FILE).exists():
        raise TableError(f"{d}: not a table directory (no {META_FILE}); start it with "
                         "`lcsim pregen run --out DIR`")
    meta = json.loads((d / META_FILE).read_text())
    if n_configs is None:
        n_configs = meta.get("n_configs")
    shards = list_shards(d)
    conf_files = [str(c) for c, _ in shards.pairs]
    if conf_files:
        t = ds.dataset(conf_files, format="parquet").to_table(columns=["config_id", "status"])
        ids = np.asarray(t.column("config_id").to_numpy())
        status = np.asarray(t.column("status").to_pylist(), dtype=object)
    else:
        ids, status = np.zeros(0, np.int64), np.zeros(0, object)
    counts = collections.Counter(status.tolist())
    held = len(set(ids.tolist()))
    remaining = None
    if n_configs is not None:
        remaining = int(n_configs) - len({i for i in ids.tolist() if 0 <= i < int(n_configs)})
    rate, source = None, "no finished configs yet"
    # commits only: a merged shard holds many and was written at merge time
    timed = sorted((os.stat(c).st_mtime, cur) for c, cur in shards.pairs
                   if c.parent.name == "configs" and "-merged-" not in c.name)
    if timed:
        start = len(timed) - 1
        while start > 0 and timed[start][0] - timed[start - 1][0] <= _SESSION_GAP:
            start -= 1
        n = len(timed) - start
        # the session began before its first commit by that config's recorded seconds
        first = _recorded_seconds(ds, [timed[start][1]]) if timed[start][1] else None
        span = timed[-1][0] - timed[start][0] + (first.iloc[0] if first is not None else 0.0)
        if n >= 2 and span > 0:
            rate = n / span * 3600
            source = f"{n} shards committed in the latest session"
    if rate is None and held:
        per = _recorded_seconds(ds, [c for _, c in shards.pairs if c is not None])
        if per is not None and per.mean() > 0:
            rate = 3600 / per.mean()
            source = "recorded seconds per config (train + eval) / concurrency"
    eta = remaining / rate * 3600 if rate and remaining is not None else None
    return TableStatus(str(d), n_configs, counts.get("complete", 0), counts.get("diverged", 0),
                       counts.get("failed", 0), held, remaining, rate, eta, source,
                       tuple(h.describe() for h in holders(d)))
