"""`lcsim train`: train one Table I config for N epochs and print its learning curve.

    lcsim train --space mnist --index 0 --epochs 2            # shipped 10k MNIST subset
    lcsim train --space mnist --data-root ../shared/datasets/mnist-10k --index 0 --epochs 2
    lcsim train --space cifar10 --data-root DATA --config '{"c1_filters": 8, ...}'
    lcsim train --table default --id 3       # re-train a table row with the table's recipe

Each epoch line is the command's result (its learning curve), printed as it is measured, so
there is no progress bar to switch off. torch is imported inside the handler so `lcsim --help`
stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lcsim.cliargs import (
    add_augment,
    add_device,
    add_seed,
    add_switch,
    check_device,
    nonneg_int,
    positive_int,
)
from lcsim.errors import UserError, user_errors

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one config (Sobol index or JSON) and print its learning curve",
        description="Train one config of a Table I space with the table-generation recipe "
                    "(Adam, the config's learning rate and L2 weight; batch 128 and no "
                    "augmentation, which the paper does not state: ours) and print one line "
                    "per epoch.",
    )
    p.add_argument("--space", choices=("mnist", "cifar10", "lcbench-mlp"),
                   help="search space (required unless --table)")
    p.add_argument("--table", help="re-train row --id of this table with exactly its recipe "
                                   "(data, split, seed from (seed, id), TrainSpec) and print "
                                   "the curve beside the stored one")
    p.add_argument("--id", type=nonneg_int, help="config id of the --table row")
    p.add_argument("--dataset", choices=("mnist", "cifar10", "cifar100", "svhn", "digits"),
                   help="dataset (default: the space's own)")
    p.add_argument("--data-root", help="torchvision data root (default $LCSIM_DATA_ROOT; for "
                                       "mnist without either: the shipped 10k subset)")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download a missing dataset (needs internet)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=nonneg_int, default=0,
                       help="Sobol index of the config (default 0)")
    which.add_argument("--config", help="config as JSON text or a path to a JSON file")
    p.add_argument("--sobol-seed", type=nonneg_int, default=0,
                   help="scramble seed of the Sobol points (which config --index names)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs to train (default 2; with --table: the table's T, or its first "
                        "N)")
    add_seed(p, "this training run as given: weight init, batch order and dropout (a "
                "table's configs are trained with a seed derived from (its --seed, config id))")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--val-size", type=positive_int,
                   help="validation examples (default per dataset)")
    add_augment(p)
    add_device(p)
    add_switch(p, "bf16", default=False, help="bf16 autocast on CUDA (ignored on CPU)")
    add_switch(p, "channels-last", default=False,
               help="NHWC memory format on CUDA (ignored on CPU)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the config, parameter count and FLOPs; do not train")
    p.set_defaults(func=_train)


def _load_config(text: str) -> dict:
    path = Path(text)
    src = text
    try:
        if not text.lstrip().startswith("{") and path.is_file():
            src = path.read_text()
        raw = json.loads(src)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"--config {text!r} is neither a JSON object nor a readable JSON file "
                        f"({e})") from None
    if not isinstance(raw, dict):
        raise UserError(f"--config must be a JSON object, got {raw!r}")
    return raw


def _train(args: argparse.Namespace) -> int:
    from lcsim.pregen.data import load_dataset
    from lcsim.pregen.models import build_model, count_params, forward_flops
    from lcsim.pregen.trainer import TrainSpec, seeds, train_config
    from lcsim.tabular.spaces import get_space

    check_device(args.device)
    if args.table is not None or args.id is not None:
        return _train_row(args)
    if args.space is None:
        raise UserError("lcsim train needs --space (or --table T --id I)")
    if args.epochs is None:
        args.epochs = 2
    space = get_space(args.space)
    with user_errors():  # ConfigError is a UserError; TrainSpec's checks raise ValueError
        if args.config is not None:
            config = space.validate(_load_config(args.config))
            origin = "--config"
        else:
            config = space.config_at(args.index, args.sobol_seed)
            origin = f"Sobol index {args.index} (seed {args.sobol_seed})"
        spec = TrainSpec(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                         bf16=args.bf16, channels_last=args.channels_last)
    print(f"space {space.name}, {origin}: {space.to_json(config)}")
    dataset = args.dataset or space.default_dataset
    if args.dry_run:
        in_shape = {"mnist": (1, 28, 28), "digits": (64, 1, 1)}.get(dataset, (3, 32, 32))
        ncls = 100 if dataset == "cifar100" else 10
        model = build_model(space.name, space.full(config), in_shape=in_shape,
                            num_classes=ncls, seed=seeds(args.seed)[0])
        print(f"params {count_params(model):,}  forward FLOPs/example "
              f"{forward_flops(model, in_shape):,}")
        return 0
    with user_errors():  # a --val-size the split cannot give
        data = load_dataset(dataset, args.data_root, download=args.download,
                            val_size=args.val_size, device=args.device, augment=args.augment)
    print(f"data {dataset}: {len(data.train_y)} train / {len(data.val_y)} val "
          f"(from the training split) / {len(data.test_y)} test, device {data.device}, "
          f"augment {','.join(data.augment) or 'none'}")
    print(f"{'epoch':>5} {'train_loss':>10} {'val_loss':>10} {'val_acc':>8} "
          f"{'train_s':>8} {'eval_s':>7} {'eta_s':>7}", flush=True)
    elapsed = []

    def show(rec) -> None:
        elapsed.append(rec.train_seconds + rec.eval_seconds)
        eta = sum(elapsed) / len(elapsed) * (spec.epochs - rec.epoch)
        print(f"{rec.epoch:>5} {rec.train_loss:>10.4f} {rec.val_loss:>10.4f} "
              f"{rec.val_accuracy:>8.4f} {rec.train_seconds:>8.2f} {rec.eval_seconds:>7.2f} "
              f"{eta:>7.1f}", flush=True)

    result = train_config(space, config, data, spec, args.device, callback=show)
    print(f"status {result.status}" + (f" ({result.error})" if result.error else "")
          + f"; params {result.n_params:,}; forward FLOPs/example {result.flops:,}")
    return 0


def _train_row(args: argparse.Namespace) -> int:
    """`--table T --id I`: the row re-trained beside the stored one, and the verdict."""
    from lcsim.pregen.recipe import first_difference, platform_notes, retrain, stored_curve
    from lcsim.tabular.table import LookupTable

    from lcsim.errors import UserError

    if args.table is None or args.id is None:
        raise UserError("--table and --id go together: lcsim train --table T --id I")
    table = LookupTable.open(args.table)
    try:
        stored = stored_curve(table, args.id)
    except KeyError as e:
        raise UserError(f"--id {args.id}: {e.args[0]}") from None
    m = table.meta
    print(f"table {table.path}: config {args.id} of {m.get('space')} on {m.get('dataset')}, "
          f"{m.get('code_revision')}, made on {m.get('device')}")
    print(f"{'epoch':>5} {'train_loss':>10} {'(table)':>10} {'val_loss':>10} {'(table)':>10} "
          f"{'val_acc':>8} {'(table)':>8} {'same':>5}", flush=True)

    def show(rec) -> None:
        e = rec.epoch - 1
        old = [stored[c][e] if e < len(stored[c]) else float("nan")
               for c in ("train_loss", "val_loss", "val_accuracy")]
        same = [rec.train_loss, rec.val_loss, rec.val_accuracy] == old
        print(f"{rec.epoch:>5} {rec.train_loss:>10.6f} {old[0]:>10.6f} {rec.val_loss:>10.6f} "
              f"{old[1]:>10.6f} {rec.val_accuracy:>8.4f} {old[2]:>8.4f} "
              f"{'yes' if same else 'NO':>5}", flush=True)

    result = retrain(table, args.id, device=args.device, data_root=args.data_root,
                     epochs=args.epochs, callback=show)
    if args.epochs is not None:
        stored = {c: v[:args.epochs] for c, v in stored.items()}
    diff = first_difference(result, stored)
    if diff is None:
        print(f"reproduced exactly: {len(result.epochs)} epoch(s), accuracies and losses "
              "equal to the table's")
        return 0
    print(f"not reproduced: {diff}")
    for note in platform_notes(m, args.device):
        print(f"note: {note}")
    return 1
