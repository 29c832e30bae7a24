"""`lcsim live ...`: the live training-time methods, one command module per method package.

Besides registering the group, this holds what every live command's handler shares:
`add_run_flags` (--preset, --out/--force, --device, --data-root, preset overrides,
--no-progress) and `load_run`, which turns those flags into the preset, its config, the
data on the device and the model factory, raising a one-line UserError for any bad input
before anything is written.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any

from lcsim.cliargs import add_device, add_out, add_progress, check_device, positive_int

_METHODS = (
    "lcsim.hpo_sim.live.alrs.cli", "lcsim.hpo_sim.live.esgd.cli", "lcsim.hpo_sim.live.epbt.cli",
)


def register(sub: argparse._SubParsersAction) -> None:
    live = sub.add_parser("live", help="live comparisons of ALRS, ESGD and EPBT")
    live_sub = live.add_subparsers(dest="live_command", metavar="METHOD")
    live.set_defaults(func=lambda args: live.print_help())
    for name in _METHODS:
        importlib.import_module(name).register(live_sub)


def add_run_flags(p: argparse.ArgumentParser, method: str, overrides: Sequence[str]) -> None:
    """--preset, --out/--force, --device, --data-root, --<override> per name, --no-progress."""
    from lcsim.hpo_sim.live.common import preset_names

    p.add_argument("--preset", default="mnist-small",
                   help=f"{' | '.join(preset_names(method))} or a .json file")
    add_out(p, required=True)
    add_device(p)
    p.add_argument("--data-root", default=None, help="dataset root (mnist: shipped subset)")
    for name in overrides:
        p.add_argument(f"--{name.replace('_', '-')}", type=positive_int, default=None,
                       help=f"override the preset's {name}")
    add_progress(p)


def load_run(args: argparse.Namespace, method: str, config_cls: type,
             overrides: Sequence[str], preset_keys: dict[str, Sequence[str]], *,
             train_examples: int | None = None,
             model: str | None = None) -> tuple[dict, Any, Any, Any]:
    """(preset, config, data, model factory) for the command's flags: the preset's config
    with the given overrides (flags not None), its dataset on --device with the preset's
    "val_size" and "augment" (else the dataset's defaults), the first `train_examples` (else
    the preset's "train_examples", else all) training examples; `model` (a named model)
    replaces the preset's model."""
    from lcsim.hpo_sim.live.common import (
        PresetError,
        build_config,
        load_data,
        load_preset,
        model_factory,
    )

    device = check_device(args.device)
    preset = load_preset(method, args.preset, **preset_keys)
    where = f"{method.upper()} preset {args.preset}"
    given = {k: getattr(args, k) for k in overrides if getattr(args, k) is not None}
    cfg = build_config(config_cls, {**preset["config"], **given}, f"{where}: config")
    augment = preset.get("augment")
    if augment is not None:
        from lcsim.pregen.augment import check_augment

        try:
            augment = check_augment(augment)
        except ValueError as e:
            raise PresetError(f"{where}: augment: {e}") from None
    data = load_data(preset["dataset"], args.data_root, device=device,
                     val_size=preset.get("val_size"), augment=augment,
                     train_examples=preset.get("train_examples") if train_examples is None
                     else train_examples)
    spec, label = ({"named": model}, "--model") if model else (preset["model"],
                                                                f"{where}: model")
    return preset, cfg, data, model_factory(spec, data, label)
