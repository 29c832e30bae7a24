"""Each paper's checkable claims judged on a table and result folders: `lcsim scorecard` and the
scorecard section of `lcsim report`.

    frame = scorecard(table=LookupTable.open("default"), replays=[load_replay("fig4/")],
                      alrs=load_alrs("alrs/"), esgd=load_esgd("esgd/"), epbt=load_epbt("epbt/"))
    print(format_scorecard(frame))

The claims are computed by the modules beside each method, never here: Choi et al.'s in
`lcsim.hpo_sim.replay.claims` (the table and `lcsim study` folders), ALRS's, ESGD's and EPBT's
in `lcsim.hpo_sim.live.<method>.claims`. This module picks the frames each one reads out of the
loaded folders, adds the criterion each verdict applied (the thresholds, with their values) and
lays the claims out: one row per claim, with our value, the paper's, and the verdict: `holds`,
`refuted`, or `not checkable: <the input that is missing>`. An absent folder is one row per
paper naming the flag that would supply it.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from lcsim.hpo_sim.live.alrs import claims as alrs_claims
from lcsim.hpo_sim.live.common import Claim
from lcsim.hpo_sim.live.epbt import claims as epbt_claims
from lcsim.hpo_sim.live.esgd import claims as esgd_claims
from lcsim.hpo_sim.live.esgd.summary import GENERATION_COLUMNS
from lcsim.hpo_sim.replay import claims as choi_claims

from .results import LiveResults, ReplayResults

__all__ = ["COLUMNS", "PAPERS", "format_scorecard", "scorecard"]

PAPERS = {"choi": "Choi et al. (learning curves, ETR)", "alrs": "ALRS (Jiang et al.)",
          "esgd": "ESGD (Cui et al.)", "epbt": "EPBT (Liang et al.)"}
COLUMNS = ("paper", "claim", "scope", "ours", "paper_value", "verdict", "criterion", "holds",
           "inputs")


def _verdict(c: Claim) -> str:
    return "not checkable: " + c.missing if c.holds is None else \
        ("holds" if c.holds else "refuted")


def _g(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


# the criterion each claim function applied, from the inputs it reports
def _choi_criterion(c: Claim) -> str:
    i = c.inputs
    if "threshold" in i and "k" in i:
        return f"share of y(T) < {i['threshold']:.3g}"
    if "half" in i:
        return f"share with convergence epoch < {i['half']:g}"
    if "median_convergence_epoch" in i:
        return f"share with convergence epoch <= 2 (median {i['median_convergence_epoch']:g})"
    if "tolerance" in i:
        return f"|ours - paper| = {abs(i['difference']):.4g} <= {i['tolerance']:g}"
    if "median_s_tau1" in i:
        return (f"median s: tau=1 {_g(i['median_s_tau1'])} < tau=9 {_g(i['median_s_tau9'])}")
    if "ci" in i:
        return f"speed-up vs no rule (95% CI {_g(i['ci'][0])}-{_g(i['ci'][1])})"
    if "random_share" in i:
        return (f"SMAC share < random {i['random_share']:.3g} ({i['random_from']}); "
                f"untrainable: y(T) < {i['threshold']:.3g}")
    if "training_s" in i:
        return (f"{_g(i['training_s'])} s training / {_g(i['optimizer_s'])} s optimizer "
                "in [10, 100]")
    return ""


_CRITERIA: dict[str, Callable[[Claim], str]] = {
    "choi": _choi_criterion,
    "alrs": lambda c: (f"rate in [{_g(c.inputs['grid_low'])}, {_g(c.inputs['grid_high'])}]"
                       if "grid_low" in c.inputs else
                       f"<= {c.inputs['max_pct']:g}% (se / mean, n = {c.inputs['n']})"
                       if "max_pct" in c.inputs else
                       f"<= {c.inputs['max_epochs']:g} epochs" if "max_epochs" in c.inputs
                       else ""),
    "esgd": lambda c: ("largest rise of best or m-elitist fitness <= 0"
                       if "m_elitist" in c.inputs else
                       "ESGD best - population best <= 0" if c.inputs else ""),
    "epbt": lambda c: (f"EPBT - other test accuracy > 0 at epoch {c.inputs['epoch']}"
                       if "epoch" in c.inputs else
                       f"distinct == evaluated ({c.inputs['evaluated']})"
                       if "evaluated" in c.inputs else ""),
}


def _absent(flag: str, what: str, claims: str) -> Claim:
    return Claim(claims, "-", math.nan, None, missing=f"{what} ({flag} DIR)")


def _alrs(res: LiveResults | None) -> list[Claim]:
    if res is None:
        return [_absent("--alrs", "an `lcsim live alrs-compare` folder",
                        "ALRS: rate within the grid's best rates; seed variation; cost")]
    seeds = res.extra.get("seeds")
    out = alrs_claims.rate_within_grid(res.records)
    if seeds is None or seeds.empty:
        out.append(Claim("ALRS rate varies little across LR and random seeds (% variation)",
                         "-", math.nan, None, paper=alrs_claims.TABLE4_VARIATION_PCT,
                         missing=f"a seed study ({res.path}/seed_study.parquet)"))
    else:
        out += alrs_claims.seed_variation(seeds)
    return out + alrs_claims.cost_about_one_epoch(res.records)


def _esgd(res: LiveResults | None) -> list[Claim]:
    if res is None:
        return [_absent("--esgd", "an `lcsim live esgd` folder",
                        "ESGD: Theorem 1; ESGD at least as good as the population baseline")]
    gens = res.extra.get("generations", pd.DataFrame(columns=list(GENERATION_COLUMNS)))
    summary = res.summary if res.summary is not None else pd.DataFrame({"method": []})
    return [esgd_claims.theorem1(gens), esgd_claims.esgd_vs_population(summary)]


def _epbt(res: LiveResults | None) -> list[Claim]:
    if res is None:
        return [_absent("--epbt", "an `lcsim live epbt` folder",
                        "EPBT: beats PBT and Baseline 1 at equal epochs; distinct loss "
                        "functions")]
    return [epbt_claims.beats(res.records, "pbt"), epbt_claims.beats(res.records, "baseline"),
            *epbt_claims.loss_functions(res.records)]


def _choi(table, replays: Sequence[ReplayResults]) -> list[Claim]:
    return [*choi_claims.table_claims(table), *choi_claims.tau_tradeoff(replays),
            *choi_claims.fewer_untrainable(replays, table),
            *choi_claims.training_vs_optimizer(replays, table)]


def scorecard(*, table=None, replays: Sequence[ReplayResults] = (),
              alrs: LiveResults | None = None, esgd: LiveResults | None = None,
              epbt: LiveResults | None = None) -> pd.DataFrame:
    """One row per claim (COLUMNS): `ours` our value (NaN when there is none), `paper_value`
    the paper's number or statement, `verdict` as text and `holds` as True / False / None,
    `criterion` the test applied with its thresholds, `inputs` what it was judged on."""
    rows = []
    for key, judge in (("choi", lambda: _choi(table, replays)), ("alrs", lambda: _alrs(alrs)),
                       ("esgd", lambda: _esgd(esgd)), ("epbt", lambda: _epbt(epbt))):
        try:
            claims = judge()
        except (KeyError, ValueError, TypeError) as e:  # a folder without the columns read
            claims = [Claim(f"{PAPERS[key]}: its claims", "-", math.nan, None,
                            missing=f"inputs with what the claims read ({type(e).__name__}: "
                                    f"{e})")]
        for c in claims:
            rows.append({"paper": PAPERS[key], "claim": c.claim, "scope": c.scope,
                         "ours": c.value, "paper_value": c.paper, "verdict": _verdict(c),
                         "criterion": _CRITERIA[key](c), "holds": c.holds,
                         "inputs": c.inputs})
    return pd.DataFrame(rows, columns=list(COLUMNS))


_WIDTHS = {"claim": 44, "scope": 30, "ours": 9, "paper_value": 26, "verdict": 30,
           "criterion": 34}
_HEAD = {"claim": "claim", "scope": "judged on", "ours": "ours", "paper_value": "paper",
         "verdict": "verdict", "criterion": "criterion"}


def _cell(col: str, v: Any) -> str:
    if col == "ours":
        return "-" if isinstance(v, float) and math.isnan(v) else _g(v)
    if col == "paper_value":
        return "-" if v is None else _g(v) if not isinstance(v, dict) else "per task (Table 4)"
    return str(v)


def format_scorecard(frame: pd.DataFrame) -> str:
    """The scorecard as a text table, one block per paper, long cells wrapped; a count of
    verdicts closes it."""
    lines = []
    rule = "  ".join("-" * w for w in _WIDTHS.values())
    for paper, g in frame.groupby("paper", sort=False):
        lines += ["", paper, rule,
                  "  ".join(_HEAD[c].ljust(w) for c, w in _WIDTHS.items()).rstrip(), rule]
        for _, row in g.iterrows():
            cells = [textwrap.wrap(_cell(c, row[c]), w) or [""] for c, w in _WIDTHS.items()]
            for k in range(max(map(len, cells))):
                lines.append("  ".join((cell[k] if k < len(cell) else "").ljust(w)
                                       for cell, w in zip(cells, _WIDTHS.values(),
                                                          strict=True)).rstrip())
    holds = list(frame["holds"])
    lines += ["", f"{sum(h is True for h in holds)} hold, {sum(h is False for h in holds)} "
                  f"refuted, {sum(h is None for h in holds)} not checkable"]
    return "\n".join(lines[1:])
