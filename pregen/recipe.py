"""A table's training recipe: what its metadata records, and a row re-trained from it.

`build_run_meta(cfg, ...)` is the metadata `pregen run` stores in meta.json and in every
shard: the table's identity, provenance (`lcsim.provenance`: package version, git revision
and dirty flag, library versions), how times were measured, and the whole recipe: seeds
(`config_seed`: each config's training seed comes from (seed, config id) alone), data
source, split, `max_train`, `val_size`, and `train_spec`, every field of the
`pregen.trainer.TrainSpec` the workers trained with (batch size, optimizer, bf16,
channels_last, ...) except the per-config ones (learning rate, L2 weight, seed).
`check_resume` refuses to resume a table with a different recipe.

`retrain(table, config_id)` (CLI: `lcsim train --table T --id I`) trains a row again with
exactly that recipe: the same data (`workers.load_run_data`), the same TrainSpec
(`workers.run_train_spec`, then the table's `train_spec` over it), the config as stored, its
derived seed, and on the CPU the table's torch thread count. On the CPU that generated a
table (same torch build and CPU kernels, recorded as `versions` and `cpu_capability`) the
curve comes back bit for bit; on CUDA, up to the device's floating-point non-determinism.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lcsim.pregen.runner import RunConfig

__all__ = ["build_run_meta", "check_resume", "config_seed", "first_difference", "retrain",
           "run_config_from_meta", "stored_curve", "time_measurement"]

_SHIPPED_DATA = "pregen/assets/mnist-10k"  # data_source of runs on the shipped MNIST subset

# Run settings that change what is trained: a resumed run must use the same ones.
_RESUME_KEYS = ("seed", "batch_size", "max_train", "val_size", "optimizer", "augment",
                "bf16", "channels_last", "train_spec")


def time_measurement(cfg: RunConfig) -> str:
    """The sentence stored in the table metadata on how the time columns were measured."""
    base = ("train_seconds: wall seconds of each epoch's training pass, measured by "
            "lcsim.pregen.trainer with a device synchronisation before each clock read; "
            "eval_seconds: the validation pass, measured the same way; concurrency: configs "
            "training on the device during the epoch (this one included). ")
    if cfg.dask_scheduler is not None:
        return base + ("Dask run: each Dask worker process trained one config at a time, so "
                       "solo_seconds = train_seconds; this is the config alone on its device "
                       "only if one Dask worker process ran per device (the documented "
                       "setup: dask worker --nworkers 1 --nthreads 1 per GPU).")
    if not cfg.concurrent:
        return base + (f"One config at a time per device ({len(cfg.devices)} device(s), "
                       "one worker each), so solo_seconds = train_seconds: each config ran "
                       "alone on its device (other processes on the host were not "
                       "controlled).")
    return base + (f"Up to {cfg.workers_per_device} configs shared a device. solo_seconds: "
                   "if a config trained alone in every epoch, its train_seconds; otherwise "
                   f"the config was trained again from its seed for {cfg.solo_epochs} "
                   "epoch(s) after its run while the device's other workers paused at their "
                   "epoch boundaries (pregen.workers.DeviceGate), and every epoch gets the "
                   "mean of those solo epochs' measured seconds.")


def _data_source(cfg: RunConfig) -> str:
    if cfg.dataset == "digits":
        import sklearn

        return f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__}, bundled)"
    return (cfg.data_root or os.environ.get("LCSIM_DATA_ROOT")
            or f"{_SHIPPED_DATA} (shipped 10,000-digit MNIST subset)")


def build_run_meta(cfg: RunConfig, data, device_desc: str, *, one_worker: bool
                   ) -> dict[str, Any]:
    """The table metadata of a run: identity, provenance (package version, git revision with
    its dirty flag: `lcsim.provenance`, through `build_meta`) and the whole training recipe,
    which `lcsim train --table T --id I` reads back to re-train a row."""
    import torch
    from lcsim.pregen.workers import run_train_spec, spec_record
    from lcsim.tabular.schema import build_meta
    from lcsim.tabular.spaces import get_space

    recipe = get_space(cfg.space).recipe
    per_config = dict(recipe.spec_keys)
    return build_meta(
        dataset=cfg.dataset, space=cfg.space, epochs=cfg.T, sobol_seed=cfg.sobol_seed,
        split_seed=cfg.split_seed, device=device_desc, time_measurement=time_measurement(cfg),
        num_classes=data.num_classes, generator="lcsim pregen run", seed=cfg.seed,
        n_configs=cfg.n_configs, index_range=[cfg.ids.start, cfg.ids.stop],
        optimizer=recipe.optimizer, schedule=recipe.schedule, recipe=recipe.text,
        batch_size=(f"per config ({per_config['batch_size']})" if "batch_size" in per_config
                    else cfg.batch_size), augment=list(data.augment),
        max_train=cfg.max_train, val_size=cfg.val_size,
        n_train=int(data.train_y.shape[0]), n_val=int(data.val_y.shape[0]),
        data_source=_data_source(cfg),
        devices=list(cfg.devices), workers_per_device=cfg.workers_per_device,
        solo_epochs=cfg.solo_epochs, bf16=cfg.bf16 and any(d != "cpu" for d in cfg.devices),
        channels_last=cfg.channels_last and any(d != "cpu" for d in cfg.devices),
        dask=cfg.dask_scheduler is not None,
        training_seed_rule="np.random.SeedSequence(seed, spawn_key=(config_id,))",
        # the TrainSpec the workers hand to train_config (the space's recipe then sets its
        # per-config fields), all but lr / l2_weight / seed
        train_spec=spec_record(run_train_spec(cfg, cfg.devices[0])),
        # which CPU kernels torch picked, and with how many threads: bit-exact CPU
        # re-training needs the same
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        torch_threads=_torch_threads(cfg, one_worker),
        order="by id (one worker)" if one_worker else "heavy/light (order_jobs)",
        notes=cfg.notes)


def _torch_threads(cfg: RunConfig, one_worker: bool) -> int | None:
    """Torch threads a config of this run trains with on the CPU (None: not known here)."""
    import torch
    from lcsim.pregen.lifecycle import cpu_threads

    if cfg.dask_scheduler is not None or "cpu" not in cfg.devices:
        return None
    return torch.get_num_threads() if one_worker else cpu_threads(cfg)


def _recorded_augment(meta: dict[str, Any]) -> list[str]:
    """A table's augmentation; tables from before the switch was recorded trained with the
    dataset's old default."""
    if "augment" in meta:
        return list(meta["augment"] or [])
    return ["crop", "flip"] if meta.get("dataset") in ("cifar10", "cifar100") else []


