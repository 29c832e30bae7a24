"""`lcsim replay ...` (one optimizer + rule set against its no-rule baseline) and
`lcsim study --preset NAME|FILE.json` (a grid of settings). Heavy imports happen in handlers.

    lcsim replay --table default --optimizer smac --rule etr2:p=0.9 --goal-top 0.5 \
        --repeats 50 --seed 0 --out runs/etr2
    lcsim study --preset readme
"""

from __future__ import annotations

import argparse
import os
import sys

from lcsim.errors import UserError

__all__ = ["register"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", default="default",
                   help="table directory or shipped table name (default: the shipped 'default')")
    p.add_argument("--repeats", type=int, default=None, help="replays per setting")
    p.add_argument("--seed", type=int, default=None,
                   help="root seed; repeat r uses SeedSequence(seed).spawn(repeats)[r]")
    p.add_argument("--workers", type=int, default=None,
                   help="simulated asynchronous workers per run (default 1, as in the paper)")
    p.add_argument("--time", choices=("solo", "measured"), default=None,
                   help="per-epoch seconds: solo (config alone on the device, default) or the "
                        "measured, possibly shared, train seconds")
    p.add_argument("--no-eval-time", action="store_true",
                   help="do not charge the per-epoch validation seconds")
    p.add_argument("--charge-overhead", action="store_true",
                   help="charge the measured wall time of each ask() (non-deterministic)")
    p.add_argument("--max-time", type=float, default=None, help="time budget, simulated seconds")
    p.add_argument("--max-evals", type=int, default=None, help="budget of configs per run")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--goal", type=float, default=None, help="absolute goal accuracy, e.g. 0.99")
    g.add_argument("--goal-top", type=float, default=None,
                   help="goal = top PERCENT of the table's final accuracies, e.g. 0.5")
    p.add_argument("--jobs", type=int, default=None,
                   help="local processes for the repeats (default: all cores)")
    p.add_argument("--dask-scheduler", default=None,
                   help="address of a Dask scheduler (tcp://host:8786) to run the repeats on")
    p.add_argument("--audit-top-k", type=int, default=None,
                   help="audit: count stopped configs among the table's top k (default: the "
                        "configs at or above the goal)")
    p.add_argument("--out", default=None,
                   help="output directory: traces/*.parquet, summary.csv/json, audit.csv; "
                        "finished runs are kept in OUT/runs/, so re-running an interrupted "
                        "command resumes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("replay", help="replay HPO runs (SMAC, random, Hyperband) with "
                                      "early-termination rules on a table")
    r.add_argument("--optimizer", choices=("smac", "random", "hyperband"), action="append",
                   default=None, help="repeatable, to compare optimizers (default: smac)")
    r.add_argument("--rule", action="append", default=[],
                   help="stopping rule, repeatable (combined: stop if any says stop): none, "
                        "etr1:tau=3, etr2:p=0.9,q=0.75, median[:variant=vizier|optuna|synetune,"
                        "grace=0,min_trials=3]")
    _common(r)
    r.set_defaults(func=_replay)
    s = sub.add_parser("study", help="run a preset grid of replay settings (choi-fig4, "
                                     "choi-fig5, readme, or a JSON file)")
    s.add_argument("--preset", required=True, help="preset name or path to a preset JSON file")
    s.add_argument("--optimizer", action="append", default=None,
                   help="replace the preset's optimizers (repeatable)")
    _common(s)
    s.set_defaults(func=_study)


def _goal(args, default):
    from .simulate import Goal

    if args.goal is not None:
        return Goal(accuracy=args.goal)
    if args.goal_top is not None:
        return Goal(top_percent=args.goal_top)
    return default


def _overrides(args) -> dict:
    return {"workers": args.workers, "time": args.time, "max_time": args.max_time,
            "max_evals": args.max_evals,
            "charge_eval": False if args.no_eval_time else None,
            "charge_overhead": True if args.charge_overhead else None}


def _replay(args) -> int:
    from .simulate import Goal, ReplayConfig
    from .study import with_baselines

    opts = {k: v for k, v in _overrides(args).items() if v is not None}
    try:
        cfgs = [ReplayConfig(optimizer=o, rules=tuple(args.rule),
                             goal=_goal(args, Goal(top_percent=0.5)), **opts)
                for o in dict.fromkeys(args.optimizer or ["smac"])]
    except ValueError as e:
        raise UserError(e) from None
    return _execute(args, with_baselines(cfgs), repeats=args.repeats or 50,
                    seed=0 if args.seed is None else args.seed, name="replay")


def _study(args) -> int:
    from dataclasses import replace

    from .study import load_preset, preset_settings, with_baselines

    try:
        doc = load_preset(args.preset)
        if args.optimizer:
            doc["optimizers"] = args.optimizer
        settings = preset_settings(doc, **_overrides(args))
        goal = _goal(args, None)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(e) from None
    if goal is not None:  # one goal from the command line replaces the preset's goals
        settings = with_baselines(_dedupe(replace(c, goal=goal) for c in settings))
    return _execute(args, settings, repeats=args.repeats or int(doc.get("repeats", 50)),
                    seed=int(doc.get("seed", 0)) if args.seed is None else args.seed,
                    name=doc.get("name", args.preset))


def _dedupe(settings):
    out = []
    for c in settings:
        if c not in out:
            out.append(c)
    return out


def _execute(args, settings, *, repeats: int, seed: int, name: str) -> int:
    import time
    from datetime import UTC, datetime

    from lcsim.tabular.schema import TableError
    from lcsim.tabular.table import LookupTable

    from .study import run_settings, write_outputs
    from .summary import audit_frame, format_summary, summarize, time_unit

    settings = _dedupe(settings)
    try:
        table = LookupTable.open(args.table)
        for c in settings:
            c.goal.resolve(table)  # a goal the table cannot give fails here, not in a worker
    except (TableError, ValueError, FileNotFoundError) as e:
        raise UserError(e) from None
    jobs = args.jobs or min(os.cpu_count() or 1, repeats * len(settings))
    ref = args.table if (jobs > 1 or args.dask_scheduler) and table.path else table
    print(f"{name}: {len(settings)} settings x {repeats} repeats on {table!r}", file=sys.stderr)
    t0 = time.perf_counter()
    # with --out, finished runs are kept in OUT/runs/ so an interrupted command resumes
    resume = os.path.join(args.out, "runs") if args.out else None
    results = run_settings(ref, settings, repeats, seed, jobs=jobs,
                           scheduler=args.dask_scheduler, progress=not args.no_progress,
                           resume_dir=resume)
    wall = time.perf_counter() - t0
    summary = summarize(settings, results, seed=seed, table=table)
    audit = audit_frame(table, settings, results, top_k=args.audit_top_k)
    print(format_summary(summary, audit, unit=time_unit(table)))
    print(f"\n{len(settings) * repeats} replays in {wall:.1f} s wall "
          f"({jobs} job{'s' if jobs > 1 else ''}); times are simulated from the table")
    if args.out:
        prov = {"command": " ".join(sys.argv), "name": name, "table": str(table.path or ""),
                "table_meta": table.meta, "repeats": repeats, "seed": seed,
                "wall_seconds": wall, "finished_utc": datetime.now(UTC).isoformat()}
        d = write_outputs(args.out, settings, results, summary, audit, prov)
        print(f"wrote {d}/summary.csv, summary.json, audit.csv, traces/*.parquet")
    return 0
