"""Rule audits: which configs did a rule stop that it should have let finish, and what it saved.

For every run, a stopped config (stopped by a rule, not diverged) is a "top-k loss" when its
final table accuracy ranks in the table's top k complete configs; k defaults to the number of
complete configs at or above the run's goal (the configs that would have ended the run). The
saved time of a stopped config is what its untrained epochs t+1..T would have cost (same time
model as the replay); `charged_seconds` is the compute the run did spend (worker-seconds, so
saved / (charged + saved) means the same with several workers). A rule users can trust stops
many configs, few top-k ones, and saves time. `top_k_share` is the share of the top-k configs a
run started that a rule stopped, pooled over repeats, with a bootstrap CI over repeats.

Predicting rules (`protocols.Decision`, logged in `RunResult.decisions`) are also scored on
what they predicted, against the table: the mean absolute error of the predicted final accuracy
at every decision epoch and at the stops alone, and the calibration of P(y(T) > incumbent's
final): over probability bins (`CALIBRATION_BINS`), the mean predicted probability against the
frequency with which the config's true final accuracy beat that reference
(`calibration_table`), summed into the expected calibration error (ECE: bin counts as
weights). Configs without a final accuracy (diverged) are left out. Every rule's wall time per
decision is reported too (`RunResult.rule_seconds / rule_calls`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["audit_run", "audit_runs", "goal_k", "top_k_share", "decision_frame",
           "prediction_audit", "calibration_table", "rule_columns", "calibration_frame",
           "format_rule_audit", "CALIBRATION_BINS"]

# reliability bins of P(y(T) > reference): finer near 0 and 1, where stop decisions are made
CALIBRATION_BINS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
                    1.0)


def goal_k(table, goal_accuracy: float) -> int:
    """Number of complete configs whose final accuracy is at or above the goal (at least 1)."""
    final = np.asarray(table.final_accuracy)
    return max(1, int(np.sum(final[~np.isnan(final)] >= goal_accuracy)))


def audit_run(trace: dict[str, np.ndarray], table, costs: np.ndarray, top_k: int) -> dict:
    """Audit one run's trace (simulate.TRACE_COLUMNS). costs: [n, T] seconds per epoch."""
    stopped = np.asarray(trace["stopped"], dtype=bool)
    rows = np.asarray(trace["row"], dtype=np.int64)[stopped]
    epochs = np.asarray(trace["epochs"], dtype=np.int64)[stopped]
    top_ids = set(np.asarray(table.top_k(min(top_k, len(table)))).tolist())
    ids = np.asarray(table.ids)[rows]
    in_top = np.array([i in top_ids for i in ids.tolist()], dtype=bool)
    started = {i for i in np.asarray(table.ids)[np.asarray(trace["row"], dtype=np.int64)]
               .tolist() if i in top_ids}
    T = costs.shape[1]
    # seconds of the epochs after each stop: cumulative cost at T minus at the stop epoch
    cum = np.nancumsum(costs[rows], axis=1) if rows.size else np.zeros((0, T))
    saved = cum[:, -1] - cum[np.arange(rows.size), epochs - 1] if rows.size else np.zeros(0)
    # compute the run spent: per config its deepest epoch (Hyperband resumes rows)
    all_rows = np.asarray(trace["row"], dtype=np.int64)
    deepest: dict[int, int] = {}
    for r, e in zip(all_rows.tolist(), np.asarray(trace["epochs"]).tolist(), strict=True):
        deepest[r] = max(e, deepest.get(r, 0))
    charged = sum(float(np.nansum(costs[r, :e])) for r, e in deepest.items())
    return {
        "stopped": int(rows.size),
        "charged_seconds": charged,
        "stopped_top_k": int(in_top.sum()),
        "stopped_top_k_ids": ids[in_top].tolist(),
        "started_top_k": len(started),
        "saved_seconds": float(saved.sum()),
        "top_k": int(top_k),
    }


