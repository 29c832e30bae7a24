"""`lcsim live ...`: the live training-time methods (ALRS, ESGD, EPBT), one module each."""

from __future__ import annotations

import argparse
import importlib

_METHODS = (
    "lcsim.hpo_sim.live.alrs_cli", "lcsim.hpo_sim.live.esgd_cli", "lcsim.hpo_sim.live.epbt_cli",
)


def register(sub: argparse._SubParsersAction) -> None:
    live = sub.add_parser("live", help="live comparisons of ALRS, ESGD and EPBT")
    live_sub = live.add_subparsers(dest="live_command", metavar="METHOD")
    live.set_defaults(func=lambda args: live.print_help())
    for name in _METHODS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        mod.register(live_sub)