def check_resume(out: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Raise TableError if DIR/meta.json was written with different training settings."""
    from lcsim.tabular.schema import META_FILE, TableError

    path = Path(out) / META_FILE
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError as e:
        raise TableError(f"{path}: not valid JSON ({e})") from None
    if "augment" not in old and "dataset" in old:
        old["augment"] = _recorded_augment(old)
    diff = [f"{k}: {old[k]!r} in the table, {meta.get(k)!r} now" for k in _RESUME_KEYS
            if k in old and old[k] != meta.get(k)]
    if diff:
        raise TableError(f"{path}: cannot resume this table with different settings "
                         f"({'; '.join(diff)}); use a new --out directory")


def config_seed(seed: int, config_id: int) -> int:
    """Training seed of a config: a SeedSequence child keyed by (seed, config_id), so it does
    not depend on which worker trains the config or in which order."""
    if seed < 0 or config_id < 0:
        raise ValueError(f"seed and config_id must be >= 0, got {seed}, {config_id}")
    ss = np.random.SeedSequence(seed, spawn_key=(config_id,))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))  # < 2**63


# --- a row, trained again ---------------------------------------------------------------------

def run_config_from_meta(meta: dict[str, Any], *, out: str, data_root: str | None = None
                         ) -> RunConfig:
    """The RunConfig whose training a table's metadata records (the settings that change
    what is trained; devices and scheduling do not). `data_root` replaces the recorded one
    (a table made elsewhere names a path of that machine)."""
    from lcsim.pregen.runner import RunConfig
    from lcsim.tabular.schema import TableError

    if meta.get("generator") != "lcsim pregen run":
        raise TableError(f"{out}: this table was not made by `lcsim pregen run` (generator "
                         f"{meta.get('generator')!r}); it records no training recipe")
    source = str(meta.get("data_source") or "")
    if data_root is None and source.startswith(_SHIPPED_DATA):
        from lcsim.pregen.data import shipped_mnist_root

        data_root = str(shipped_mnist_root())  # not $LCSIM_DATA_ROOT's MNIST
    elif data_root is None and meta.get("dataset") != "digits":  # digits: scikit-learn's own
        data_root = source or None
    spec = meta.get("train_spec") or {}
    try:
        return RunConfig(
            out=out, space=meta["space"], dataset=meta["dataset"], data_root=data_root,
            n_configs=int(meta.get("n_configs") or 1), epochs=int(meta["epochs"]),
            sobol_seed=int(meta["sobol_seed"]), seed=int(meta["seed"]),
            split_seed=int(meta["split_seed"]), val_size=meta.get("val_size"),
            max_train=meta.get("max_train"),
            batch_size=int(spec.get("batch_size") or (
                meta["batch_size"] if isinstance(meta.get("batch_size"), int) else 128)),
            augment=tuple(_recorded_augment(meta)),
            bf16=bool(meta.get("bf16", False)),
            channels_last=bool(meta.get("channels_last", False)), progress=False)
    except KeyError as e:
        raise TableError(f"{out}: the metadata lacks {e.args[0]!r}, needed to re-train a "
                         "row") from None


def table_train_spec(meta: dict[str, Any], cfg: RunConfig, device: str, seed: int):
    """The TrainSpec of a table's runs on `device`, with `seed`."""
    from lcsim.pregen.workers import run_train_spec
    from lcsim.tabular.schema import TableError

    spec = run_train_spec(cfg, device, seed)
    recorded = dict(meta.get("train_spec") or {})
    known = {f.name for f in fields(spec)}
    unknown = sorted(set(recorded) - known)
    if unknown:
        raise TableError(f"the table's train_spec has field(s) {unknown} that this lcsim's "
                         "TrainSpec lacks; re-train it with the lcsim that made it "
                         f"({meta.get('code_revision')})")
    # bf16 / channels_last follow the device, as in the run (workers.run_train_spec)
    recorded = {k: v for k, v in recorded.items() if k not in ("bf16", "channels_last")}
    for k, v in recorded.items():  # "inf" (workers.spec_record) back to a float
        if isinstance(getattr(spec, k), float) and isinstance(v, str):
            recorded[k] = float(v)
    return replace(spec, **recorded)