def audit_runs(traces: Sequence[dict[str, np.ndarray]], table, costs: np.ndarray,
               top_k: int) -> pd.DataFrame:
    """One row per run: stopped, stopped_top_k, saved_seconds, top_k."""
    rows = [audit_run(t, table, costs, top_k) for t in traces]
    df = pd.DataFrame(rows)
    df.insert(0, "repeat", np.arange(len(rows)))
    return df


def top_k_share(audits: Sequence[dict], rng: np.random.Generator, n_boot: int = 2000
                ) -> tuple[float, float, float]:
    """(share, CI low, CI high): top-k configs stopped / top-k configs started, pooled over the
    runs (`audit_run` dicts), 95% percentile bootstrap over runs; NaN when none was started."""
    stopped = np.array([a["stopped_top_k"] for a in audits], dtype=np.float64)
    started = np.array([a["started_top_k"] for a in audits], dtype=np.float64)
    if started.sum() == 0:
        return np.nan, np.nan, np.nan
    idx = rng.integers(0, len(audits), size=(n_boot, len(audits)))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = stopped[idx].sum(axis=1) / started[idx].sum(axis=1)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return float(stopped.sum() / started.sum()), float(lo), float(hi)


def decision_frame(decisions: Sequence[dict[str, np.ndarray]], table=None) -> pd.DataFrame:
    """The decision logs of several runs (`RunResult.decisions`) as one frame with `repeat`;
    given the table, also the true final accuracy `final` (NaN for diverged configs) and `beat`
    (did it beat the reference; NaN where either is unknown)."""
    frames = []
    for r, d in enumerate(decisions):
        if d and len(d.get("row", ())):
            df = pd.DataFrame(d)
            df.insert(0, "repeat", np.int64(r))
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    if table is None:
        return df
    df["final"] = np.asarray(table.final_accuracy, dtype=np.float64)[df["row"].to_numpy()]
    known = df["final"].notna() & df["reference"].notna()
    df["beat"] = np.where(known, df["final"] > df["reference"], np.nan)
    return df


def calibration_table(df: pd.DataFrame, bins: Sequence[float] = CALIBRATION_BINS
                      ) -> pd.DataFrame:
    """Reliability of P(y(T) > reference) over `bins` (a `decision_frame`): per bin the count,
    mean predicted probability and observed frequency; empty bins left out."""
    ok = df[df["prob"].notna() & df["beat"].notna()] if len(df) else df
    if not len(ok):
        return pd.DataFrame(columns=["bin_low", "bin_high", "n", "mean_prob", "frequency"])
    edges = np.asarray(bins, dtype=np.float64)
    b = np.clip(np.searchsorted(edges, ok["prob"].to_numpy(), side="right") - 1, 0,
                len(edges) - 2)
    g = ok.assign(bin=b).groupby("bin")
    out = pd.DataFrame({"n": g.size(), "mean_prob": g["prob"].mean(),
                        "frequency": g["beat"].mean()})
    out.insert(0, "bin_high", edges[out.index + 1])
    out.insert(0, "bin_low", edges[out.index])
    return out.reset_index(drop=True)


def prediction_audit(df: pd.DataFrame, runs: int) -> dict:
    """Scores of a predicting rule from its `decision_frame` over `runs` runs (module
    docstring); {} when it made no prediction."""
    if not len(df):
        return {}
    err = (df["predicted"] - df["final"]).abs()
    stops = df["stop"].astype(bool)
    cal = calibration_table(df)
    ece = (float((cal["n"] * (cal["mean_prob"] - cal["frequency"]).abs()).sum()
                 / cal["n"].sum()) if len(cal) else np.nan)
    return {
        "predictions_per_run": float(len(df) / runs),
        "prediction_mae": float(err.mean()),
        "prediction_mae_at_stop": float(err[stops].mean()) if stops.any() else np.nan,
        "calibration_ece": ece,
        "decision_ms_median": float(df["seconds"].median() * 1e3),
    }


