"""`lcsim scorecard`: each paper's checkable claims, judged on a table and result folders.

    lcsim scorecard --table default --replay runs/fig4 --alrs runs/alrs --esgd runs/esgd \\
        --epbt runs/epbt

Prints one row per claim: our value, the paper's, the verdict (holds / refuted / not
checkable: the input that is missing) and the criterion with its thresholds
(`lcsim.analysis.scorecard`). Nothing is trained or replayed here: a claim on replays reads a
`lcsim study --out DIR` folder (`lcsim study --preset choi-fig4-mnist --table T --out DIR`),
so the scorecard takes seconds. `lcsim report` shows the same scorecard as a section of its
page. The verdicts are results, not errors: the exit status is 0 whatever they are.
"""

from __future__ import annotations

import argparse

from lcsim.cliargs import add_table
from lcsim.errors import UserError, user_errors

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scorecard", help="judge each paper's checkable claims on a table and "
                                         "result folders (holds / refuted / not checkable)",
                       description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_table(p, default=None, required=False)
    p.add_argument("--replay", action="append", default=[], metavar="DIR",
                   help="output directory of `lcsim study/replay --out` (repeatable)")
    p.add_argument("--alrs", metavar="DIR", help="output directory of `lcsim live alrs-compare`")
    p.add_argument("--esgd", metavar="DIR", help="output directory of `lcsim live esgd`")
    p.add_argument("--epbt", metavar="DIR", help="output directory of `lcsim live epbt`")
    p.add_argument("--csv", action="store_true",
                   help="print CSV (every column, the inputs of each verdict as JSON) instead "
                        "of the text table")
    p.set_defaults(func=main_scorecard)


def main_scorecard(args: argparse.Namespace) -> int:
    import json
    import sys

    from lcsim.tabular.table import LookupTable

    from .results import load_alrs, load_epbt, load_esgd, load_replay
    from .scorecard import format_scorecard, scorecard

    if not (args.table or args.replay or args.alrs or args.esgd or args.epbt):
        raise UserError("nothing to judge; give a table and/or result directories (--table, "
                        "--replay, --alrs, --esgd, --epbt)")
    with user_errors(FileNotFoundError, ValueError):  # loaders name the missing file
        frame = scorecard(table=LookupTable.open(args.table) if args.table else None,
                          replays=[load_replay(d) for d in args.replay],
                          alrs=load_alrs(args.alrs) if args.alrs else None,
                          esgd=load_esgd(args.esgd) if args.esgd else None,
                          epbt=load_epbt(args.epbt) if args.epbt else None)
    if args.csv:
        frame = frame.assign(inputs=[json.dumps(i, default=str) for i in frame["inputs"]],
                             paper_value=[json.dumps(v, default=str) if isinstance(v, dict)
                                          else v for v in frame["paper_value"]])
        frame.to_csv(sys.stdout, index=False)
    else:
        print(format_scorecard(frame))
    return 0