def retrain(table, config_id: int, *, device: str = "cpu", data_root: str | None = None,
            epochs: int | None = None, callback: Callable | None = None):
    """Train row `config_id` of `table` (a LookupTable) again with the table's recipe,
    for its T epochs or the first `epochs`. Returns the trainer's TrainResult."""
    from lcsim.pregen.trainer import train_config
    from lcsim.pregen.workers import load_run_data
    from lcsim.tabular.schema import TableError
    from lcsim.tabular.spaces import get_space

    meta = table.meta
    cfg = run_config_from_meta(meta, out=str(table.path), data_root=data_root)
    if epochs is not None and not 1 <= epochs <= cfg.T:
        raise TableError(f"--epochs {epochs}: the table has epochs 1..{cfg.T}")
    config = table.config(config_id)  # KeyError naming the id
    space = get_space(cfg.space)
    if meta.get("sobol_seed") is not None and config != space.config_at(config_id,
                                                                        cfg.sobol_seed):
        raise TableError(f"config {config_id}: its stored hyperparameters are not Sobol "
                         f"point {config_id} (seed {cfg.sobol_seed}); run `lcsim table "
                         "validate` on the table")
    spec = table_train_spec(meta, cfg, device, config_seed(cfg.seed, config_id))
    if epochs is not None:
        spec = replace(spec, epochs=epochs)
    data = load_run_data(cfg, device)
    if (meta.get("n_train"), meta.get("n_val")) != (None, None) and (
            int(data.train_y.shape[0]), int(data.val_y.shape[0])) != (meta.get("n_train"),
                                                                      meta.get("n_val")):
        raise TableError(f"the data at hand splits into {data.train_y.shape[0]} train / "
                         f"{data.val_y.shape[0]} validation examples, the table's into "
                         f"{meta.get('n_train')} / {meta.get('n_val')}: not the table's "
                         f"dataset (recorded source: {meta.get('data_source')}); pass "
                         "--data-root")
    threads = meta.get("torch_threads")
    if device != "cpu" or not threads:
        return train_config(space, config, data, spec, device, callback=callback)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))  # the table's, for the same reduction order
    try:
        return train_config(space, config, data, spec, device, callback=callback)
    finally:
        torch.set_num_threads(before)


