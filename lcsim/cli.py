"""The `lcsim` command line: one entry point, one subcommand group per stage.

Each stage package has a `cli.py` with `register(subparsers)`; handlers import their heavy
modules (torch, smac) lazily so `lcsim --help` stays fast. Every user error, in every
subcommand, ends here: a `lcsim.errors.UserError` is printed as one line
`lcsim <cmd>: error: <message>` with exit status 2 (argparse's own status and format for a bad
argument, which `main` returns instead of exiting); `--debug` shows its traceback. Shared
flags (`--table`, `--out`/`--force`, `--device(s)`, `--seed`, `--bf16/--no-bf16`,
`--no-progress`) are defined once in `lcsim.cliargs`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import traceback

from lcsim.cliargs import names_table, release_outs, take_positional_table
from lcsim.errors import EXIT_USER_ERROR, UserError

EXIT_BROKEN_PIPE = 141  # what a shell reports for a writer killed by SIGPIPE (128 + 13)

__all__ = ["main", "build_parser"]

_STAGES = (
    "lcsim.pregen.cli",  # lcsim train
    "lcsim.pregen.runner_cli",  # lcsim pregen run|status
    "lcsim.tabular.cli",  # lcsim table ...
    "lcsim.hpo_sim.replay.cli",  # lcsim replay, lcsim study
    "lcsim.hpo_sim.live.cli",  # lcsim live ...
    "lcsim.analysis.report_cli",  # lcsim report
    "lcsim.analysis.scorecard_cli",  # lcsim scorecard
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
    _name_commands(parser)
    return parser


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """Every (sub)parser records its own name ('lcsim table merge') for the error line; the
    deepest one parsed wins, as argparse applies a subcommand's defaults after its parent's."""
    parser.set_defaults(command_name=parser.prog)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                _name_commands(sub)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as e:  # argparse printed usage + `lcsim <cmd>: error: ...` (or --help)
        return 0 if e.code is None else e.code if isinstance(e.code, int) else EXIT_USER_ERROR
    if extra:
        print(f"{getattr(args, 'command_name', 'lcsim')}: error: unrecognized arguments: "
              f"{shlex.join(extra)}{_hint(args, argv, extra)}", file=sys.stderr)
        return EXIT_USER_ERROR
    problem = take_positional_table(args, argv)
    if problem:
        print(f"{args.command_name}: error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    args.command_line = shlex.join(["lcsim", *argv])  # recorded in outputs' provenance
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lcsim table info | head`: the reader left; not our error
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except UserError as e:
        if args.debug:
            traceback.print_exc()
        print(f"{args.command_name}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        release_outs()  # the --out folder this command held
    return int(rc or 0)


def _hint(args: argparse.Namespace, argv: list[str], extra: list[str]) -> str:
    # `lcsim table info default`: every command names its table with --table
    words = [w for w in extra if not w.startswith("-")]
    if len(words) == 1 and "table" in vars(args) and not names_table(argv):
        return (f" (a table is named with --table: "
                f"{args.command_name} --table {shlex.quote(words[0])})")
    return ""


def _silence_stdout() -> None:
    # Python flushes stdout again at exit and would print a second BrokenPipeError
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
