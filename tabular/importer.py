"""Import learning curves from elsewhere: a long CSV becomes a valid lcsim table.

    lcsim table import curves.csv --out my-table [--space mnist] [--num-classes 10]

The CSV has one row per config and epoch, with a header:

    config           id of the config: a non-negative integer, or any text (then ids 0..n-1
                     are given in order of first appearance; the text is kept in the configs
                     column `source_config`)
    epoch            1..T (no epoch 0: an untrained model is not an epoch)
    accuracy         validation accuracy after that epoch, a fraction in [0, 1]
                     (--percent for 0..100)
    seconds          training seconds of that epoch (--cumulative-seconds if it is elapsed
                     time since the config started); used as both the measured and the
                     solo time: an imported table cannot tell them apart
    hyperparameters  a JSON object, e.g. {"lr": 0.01, "depth": 3, "act": "relu"}; the same
                     on every row of a config (rows after the first may leave it empty)

Optional columns: train_loss, val_loss, eval_seconds, solo_seconds (then `seconds` is the
measured time), status (complete / diverged / failed, constant per config), error.
Without a status column, a config with all epochs 1..T is complete and any other is an
error (say which configs stopped early with a status column). T is the largest epoch unless
--epochs is given.

With --space NAME the hyperparameters must be that space's free parameters (checked by the
space) and become typed columns; the table then works with every lcsim feature. Without a
space the JSON is stored as is and LookupTable derives unit-cube features from it (see
`tabular.jsonfeatures`). Example:

    config,epoch,accuracy,seconds,hyperparameters
    a,1,0.52,3.1,"{""lr"": 0.01, ""width"": 64}"
    a,2,0.61,3.0,
    b,1,0.40,5.2,"{""lr"": 0.1, ""width"": 256}"
    b,2,0.47,5.3,
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .schema import STATUSES, TableError, build_meta
from .writer import ConfigResult, TableWriter

__all__ = ["import_csv", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("config", "epoch", "accuracy", "seconds", "hyperparameters")
_PER_SHARD = 5000  # configs per shard: few files, each small enough to write quickly


def _numeric(df: pd.DataFrame, col: str, where: str) -> np.ndarray:
    v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(v) & df[col].notna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise TableError(f"{where}: line {i + 2}: column {col!r} is not a number "
                         f"({df[col].iloc[i]!r})")
    return v


def import_csv(csv_path: str | os.PathLike, out: str | os.PathLike, *,
               space: str | None = None, dataset: str | None = None,
               num_classes: int | None = None, epochs: int | None = None,
               percent: bool = False, cumulative_seconds: bool = False,
               device: str = "unknown") -> Path:
    """Convert a long CSV (format in the module docstring) into a new table directory."""
    src, out = Path(csv_path), Path(out)
    where = str(src)
    if out.exists() and any(out.iterdir()):
        raise TableError(f"{out}: import writes a new table; the directory is not empty")
    try:
        df = pd.read_csv(src, dtype={"config": str, "hyperparameters": str, "status": str,
                                     "error": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise TableError(f"{where}: cannot read the CSV ({e})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TableError(f"{where}: missing column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise TableError(f"{where}: no rows")
    ep = _numeric(df, "epoch", where)
    bad = np.isnan(ep) | (ep < 1) | (ep != np.floor(ep))
    if bad.any():
        i = int(np.argmax(bad))
        raise TableError(f"{where}: line {i + 2}: column 'epoch' must be an integer >= 1 "
                         f"(epochs are numbered 1..T), got {df['epoch'].iloc[i]!r}")
    T = int(ep.max()) if epochs is None else int(epochs)
    if ep.max() > T:
        raise TableError(f"{where}: line {int(np.argmax(ep))+2}: epoch {int(ep.max())} > "
                         f"--epochs {T}")
    acc = _numeric(df, "accuracy", where) / (100.0 if percent else 1.0)
    if np.nanmax(acc) > 1 or np.nanmin(acc) < 0:
        i = int(np.nanargmax(np.abs(acc - 0.5)))
        hint = "; pass --percent if accuracies are in percent" if not percent else ""
        raise TableError(f"{where}: line {i + 2}: column 'accuracy' is "
                         f"{df['accuracy'].iloc[i]!r}, outside [0, 1]{hint}")
    cols = {"val_accuracy": acc, "seconds": _numeric(df, "seconds", where)}
    for c in ("train_loss", "val_loss", "eval_seconds", "solo_seconds"):
        cols[c] = (_numeric(df, c, where) if c in df.columns else np.full(len(df), np.nan))
    if "eval_seconds" not in df.columns:
        cols["eval_seconds"] = np.zeros(len(df))  # unknown: charged as free
    if df["config"].isna().any():
        raise TableError(f"{where}: line {int(np.argmax(df['config'].isna())) + 2}: column "
                         "'config' is empty")
    key = df["config"].astype(str).to_numpy()
    order = np.lexsort((ep, pd.factorize(key)[0]))
    dup = (key[order][1:] == key[order][:-1]) & (ep[order][1:] == ep[order][:-1])
    if dup.any():
        a, b = order[int(np.argmax(dup))], order[int(np.argmax(dup)) + 1]
        raise TableError(f"{where}: lines {a + 2} and {b + 2}: config {key[a]!r} epoch "
                         f"{int(ep[a])} appears twice")
    codes, labels = pd.factorize(key)  # first-appearance order
    ints = pd.to_numeric(pd.Series(labels), errors="coerce")
    as_int = bool(ints.notna().all() and (ints >= 0).all() and (ints == ints.round()).all())
    if space is not None and not as_int:
        raise TableError(f"{where}: with --space the 'config' column must hold non-negative "
                         f"integer ids (found {labels[int(np.argmax(ints.isna()))]!r})")
    from .table import _space_of

    sp = _space_of({"space": space})
    meta = build_meta(
        dataset=dataset or src.stem, space=space, epochs=T, sobol_seed=None, split_seed=None,
        device=device, num_classes=num_classes,
        time_measurement=(f"imported from {src.name}: 'seconds' column"
                          + (" (cumulative, differenced per config)" if cumulative_seconds
                             else "") + " as measured per-epoch training seconds; solo "
                          + ("from the 'solo_seconds' column" if "solo_seconds" in df.columns
                             else "seconds = measured seconds (unknown sharing)")),
        source={"file": src.name, "sha256": hashlib.sha256(src.read_bytes()).hexdigest()})
    records = []
    groups = pd.Series(np.arange(len(df))).groupby(codes, sort=True)
    hp_col = df["hyperparameters"].to_numpy()
    st_col = df["status"].astype(str).to_numpy() if "status" in df.columns else None
    err_col = df["error"].to_numpy() if "error" in df.columns else None
    for code, idx in groups:
        rows = idx.to_numpy()[np.argsort(ep[idx.to_numpy()], kind="stable")]
        label = labels[code]
        cid = int(ints[code]) if as_int else int(code)
        hp = _config_hp(hp_col, rows, label, where)
        status = _config_status(st_col, rows, label, where)
        k = len(rows)
        if not np.array_equal(ep[rows], np.arange(1, k + 1)):
            miss = sorted(set(range(1, int(ep[rows].max()) + 1)) - set(ep[rows].astype(int)))
            raise TableError(f"{where}: config {label!r} is missing epoch(s) {miss[:10]}")
        if status is None:
            if k != T:
                raise TableError(f"{where}: config {label!r} has epochs 1..{k} of {T}; add a "
                                 "'status' column (diverged / failed) for configs that "
                                 "stopped early, or pass --epochs")
            status = "complete"
        if status == "complete" and np.isnan(cols["val_accuracy"][rows]).any():
            raise TableError(f"{where}: config {label!r} is complete but has an empty / NaN "
                             "accuracy; mark it diverged in a 'status' column")
        sec = cols["seconds"][rows]
        if cumulative_seconds:
            sec = np.diff(sec, prepend=0.0)
        if (sec < 0).any():
            raise TableError(f"{where}: config {label!r}: negative epoch seconds "
                             f"{sec[sec < 0][0]!r}" + ("" if cumulative_seconds else
                                                       " (cumulative? --cumulative-seconds)"))
        if sp is not None:
            try:
                hp = sp.validate(hp)
            except ValueError as e:
                raise TableError(f"{where}: line {rows[0] + 2}: config {label!r}: {e}") from None
        solo = cols["solo_seconds"][rows] if "solo_seconds" in df.columns else sec
        err = None if err_col is None or pd.isna(err_col[rows[0]]) else err_col[rows[0]]
        records.append(ConfigResult(
            config_id=cid, config=hp, status=status, val_accuracy=cols["val_accuracy"][rows],
            train_loss=cols["train_loss"][rows], val_loss=cols["val_loss"][rows],
            train_seconds=sec, solo_seconds=solo, eval_seconds=cols["eval_seconds"][rows],
            concurrency=1, error=(str(err) if err not in (None, "") else None),
            source_config=None if sp is not None else str(label)))
    w = TableWriter(out, meta)
    for s in range(0, len(records), _PER_SHARD):
        w.write(records[s:s + _PER_SHARD])
    return out


def _config_hp(col: np.ndarray, rows: np.ndarray, label: Any, where: str) -> dict[str, Any]:
    given = [(r, s) for r, s in ((r, col[r]) for r in rows) if isinstance(s, str) and s.strip()]
    if not given:
        raise TableError(f"{where}: config {label!r} has no 'hyperparameters' JSON on any row")
    parsed = None
    for r, s in given:
        try:
            hp = json.loads(s)
        except ValueError as e:
            raise TableError(f"{where}: line {r + 2}: column 'hyperparameters' is not valid "
                             f"JSON ({e})") from None
        if not isinstance(hp, dict):
            raise TableError(f"{where}: line {r + 2}: column 'hyperparameters' must be a JSON "
                             f"object, got {s!r}")
        if parsed is not None and hp != parsed:
            raise TableError(f"{where}: line {r + 2}: config {label!r} has different "
                             "hyperparameters than on an earlier row")
        parsed = hp
    return parsed


def _config_status(col: np.ndarray | None, rows: np.ndarray, label: Any, where: str
                   ) -> str | None:
    if col is None:
        return None
    vals = {v for v in col[rows] if v not in ("", "nan", "None")}
    if len(vals) > 1:
        raise TableError(f"{where}: config {label!r} has several statuses {sorted(vals)}")
    if not vals:
        return None
    s = vals.pop()
    if s not in STATUSES:
        raise TableError(f"{where}: line {rows[0] + 2}: column 'status' is {s!r}; allowed "
                         f"{list(STATUSES)}")
    return s
