"""The `lcsim` command line: one entry point, one subcommand group per stage.

Each stage package has a `cli.py` with `register(subparsers)`; handlers import their heavy
modules (torch, smac) lazily so `lcsim --help` stays fast. Every user error, in every
subcommand, ends here: a `lcsim.errors.UserError` is printed as one line
`lcsim <cmd>: error: <message>` with exit status 2 (argparse's own status and format for a bad
argument); `--debug` shows its traceback. Shared flags (`--table`, `--out`/`--force`,
`--device`, `--seed`, `--no-progress`) are defined once in `lcsim.cliargs`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from lcsim.errors import EXIT_USER_ERROR, UserError

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
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _STAGES:
        importlib.import_module(name).register(sub)
    return parser


_GROUPS = ("pregen", "table", "live")  # commands with actions: `lcsim table merge`


def _command_name(argv: list[str]) -> str:
    """'lcsim table merge' for argv ['table', 'merge', 'DIR', ...], 'lcsim replay' for
    ['replay', '--table', 'T']."""
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return "lcsim"
    return " ".join(["lcsim", *words[:2 if words[0] in _GROUPS else 1]])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
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
    except UserError as e:
        if args.debug:
            traceback.print_exc()
        print(f"{_command_name(argv)}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    return int(rc or 0)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
