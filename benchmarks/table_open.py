"""Open time and look-up speed of a 20,000-config x 50-epoch LookupTable.

    OMP_NUM_THREADS=1 python benchmarks/table_open.py [--configs 20000] [--epochs 50]

Builds a synthetic table with TableWriter in a temp dir (100 shards of 200 configs, then a
merged copy), and prints CPU seconds (time.process_time) for the first open (Parquet ->
dense arrays + cache), the cached open, and 1,000 random `accuracy()` look-ups against the
pandas-filter baseline `df[(df.config_id == i) & (df.epoch == e)]`, with the ratio.
The numbers measured on the 2-core dev box are quoted in tabular/table.py's docstring.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu(fn):
    t0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - t0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--per-shard", type=int, default=200)
    ap.add_argument("--lookups", type=int, default=1_000)
    a = ap.parse_args()

    from lcsim.tabular import LookupTable, TableWriter
    from lcsim.tabular.testing import make_meta, make_results
    from lcsim.tabular.validate import merge_table

    n, T = a.configs, a.epochs
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "t"

        def build():
            recs = make_results(n, T, lambda i, e: 0.1 + 0.8 * (1 - np.exp(-e / (1 + i % 17))),
                                seconds=lambda i, e: 1.0 + (i % 13) + 0 * e)
            w = TableWriter(d, make_meta(T))
            for s in range(0, n, a.per_shard):
                w.write(recs[s:s + a.per_shard])

        _, c, w = cpu(build)
        print(f"table: {n} configs x {T} epochs, {n // a.per_shard} shards; "
              f"built in {w:.1f} s wall")
        rows = []
        for label, path in (("sharded", d), ("merged", None)):
            if path is None:
                path = merge_table(d, Path(tmp) / "merged")
            _, c1, w1 = cpu(lambda p=path: LookupTable.open(p))
            t, c2, w2 = cpu(lambda p=path: LookupTable.open(p))
            rows.append((label, c1, w1, c2, w2))
        for label, c1, w1, c2, w2 in rows:
            print(f"open {label:<8} first: {c1:6.3f} s CPU ({w1:6.3f} s wall)   "
                  f"cached: {c2:6.3f} s CPU ({w2:6.3f} s wall)")

        rng = np.random.default_rng(0)
        ids = rng.choice(t.ids, a.lookups)
        eps = rng.integers(1, T + 1, a.lookups)
        got, c_lut, _ = cpu(lambda: [t.accuracy(int(i), int(e)) for i, e in zip(ids, eps,
                                                                               strict=True)])
        df = t.curves_frame()

        def pandas_lookups():
            return [float(df[(df.config_id == i) & (df.epoch == e)].val_accuracy.iloc[0])
                    for i, e in zip(ids, eps, strict=True)]

        want, c_pd, _ = cpu(pandas_lookups)
        assert np.array_equal(got, want), "LookupTable and pandas disagree"
        print(f"{a.lookups} random accuracy() look-ups: LookupTable {c_lut * 1e3:8.2f} ms CPU, "
              f"pandas filter {c_pd * 1e3:9.1f} ms CPU, ratio {c_pd / c_lut:,.0f}x")


if __name__ == "__main__":
    main()
