"""Replay HPO runs against learning-curve tables: optimizers (ask/tell over table rows),
early-termination rules, a simulated clock, and studies with summaries and audits.

Your own optimizer or stopping rule takes the same path as the built-ins: see the protocols in
`protocols.py` (`Optimizer`, `StoppingRule`, `Pool`, `Job`), what a rule sees in `state.py`,
the spec strings in `resolve.py`, and the Optuna bridge in `optuna_bridge.py`.
"""

from .audit import audit_run, audit_runs, calibration_frame, goal_k
from .clock import EventHeap, SimClock
from .goals import replay_goals
from .optimizers import BUILTIN, OPTIMIZERS, SMAC, Hyperband, RandomSearch
from .protocols import (
    Decision,
    Job,
    Optimizer,
    OptimizerFactory,
    Pool,
    ProtocolError,
    StoppingRule,
)
from .resolve import (
    OptimizerSpec,
    SpecError,
    resolve_optimizer,
    resolve_rule,
    resolve_rules,
)
from .rules import (
    ETR1,
    ETR2,
    LCE,
    AnyOf,
    GPRule,
    MedianRule,
    NoRule,
    SuccessiveHalving,
    SVRRule,
    etr2_tau,
    parse_rule,
    parse_rules,
)
from .settings import check_settings, load_preset, preset_settings
from .simulate import (
    DECISION_COLUMNS,
    TRACE_COLUMNS,
    Goal,
    ReplayConfig,
    RunResult,
    candidate_rows,
    epoch_costs,
    replay,
)
from .state import ReplayState
from .study import run_settings, traces_frame, with_baselines, write_outputs
from .summary import LEGEND, audit_frame, format_summary, miss_reason, summarize, time_unit

__all__ = [
    "AnyOf", "BUILTIN", "DECISION_COLUMNS", "Decision", "ETR1", "ETR2", "EventHeap", "GPRule",
    "Goal", "Hyperband", "Job", "LCE", "LEGEND", "MedianRule", "NoRule", "OPTIMIZERS", "Optimizer",
    "OptimizerFactory", "OptimizerSpec", "Pool", "ProtocolError", "RandomSearch", "ReplayConfig",
    "ReplayState", "RunResult", "SMAC", "SVRRule", "SimClock", "SpecError", "StoppingRule",
    "SuccessiveHalving", "TRACE_COLUMNS", "audit_frame", "audit_run", "audit_runs",
    "calibration_frame", "candidate_rows", "check_settings", "epoch_costs", "etr2_tau",
    "format_summary", "goal_k", "load_preset", "miss_reason", "parse_rule", "parse_rules",
    "preset_settings", "replay", "replay_goals",
    "resolve_optimizer", "resolve_rule", "resolve_rules", "run_settings", "summarize",
    "time_unit", "traces_frame", "with_baselines", "write_outputs",
]
