"""`lcsim report`: every figure the given inputs allow, as PNG files plus one index.html.

    render_report(out, table=LookupTable.open("default"), replays=[load_replay("study/")],
                  esgd=load_esgd("esgd/"), epbt=load_epbt("epbt/"), alrs=load_alrs("alrs/"))

The page is self-contained: images are linked by relative file names in the same directory,
tables are inline HTML (pandas `to_html`), so the folder can be zipped or served as it is.
A figure whose input lacks what it needs (say, no SMAC runs, or no TaylorGLO lineage) is
listed on the page as skipped with the reason, instead of failing the whole report. The page
closes with the scorecard (`scorecard.py`): each paper's claims judged on the same inputs.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import figures_choi as fc
from . import figures_live as fl
from . import figures_rules as fr
from .results import LiveResults, ReplayResults

__all__ = ["FigureItem", "TableItem", "Section", "report_sections", "render_report", "OUTPUTS"]

# every file render_report may write (glob patterns in the report directory)
OUTPUTS = ("index.html", "table_*.png", "replay_*.png", "alrs_*.png", "esgd_*.png",
           "epbt_*.png")


@dataclass(frozen=True)
class FigureItem:
    filename: str  # PNG file name inside the report directory
    caption: str
    make: Callable[[], Figure]


@dataclass(frozen=True)
class TableItem:
    caption: str
    frame: pd.DataFrame


@dataclass
class Section:
    title: str
    intro: str = ""
    items: list[FigureItem | TableItem] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower() or "x"


def _table_section(table) -> Section:
    meta = getattr(table, "meta", {}) or {}
    info = pd.DataFrame({"value": [
        meta.get("dataset"), meta.get("space"), len(table), table.epochs,
        int((np.asarray(table.status) == "complete").sum()),
        int((np.asarray(table.status) == "diverged").sum()),
        int((np.asarray(table.status) == "failed").sum()),
        meta.get("device"), meta.get("code_revision"), meta.get("time_measurement")]},
        index=["dataset", "space", "configs", "epochs", "complete", "diverged", "failed",
               "device", "code revision", "time measurement"])
    sec = Section("Learning-curve table", f"{table!r}")
    sec.items += [
        TableItem("Table metadata.", info),
        FigureItem("table_learning_curves.png",
                   "Validation accuracy per epoch of 100 random configs, the 100 best and the "
                   "100 worst by final accuracy (Choi et al., Figs 1-2).",
                   lambda: fc.learning_curves(table)),
        FigureItem("table_hyperparameters.png",
                   "Final validation accuracy against each hyperparameter (log-scaled ones, "
                   "such as the learning rate, on a log axis); red crosses are diverged "
                   "configs at their last finite epoch.",
                   lambda: fc.final_accuracy_vs_hyperparameters(table)),
    ]
    return sec


def _replay_section(res: ReplayResults, prefix: str) -> Section:
    runs, traces = res.runs, res.traces
    sec = Section(f"HPO replay: {res.name}",
                  f"{len(res.summary)} settings, {len(runs)} runs, read from {res.path}.")
    for opt in sorted(runs["optimizer"].astype(str).unique()):
        sub = runs[runs["optimizer"].astype(str) == opt]
        sec.items.append(FigureItem(
            f"{prefix}_time_to_goal_{_slug(opt)}.png",
            f"{opt}: simulated time to reach each goal per stopping-rule setting over "
            f"{sub['repeat'].nunique()} repeats (Choi et al., Figs 4-5). Red: the run without "
            "a rule, its median dashed across the panel. Tick labels count the runs that "
            "reached the goal; the others ran out of budget and are not in the box.",
            lambda sub=sub, opt=opt: fc.time_to_goal_distributions(
                sub, title=f"{opt}: simulated time to reach the goal accuracy")))
    base = traces[traces["rules"].astype(str) == fc.BASELINE_RULE]
    if not base.empty:
        sec.items.append(FigureItem(
            f"{prefix}_best_so_far.png",
            "Best final accuracy found so far over simulated time without stopping rules, "
            "per optimizer (SMAC vs random search): median over repeats, band 25th-75th "
            "percentile; dotted: the goal.",
            lambda: fc.best_so_far(base, panel_col="goal", goal=res.goal_accuracy())))
    audit = res.audit
    if audit is not None and "top_k_stopped_share" in audit and len(audit):
        sec.items.append(FigureItem(
            f"{prefix}_speedup_vs_stops.png",
            "Speed-up of the median time to goal over the run without a rule against the "
            "share of the top-k configs a run started that the rule stopped, one point per "
            "rule with 95% bootstrap CIs, per optimizer and goal: up and to the left is "
            "better.",
            lambda: fr.speedup_vs_wrong_stops(res.summary, audit)))
    if res.calibration is not None and len(res.calibration):
        sec.items.append(FigureItem(
            f"{prefix}_calibration.png",
            "Calibration of the predicting rules' probability that a config's final accuracy "
            "beats the incumbent's: observed frequency per bin of predicted probability "
            "(marker area: predictions in the bin); the diagonal is perfect calibration.",
            lambda: fr.calibration_curves(res.calibration)))
    sec.items.append(TableItem("Summary per setting (times in simulated seconds; speed-up "
                               "= baseline median / setting median, 95% bootstrap CI).",
                               res.summary))
    if res.audit is not None and len(res.audit):
        sec.items.append(TableItem("Rule audit: configs stopped per run, top-k configs among "
                                   "them and their share of the top-k configs started (95% "
                                   "CI), the training compute the stops skipped "
                                   "(saved_fraction: a share of training seconds, not of "
                                   "time to goal), wall ms per decision; for predicting rules "
                                   "the mean absolute error of the predicted final accuracy "
                                   "(at every decision and at the stops) and the expected "
                                   "calibration error.", res.audit))
    return sec


def _alrs_section(res: LiveResults) -> Section:
    sec = Section("ALRS: automatic initial learning rate", f"Read from {res.path}.")
    sec.items.append(FigureItem(
        "alrs_loss_curves.png",
        "Training loss per batch (log scale, running mean of 10 batches) with the learning "
        "rate found by ALRS, the standard rate, 10x and 0.1x of it, the LR range test's "
        "suggestion, Prodigy, hypergradient descent and the best grid rate: mean over random "
        "seeds with one standard error (ALRS paper Tables 1-3, Figure 1).",
        lambda: fl.alrs_loss_curves(fl.alrs_curves(res.records))))
    seeds = res.extra.get("seeds")
    if seeds is not None:
        sec.items += [
            FigureItem("alrs_seeds.png",
                       "Learning rate found by ALRS against the initial LR seed, one line per "
                       "random seed (ALRS paper Table 4).",
                       lambda: fl.alrs_seed_figure(seeds)),
            TableItem("Learning rate found by ALRS per initial LR seed and random seed, with "
                      "mean, standard error and % variation (se / mean) over random seeds.",
                      fl.alrs_seed_table(seeds)),
        ]
    if res.summary is not None:
        sec.items.append(TableItem("Final training loss per method (mean, standard error), "
                                   "learning rate and cost in batches.", res.summary))
    return sec


def _esgd_section(res: LiveResults) -> Section:
    sec = Section("ESGD: evolutionary stochastic gradient descent", f"Read from {res.path}.")
    sec.items.append(FigureItem(
        "esgd_fitness.png",
        "Fitness (training loss, lower is better) over generations: bands from the best to "
        "the 15th best individual of each population method, a line for the single baseline "
        "(ESGD paper Figure 1).",
        lambda: fl.esgd_fitness_bands(res.records)))
    if "esgd" in set(res.records["method"].astype(str)):
        sec.items.append(FigureItem(
            "esgd_offspring.png",
            "Percentage of offspring among the m-elitist survivors of each ESGD generation "
            "(ESGD paper Figure 2).",
            lambda: fl.esgd_offspring_share(res.records)))
    gens = res.extra.get("generations")
    if gens is not None and len(gens):
        sec.items.append(TableItem("Population after each generation: best and m-elitist "
                                   "average fitness (Theorem 1: never worse under ESGD), the "
                                   "top-15 range, mean fitness.", gens))
    if res.summary is not None:
        sec.items.append(TableItem("Final population per method (paper Table 1 layout: the "
                                   "top 15 as the range [theta_1, theta_15], `_low` / `_high`, "
                                   "their mean beside it).", res.summary))
    return sec


def _epbt_section(res: LiveResults) -> Section:
    rec = res.records
    sec = Section("EPBT: evolutionary population-based training", f"Read from {res.path}.")
    sec.items.append(FigureItem(
        "epbt_test_accuracy.png",
        "Test accuracy of the fittest individual over training epochs, mean over seeds with "
        "one standard error; top: zoomed in (EPBT paper Figure 2).",
        lambda: fl.epbt_test_accuracy(rec)))
    methods = [m for m in dict.fromkeys(rec["method"].astype(str)) if m.startswith("epbt")]
    with_mom = [m for m in methods if rec.loc[rec["method"] == m, "h_momentum"].notna().any()] \
        if "h_momentum" in rec.columns else []
    if with_mom:
        m = "epbt" if "epbt" in with_mom else with_mom[0]
        sec.items.append(FigureItem(
            "epbt_best_hyperparameters.png",
            f"Learning rate (linear and log scale) and momentum of the fittest individual of "
            f"each generation in one {m} run (EPBT paper Figure 6).",
            lambda m=m: fl.epbt_best_hyperparameters(rec, method=m)))
    lineages = {k: v for k, v in res.lineages.items()
                if "h_theta_0" in v.columns and v["h_theta_0"].notna().all()}
    if lineages:
        sec.items.append(FigureItem(
            "epbt_loss_shapes.png",
            "TaylorGLO loss functions along the ancestry of each run's best individual, "
            "projected onto binary classification: loss against the predicted probability of "
            "the true class, shifted so a perfect prediction has loss 0 (dark: early "
            "generations, light: late), and cross-entropy for comparison (EPBT paper "
            "Figure 5).",
            lambda: fl.taylorglo_shapes(lineages)))
    if res.summary is not None:
        sec.items.append(TableItem("Final test accuracy per method over seeds, and the "
                                   "epochs EPBT needed to pass each (paper Tables 1-2).",
                                   res.summary))
    return sec


def report_sections(*, table=None, replays: Sequence[ReplayResults] = (),
                    alrs: LiveResults | None = None, esgd: LiveResults | None = None,
                    epbt: LiveResults | None = None) -> list[Section]:
    """The sections (figures not drawn yet) that these inputs allow, in page order."""
    out = []
    if table is not None:
        out.append(_table_section(table))
    used: set[str] = set()
    for res in replays:
        prefix = "replay_" + _slug(res.name)
        while prefix in used:  # two study folders with the same name
            prefix += "_"
        used.add(prefix)
        out.append(_replay_section(res, prefix))
    for res, make in ((alrs, _alrs_section), (esgd, _esgd_section), (epbt, _epbt_section)):
        if res is not None:
            out.append(make(res))
    out.append(_scorecard_section(table, replays, alrs, esgd, epbt))
    return out


def _scorecard_section(table, replays, alrs, esgd, epbt) -> Section:
    from .scorecard import scorecard

    frame = scorecard(table=table, replays=replays, alrs=alrs, esgd=esgd, epbt=epbt)
    return Section("Scorecard: the papers' checkable claims",
                   "Each claim judged on the inputs of this report (`lcsim scorecard` prints "
                   "the same): our value, the paper's, the verdict and the criterion it "
                   "applied; a claim whose input is missing says which.",
                   [TableItem("One row per claim (lcsim.analysis.scorecard).",
                              frame.drop(columns=["holds", "inputs"]))])


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;
color:#444;margin-top:.4em}table{border-collapse:collapse;font-size:.8em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}.skipped{color:#a00;font-size:.9em}
.intro{color:#555}"""


