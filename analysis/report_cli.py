"""`lcsim report`: render the figures of a table and result directories into PNGs + index.html.

    lcsim report --table default --replay study-out/ --esgd esgd-out/ --epbt epbt-out/ \\
        --alrs alrs-out/ --out report/

Every input is optional, but at least one is needed; each adds its section. Rendering the
figures is quick (seconds); nothing is trained or replayed here. The report directory records
its inputs (lcsim-run.json): the same inputs re-render it from scratch (no figure of an
earlier report stays behind), other inputs need --force.
"""

from __future__ import annotations

import argparse
import os
import sys

from lcsim.cliargs import add_out, add_table, positive_int, prepare_out
from lcsim.errors import UserError, user_errors

__all__ = ["register", "main_report"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render figures and summary tables into PNG files and "
                                      "one index.html",
                       description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_inputs(p)
    add_out(p, required=True, help="report directory to write")
    p.add_argument("--dpi", type=positive_int, default=110, help="PNG resolution (default 110)")
    p.set_defaults(func=main_report)


def add_inputs(p: argparse.ArgumentParser) -> None:
    """--table, --replay DIR (repeatable), --alrs, --esgd, --epbt: what report and scorecard
    read."""
    add_table(p, default=None, required=False)
    p.add_argument("--replay", action="append", default=[], metavar="DIR",
                   help="output directory of `lcsim study/replay --out` (repeatable)")
    p.add_argument("--alrs", metavar="DIR",
                   help="output directory of `lcsim live alrs-compare`")
    p.add_argument("--esgd", metavar="DIR", help="output directory of `lcsim live esgd`")
    p.add_argument("--epbt", metavar="DIR", help="output directory of `lcsim live epbt`")


def load_inputs(args: argparse.Namespace, nothing: str) -> dict:
    """The table and loaded result folders the flags of `add_inputs` name: {table, replays,
    alrs, esgd, epbt}; a UserError starting with `nothing` when none is given, or naming the
    folder or file a loader could not read."""
    from lcsim.tabular.table import LookupTable

    from .results import load_alrs, load_epbt, load_esgd, load_replay

    if not (args.table or args.replay or args.alrs or args.esgd or args.epbt):
        raise UserError(f"{nothing}; give a table and/or result directories (--table, "
                        "--replay, --alrs, --esgd, --epbt)")
    with user_errors(FileNotFoundError, ValueError):  # loaders name the missing file
        return {"table": LookupTable.open(args.table) if args.table else None,
                "replays": [load_replay(d) for d in args.replay],
                "alrs": load_alrs(args.alrs) if args.alrs else None,
                "esgd": load_esgd(args.esgd) if args.esgd else None,
                "epbt": load_epbt(args.epbt) if args.epbt else None}


def main_report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # figures are built without pyplot; this keeps any backend quiet

    from .report import OUTPUTS, render_report

    inputs = load_inputs(args, "nothing to report")
    table = inputs.pop("table")
    record = {"command": args.command_name,
              "table": str(table.path) if table is not None and table.path else args.table,
              **{k: [os.path.abspath(d) for d in v] if isinstance(v, list)
                 else v and os.path.abspath(v)
                 for k, v in (("replay", args.replay), ("alrs", args.alrs),
                              ("esgd", args.esgd), ("epbt", args.epbt))},
              "dpi": args.dpi}
    prepare_out(args.out, record, force=args.force, results=OUTPUTS, resume=False)
    done = render_report(args.out, table=table, dpi=args.dpi, **inputs)
    for s in done["skipped"]:
        print(f"skipped {s}", file=sys.stderr)
    print(f"wrote {len(done['written'])} figures and {args.out}/index.html")
    return 0
