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

from .report_cli import add_inputs, load_inputs

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scorecard", help="judge each paper's checkable claims on a table and "
                                         "result folders (holds / refuted / not checkable)",
                       description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_inputs(p)
    p.add_argument("--csv", action="store_true",
                   help="print CSV (every column, the inputs of each verdict as JSON) instead "
                        "of the text table")
    p.set_defaults(func=main_scorecard)


def main_scorecard(args: argparse.Namespace) -> int:
    import json
    import sys

    from .scorecard import format_scorecard, scorecard

    frame = scorecard(**load_inputs(args, "nothing to judge"))
    if args.csv:
        frame = frame.assign(inputs=[json.dumps(i, default=str) for i in frame["inputs"]],
                             paper_value=[json.dumps(v, default=str) if isinstance(v, dict)
                                          else v for v in frame["paper_value"]])
        frame.to_csv(sys.stdout, index=False)
    else:
        print(format_scorecard(frame))
    return 0
