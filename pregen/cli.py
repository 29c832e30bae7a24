"""`lcsim train`: train one Table I config for N epochs and print its learning curve.

    lcsim train --space mnist --index 0 --epochs 2            # shipped 10k MNIST subset
    lcsim train --space mnist --data-root ../shared/datasets/mnist-10k --index 0 --epochs 2
    lcsim train --space cifar10 --data-root DATA --config '{"c1_filters": 8, ...}'

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
    p.add_argument("--space", required=True, choices=("mnist", "cifar10"))
    p.add_argument("--dataset", choices=("mnist", "cifar10", "cifar100", "svhn"),
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
    p.add_argument("--epochs", type=positive_int, default=2, help="epochs to train (default 2)")
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
    dataset = args.dataset or space.name
    if args.dry_run:
        in_shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
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