COMPARED = ("train_loss", "val_loss", "val_accuracy")  # what a re-training must give back


def stored_curve(table, config_id: int) -> dict[str, np.ndarray]:
    """The stored per-epoch columns COMPARED of one row, recorded epochs only ([k] each)."""
    r = table.row(config_id)
    k = int(table.n_recorded[r])
    return {"train_loss": table.train_loss[r, :k], "val_loss": table.val_loss[r, :k],
            "val_accuracy": table.acc[r, :k]}


def first_difference(result, stored: dict[str, np.ndarray]) -> str | None:
    """None if the re-trained epochs equal the stored ones exactly (every COMPARED column,
    bit for bit, and the same number of epochs as far as it was trained), else a sentence
    naming the first epoch and column that differ."""
    got = {c: np.array([getattr(r, c) for r in result.epochs], dtype=np.float64)
           for c in COMPARED}
    n_got, n_stored = len(result.epochs), len(stored["val_accuracy"])
    for e in range(min(n_got, n_stored)):
        for c in COMPARED:
            if got[c][e] != stored[c][e]:
                return (f"epoch {e + 1}: {c} {float(got[c][e])!r} here, "
                        f"{float(stored[c][e])!r} in the table")
    if n_got < n_stored and result.status != "complete":
        return f"{result.status} after {n_got} epochs here; the table has {n_stored}"
    if n_got > n_stored:
        return f"{n_got} epochs here; the table recorded {n_stored} ({result.status} here)"
    return None


def platform_notes(meta: dict[str, Any], device: str) -> list[str]:
    """Why bit-exact equality may not be expected here (empty if nothing differs)."""
    import torch

    notes = []
    versions = meta.get("versions") or {}
    here = torch.__version__.split("+")[0]
    if versions.get("torch") and versions["torch"].split("+")[0] != here:
        notes.append(f"the table was made with torch {versions['torch']}, this is {here}")
    dev = str(meta.get("device", ""))
    if device == "cpu" and not dev.startswith("cpu"):
        notes.append(f"the table was made on {dev}; this re-training runs on the CPU")
    cap = meta.get("cpu_capability")
    if device == "cpu" and cap and cap != torch.backends.cpu.get_cpu_capability():
        notes.append(f"the table's CPU kernels were {cap}, here "
                     f"{torch.backends.cpu.get_cpu_capability()}")
    if device == "cpu" and not cap:
        notes.append("the table does not record its CPU kernels (made before lcsim recorded "
                     "cpu_capability)")
    return notes
