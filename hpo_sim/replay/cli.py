"""`lcsim replay ...` (one optimizer + rule set against its no-rule baseline) and
`lcsim study --preset NAME|FILE.json` (a grid of settings). Heavy imports happen in handlers.

    lcsim replay --table default --optimizer smac --rule etr2:p=0.9 --goal-top 0.5 \
        --repeats 50 --seed 0 --out runs/etr2
    lcsim study --preset readme

Settings are checked against the table before anything runs: ETR-1 at an epoch >= T (it would
never fire) is an error naming T, a goal above every final accuracy a warning naming the best.
`--out DIR` records the settings (table, settings, seed) in DIR/lcsim-run.json: re-running the
same command resumes from DIR/runs/, also with other `--repeats` (repeat r's seed does not
depend on how many there are); other settings are refused unless `--force`, which removes
the earlier results first.
"""

from __future__ import annotations

import argparse
import os
import sys

from lcsim.cliargs import add_out, add_progress, add_seed, add_table, positive_int, prepare_out
from lcsim.errors import user_errors

__all__ = ["register"]


def _common(p: argparse.ArgumentParser, repeats_default: str) -> None:
    add_table(p)
    p.add_argument("--repeats", type=positive_int, default=None,
                   help=f"replays per setting (default: {repeats_default})")
    add_seed(p, "the repeats: repeat r of every setting uses SeedSequence(seed).spawn(repeats)"
                "[r] for the optimizer's random choices (so a rule and its baseline are "
                "paired), and the bootstrap CIs use their own stream of seed", default=None)
    p.add_argument("--workers", type=positive_int, default=None,
                   help="simulated asynchronous workers per run (default 1, as in the paper)")
    p.add_argument("--time", choices=("solo", "measured"), default=None,
                   help="per-epoch seconds: solo (config alone on the device, default) or the "
                        "measured, possibly shared, train seconds")
    p.add_argument("--no-eval-time", action="store_true",
                   help="do not charge the per-epoch validation seconds")
    p.add_argument("--charge-overhead", action="store_true",
                   help="charge the measured wall time of each ask() and of each stopping-rule "
                        "decision to the simulated clock (non-deterministic)")
    p.add_argument("--max-time", type=float, default=None, help="time budget, simulated seconds")
    p.add_argument("--max-evals", type=positive_int, default=None,
                   help="budget of configs per run")
    p.add_argument("--goal", type=float, action="append", default=None,
                   help="absolute goal accuracy, e.g. 0.99 (repeatable, with --goal-top too: "
                        "one summary row per goal, one shared replay per repeat)")
    p.add_argument("--goal-top", type=float, action="append", default=None,
                   help="goal = top PERCENT of the table's final accuracies, e.g. 0.5 "
                        "(repeatable)")
    p.add_argument("--goal-over", choices=("complete", "all"), default=None,
                   help="configs a --goal-top percent ranks: complete ones (default for "
                        "`replay`) or all, diverged and failed ones counted as 0 (Choi et "
                        "al.; the default of the choi-* presets)")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="local processes for the repeats (default: all cores)")
    p.add_argument("--dask-scheduler", default=None,
                   help="address of a Dask scheduler (tcp://host:8786) to run the repeats on")
    p.add_argument("--audit-top-k", type=positive_int, default=None,
                   help="audit: count stopped configs among the table's top k (default: the "
                        "configs at or above the goal)")
    add_out(p, help="output directory: traces/*.parquet, summary.csv/json, audit.csv; "
                    "finished runs are kept in OUT/runs/, so re-running an interrupted "
                    "command resumes")
    add_progress(p)


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("replay", help="replay HPO runs (SMAC, random, Hyperband, Optuna, "
                                      "your own) with early-termination rules on a table")
    r.add_argument("--optimizer", action="append", default=None,
                   help="smac, random, hyperband, optuna:SAMPLER[:k=v,...] (tpe, random, cmaes, "
                        "...) or your package.module:Name[:k=v,...]; repeatable, to compare "
                        "optimizers (default: smac)")
    r.add_argument("--rule", action="append", default=[],
                   help="stopping rule, repeatable (combined into one setting: stop if any "
                        "says stop; the no-rule baseline always runs beside it): etr1:tau=3, "
                        "etr2:p=0.9,q=0.75, median[:variant=vizier|optuna|synetune,"
                        "grace=0,min_trials=3], lce[:delta=0.05,min_epochs=5] (Domhan et al.), "
                        "svr[:delta=0.05,min_configs=10] (Baker et al.), gp[:delta=0.05] "
                        "(Vizier's performance-curve rule), sh[:eta=3,min_r=1] "
                        "(successive halving; asha), optuna:PRUNER[:k=v,...] (median, sha, "
                        "hyperband, ...) or your package.module:Name[:k=v,...]")
    _common(r, "50")
    r.set_defaults(func=_replay)
    s = sub.add_parser("study", help="run a preset grid of replay settings (readme, "
                                     "choi-fig4-mnist, choi-fig5-cifar10, ..., beyond-etr, "
                                     "or a JSON file)")
    s.add_argument("--preset", required=True, help="preset name or path to a preset JSON file")
    s.add_argument("--optimizer", action="append", default=None,
                   help="replace the preset's optimizers (repeatable; the spellings of "
                        "`lcsim replay --optimizer`)")
    _common(s, "the preset's, else 50")
    s.set_defaults(func=_study)


