"""`lcsim report`: render the figures of a table and result directories into PNGs + index.html.

    lcsim report --table default --replay study-out/ --esgd esgd-out/ --epbt epbt-out/ \\
        --alrs alrs-out/ --out report/

Every input is optional, but at least one is needed; each adds its section. Rendering the
figures is quick (seconds); nothing is trained or replayed here.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "main_report"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render figures and summary tables into PNG files and "
                                      "one index.html",
                       description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--table", help="table directory, shipped table name, or 'default'")
    p.add_argument("--replay", action="append", default=[], metavar="DIR",
                   help="output directory of `lcsim study/replay --out` (repeatable)")
    p.add_argument("--alrs", metavar="DIR", help="output directory of the ALRS comparison")
    p.add_argument("--esgd", metavar="DIR", help="output directory of `lcsim live esgd`")
    p.add_argument("--epbt", metavar="DIR", help="output directory of `lcsim live epbt`")
    p.add_argument("--out", required=True, metavar="DIR", help="report directory to write")
    p.add_argument("--dpi", type=int, default=110, help="PNG resolution (default 110)")
    p.set_defaults(func=main_report)


def main_report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # figures are built without pyplot; this keeps any backend quiet

    from lcsim.tabular.table import LookupTable

    from .report import render_report
    from .results import load_alrs, load_epbt, load_esgd, load_replay

    try:
        table = LookupTable.open(args.table) if args.table else None
        done = render_report(
            args.out, table=table, replays=[load_replay(d) for d in args.replay],
            alrs=load_alrs(args.alrs) if args.alrs else None,
            esgd=load_esgd(args.esgd) if args.esgd else None,
            epbt=load_epbt(args.epbt) if args.epbt else None, dpi=args.dpi)
    except (FileNotFoundError, ValueError) as e:
        print(f"lcsim report: {e}", file=sys.stderr)
        return 2
    for s in done["skipped"]:
        print(f"skipped {s}", file=sys.stderr)
    print(f"wrote {len(done['written'])} figures and {args.out}/index.html")
    return 0
