"""`lcsim live alrs` (pick an initial LR) and `lcsim live alrs-compare` (the paper's comparison).

    lcsim live alrs --dataset mnist --model mnist-cnn --optimizer adam
    lcsim live alrs-compare --preset mnist-small --out results/alrs-mnist-small

`alrs-compare` writes the layout of `alrs.results`; re-running the same command resumes from
the finished runs, and an --out holding results of other settings is refused unless --force.
Torch and the trainer stack are imported inside the handlers so `lcsim --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from lcsim.hpo_sim.live.common import preset_names

from lcsim.cliargs import (
    add_device,
    add_out,
    add_progress,
    add_seed,
    check_device,
    positive_int,
    prepare_out,
)
from lcsim.errors import UserError

__all__ = ["register"]

_ADJUSTMENTS = ("last", "cumulative")  # = algorithm.ADJUSTMENTS (not imported: no torch here)


def register(live_sub: argparse._SubParsersAction) -> None:
    p = live_sub.add_parser("alrs", help="choose an initial learning rate with ALRS")
    p.add_argument("--dataset", default="mnist", help="mnist | cifar10 | cifar100 | svhn")
    p.add_argument("--model", default="mnist-cnn",
                   help="named model: mnist-cnn | resnet18-cifar | resnet20 | resnet32 | "
                        "wrn-D-K (e.g. wrn-28-10)")
    p.add_argument("--optimizer", default="adam",
                   help="a pregen.trainer optimizer: sgd, momentum, nesterov, rmsprop, adam")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--initial-lr", type=float, default=1.0, help="ALRS LR seed (paper: 1)")
    p.add_argument("--adjustment", choices=_ADJUSTMENTS, default="last",
                   help="reading of the listing's ADJUSTMENT line: the last step (DESIGN.md, "
                        "default) or the cumulative shift (the listing taken literally)")
    add_seed(p, "the model's initialisation, the data order and dropout")
    p.add_argument("--data-root", default=None, help="dataset root (mnist: shipped subset)")
    add_device(p)
    p.add_argument("--trace", type=Path, default=None, help="write the signal trace (JSON)")
    add_progress(p)
    p.set_defaults(func=_alrs)

    c = live_sub.add_parser("alrs-compare", help="ALRS vs standard, range test, Prodigy, HD",
                            description=__doc__,
                            formatter_class=argparse.RawTextHelpFormatter)
    c.add_argument("--preset", default="mnist-small",
                   help=f"{' | '.join(preset_names('alrs'))} or a .json file (its "
                        "experiments' seeds seed initialisation, data order and dropout)")
    add_out(c, required=True)
    add_device(c, default=None)
    c.add_argument("--data-root", default=None, help="dataset root (mnist: shipped subset)")
    c.add_argument("--adjustment", choices=_ADJUSTMENTS, default=None,
                   help="override every experiment's alrs_adjustment (ADJUSTMENT reading: "
                        "last | cumulative)")
    add_progress(c)
    c.set_defaults(func=_compare)


def _alrs(args: argparse.Namespace) -> int:
    import torch
    from lcsim.hpo_sim.live.alrs.algorithm import ALRSConfig, alrs
    from lcsim.hpo_sim.live.common import load_data
    from lcsim.pregen.models import build_named_model
    from lcsim.pregen.trainer import (
        OPTIMIZERS,
        batches_per_epoch,
        epoch_batches,
        make_optimizer,
        seeds,
    )

    if args.optimizer not in OPTIMIZERS:
        raise UserError(f"--optimizer {args.optimizer!r}: choose from {', '.join(OPTIMIZERS)}")
    try:
        config = ALRSConfig(initial_lr=args.initial_lr, adjustment=args.adjustment)
    except ValueError as e:
        raise UserError(f"--initial-lr: {e}") from None
    device = check_device(args.device)
    data = load_data(args.dataset, args.data_root, device=device)
    init_seed, data_seed, dropout_seed = seeds(args.seed)
    try:
        model = build_named_model(args.model, in_shape=data.in_shape,
                                  num_classes=data.num_classes, seed=init_seed).to(device)
    except ValueError as e:
        raise UserError(f"--model: {e}") from None
    opt = make_optimizer(args.optimizer, model.parameters(), args.initial_lr)
    gen = torch.Generator(device=device).manual_seed(data_seed)
    nb = batches_per_epoch(data.train_y.shape[0], args.batch_size)
    if not args.no_progress:
        print(f"ALRS on {args.dataset} / {args.model} / {args.optimizer}: {nb} batches per "
              "epoch", file=sys.stderr)

    def batches():
        return epoch_batches(data, args.batch_size, generator=gen)

    res = alrs(model, opt, batches, nb, config=config, seed=dropout_seed)
    print(f"ALRS learning rate: {res.lr:.4g}  (search value {res.search_value:.4g} / 10; "
          f"ADJUSTMENT reading {res.adjustment!r})")
    print(f"cost: {res.batches} batches = {res.epochs:.2f} epochs of {nb}, {res.seconds:.1f} s, "
          f"{len(res.trace)} signals ({res.steps_per_signal} batches each)"
          + ("" if res.complete else "  [search not finished]"))
    if args.trace:
        args.trace.write_text(json.dumps({
            "lr": res.lr, "search_value": res.search_value, "batches": res.batches,
            "adjustment": res.adjustment,
            "seconds": res.seconds, "trace": [dataclasses.asdict(t) for t in res.trace],
        }, indent=1))
    return 0


def _compare(args: argparse.Namespace) -> int:
    import pandas as pd
    from lcsim.hpo_sim.live.alrs import results as layout
    from lcsim.hpo_sim.live.alrs.compare import load_experiments, run_experiment
    from lcsim.hpo_sim.live.alrs.summary import format_summary

    from lcsim.provenance import provenance

    preset, exps = load_experiments(args.preset)
    settings = {"command": args.command_name, "preset": preset}
    if args.adjustment is not None:
        exps = [dataclasses.replace(e, alrs_adjustment=args.adjustment) for e in exps]
        settings["adjustment"] = args.adjustment
    device = check_device(args.device or preset.get("device", "cpu"))
    out = prepare_out(args.out, settings, force=args.force, results=layout.RESULTS)
    all_runs, all_study = [], []
    for exp in exps:
        runs, study = run_experiment(exp, out, device=device, data_root=args.data_root,
                                     progress=not args.no_progress)
        all_runs.append(runs)
        all_study.append(study)
    runs = pd.concat(all_runs, ignore_index=True)
    study = pd.concat(all_study, ignore_index=True)
    meta = provenance(device=device, command=args.command_line, preset=preset,
                      experiments=[dataclasses.asdict(e) for e in exps],
                      augment={e.label: list(e.augment_ops) for e in exps})
    summary = layout.write_results(out, runs, study, meta)
    sys.stdout.write(format_summary(summary))
    if not args.no_progress:
        print(f"wrote {out}: {layout.RUNS}, {layout.SEED_STUDY}, {layout.SUMMARY}, "
              f"{layout.SUMMARY_MD}, {layout.loss_plot('*')}")
    return 0
