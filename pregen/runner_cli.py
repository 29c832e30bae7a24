"""`lcsim pregen run|status`: generate a learning-curve table, or report on one.

    lcsim pregen run --space mnist --dataset mnist --n-configs 40 --epochs 20 --out DIR
    lcsim pregen run ... --devices cuda:0,cuda:1 --workers-per-device 4    # a GPU box
    lcsim pregen run ... --index-range 0:10000                             # split by hand
    lcsim pregen run ... --dask-scheduler tcp://HOST:8786                  # a Dask cluster
    lcsim pregen status --table DIR [--n-configs N]       # alias of `lcsim table status`

Re-running the same `run` command resumes: configs the directory holds are skipped. `--out`
is the table itself, so unlike other commands' outputs there is no `--force`: a table of other
settings is refused and never deleted for you (it may hold days of GPU time).
torch, dask and pyarrow are imported inside the handlers so `lcsim --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lcsim.cliargs import (
    add_augment,
    add_devices,
    add_progress,
    add_seed,
    add_switch,
    add_table,
    check_devices,
    nonneg_int,
    positive_int,
)
from lcsim.errors import user_errors

__all__ = ["register"]

def _range(text: str) -> tuple[int, int]:
    a, sep, b = text.partition(":")
    try:
        if not sep:
            raise ValueError
        lo, hi = int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be A:B (ids A..B-1), got {text!r}") from None
    if not 0 <= lo < hi:
        raise argparse.ArgumentTypeError(f"must be A:B with 0 <= A < B (ids A..B-1), got "
                                         f"{text!r}")
    return lo, hi


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pregen", help="generate learning-curve tables (run, status)",
                       description="Generate a learning-curve table by training Sobol "
                                   "configs of a Table I space, or report on one.")
    psub = p.add_subparsers(dest="pregen_command", metavar="{run,status}", required=True)

    r = psub.add_parser(
        "run", help="train configs 0..n-1 and write them into a table directory (resumable)",
        description="Train Sobol configs 0..n-1 (Table I spaces: Adam, each config's learning "
                    "rate and L2 weight as the paper; batch 128 and no augmentation, which the "
                    "paper does not state, ours; lcbench-mlp: LCBench's SGD + cosine recipe) "
                    "for T epochs each and write each finished config "
                    "as one atomic shard. Re-running the same command resumes. Default T: "
                    "20 for MNIST, 50 for CIFAR-10 and digits.")
    r.add_argument("--space", required=True, choices=("mnist", "cifar10", "lcbench-mlp"))
    r.add_argument("--dataset", help="dataset (default: the space's own; digits for "
                                     "lcbench-mlp)",
                   choices=("mnist", "cifar10", "cifar100", "svhn", "digits"))
    r.add_argument("--data-root", help="torchvision data root (default $LCSIM_DATA_ROOT; for "
                                       "mnist without either: the shipped 10k subset)")
    r.add_argument("--n-configs", type=positive_int, required=True,
                   help="table size: Sobol ids 0..n-1")
    r.add_argument("--epochs", type=positive_int,
                   help="T (default 20 for mnist/svhn, 50 for cifar)")
    r.add_argument("--out", required=True,
                   help="table directory: new or empty (created), or a table of the same "
                        "settings (resumed)")
    r.add_argument("--index-range", type=_range, metavar="A:B",
                   help="train only ids A..B-1 (split one table over machines by hand)")
    add_devices(r, help="comma-separated: cpu, or cuda:0,cuda:1 (one worker group each)")
    r.add_argument("--workers-per-device", type=positive_int, default=1,
                   help="configs trained at once per device (worker processes)")
    r.add_argument("--sobol-seed", type=nonneg_int, default=0,
                   help="scramble seed of the Sobol points (which configs the ids name)")
    add_seed(r, "training: config i trains with the seed SeedSequence(seed, spawn_key=(i,)) "
                "(weight init, batch order, dropout), whichever worker trains it")
    r.add_argument("--split-seed", type=nonneg_int, default=0,
                   help="train/validation split seed")
    r.add_argument("--val-size", type=positive_int,
                   help="validation examples (default per dataset)")
    add_augment(r, help="train-time augmentation (recorded in the table metadata): none, as "
                        "the paper mentions none, or comma-separated ops from crop, flip, "
                        "cutout, cutout:N")
    r.add_argument("--max-train", type=positive_int,
                   help="use only the first N training examples (tests, CPU tables; recorded)")
    r.add_argument("--solo-epochs", type=positive_int, default=1,
                   help="epochs timed alone per config when configs share a device")
    add_switch(r, "bf16", default=True, help="bf16 autocast on CUDA devices (ignored on CPU)")
    add_switch(r, "channels-last", default=True,
               help="NHWC memory format on CUDA devices (ignored on CPU)")
    r.add_argument("--max-oom-retries", type=nonneg_int, default=2,
                   help="retries after CUDA out-of-memory, each at a lower concurrency")
    r.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="run the configs as tasks on this dask.distributed scheduler "
                        "(--devices then names the device of its workers)")
    r.add_argument("--notes", help="free text stored in the table metadata (what it is)")
    add_progress(r)
    r.set_defaults(func=_run)

    s = psub.add_parser("status", help="complete / diverged / failed / remaining and an ETA "
                                       "(alias of `lcsim table status`)")
    add_table(s, default=None, help="table directory being generated", positional=True)
    s.add_argument("--n-configs", type=positive_int,
                   help="target table size (default: the one its run recorded)")
    s.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    from lcsim.pregen.runner import RunConfig, RunStopped, run

    with user_errors():
        cfg = RunConfig(
            out=args.out, space=args.space,
            dataset=args.dataset,
            data_root=args.data_root, n_configs=args.n_configs, epochs=args.epochs,
            index_range=args.index_range, devices=args.devices,
            workers_per_device=args.workers_per_device, sobol_seed=args.sobol_seed,
            seed=args.seed, split_seed=args.split_seed, val_size=args.val_size,
            augment=args.augment,
            max_train=args.max_train, solo_epochs=args.solo_epochs, bf16=args.bf16,
            channels_last=args.channels_last, max_oom_retries=args.max_oom_retries,
            dask_scheduler=args.dask_scheduler, progress=not args.no_progress,
            notes=args.notes)
    if cfg.dask_scheduler is None:  # Dask workers' devices are theirs, not this machine's
        check_devices(cfg.devices)
    if not args.no_progress:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        summary = run(cfg)  # bad tables and datasets raise TableError / DatasetNotFoundError
    except RunStopped as e:  # SIGINT / SIGTERM: what was done, what was dropped
        _print_summary(e.summary, cfg.out)
        print(f"lcsim pregen run: {e}", file=sys.stderr)
        return 128 + e.signum
    _print_summary(summary, cfg.out)
    return 0


def _print_summary(summary, out: str) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())) or "nothing"
    extra = (f"; {summary.skipped} already committed (not written again)"
             if summary.skipped else "")
    if summary.stopped_by:
        extra += f"; stopped by {summary.stopped_by}, {summary.dropped} in flight dropped"
    print(f"pregen: {summary.planned} configs planned ({summary.held_before} already held); "
          f"this run: {counts}; {summary.oom_retries} OOM retries{extra}; "
          f"{summary.seconds:.1f}s. Table: {out}", flush=True)


def _status(args: argparse.Namespace) -> int:
    # alias of `lcsim table status`: the table format is tabular's
    from lcsim.tabular.cli import _status as table_status_command

    return table_status_command(args)