def render_report(out: str | os.PathLike, *, table=None, replays: Sequence[ReplayResults] = (),
                  alrs: LiveResults | None = None, esgd: LiveResults | None = None,
                  epbt: LiveResults | None = None, dpi: int = 110,
                  title: str = "lcsim report") -> dict[str, list[str]]:
    """Write every figure as OUT/<name>.png and OUT/index.html.

    Returns {"written": [png names], "skipped": ["name: reason", ...]}. A figure function that
    raises ValueError (its input lacks the data) is skipped and the reason shown on the page;
    any other error propagates.
    """
    if all(x is None for x in (table, alrs, esgd, epbt)) and not replays:
        raise ValueError("lcsim report: nothing to report; give a table and/or result "
                         "directories (--table, --replay, --alrs, --esgd, --epbt)")
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    sections = report_sections(table=table, replays=replays, alrs=alrs, esgd=esgd, epbt=epbt)
    written, skipped, body = [], [], []
    for sec in sections:
        body.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.intro:
            body.append(f'<p class="intro">{html.escape(sec.intro)}</p>')
        for item in sec.items:
            if isinstance(item, TableItem):
                body.append(f"<figure>{item.frame.to_html(float_format=_fmt, na_rep='-')}"
                            f"<figcaption>{html.escape(item.caption)}</figcaption></figure>")
                continue
            try:
                fig = item.make()
            except ValueError as e:
                skipped.append(f"{item.filename}: {e}")
                body.append(f'<p class="skipped">Skipped {html.escape(item.filename)}: '
                            f"{html.escape(str(e))}</p>")
                continue
            fig.savefig(d / item.filename, dpi=dpi)
            written.append(item.filename)
            body.append(f'<figure><img src="{html.escape(item.filename)}" '
                        f'alt="{html.escape(item.filename)}"><figcaption>'
                        f"{html.escape(item.caption)}</figcaption></figure>")
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>\n"
            + "\n".join(body) + "\n</body></html>\n")
    tmp = d / "index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(d / "index.html")
    return {"written": written, "skipped": skipped}


def _fmt(v: float) -> str:
    return f"{v:.4g}"
