"""`lcsim live esgd`: ESGD, its baselines and ablation from a preset, results to Parquet.

    lcsim live esgd --preset mnist-small --method all --out DIR

Each method writes DIR/<method>/records.parquet (one row per individual per generation:
generation, individual id, fitness, optimizer, lr, momentum, parent ids, offspring or not,
back-offs, elite, selected) and DIR/<method>/final.parquet (the last population: fitness,
test loss, test error), with the preset, config, library versions, device and code revision
in the Parquet metadata (key `lcsim`). A finished method is skipped when the command is
repeated (resume at method granularity). Then DIR/summary.csv, the paper's Table 1 layout
(best and top-15 fitness and test error per method, plus the top m = m-elitist level), is
written and printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from importlib import resources
from pathlib import Path

from lcsim.hpo_sim.live.cli_common import model_factory, provenance

__all__ = ["PRESETS", "load_preset", "main_esgd", "register"]

PRESETS = ("mnist-small", "cifar10-paper")
_METHODS = ("esgd", "population", "no-evolution", "single")


def load_preset(name_or_path: str) -> dict:
    """A preset by name (hpo_sim/live/presets/esgd-NAME.json) or a path to a JSON file."""
    p = Path(name_or_path)
    if p.suffix == ".json":
        if not p.exists():
            raise ValueError(f"ESGD preset file {p} does not exist")
        text = p.read_text()
    else:
        f = resources.files("lcsim.hpo_sim.live") / "presets" / f"esgd-{name_or_path}.json"
        if not f.is_file():
            raise ValueError(f"unknown ESGD preset {name_or_path!r}; choose from "
                             f"{', '.join(PRESETS)} or pass a .json path")
        text = f.read_text()
    try:
        preset = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"ESGD preset {name_or_path!r} is not valid JSON: {e}") from None
    for key in ("dataset", "model", "config"):
        if key not in preset:
            raise ValueError(f"ESGD preset {name_or_path!r} lacks the key {key!r}")
    return preset


def register(live_sub: argparse._SubParsersAction) -> None:
    p = live_sub.add_parser("esgd", help="ESGD vs population / single baselines",
                            description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="mnist-small", help=f"{' | '.join(PRESETS)} or a .json")
    p.add_argument("--method", nargs="+", default=["all"], choices=_METHODS + ("all",),
                   help="methods to run (all = every one; default)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-root", default=None, help="dataset root (mnist: shipped subset)")
    p.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    p.add_argument("--init", choices=("random", "perturb"), default=None,
                   help="override the preset's initial population")
    for name in ("mu", "lam", "generations", "epochs_per_generation", "train_examples"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"override the preset's {name}")
    p.set_defaults(func=main_esgd)


def load_data(preset: dict, data_root: str | None, device: str, train_examples: int | None):
    """The preset's dataset; with `train_examples`, only the first N of the training split."""
    from lcsim.pregen.data import load_dataset

    data = load_dataset(preset["dataset"], data_root, val_size=preset.get("val_size"),
                        device=device)
    if train_examples:
        n = data.train_y.shape[0]
        if not 0 < train_examples <= n:
            raise ValueError(f"train_examples={train_examples} must be in [1, {n}]")
        data = dataclasses.replace(data, train_x=data.train_x[:train_examples],
                                   train_y=data.train_y[:train_examples])
    return data


def _write(df, path: Path, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"lcsim": json.dumps(meta).encode()})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # atomic: an interrupted run leaves no half-written file


def main_esgd(args: argparse.Namespace) -> int:
    import pandas as pd
    from lcsim.hpo_sim.live.esgd import ESGDConfig, run, summarize
    from tqdm import tqdm

    preset = load_preset(args.preset)
    methods = list(_METHODS) if "all" in args.method else list(dict.fromkeys(args.method))
    overrides = {k: getattr(args, k) for k in ("mu", "lam", "generations",
                                                "epochs_per_generation", "seed", "init")
                 if getattr(args, k) is not None}
    cfg = ESGDConfig.from_dict({**preset["config"], **overrides})
    train_examples = args.train_examples or preset.get("train_examples")
    data = load_data(preset, args.data_root, args.device, train_examples)
    factory = model_factory(preset, data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(args.device)
    cfg_dict = dataclasses.asdict(cfg)
    for method in methods:
        d = out / method
        if (d / "final.parquet").exists():
            print(f"{method}: done already, skipped")
            continue
        d.mkdir(exist_ok=True)
        bar = tqdm(total=cfg.generations, desc=method, unit="gen")

        def progress(msg: str, bar=bar) -> None:
            bar.set_postfix_str(msg.split(": ", 1)[-1], refresh=False)
            bar.update(1)

        t0 = time.perf_counter()
        res = run(method, cfg, factory, data, device=args.device, progress=progress)
        bar.close()
        meta = {"method": method, "preset": preset, "config": cfg_dict,
                "dataset": preset["dataset"], "train_examples": int(data.train_y.shape[0]),
                "seconds": time.perf_counter() - t0, **prov}
        _write(res.records, d / "records.parquet", meta)
        _write(res.final, d / "final.parquet", meta)  # written last: marks "done"
    finals = {m: pd.read_parquet(out / m / "final.parquet") for m in _METHODS
              if (out / m / "final.parquet").exists()}
    summary = summarize(finals, elite=cfg.m)
    summary.to_csv(out / "summary.csv", index=False)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0
