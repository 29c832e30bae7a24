"""analysis: figure functions, notebooks and the `lcsim report` command.

Figure functions take data objects (a `tabular.LookupTable`, pandas DataFrames of results)
and return a matplotlib Figure; they do no file I/O. `analysis.results` reads result
directories into frames; `analysis.report.render_report` writes PNGs and an index.html.

Names are re-exported lazily (PEP 562 `__getattr__`): `lcsim` imports this package for its
`report` subcommand, and `lcsim --help` should not pay for importing matplotlib and pandas.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "figures_choi": ("best_so_far", "final_accuracy", "final_accuracy_vs_hyperparameters",
                     "hyperparameter_frame", "learning_curves", "time_to_goal_distributions"),
    "figures_live": ("alrs_curves", "alrs_loss_curves", "alrs_seed_figure", "alrs_seed_table",
                     "epbt_best_curves", "epbt_best_hyperparameters", "epbt_test_accuracy",
                     "esgd_fitness_bands", "esgd_offspring_share", "taylorglo_binary_loss",
                     "taylorglo_shapes"),
    "figures_rules": ("calibration_curves", "speedup_vs_wrong_stops"),
    "report": ("render_report", "report_sections"),
    "results": ("LiveResults", "ReplayResults", "load_alrs", "load_epbt", "load_esgd",
                "load_replay", "runs_from_traces"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
