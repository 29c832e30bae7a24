"""The `lcsim` command line: one entry point, one subcommand group per stage.

Each stage package has a `cli.py` with `register(subparsers)`; handlers import their heavy
modules (torch, smac) lazily so `lcsim --help` stays fast. The entry point lives here, at the
end of the data-flow chain, because it is the one place allowed to import every stage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

_STAGES = (
    "lcsim.pregen.cli",  # lcsim train
    "lcsim.pregen.runner_cli",  # lcsim pregen run|status
    "lcsim.tabular.cli",  # lcsim table ...
    "lcsim.hpo_sim.replay.cli",  # lcsim replay, lcsim study
    "lcsim.hpo_sim.live.cli",  # lcsim live ...
    "lcsim.analysis.report_cli",  # lcsim report
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lcsim",
        description="Learning-curve tables and a lookup-table simulator for HPO research.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _STAGES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue  # a stage not built yet
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
