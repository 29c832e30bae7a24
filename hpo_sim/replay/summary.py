"""Study summaries: statistics per setting, rule audits, why a goal was missed, and the text.

Per setting (`summarize`): success rate, time-to-goal median / quartiles / mean over successful
runs (simulated seconds; a run that never reaches the goal counts as +inf in the quantiles),
the speed-up median(baseline) / median(setting) against the same optimizer and goal without
rules, and 95% percentile-bootstrap CIs (paired resampling of repeats, seeded Generator) for
the median and the speed-up. Given the table, `missed` says in one line why runs missed the
goal (`miss_reason`).

Per setting with rules (`audit_frame`): configs stopped per run, stopped configs among the
table's top k, and the share of training compute the stops skipped.

`format_summary` prints both with one time unit per table (`time_unit(table)`, fixed by the
table's own per-config cost, never by the results), writes "never reached" / "not reached"
instead of infinities and a zero speed-up, and ends with a legend (`LEGEND`).
"""

from __future__ import annotations

import textwrap
import zlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from .audit import audit_run, goal_k, rule_columns
from .simulate import ReplayConfig, RunResult, epoch_costs

__all__ = ["LEGEND", "RULE_LEGEND", "audit_frame", "format_summary", "legend", "miss_reason",
           "summarize", "time_unit"]

_BIG = 1e300  # stands in for +inf inside percentile interpolation (inf - inf would be NaN)
_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}


def _pct(x: np.ndarray, q, axis=None) -> np.ndarray:
    """np.percentile where +inf (a run that never reached the goal) counts as the largest
    value: any interpolation that touches it is +inf. NaN entries are ignored."""
    y = np.nanpercentile(np.where(np.isposinf(x), _BIG, x), q, axis=axis)
    return np.where(y >= _BIG * 1e-40, np.inf, y)


def _row_rng(seed: int, stream: int, cfg: ReplayConfig) -> np.random.Generator:
    """A bootstrap stream of its own per setting (by its labels and goal, not its place in the
    study), so that adding a setting to a study moves no other row's CI."""
    key = zlib.crc32(f"{cfg.optimizer_label}|{cfg.rule_label}|{cfg.goal}|{cfg.workers}|"
                     f"{cfg.time}".encode())
    return np.random.default_rng(np.random.SeedSequence([seed, stream, key]))


