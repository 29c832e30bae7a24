"""`lcsim train`: train one Table I config for N epochs and print its learning curve.

    lcsim train --space mnist --index 0 --epochs 2            # shipped 10k MNIST subset
    lcsim train --space mnist --data-root ../shared/datasets/mnist-10k --index 0 --epochs 2
    lcsim train --space cifar10 --data-root DATA --config '{"c1_filters": 8, ...}'

torch is imported inside the handler so `lcsim --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one config (Sobol index or JSON) and print its learning curve",
        description="Train one config of a Table I space with the table-generation recipe "
                    "(Adam, batch 128, the config's learning rate and L2 weight) and print "
                    "one line per epoch.",
    )
    p.add_argument("--space", required=True, choices=("mnist", "cifar10", "lcbench-mlp"))
    p.add_argument("--dataset", choices=("mnist", "cifar10", "cifar100", "svhn", "digits"),
                   help="dataset (default: the space's own)")
    p.add_argument("--data-root", help="torchvision data root (default $LCSIM_DATA_ROOT; for "
                                       "mnist without either: the shipped 10k subset)")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download a missing dataset (needs internet)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=0, help="Sobol index of the config")
    which.add_argument("--config", help="config as JSON text or a path to a JSON file")
    p.add_argument("--sobol-seed", type=int, default=0, help="scramble seed of the Sobol points")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="init / data order / dropout seed")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--val-size", type=int, help="validation examples (default per dataset)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (CUDA)")
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
        raise SystemExit(f"lcsim train: --config {text!r} is neither a JSON object nor a "
                         f"readable JSON file ({e})") from None
    if not isinstance(raw, dict):
        raise SystemExit(f"lcsim train: --config must be a JSON object, got {raw!r}")
    return raw


def _train(args: argparse.Namespace) -> int:
    from lcsim.pregen.data import DatasetNotFoundError, load_dataset
    from lcsim.pregen.models import build_model, count_params, forward_flops
    from lcsim.pregen.trainer import TrainSpec, seeds, train_config
    from lcsim.tabular.spaces import ConfigError, get_space

    space = get_space(args.space)
    try:
        if args.config is not None:
            config = space.validate(_load_config(args.config))
            origin = "--config"
        else:
            if args.index < 0:
                raise ConfigError(f"--index must be >= 0, got {args.index}")
            config = space.config_at(args.index, args.sobol_seed)
            origin = f"Sobol index {args.index} (seed {args.sobol_seed})"
        spec = TrainSpec(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                         bf16=args.bf16, channels_last=args.channels_last)
    except (ConfigError, ValueError) as e:
        print(f"lcsim train: {e}", file=sys.stderr)
        return 2
    print(f"space {space.name}, {origin}: {space.to_json(config)}")
    dataset = args.dataset or {"lcbench-mlp": "digits"}.get(space.name, space.name)
    if args.dry_run:
        in_shape = {"mnist": (1, 28, 28), "digits": (64, 1, 1)}.get(dataset, (3, 32, 32))
        ncls = 100 if dataset == "cifar100" else 10
        model = build_model(space.name, space.full(config), in_shape=in_shape,
                            num_classes=ncls, seed=seeds(args.seed)[0])
        print(f"params {count_params(model):,}  forward FLOPs/example "
              f"{forward_flops(model, in_shape):,}")
        return 0
    try:
        data = load_dataset(dataset, args.data_root, download=args.download,
                            val_size=args.val_size, device=args.device)
    except DatasetNotFoundError as e:
        print(f"lcsim train: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"lcsim train: {e}", file=sys.stderr)
        return 2
    print(f"data {dataset}: {len(data.train_y)} train / {len(data.val_y)} val "
          f"(from the training split) / {len(data.test_y)} test, device {data.device}")
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
