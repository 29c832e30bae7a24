"""Synthetic learning-curve tables with closed-form curves, for tests and benchmarks.

`make_table(n, T, fn)` gives a LookupTable whose accuracies are exactly `fn(i, epochs)`, so a
test can compute the right answer by hand. Configs are the space's real Sobol points
(config_id i = Sobol index i), so features, `nearest` and surrogate models see real inputs.

    from lcsim.tabular.testing import make_table
    t = make_table(50, 10, lambda i, e: 0.1 + 0.8 * (1 - np.exp(-e / (1 + i % 7))))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .schema import build_meta
from .table import LookupTable
from .writer import ConfigResult, TableWriter

__all__ = ["make_table", "make_frames", "make_results", "write_table", "make_meta"]

CurveFn = Callable[[int, np.ndarray], np.ndarray]
# fn(config_index, epochs [T] = 1..T) -> values [T]; or a float for the same every epoch
SecondsArg = float | Callable[[int, np.ndarray], np.ndarray]


def make_meta(epochs: int, *, space: str | None = "mnist", seed: int = 0,
              **extra: Any) -> dict[str, Any]:
    return build_meta(dataset=extra.pop("dataset", "synthetic"), space=space, epochs=epochs,
                      sobol_seed=seed, split_seed=0, device=extra.pop("device", "synthetic"),
                      time_measurement="closed-form synthetic seconds (tabular.testing)",
                      num_classes=extra.pop("num_classes", None if space else 10), **extra)


def _status_of(i: int, status: Mapping[int, Any] | None, T: int) -> tuple[str, int]:
    """(status, epochs recorded). A status entry is "diverged" (then the first T // 2
    epochs, at least 1, are recorded), "failed" (none), or (status, epochs recorded)."""
    s = None if status is None else status.get(i)
    if s is None or s == "complete":
        return "complete", T
    if isinstance(s, tuple):
        return s[0], int(s[1])
    return s, (max(1, T // 2) if s == "diverged" else 0)


def make_results(n_configs: int, epochs: int, fn: CurveFn, *, space: str = "mnist",
                 seconds: SecondsArg = 1.0, seed: int = 0, status: Mapping[int, Any] | None = None,
                 concurrency: int = 1, start: int = 0) -> list[ConfigResult]:
    """ConfigResults for Sobol indices start..start+n_configs-1 (what a generator writes).

    Losses are 1 - accuracy (train) and 1.1 * (1 - accuracy) (val); solo seconds come from
    `seconds`, measured train seconds are solo * concurrency, eval seconds 0.1 * solo.
    """
    from lcsim.tabular.spaces import get_space

    sp = get_space(space)
    T = epochs
    e = np.arange(1, T + 1)
    out = []
    for i, cfg in enumerate(sp.configs(start, start + n_configs, seed), start=start):
        acc = np.asarray(fn(i, e), dtype=np.float64).reshape(T)
        sec = (np.full(T, float(seconds)) if not callable(seconds)
               else np.asarray(seconds(i, e), dtype=np.float64).reshape(T))
        st, k = _status_of(i, status, T)
        out.append(ConfigResult(
            config_id=i, config=cfg, status=st, val_accuracy=acc[:k],
            train_loss=1 - acc[:k], val_loss=1.1 * (1 - acc[:k]),
            train_seconds=sec[:k] * concurrency, solo_seconds=sec[:k],
            eval_seconds=0.1 * sec[:k], concurrency=concurrency, n_params=1000 + i,
            flops=2000 + i, error=None if st == "complete" else f"synthetic {st}"))
    return out


def make_frames(n_configs: int, epochs: int, fn: CurveFn, **kw: Any
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(configs, curves, meta) as pandas frames, same arguments as `make_table`."""
    space = kw.get("space", "mnist")
    recs = make_results(n_configs, epochs, fn, **kw)
    meta = make_meta(epochs, space=space, seed=kw.get("seed", 0))
    from lcsim.tabular.spaces import get_space

    names = get_space(space).names
    configs = pd.DataFrame([{"config_id": r.config_id, **{k: r.config[k] for k in names},
                             "n_params": r.n_params, "flops": r.flops, "status": r.status,
                             "error": r.error} for r in recs])
    rows = []
    for r in recs:
        k = len(r.val_accuracy)
        rows.append(pd.DataFrame({
            "config_id": np.full(k, r.config_id, dtype=np.int64),
            "epoch": np.arange(1, k + 1, dtype=np.int32),
            "val_accuracy": r.val_accuracy, "train_loss": r.train_loss,
            "val_loss": r.val_loss, "train_seconds": r.train_seconds,
            "solo_seconds": r.solo_seconds, "eval_seconds": r.eval_seconds,
            "concurrency": np.full(k, r.concurrency, dtype=np.int32)}))
    return configs, pd.concat(rows, ignore_index=True), meta


def make_table(n_configs: int, epochs: int, fn: CurveFn, *, space: str = "mnist",
               seconds: SecondsArg = 1.0, seed: int = 0,
               status: Mapping[int, Any] | None = None, concurrency: int = 1) -> LookupTable:
    """An in-memory LookupTable with acc[i] = fn(i, 1..T) for Sobol configs 0..n-1.

    `status` maps config index -> "diverged" (first T // 2 epochs recorded), "failed"
    (none) or (status, epochs recorded); others are complete.
    """
    c, u, m = make_frames(n_configs, epochs, fn, space=space, seconds=seconds, seed=seed,
                          status=status, concurrency=concurrency)
    return LookupTable.from_frames(c, u, m)


def write_table(directory: str | os.PathLike, n_configs: int, epochs: int, fn: CurveFn, *,
                per_shard: int = 1, **kw: Any) -> Path:
    """Write a synthetic table through TableWriter, `per_shard` configs per shard."""
    recs = make_results(n_configs, epochs, fn, **kw)
    w = TableWriter(directory, make_meta(epochs, space=kw.get("space", "mnist"),
                                         seed=kw.get("seed", 0)))
    for s in range(0, len(recs), per_shard):
        w.write(recs[s:s + per_shard])
    return Path(directory)