def _bootstrap(x: np.ndarray, base: np.ndarray | None, rng: np.random.Generator,
               n_boot: int) -> tuple[tuple[float, float], tuple[float, float]]:
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    med = _pct(x[idx], 50, axis=1)
    ci = tuple(float(v) for v in _pct(med, [2.5, 97.5]))
    if base is None:
        return ci, (np.nan, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        sp = _pct(base[idx], 50, axis=1) / med  # inf / inf (neither reached) -> NaN, skipped
    if np.all(np.isnan(sp)):
        return ci, (np.nan, np.nan)
    return ci, tuple(float(v) for v in _pct(sp, [2.5, 97.5]))


def summarize(settings: Sequence[ReplayConfig], results: Sequence[Sequence[RunResult]], *,
              seed: int = 0, n_boot: int = 2000, table=None) -> pd.DataFrame:
    """One row per setting (module docstring); times in simulated seconds.

    With `table`, a column `missed` holds `miss_reason` for each setting ("" when every run
    reached the goal).
    """
    ttg = [np.array([r.time_to_goal for r in rs], dtype=np.float64) for rs in results]
    rows = []
    for s, cfg in enumerate(settings):
        x = ttg[s]
        b = next((i for i, c in enumerate(settings) if c == replace(cfg, rules=())), None)
        base = ttg[b] if b is not None and len(ttg[b]) == len(x) else None
        ok = np.isfinite(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            speedup = _pct(base, 50) / _pct(x, 50) if base is not None else np.nan
        ci, sp_ci = _bootstrap(x, base, _row_rng(seed, 1, cfg), n_boot)
        row = {
            "optimizer": cfg.optimizer_label, "rules": cfg.rule_label, "goal": str(cfg.goal),
            "goal_accuracy": results[s][0].goal_accuracy, "repeats": len(x),
            "success_rate": float(ok.mean()),
            "median_s": float(_pct(x, 50)), "median_ci_low": ci[0], "median_ci_high": ci[1],
            "q25_s": float(_pct(x, 25)), "q75_s": float(_pct(x, 75)),
            "mean_s": float(x[ok].mean()) if ok.any() else np.inf,
            "speedup": float(speedup), "speedup_ci_low": sp_ci[0], "speedup_ci_high": sp_ci[1],
            "configs_per_run": float(np.mean([len(r.trace["row"]) for r in results[s]])),
        }
        if table is not None:
            row["missed"] = miss_reason(table, cfg, results[s])
        rows.append(row)
    return pd.DataFrame(rows)


def miss_reason(table, cfg: ReplayConfig, results: Sequence[RunResult]) -> str:
    """One line on why runs of one setting missed the goal; "" if none did.

    A goal config is a complete table config whose final accuracy is at or above the goal.
    A run that missed either tried goal configs and its rules stopped every one of them, or
    ended (budget, or no config left to propose) before it trained one fully.
    """
    missed = [r for r in results if not r.reached]
    if not missed:
        return ""
    goal = missed[0].goal_accuracy
    final = np.asarray(table.final_accuracy)
    goal_rows = np.flatnonzero(np.nan_to_num(final, nan=-1.0) >= goal)
    head = f"{len(missed)} of {len(results)} runs missed the goal {goal:.4g}"
    if goal_rows.size == 0:
        best = np.nanmax(final) if np.isfinite(final).any() else float("nan")
        return f"{head}: no config in the table reaches it (best final accuracy {best:.4g})"
    is_goal = np.zeros(len(final), dtype=bool)
    is_goal[goal_rows] = True
    by_rules, stopped = 0, 0
    for r in missed:
        rows = np.asarray(r.trace["row"], dtype=np.int64)
        hit = is_goal[rows] & np.asarray(r.trace["stopped"], dtype=bool)
        if hit.any():
            by_rules += 1
            stopped += int(hit.sum())
    parts = []
    if by_rules:
        parts.append(f"in {by_rules} the rules stopped every goal config the run tried "
                     f"({stopped / by_rules:.1f} per run, of the table's {goal_rows.size})")
    if len(missed) - by_rules:
        limit = ("its budget" if cfg.max_time is not None or cfg.max_evals is not None
                 else "the optimizer had no config left")
        parts.append(f"in {len(missed) - by_rules} the run ended ({limit}) before it "
                     "trained a goal config")
    return f"{head}: " + "; ".join(parts)


def audit_frame(table, settings: Sequence[ReplayConfig],
                results: Sequence[Sequence[RunResult]], top_k: int | None = None, *,
                seed: int = 0) -> pd.DataFrame:
    """Per setting with rules: stopped configs per run, top-k ones among them, compute skipped,
    and `audit.rule_columns` (share of top-k stopped with CI, decision cost, prediction scores).

    `saved_fraction` is the share of training seconds the stops skipped (the stopped configs'
    epochs after the stop / (seconds spent + seconds skipped)); it is not time-to-goal saved.
    """
    rows = []
    for cfg, rs in zip(settings, results, strict=True):
        if not cfg.rules:
            continue
        costs = epoch_costs(table, cfg.time, cfg.charge_eval)
        k = top_k or goal_k(table, rs[0].goal_accuracy)
        a = [audit_run(r.trace, table, costs, k) for r in rs]
        spent = np.array([x["charged_seconds"] for x in a])
        saved = np.array([x["saved_seconds"] for x in a])
        rows.append({
            "optimizer": cfg.optimizer_label, "rules": cfg.rule_label, "goal": str(cfg.goal),
            "top_k": k,
            "stopped_per_run": float(np.mean([x["stopped"] for x in a])),
            "stopped_top_k_total": int(sum(x["stopped_top_k"] for x in a)),
            "runs_with_top_k_stopped": int(sum(x["stopped_top_k"] > 0 for x in a)),
            "saved_s_per_run": float(saved.mean()),
            # share of the compute the runs would have spent without these stops
            "saved_fraction": float(saved.sum() / (spent.sum() + saved.sum()))
            if saved.sum() > 0 else 0.0,
            **rule_columns(a, rs, table, _row_rng(seed, 2, cfg)),
        })
    return pd.DataFrame(rows)


def time_unit(table) -> str:
    """The table's display unit: by the median cost of training one complete config fully.

    Seconds below a minute per config, minutes below an hour, else hours; fixed per table so
    every study on it prints the same unit.
    """
    cost = epoch_costs(table)
    complete = np.asarray(table.status).astype(str) == "complete"
    if not complete.any():
        return "s"
    per_config = float(np.median(np.nansum(cost[complete], axis=1)))
    return "s" if per_config < 60 else "min" if per_config < 3600 else "h"


LEGEND = """\
Legend (times: simulated {unit}, each trained epoch charged the table's recorded seconds):
  success      share of the repeats that trained a config to the goal accuracy (all T epochs)
  median       time to reach the goal, median over all repeats, 95% CI by bootstrap over
               repeats; "not reached": fewer than half of the repeats reached the goal (in
               a CI or IQR: that end lies where too few runs reached it)
  IQR          25th-75th percentile of the same times
  speed-up     median time of the same optimizer without rules / median time with them
               (> 1: the rules reach the goal sooner); 95% CI: paired bootstrap over repeats;
               "baseline": the no-rule row itself; "-": the rules' median is not reached
  stopped/run  configs the rules stopped before T epochs, mean per run
  top-k stops  stopped configs among the table's k best (k = configs at or above the goal),
               summed over all runs; a rule that stops these can miss the goal
  compute skipped  share of the training seconds the stops skipped (the stopped configs'
               remaining epochs / (spent + skipped)); not time-to-goal saved (see speed-up)"""

RULE_LEGEND = """\
  rule audit   top-k stopped / started: share of the top-k configs the runs started that the
               rules stopped (95% CI: bootstrap over repeats); ms/decision: wall time of one
               stop decision (mean, median; "-": not timed, the numpy path of random search
               with stateless rules); for predicting rules (lce, svr, gp): predictions
               per run, mean absolute error of the predicted final accuracy (at every decision,
               and at the stops), expected calibration error of the stop probabilities"""


def legend(unit: str = "s", *, rule_audit: bool = False) -> str:
    """The legend of `format_summary` (and of `audit.format_rule_audit` with rule_audit)."""
    text = LEGEND.format(unit={"s": "seconds", "min": "minutes", "h": "hours"}[unit])
    return text + ("\n" + RULE_LEGEND if rule_audit else "")


def format_summary(summary: pd.DataFrame, audit: pd.DataFrame | None = None, *,
                   unit: str = "s", legend: bool = True) -> str:
    """The summary (and audit) as text, in one time unit ("s", "min" or "h"), with notes on
    missed goals (from a `missed` column) and the legend."""
    if unit not in _UNITS:
        raise ValueError(f"unit must be one of {list(_UNITS)}, got {unit!r}")
    scale = _UNITS[unit]

    def t(v: float) -> str:
        return "not reached" if np.isposinf(v) else _num(v / scale)

    never = summary["success_rate"].to_numpy() == 0
    view = pd.DataFrame({
        "optimizer": summary["optimizer"], "rules": summary["rules"],
        "goal (acc)": [f"{g} ({a:.4g})" for g, a in summary[["goal", "goal_accuracy"]].values],
        "success": (summary["success_rate"] * 100).map("{:.0f}%".format),
        f"median [{unit}] (95% CI)": [
            "never reached" if nv else f"{t(m)} ({t(lo)}-{t(hi)})"
            for nv, (m, lo, hi) in zip(never, summary[["median_s", "median_ci_low",
                                                       "median_ci_high"]].values, strict=True)],
        f"IQR [{unit}]": ["-" if nv else f"{t(a)}-{t(b)}" for nv, (a, b) in
                          zip(never, summary[["q25_s", "q75_s"]].values, strict=True)],
        "speed-up (95% CI)": [
            "baseline" if rules == "none" else _speedup(s, lo, hi)
            for rules, s, lo, hi in summary[["rules", "speedup", "speedup_ci_low",
                                             "speedup_ci_high"]].values],
    })
    text = view.to_string(index=False)
    if "missed" in summary:
        notes = [textwrap.fill(f"{o} | {r} | {g}: {m}", 99, initial_indent="  ",
                               subsequent_indent="    ")
                 for o, r, g, m in summary[["optimizer", "rules", "goal", "missed"]].values
                 if m]
        if notes:
            text += "\n\nMissed goals:\n" + "\n".join(notes)
    if audit is not None and len(audit):
        a = pd.DataFrame({
            "optimizer": audit["optimizer"], "rules": audit["rules"], "goal": audit["goal"],
            "stopped/run": audit["stopped_per_run"].map("{:.1f}".format),
            "top-k stops, all runs (k)": [f"{n} ({k})" for n, k in audit[["stopped_top_k_total",
                                                                   "top_k"]].values],
            "compute skipped": (audit["saved_fraction"] * 100).map("{:.0f}%".format),
        })
        text += "\n\nAudit (over all repeats):\n" + a.to_string(index=False)
    if legend:
        text += "\n\n" + globals()["legend"](unit)
    return text


def _speedup(s: float, lo: float, hi: float) -> str:
    """'1.52x (1.10-2.31)'; words where a median is not reached (no 'inf', no '0.00x')."""
    if np.isposinf(s):
        return "baseline not reached"
    if not (np.isfinite(s) and s > 0):
        return "-"

    def b(v: float) -> str:
        return "not reached" if not np.isfinite(v) or v <= 0 else f"{v:.2f}"

    return f"{s:.2f}x ({b(lo)}-{b(hi)})"


def _num(v: float) -> str:
    """3 significant digits without exponents for readable times."""
    return f"{v:.0f}" if np.isfinite(v) and abs(v) >= 100 else f"{v:.3g}"
