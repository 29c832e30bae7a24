"""Replay HPO runs against learning-curve tables: optimizers (ask/tell over table rows),
early-termination rules, a simulated clock, and studies with summaries and audits."""

from .audit import audit_run, audit_runs, goal_k
from .clock import EventHeap, SimClock
from .optimizers import OPTIMIZERS, SMAC, Hyperband, Job, Optimizer, RandomSearch, make_optimizer
from .rules import (
    ETR1,
    ETR2,
    AnyOf,
    MedianRule,
    NoRule,
    ReplayState,
    StoppingRule,
    etr2_tau,
    parse_rule,
    parse_rules,
)
from .settings import check_settings, load_preset, preset_settings
from .simulate import Goal, ReplayConfig, RunResult, candidate_rows, epoch_costs, replay
from .study import (
    audit_frame,
    format_summary,
    run_settings,
    summarize,
    traces_frame,
    with_baselines,
    write_outputs,
)

__all__ = [
    "AnyOf", "ETR1", "ETR2", "EventHeap", "Goal", "Hyperband", "Job", "MedianRule", "NoRule",
    "OPTIMIZERS", "Optimizer", "RandomSearch", "ReplayConfig", "ReplayState", "RunResult",
    "SMAC", "SimClock", "StoppingRule", "audit_frame", "audit_run", "audit_runs",
    "candidate_rows", "check_settings", "epoch_costs", "etr2_tau", "format_summary", "goal_k",
    "load_preset", "make_optimizer", "parse_rule", "parse_rules", "preset_settings", "replay",
    "run_settings", "summarize", "traces_frame", "with_baselines", "write_outputs",
]
