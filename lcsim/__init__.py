"""lcsim: learning-curve tables and a lookup-table simulator for HPO research.

    from lcsim import LookupTable, ReplayConfig, replay
    t = LookupTable.open("default")
    run = replay(t, ReplayConfig(optimizer="smac", rules=("etr2:p=0.9",)), seed=0)

The stages live in subpackages: `lcsim.pregen` (trainer stack, table generation),
`lcsim.tabular` (the table format and its read API), `lcsim.hpo_sim` (replayed and live HPO
methods), `lcsim.analysis` (figures, report). Names here are imported on first use, so
`import lcsim` and `lcsim --help` stay light (no torch, smac or matplotlib).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_HOME = {
    # tabular
    "LookupTable": "lcsim.tabular.table",
    "TableError": "lcsim.tabular.schema",
    "TableWriter": "lcsim.tabular.writer",
    "ConfigResult": "lcsim.tabular.writer",
    "get_space": "lcsim.tabular.spaces",
    "Blackbox": "lcsim.tabular.blackbox",
    # replay
    "ReplayConfig": "lcsim.hpo_sim.replay.simulate",
    "Goal": "lcsim.hpo_sim.replay.simulate",
    "replay": "lcsim.hpo_sim.replay.simulate",
    "run_settings": "lcsim.hpo_sim.replay.study",
    "summarize": "lcsim.hpo_sim.replay.summary",
    "format_summary": "lcsim.hpo_sim.replay.summary",
    "ReplayState": "lcsim.hpo_sim.replay.state",
    "StoppingRule": "lcsim.hpo_sim.replay.protocols",
    "Optimizer": "lcsim.hpo_sim.replay.protocols",
    "Job": "lcsim.hpo_sim.replay.protocols",
    "Pool": "lcsim.hpo_sim.replay.protocols",
    "Decision": "lcsim.hpo_sim.replay.protocols",
    # trainer stack
    "load_dataset": "lcsim.pregen.data",
    "TrainSpec": "lcsim.pregen.trainer",
    "train": "lcsim.pregen.trainer",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'lcsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
