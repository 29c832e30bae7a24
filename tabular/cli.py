"""`lcsim table ...`: info, status, curves, validate, merge, repair, import.

    lcsim table info --table default
    lcsim table curves --table T --top 10 --out top.csv
    lcsim table validate --table T          # exit status 1 when the table has errors
    lcsim table merge --table T [--out NEW]
    lcsim table repair --table T            # remove duplicate commits, keep the earliest

`--table` is a table directory, a shipped table name, or "default". Every bad input is a
UserError (TableError), printed by `lcsim` as one line with exit status 2; `validate` finding
errors in a table is its result, not a usage error, and exits with 1. Only light modules
(numpy, pyarrow, pandas) are imported, and only when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lcsim.cliargs import add_seed, add_table, positive_int
from lcsim.errors import UserError, user_errors

__all__ = ["register"]

EXIT_INVALID_TABLE = 1  # `lcsim table validate` found errors: a result, not a usage error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("table", help="inspect, check, merge and import learning-curve tables",
                       description="Learning-curve tables: inspect, check, merge, import.")
    p.set_defaults(func=lambda a: p.print_help())
    ts = p.add_subparsers(dest="table_command", metavar="ACTION")

    q = ts.add_parser("info", help="size, epochs, status counts, accuracy percentiles, hours")
    add_table(q, positional=True)
    q.set_defaults(func=_info)

    q = ts.add_parser("status", help="progress of a table being generated: counts, ETA")
    add_table(q, default=None, help="table directory being generated", positional=True)
    q.add_argument("--n-configs", type=positive_int, default=None,
                   help="target size (default: the generating run's, from meta.json)")
    q.set_defaults(func=_status)

    q = ts.add_parser("curves", help="print or export the curves of selected configs")
    add_table(q, positional=True)
    q.add_argument("--top", type=positive_int, default=None, help="best K by final accuracy")
    q.add_argument("--bottom", type=positive_int, default=None,
                   help="worst K by final accuracy")
    q.add_argument("--random", type=positive_int, default=None,
                   help="K uniformly random configs")
    add_seed(q, "the --random pick (np.random.default_rng(seed))")
    q.add_argument("--out", type=Path, default=None,
                   help="write a long table (curves joined with hyperparameters) to .csv or "
                        ".parquet instead of printing accuracies")
    q.add_argument("--force", action="store_true", help="replace an existing --out file")
    q.set_defaults(func=_curves)

    q = ts.add_parser("validate", help="full format check; exit status 1 if the table has "
                                       "errors (2 for a bad command, as everywhere)")
    add_table(q, default=None, positional=True)
    q.set_defaults(func=_validate)

    q = ts.add_parser("merge", help="compact the shards into one shard pair (other files stay)")
    add_table(q, default=None, positional=True)
    q.add_argument("--out", type=Path, default=None,
                   help="new directory, which must not exist (default: merge in place)")
    q.set_defaults(func=_merge)

    q = ts.add_parser("repair", help="remove duplicate commits (keeps the earliest of each)",
                      description="Remove configs committed more than once, keeping the "
                                  "earliest committed copy of each; nothing else changes.")
    add_table(q, default=None, positional=True)
    q.set_defaults(func=_repair)

    q = ts.add_parser("import", help="make a table from a long CSV of learning curves",
                      description="Columns: config, epoch, accuracy, seconds, hyperparameters "
                                  "(JSON); optional train_loss, val_loss, eval_seconds, "
                                  "solo_seconds, status, error. See tabular/importer.py.")
    q.add_argument("csv", type=Path)
    q.add_argument("--out", type=Path, required=True,
                   help="table directory to create (new or empty)")
    q.add_argument("--space", default=None,
                   help="search space the hyperparameters belong to (mnist, cifar10); "
                        "default: none, features from the JSON")
    q.add_argument("--dataset", default=None, help="dataset name (default: the CSV name)")
    q.add_argument("--num-classes", type=positive_int, default=None,
                   help="classes of the task (ETR-1's chance level); default: the space's")
    q.add_argument("--epochs", type=positive_int, default=None,
                   help="T (default: the largest epoch)")
    q.add_argument("--percent", action="store_true", help="accuracy is given in percent")
    q.add_argument("--cumulative-seconds", action="store_true",
                   help="seconds is elapsed time since the config started, not per epoch")
    q.add_argument("--device", default="unknown", help="device the curves were measured on")
    q.set_defaults(func=_import)


def _info(a) -> int:
    import numpy as np

    from .table import LookupTable

    t = LookupTable.open(a.table)
    m = t.meta
    st, cnt = np.unique(t.status, return_counts=True)
    final = t.final_accuracy
    final = final[~np.isnan(final)]
    print(f"table      {t.path}")
    print(f"dataset    {m.get('dataset')}   space {m.get('space')}   epochs {t.epochs}   "
          f"classes {t.num_classes}")
    print(f"configs    {len(t)}   " + "   ".join(f"{s} {c}" for s, c in zip(st, cnt,
                                                                                 strict=True)))
    if final.size:
        qs = [0, 10, 50, 90, 99, 100]
        vals = np.percentile(final, qs)
        print("final acc  " + "   ".join(f"p{q} {v:.4f}" for q, v in zip(qs, vals, strict=True)))
    h = [np.nansum(a) / 3600 for a in (t.train_seconds, t.solo_seconds, t.eval_seconds)]
    print(f"hours      training measured {h[0]:.2f}   training solo {h[1]:.2f}   "
          f"evaluation {h[2]:.2f}")
    print(f"device     {m.get('device')}")
    print(f"revision   {m.get('code_revision')}   created {m.get('created')}")
    print(f"sobol seed {m.get('sobol_seed')}   split seed {m.get('split_seed')}   "
          f"schema v{m.get('schema_version')}")
    print("versions   " + ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items()))
    print(f"timing     {m.get('time_measurement')}")
    return 0


def _curves(a) -> int:
    import numpy as np
    import pandas as pd

    from .table import LookupTable

    t = LookupTable.open(a.table)
    picks: list[tuple[str, np.ndarray]] = []
    with user_errors():  # K larger than the table
        if a.top is not None:
            picks.append(("top", t.top_k(a.top)))
        if a.bottom is not None:
            picks.append(("bottom", t.bottom_k(a.bottom)))
        if a.random is not None:
            picks.append(("random", t.random_k(a.random, seed=a.seed)))
    if not picks:
        picks.append(("top", t.top_k(min(10, len(t)))))
    sel = pd.DataFrame([(int(i), lab) for lab, ids in picks for i in ids],
                       columns=["config_id", "selection"]).drop_duplicates("config_id")
    if a.out is not None:
        suffix = a.out.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise UserError(f"--out {a.out}: use a .csv or .parquet file name")
        if a.out.is_dir():
            raise UserError(f"--out {a.out} is a directory; give a .csv or .parquet file name")
        if a.out.exists() and not a.force:
            raise UserError(f"--out {a.out} exists; use another name, or --force to replace it")
        cur = t.curves_frame()
        long = sel.merge(cur, on="config_id").merge(t.configs_frame(), on="config_id")
        tmp = a.out.with_name(f".{a.out.name}.tmp")  # a killed export leaves no half file
        if suffix == ".csv":
            long.to_csv(tmp, index=False)
        else:
            long.to_parquet(tmp, index=False)
        tmp.replace(a.out)
        print(f"wrote {len(long)} rows ({len(sel)} configs) to {a.out}")
        return 0
    rows = t.rows(sel.config_id.to_numpy())
    wide = pd.DataFrame(t.acc[rows], columns=[f"e{e}" for e in range(1, t.epochs + 1)])
    wide.insert(0, "status", t.status[rows])
    wide.insert(0, "selection", sel.selection.to_numpy())
    wide.insert(0, "config_id", sel.config_id.to_numpy())
    with pd.option_context("display.max_rows", None, "display.width", 200,
                           "display.float_format", "{:.4f}".format):
        print(wide.to_string(index=False))
    return 0


def _validate(a) -> int:
    from .validate import validate_table

    rep = validate_table(a.table)
    for w in rep.warnings:
        print(f"warning: {w}")
    for e in rep.errors:
        print(f"error: {e}")
    verdict = "valid" if rep.ok else f"INVALID ({len(rep.errors)} errors)"
    print(f"{rep.path}: {verdict}; {rep.n_configs} configs in {rep.n_shards} shard(s), "
          f"{len(rep.warnings)} warning(s)")
    return 0 if rep.ok else EXIT_INVALID_TABLE


def _merge(a) -> int:
    from .table import LookupTable
    from .validate import merge_table

    out = merge_table(a.table, a.out)
    t = LookupTable.open(out)
    print(f"merged into {out}: {len(t)} configs x {t.epochs} epochs")
    return 0


def _repair(a) -> int:
    from .maintain import repair_table

    print("\n".join(repair_table(a.table).lines()))
    return 0


def _import(a) -> int:
    from .importer import import_csv

    out = import_csv(a.csv, a.out, space=a.space, dataset=a.dataset, num_classes=a.num_classes,
                     epochs=a.epochs, percent=a.percent,
                     cumulative_seconds=a.cumulative_seconds, device=a.device)
    print(f"imported {a.csv} into {out}; check it with `lcsim table info --table {out}`")
    return 0


def _status(args: argparse.Namespace) -> int:
    from .status import table_status

    st = table_status(args.table, args.n_configs)
    print("\n".join(st.lines()))
    return 0
