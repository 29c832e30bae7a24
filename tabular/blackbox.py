"""A table as a blackbox for other tools: `objective(config, epoch) -> metrics + cost`, and an
export to Syne Tune's tabular blackbox format.

    from lcsim.tabular import LookupTable
    from lcsim.tabular.blackbox import Blackbox
    bb = Blackbox(LookupTable.open("default"))
    bb(17, 5)                       # config id 17 after 5 epochs
    bb(table.config(17), 5)         # the same config by its hyperparameters
    # {'config_id': 17, 'epoch': 5, 'val_accuracy': ..., 'train_loss': ..., 'val_loss': ...,
    #  'cost': seconds of epoch 5, 'elapsed': seconds of epochs 1..5, 'status': 'complete',
    #  'trained': True}

A config is a table config id or a hyperparameter dict; a dict that is not a table config is a
`ConfigError` naming the nearest table config (unit cube, as `LookupTable.nearest`): a table
answers only for what was trained. Floats match with a relative tolerance of 1e-9 (JSON and
CSV round trips), integers and categories exactly. Costs follow the replay's time model:
solo seconds (the config alone on the device; `time="measured"` for the recorded, possibly
shared, seconds) plus the validation pass (`charge_eval`). Epochs a config never trained
(after a diverged config's last recorded epoch; every epoch of a failed one) have NaN metrics,
zero cost and `trained: False`.

Syne Tune (optional extra `pip install "lcsim[synetune]"`, syne-tune 0.16): `to_syne_tune`
builds a `BlackboxTabular` (objectives val_accuracy, val_loss, train_loss, cost, elapsed_time
per epoch; fidelity `epoch` 1..T; the table's search space as Syne Tune domains) and
`export_syne_tune` writes it in Syne Tune's on-disk format with its own serializer, readable
by `syne_tune.blackbox_repository.blackbox_tabular.deserialize`. Syne Tune's tabular
blackboxes need every fidelity of every config, so only complete configs are exported; the
ids left out are in the metadata. Its simulator runs a scheduler on a local blackbox through
`UserBlackboxBackend`; schedulers that sample the continuous space need the blackbox wrapped
by `add_surrogate(bb, KNeighborsRegressor(n_neighbors=1))`, the nearest table config, as the
Optuna bridge maps suggestions (tests/test_blackbox.py runs ASHA that way).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .spaces import ConfigError

__all__ = ["Blackbox", "to_syne_tune", "export_syne_tune", "METRICS"]

METRICS = ("val_accuracy", "val_loss", "train_loss", "cost", "elapsed_time")  # Syne Tune export


class Blackbox:
    """`bb(config, epoch)`: metrics and cost of a table config after `epoch` epochs."""

    def __init__(self, table, *, time: str = "solo", charge_eval: bool = True):
        if time not in ("solo", "measured"):
            raise ValueError(f"time must be 'solo' or 'measured', got {time!r}")
        self.table = table
        base = table.solo_seconds if time == "solo" else table.train_seconds
        cost = np.nan_to_num(np.asarray(base, dtype=np.float64), nan=0.0)
        if charge_eval:
            cost = cost + np.nan_to_num(np.asarray(table.eval_seconds, dtype=np.float64))
        self.cost = cost  # [n, T] seconds per epoch, 0 where not trained
        self.elapsed = table._cumulative(time, charge_eval)  # [n, T], cached by the table
        self.T = table.epochs

    def config_id(self, config: int | Mapping[str, Any]) -> int:
        """The table config id of an id or a hyperparameter dict (ConfigError if none)."""
        t = self.table
        if isinstance(config, Mapping):
            cid = t.nearest(config)
            if not _same_config(config, t.config(cid), t.space):
                x = t.features[t.row(cid)]
                target = (t.space.to_unit([t.space.validate(config)])[0] if t.space is not None
                          else None)
                dist = (f" (unit-cube distance {float(np.linalg.norm(x - target)):.3g})"
                        if target is not None else "")
                raise ConfigError(f"config {dict(config)} is not in the table; the nearest table "
                                  f"config is id {cid}{dist}: {t.config(cid)}")
            return int(cid)
        try:
            t.row(int(config))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"config {config!r} is neither a config id of this table (ids "
                              f"{t.ids[0]}..{t.ids[-1]}, {len(t)} configs) nor a hyperparameter "
                              "dict") from None
        return int(config)

    def __call__(self, config: int | Mapping[str, Any], epoch: int | None = None
                 ) -> dict[str, Any]:
        """Metrics after `epoch` (1..T; default T) epochs of `config` (id or dict)."""
        e = self.T if epoch is None else epoch
        if int(e) != e or not 1 <= e <= self.T:
            raise ConfigError(f"epoch {epoch!r} is outside 1..{self.T}")
        e = int(e)
        t = self.table
        cid = self.config_id(config)
        r = t.row(cid)
        return {"config_id": cid, "epoch": e, "val_accuracy": float(t.acc[r, e - 1]),
                "train_loss": float(t.train_loss[r, e - 1]),
                "val_loss": float(t.val_loss[r, e - 1]), "cost": float(self.cost[r, e - 1]),
                "elapsed": float(self.elapsed[r, e - 1]), "status": str(t.status[r]),
                "trained": bool(e <= t.n_recorded[r])}

    objective = __call__


def _same_config(given: Mapping[str, Any], stored: Mapping[str, Any], space) -> bool:
    if space is not None:
        given = space.validate(given)  # ConfigError for a missing or out-of-range parameter
    if set(given) != set(stored):
        return False
    for k, v in stored.items():
        g = given[k]
        if isinstance(v, float) or isinstance(g, float):
            try:
                if not math.isclose(float(g), float(v), rel_tol=1e-9, abs_tol=1e-12):
                    return False
            except (TypeError, ValueError):
                return False
        elif g != v:
            return False
    return True


# ----- Syne Tune --------------------------------------------------------------------------------
def _syne_tune():
    try:
        from syne_tune import config_space as cs
        from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular, serialize
    except ImportError as e:
        raise ConfigError(f"the Syne Tune export needs the optional extra: pip install "
                          f"'lcsim[synetune]' ({e})") from None
    return cs, BlackboxTabular, serialize


def to_syne_tune(table, *, time: str = "solo", charge_eval: bool = True):
    """A Syne Tune `BlackboxTabular` of the table's complete configs (module docstring)."""
    cs, BlackboxTabular, _ = _syne_tune()
    if table.space is None:
        raise ConfigError("the Syne Tune export needs a table with a known search space (an "
                          "imported table has none)")
    bb = Blackbox(table, time=time, charge_eval=charge_eval)
    rows = np.flatnonzero(np.asarray(table.status) == "complete")
    if rows.size == 0:
        raise ConfigError("the table has no complete config to export")
    frame = table.configs_frame()
    hp = frame.loc[rows, list(table.space.names)].reset_index(drop=True)
    domains = {}
    for p in table.space.params:
        if p.kind == "cat":
            domains[p.name] = cs.choice(list(p.choices))
        elif p.integer:
            domains[p.name] = (cs.lograndint if p.log else cs.randint)(int(p.low), int(p.high))
        else:
            domains[p.name] = (cs.loguniform if p.log else cs.uniform)(p.low, p.high)
    values = np.stack([table.acc[rows], table.val_loss[rows], table.train_loss[rows],
                       bb.cost[rows], bb.elapsed[rows]], axis=-1)  # [m, T, 5]
    return BlackboxTabular(hyperparameters=hp, configuration_space=domains,
                           fidelity_space={"epoch": cs.randint(1, table.epochs)},
                           objectives_evaluations=values[:, None, :, :],
                           fidelity_values=np.arange(1, table.epochs + 1),
                           objectives_names=list(METRICS))


def export_syne_tune(table, path: str | os.PathLike, *, task: str = "lcsim",
                     time: str = "solo", charge_eval: bool = True) -> Path:
    """Write the table as Syne Tune blackbox `task` in folder `path` (its serializer)."""
    _, _, serialize = _syne_tune()
    bb = to_syne_tune(table, time=time, charge_eval=charge_eval)
    left = np.asarray(table.ids)[np.asarray(table.status) != "complete"]
    meta = {"lcsim_table": json.loads(json.dumps(table.meta, default=str)),
            "lcsim_time": {"time": time, "charge_eval": charge_eval},
            "lcsim_left_out_ids": [int(i) for i in left]}
    serialize({task: bb}, str(path), metadata=meta)
    return Path(path)