def rule_columns(audits: Sequence[dict], results: Sequence, table,
                 rng: np.random.Generator) -> dict:
    """The audit columns beyond stops and savings for one setting's runs (`RunResult`s and
    their `audit_run` dicts): top-k share stopped with its CI, wall ms per decision, and for a
    predicting rule its `prediction_audit`."""
    share, lo, hi = top_k_share(audits, rng)
    calls = sum(getattr(r, "rule_calls", 0) for r in results)
    seconds = sum(getattr(r, "rule_seconds", 0.0) for r in results)
    out = {
        "top_k_started": int(sum(a["started_top_k"] for a in audits)),
        "top_k_stopped_share": share, "share_ci_low": lo, "share_ci_high": hi,
        "decision_ms": seconds / calls * 1e3 if calls else np.nan,
    }
    df = decision_frame([getattr(r, "decisions", {}) for r in results], table)
    out.update(prediction_audit(df, len(results)))
    return out


def calibration_frame(table, settings: Sequence, results: Sequence[Sequence]) -> pd.DataFrame:
    """`calibration_table` per setting whose rule predicted probabilities, with the setting's
    optimizer, rules and goal labels."""
    frames = []
    for cfg, rs in zip(settings, results, strict=True):
        cal = calibration_table(decision_frame([getattr(r, "decisions", {}) for r in rs],
                                               table))
        if len(cal):
            cal.insert(0, "goal", str(cfg.goal))
            cal.insert(0, "rules", cfg.rule_label)
            cal.insert(0, "optimizer", cfg.optimizer_label)
            frames.append(cal)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def format_rule_audit(audit: pd.DataFrame) -> str:
    """`rule_columns` of an audit frame as a readable table ('' when it has none)."""
    if audit is None or not len(audit) or "top_k_stopped_share" not in audit:
        return ""

    def pct(v: float) -> str:
        return "-" if not np.isfinite(v) else f"{100 * v:.0f}%"

    def num(v: float, fmt: str) -> str:
        return "-" if not np.isfinite(v) else format(v, fmt)

    col = {c: audit[c] if c in audit else pd.Series(np.nan, index=audit.index)
           for c in ("prediction_mae", "prediction_mae_at_stop", "calibration_ece",
                     "decision_ms_median", "predictions_per_run")}
    view = pd.DataFrame({
        "optimizer": audit["optimizer"], "rules": audit["rules"], "goal": audit["goal"],
        "top-k stopped / started (95% CI)": [
            f"{pct(s)} of {int(n)} ({pct(lo)}-{pct(hi)})" for s, n, lo, hi in audit[[
                "top_k_stopped_share", "top_k_started", "share_ci_low", "share_ci_high"]].values],
        "ms/decision (median)": [f"{num(m, '.3g')} ({num(md, '.3g')})" for m, md in
                                 zip(audit["decision_ms"], col["decision_ms_median"],
                                     strict=True)],
        "predictions/run": [num(v, ".1f") for v in col["predictions_per_run"]],
        "MAE of y(T): all (at stops)": [f"{num(a, '.3f')} ({num(b, '.3f')})" for a, b in
                                        zip(col["prediction_mae"],
                                            col["prediction_mae_at_stop"], strict=True)],
        "calibration ECE": [num(v, ".3f") for v in col["calibration_ece"]],
    })
    if not np.isfinite(col["decision_ms_median"]).any():  # medians come from decision logs
        view["ms/decision (median)"] = [num(m, ".3g") for m in audit["decision_ms"]]
        view = view.rename(columns={"ms/decision (median)": "ms/decision"})
    # columns no setting has a value in (no predicting rule in the study) say nothing
    empty = [c for c in view.columns[3:] if view[c].str.fullmatch(r"-( \(-\))?").all()]
    return view.drop(columns=empty).to_string(index=False)
