"""`lcsim live alrs` (pick an initial LR) and `lcsim live alrs-compare` (the paper's comparison).

    lcsim live alrs --dataset mnist --model mnist-cnn --optimizer adam
    lcsim live alrs-compare --preset mnist-small --out results/alrs-mnist-small

Torch and the trainer stack are imported inside the handlers so `lcsim --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

__all__ = ["register"]

_OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")  # pregen.trainer.OPTIMIZERS


def register(live_sub: argparse._SubParsersAction) -> None:
    p = live_sub.add_parser("alrs", help="choose an initial learning rate with ALRS")
    p.add_argument("--dataset", default="mnist", help="mnist | cifar10 | cifar100 | svhn")
    p.add_argument(
        "--model",
        default="mnist-cnn",
        help="named model: mnist-cnn | resnet18-cifar | resnet20 | resnet32",
    )
    p.add_argument("--optimizer", default="adam", choices=_OPTIMIZERS)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--initial-lr", type=float, default=1.0, help="ALRS LR seed (paper: 1)")
    p.add_argument("--seed", type=int, default=0, help="init, data order and dropout seed")
    p.add_argument("--data-root", default=None, help="dataset root (mnist: shipped subset)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--trace", type=Path, default=None, help="write the signal trace (JSON)")
    p.set_defaults(func=_alrs)

    c = live_sub.add_parser("alrs-compare", help="ALRS vs standard, range test, Prodigy, HD")
    c.add_argument("--preset", default="mnist-small", help="mnist-small | paper | FILE.json")
    c.add_argument("--out", type=Path, required=True, help="result directory (resumable)")
    c.add_argument("--device", default=None, help="default: the preset's device")
    c.add_argument("--data-root", default=None)
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=_compare)


def _alrs(args: argparse.Namespace) -> int:
    import torch
    from lcsim.hpo_sim.live.alrs import ALRSConfig, alrs
    from lcsim.hpo_sim.live.alrs_compare import _num_batches
    from lcsim.pregen.data import load_dataset
    from lcsim.pregen.models import build_named_model
    from lcsim.pregen.trainer import make_optimizer, seeds

    if args.batch_size < 1:
        raise SystemExit(f"--batch-size must be >= 1, got {args.batch_size}")
    data = load_dataset(args.dataset, args.data_root, device=args.device)
    init_seed, data_seed, dropout_seed = seeds(args.seed)
    model = build_named_model(
        args.model, in_shape=data.in_shape, num_classes=data.num_classes, seed=init_seed
    ).to(args.device)
    opt = make_optimizer(args.optimizer, model.parameters(), args.initial_lr)
    gen = torch.Generator(device=args.device).manual_seed(data_seed)
    nb = _num_batches(data, args.batch_size)

    def batches():
        return data.batches("train", args.batch_size, shuffle=True, generator=gen)

    res = alrs(
        model, opt, batches, nb, config=ALRSConfig(initial_lr=args.initial_lr), seed=dropout_seed
    )
    print(f"ALRS learning rate: {res.lr:.4g}  (search value {res.search_value:.4g} / 10)")
    print(
        f"cost: {res.batches} batches = {res.epochs:.2f} epochs of {nb}, {res.seconds:.1f} s, "
        f"{len(res.trace)} signals ({res.steps_per_signal} batches each)"
        + ("" if res.complete else "  [search not finished]")
    )
    if args.trace:
        args.trace.write_text(
            json.dumps(
                {
                    "lr": res.lr,
                    "search_value": res.search_value,
                    "batches": res.batches,
                    "seconds": res.seconds,
                    "trace": [dataclasses.asdict(t) for t in res.trace],
                },
                indent=1,
            )
        )
    return 0


def _compare(args: argparse.Namespace) -> int:
    import pandas as pd
    from lcsim.hpo_sim.live.alrs_compare import (
        experiment_meta,
        format_summary,
        load_preset,
        run_experiment,
        write_results,
    )

    raw, exps = load_preset(args.preset)
    device = args.device or raw.get("device", "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    all_runs, all_study = [], []
    for exp in exps:
        runs, study = run_experiment(
            exp, args.out, device=device, data_root=args.data_root, progress=not args.no_progress
        )
        all_runs.append(runs)
        all_study.append(study)
    runs = pd.concat(all_runs, ignore_index=True)
    study = pd.concat(all_study, ignore_index=True)
    summary = write_results(args.out, runs, study, experiment_meta(raw, exps, device))
    sys.stdout.write(format_summary(summary))
    print(
        f"wrote {args.out}/runs.parquet, seed_study.parquet, summary.parquet, summary.md, "
        f"loss-*.png"
    )
    return 0
