"""Unit-cube features for imported tables whose hyperparameters have no known space.

The encoding is learned from the table's own hyperparameter dicts (JSON objects) and stored
with the table's cache, so `LookupTable.nearest` encodes a new config the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["json_encoder", "encode_json"]


def json_encoder(hps: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key unit-cube encoding learned from the table's hyperparameter dicts.

    Numbers: min-max over the table, on a log10 scale when all are > 0 and span >= 2
    decades (learning rates); other values: categories in sorted order, equal bins (as the
    spaces do). A key missing from a config encodes as 0.5.
    """
    keys = sorted({k for h in hps for k in h})
    enc: dict[str, Any] = {}
    for k in keys:
        vals = [h[k] for h in hps if k in h]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            lo, hi = float(min(vals)), float(max(vals))
            log = lo > 0 and hi / lo >= 100
            enc[k] = {"kind": "log" if log else "num", "low": lo, "high": hi}
        else:
            enc[k] = {"kind": "cat", "choices": sorted({json.dumps(v) for v in vals})}
    return enc


def encode_json(hps: list[Mapping[str, Any]], enc: dict[str, Any]) -> np.ndarray:
    out = np.full((len(hps), len(enc)), 0.5)
    for j, (k, e) in enumerate(enc.items()):
        for i, h in enumerate(hps):
            if k not in h:
                continue
            v = h[k]
            if e["kind"] == "cat":
                s = json.dumps(v)
                if s not in e["choices"]:
                    raise ValueError(f"hyperparameter {k}={v!r} is not a value this table has "
                                     f"({', '.join(e['choices'])})")
                out[i, j] = (e["choices"].index(s) + 0.5) / len(e["choices"])
                continue
            lo, hi, x = e["low"], e["high"], float(v)
            if e["kind"] == "log":
                lo, hi, x = math.log10(lo), math.log10(hi), math.log10(max(x, 1e-300))
            out[i, j] = 0.5 if hi == lo else (x - lo) / (hi - lo)
    return out