def _goals(args, over: str = "complete") -> list:
    """The goals typed on the command line (absolute first), [] when none."""
    from .simulate import Goal

    over = args.goal_over or over
    return ([Goal(accuracy=a) for a in args.goal or ()]
            + [Goal(top_percent=x, over=over) for x in args.goal_top or ()])


def _overrides(args) -> dict:
    return {"workers": args.workers, "time": args.time, "max_time": args.max_time,
            "max_evals": args.max_evals,
            "charge_eval": False if args.no_eval_time else None,
            "charge_overhead": True if args.charge_overhead else None}


def _replay(args) -> int:
    from .settings import rule_set
    from .simulate import Goal, ReplayConfig
    from .study import with_baselines

    opts = {k: v for k, v in _overrides(args).items() if v is not None}
    with user_errors():
        rules = rule_set(args.rule)
        goals = _goals(args) or [Goal(top_percent=0.5, over=args.goal_over or "complete")]
        cfgs = [ReplayConfig(optimizer=o, rules=rules, goal=g, **opts)
                for o in dict.fromkeys(args.optimizer or ["smac"]) for g in goals]
    return _execute(args, with_baselines(cfgs), repeats=args.repeats or 50,
                    seed=0 if args.seed is None else args.seed, name="replay")


def _study(args) -> int:
    from dataclasses import replace

    from .settings import load_preset, preset_settings
    from .simulate import ReplayConfig
    from .study import with_baselines

    with user_errors():  # flags first, so that their errors name the flag, not the preset
        goals = _goals(args)
        ReplayConfig(**{k: v for k, v in _overrides(args).items() if v is not None})
    doc = load_preset(args.preset)  # PresetError names the key and value
    if args.optimizer:
        doc["optimizers"] = args.optimizer
    if args.goal_over:
        doc["goal_over"] = args.goal_over
    settings = preset_settings(doc, **_overrides(args))
    if goals:  # goals from the command line replace the preset's goals
        goals = _goals(args, doc.get("goal_over", "complete"))
        base = _dedupe(replace(c, goal=goals[0]) for c in settings)
        order = dict.fromkeys(c.optimizer_label for c in base)  # as the preset: optimizer, goal
        settings = with_baselines([replace(c, goal=g) for o in order for g in goals
                                   for c in base if c.optimizer_label == o])
    return _execute(args, settings, repeats=args.repeats or doc.get("repeats", 50),
                    seed=doc.get("seed", 0) if args.seed is None else args.seed,
                    name=doc.get("name", args.preset))


def _dedupe(settings):
    out = []
    for c in settings:
        if c not in out:
            out.append(c)
    return out


def _execute(args, settings, *, repeats: int, seed: int, name: str) -> int:
    import time

    from lcsim.tabular.table import LookupTable

    from lcsim.provenance import provenance

    from .audit import calibration_frame, format_rule_audit
    from .settings import check_settings
    from .study import OUTPUTS, _cfg_dict, run_settings, write_outputs
    from .summary import audit_frame, format_summary, legend, summarize, time_unit

    settings = _dedupe(settings)
    table = LookupTable.open(args.table)  # TableError names the path
    with user_errors():
        warnings = check_settings(table, settings)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    record = {"command": args.command_name, "table": str(table.path or args.table),
              "table_configs": len(table), "seed": seed,
              "settings": [_cfg_dict(c) for c in settings]}
    if args.out:  # refuse before computing; --repeats may change (runs are reused)
        prepare_out(args.out, record, force=args.force, results=OUTPUTS)
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
    audit = audit_frame(table, settings, results, top_k=args.audit_top_k, seed=seed)
    calibration = calibration_frame(table, settings, results)
    unit = time_unit(table)
    print(format_summary(summary, audit, unit=unit, legend=False))
    rule_audit = format_rule_audit(audit)
    if rule_audit:
        print("\nRule audit (see the legend):\n" + rule_audit)
    print("\n" + legend(unit, rule_audit=bool(rule_audit)))
    print(f"\n{len(settings) * repeats} replays in {wall:.1f} s wall "
          f"({jobs} job{'s' if jobs > 1 else ''}); times are simulated from the table")
    if args.out:
        prov = provenance(command=args.command_line, name=name,
                          table=record["table"], table_meta=table.meta, repeats=repeats,
                          seed=seed, jobs=jobs, wall_seconds=wall, warnings=warnings)
        d = write_outputs(args.out, settings, results, summary, audit, prov, calibration)
        print(f"wrote {d}/summary.csv, summary.json, audit.csv, traces/*.parquet"
              + (", decisions/*.parquet, calibration.csv" if len(calibration) else ""))
    return 0
