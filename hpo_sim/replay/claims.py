"""The Choi et al. paper's checkable claims, judged on a learning-curve table and on the frames of
`lcsim study --out` folders, as `common.Claim`s (our value, the paper's, a computed verdict and
what it was judged on), like the live methods' `claims` modules. No I/O.

Words the paper uses, made precise (thresholds are arguments; every claim's text shows its own;
"ours" marks what is not stated in the paper; ours):

- **near chance / untrainable**: final accuracy y(T) < r + eps, r = 1 / the table's number of
  classes, eps = 0.05: ETR-1's own test (Section IV.A; the paper calls such configs "not
  trainable ... no better than a random guess"). A diverged config counts as untrainable.
- **convergence epoch** of a curve y(1..T): the first epoch t from which every later accuracy
  stays within delta of the final one, max_{s >= t} |y(s) - y(T)| <= delta; delta = 0.01
  (ours). A curve "converges within 2 epochs" when that epoch is <= 2, and "plateaus before
  T/2" when it is < T / 2.
- **top / bottom 100**: the complete configs ranked by final accuracy (`LookupTable.top_k` /
  `bottom_k`), 100 as in the paper, at most half the table's complete configs (so that the two
  sets never overlap on a small table; ours).
- **most** = more than half; **almost all** = at least 90% (ours).
- **goal values**: the table's top-percentile goals ranked over all configs (`Goal(over="all")`,
  the paper's 20,000) against the absolute goals the paper quotes for them (Section IV.C);
  they agree within 0.005 accuracy (ours).

Claims a paper states for one dataset (the top 100 converging within 1-2 epochs and the goal
values: MNIST; ETR-1 at tau = 9 slowing SMAC down: MNIST, Fig. 4 (b); tau = 1 speeding it up:
CIFAR-10, Fig. 4 (c)) are judged only on a table of that dataset; on another, our value is shown
and the verdict is "not checkable" naming the dataset needed. The others hold for "the two
datasets" in the paper and are judged on any table with its own r = 1 / num_classes.

A study is anything with `name`, `summary` (study.summarize), `traces` (trace rows with
`setting`, `optimizer`, `rules`, `goal`, `repeat` columns), `settings` (the settings' JSON dicts)
and `provenance` (summary.json's: `table_meta`); `lcsim.analysis.results.load_replay` reads one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lcsim.hpo_sim.live.common import Claim

from .audit import audit_run
from .rules import parse_rule
from .simulate import Goal, candidate_rows, epoch_costs

__all__ = ["CHANCE_EPS", "CONVERGE_DELTA", "PAPER_GOALS", "bottom_near_chance",
           "convergence_epochs", "fewer_untrainable", "goals_vs_paper", "plateau_before_half",
           "table_claims", "tau_tradeoff", "top_converge_early", "training_vs_optimizer"]

CHANCE_EPS = 0.05  # ETR-1's eps (paper)
CONVERGE_DELTA = 0.01  # ours
GOAL_TOLERANCE = 0.005  # ours
MOST, ALMOST_ALL = 0.5, 0.9  # ours
# Section IV.C: (top percent of the 20,000 configs, the absolute goal it gave)
PAPER_GOALS = {"mnist": ((0.25, 0.992), (0.5, 0.9915)),
               "cifar10": ((0.05, 0.7635), (0.5, 0.7229))}
_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
NEED_TABLE = "a learning-curve table (--table)"
NEED_FIG4 = ("study with SMAC and ETR-1 at tau = 1 and 9 (lcsim study --preset "
             "choi-fig4-DATASET --out DIR, then --replay DIR)")


# ----- definitions -----------------------------------------------------------------------------
def convergence_epochs(acc: np.ndarray, delta: float = CONVERGE_DELTA) -> np.ndarray:
    """acc [n, T] -> [n] ints in 1..T: the first epoch from which each curve stays within
    `delta` of its final accuracy (module docstring)."""
    acc = np.asarray(acc, dtype=np.float64)
    off = np.abs(acc - acc[:, -1:]) > delta  # [n, T]
    T = acc.shape[1]
    last_off = T - 1 - np.argmax(off[:, ::-1], axis=1)  # 0-based index of the last epoch off
    return np.where(off.any(axis=1), last_off + 2, 1).astype(np.int64)


def _dataset(meta: dict | None) -> str:
    d = str((meta or {}).get("dataset") or "").lower().replace("-", "")
    return next((k for k in PAPER_GOALS if d.startswith(k)), d or "unknown")


def _num_classes(table=None, meta: dict | None = None) -> int:
    from .simulate import _num_classes as of_table

    n = of_table(table) if table is not None else 0
    return n or int((meta or {}).get("num_classes") or 0)


def _ranked(claim: str, paper: str, table, k: int
            ) -> Claim | tuple[int, np.ndarray, np.ndarray]:
    """(k used, rows of the top k, rows of the bottom k) of the complete configs, or the
    not-checkable claim when there is no table or fewer than 2 complete configs."""
    if table is None:
        return Claim(claim, "-", math.nan, None, paper=paper, missing=NEED_TABLE)
    n_complete = int((np.asarray(table.status).astype(str) == "complete").sum())
    k = min(k, n_complete // 2)
    if k < 1:
        return Claim(claim, _table_scope(table), math.nan, None, paper=paper,
                     missing="at least 2 complete configs")
    return k, table.rows(table.top_k(k)), table.rows(table.bottom_k(k))


def _table_scope(table) -> str:
    meta = getattr(table, "meta", {}) or {}
    return f"table {meta.get('dataset', '?')}, {len(table)} configs, T = {table.epochs}"


def _a(dataset: str) -> str:
    return ("an " if dataset == "mnist" else "a ") + _NAMES[dataset]


def _need_dataset(dataset: str, ours: str) -> str:
    return (f"{_a(dataset)} table (the paper states it for {_NAMES[dataset]}; this table's "
            f"dataset is {ours})")


# ----- claims on a table -----------------------------------------------------------------------
def bottom_near_chance(table, k: int = 100, eps: float = CHANCE_EPS,
                       share: float = ALMOST_ALL) -> Claim:
    """Share of the bottom k configs whose final accuracy is below r + eps (Figs 1c, 2c)."""
    claim = f"bottom {k} configs end near chance: y(T) < 1/classes + {eps:g} for >= {share:.0%}"
    paper = "no better than a random guess (~0.1 for ten labels; Sec. III-C, Figs 1c, 2c)"
    ranked = _ranked(claim, paper, table, k)
    if isinstance(ranked, Claim):
        return ranked
    used, _, bottom = ranked
    n_cls = _num_classes(table)
    if not n_cls:
        return Claim(claim, _table_scope(table), math.nan, None, paper=paper,
                     missing="the table's number of classes")
    final = np.asarray(table.acc, dtype=np.float64)[bottom, -1]
    thr = 1 / n_cls + eps
    value = float(np.mean(final < thr))
    return Claim(claim, f"{_table_scope(table)}; bottom {used}", value, bool(value >= share),
                 inputs={"k": used, "threshold": thr, "max_final": float(final.max()),
                         "median_final": float(np.median(final))}, paper=paper)


def top_converge_early(table, k: int = 100, within: int = 2, delta: float = CONVERGE_DELTA,
                       share: float = MOST) -> Claim:
    """Share of the top k configs whose convergence epoch is <= `within` (MNIST, Fig. 1b)."""
    claim = (f"top {k} configs converge within {within} epochs (stay within {delta:g} of y(T) "
             f"from epoch <= {within}) for > {share:.0%}")
    paper = "most of the top 100 converge within one or two epochs (MNIST, Fig. 1b)"
    ranked = _ranked(claim, paper, table, k)
    if isinstance(ranked, Claim):
        return ranked
    used, top, _ = ranked
    ep = convergence_epochs(np.asarray(table.acc)[top], delta)
    value = float(np.mean(ep <= within))
    ds = _dataset(table.meta)
    return Claim(claim, f"{_table_scope(table)}; top {used}", value,
                 bool(value > share) if ds == "mnist" else None,
                 inputs={"k": used, "median_convergence_epoch": float(np.median(ep))},
                 paper=paper, missing="" if ds == "mnist" else _need_dataset("mnist", ds))


def plateau_before_half(table, k: int = 100, delta: float = CONVERGE_DELTA,
                        share: float = MOST) -> Claim:
    """Share of the top k and bottom k curves whose convergence epoch is < T / 2."""
    claim = (f"top and bottom {k} curves plateau before T/2 (within {delta:g} of y(T) from "
             f"an epoch < T/2) for > {share:.0%}")
    paper = "most of the top / bottom 100 curves converge before half of T (Sec. III-C)"
    ranked = _ranked(claim, paper, table, k)
    if isinstance(ranked, Claim):
        return ranked
    used, top, bottom = ranked
    ep = convergence_epochs(np.asarray(table.acc)[np.r_[top, bottom]], delta)
    value = float(np.mean(ep < table.epochs / 2))
    return Claim(claim, f"{_table_scope(table)}; top + bottom {used}", value,
                 bool(value > share),
                 inputs={"k": used, "half": table.epochs / 2,
                         "median_convergence_epoch": float(np.median(ep))}, paper=paper)


def goals_vs_paper(table, tolerance: float = GOAL_TOLERANCE) -> list[Claim]:
    """Per goal the paper quotes for the table's dataset: the table's top-percent goal (over all
    configs) against the paper's absolute value; every dataset's goals when the table is of
    neither (not checkable, our values shown)."""
    def claim(p: float, absolute: float) -> str:
        return f"goal of the top {p:g}% (all configs) within {tolerance:g} of the paper's"

    if table is None:
        return [Claim(claim(p, a), _NAMES[d], math.nan, None, paper=a, missing=NEED_TABLE)
                for d, goals in PAPER_GOALS.items() for p, a in goals]
    ds = _dataset(table.meta)
    out = []
    for d, goals in PAPER_GOALS.items():
        if ds in PAPER_GOALS and d != ds:
            continue
        for p, absolute in goals:
            ours = Goal(top_percent=p, over="all").resolve(table)
            diff = ours - absolute
            out.append(Claim(
                claim(p, absolute), f"{_table_scope(table)}; paper: {_NAMES[d]}", ours,
                bool(abs(diff) <= tolerance) if d == ds else None,
                inputs={"difference": diff, "tolerance": tolerance, "top_percent": p},
                paper=absolute, missing="" if d == ds else _need_dataset(d, ds)))
    return out


def table_claims(table, k: int = 100) -> list[Claim]:
    """Every claim on the table alone (a None table: each not checkable)."""
    return [bottom_near_chance(table, k), top_converge_early(table, k),
            plateau_before_half(table, k), *goals_vs_paper(table)]


# ----- claims on studies -----------------------------------------------------------------------
def _etr1_tau(label: str) -> int | None:
    """tau of a rule label that is ETR-1 alone with the paper's r and eps, else None."""
    text = str(label).strip()
    if "+" in text or text.partition(":")[0].strip().lower() != "etr1":
        return None  # never resolve other labels: a user's rule would be imported and built
    try:
        rule = parse_rule(text)
    except ValueError:
        return None
    return int(rule.tau) if rule.r is None and rule.eps == CHANCE_EPS else None


def _study_dataset(study) -> str:
    return _dataset((getattr(study, "provenance", None) or {}).get("table_meta"))


def tau_tradeoff(studies: Sequence[Any]) -> list[Claim]:
    """Per study, SMAC setting and goal with ETR-1 at tau = 1 and 9: tau = 1 reaches the goal
    sooner (median time), and the per-dataset statements of Fig. 4 (b) and (c). A goal no run
    of the study reached (above every final accuracy of its table) is left out."""
    claim = "ETR-1 at tau = 1 reaches the goal sooner than at tau = 9 (median time ratio > 1)"
    paper = "tau = 9 degrades (Fig. 4b, MNIST); tau = 1 improves drastically (Fig. 4c, CIFAR-10)"
    figs = {"mnist": (9, "ETR-1 at tau = 9 slows SMAC down (speed-up < 1)",
                      "degrades considerably (Fig. 4b)"),
            "cifar10": (1, "ETR-1 at tau = 1 speeds SMAC up (speed-up > 1)",
                        "drastic improvement (Fig. 4c)")}
    out: list[Claim] = []
    judged: dict[str, list[Claim]] = {d: [] for d in figs}
    for st in studies:
        s = st.summary.copy()
        s["tau"] = [_etr1_tau(x) for x in s["rules"]]
        ds = _study_dataset(st)
        smac = s[s["optimizer"].astype(str).str.startswith("smac")]
        for (opt, goal), g in smac.groupby(["optimizer", "goal"], sort=False):
            by_tau = {int(t): r for t, r in g.dropna(subset=["tau"]).set_index("tau").iterrows()}
            if 1 not in by_tau or 9 not in by_tau or not (g["success_rate"] > 0).any():
                continue
            m1, m9 = float(by_tau[1]["median_s"]), float(by_tau[9]["median_s"])
            scope = f"{st.name}: {opt}, goal {goal}"
            both_inf = math.isinf(m1) and math.isinf(m9)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = float(np.float64(m9) / np.float64(m1))
            out.append(Claim(claim, scope, ratio, None if both_inf else bool(m1 < m9),
                             inputs={"median_s_tau1": m1, "median_s_tau9": m9,
                                     "speedup_tau1": float(by_tau[1]["speedup"]),
                                     "speedup_tau9": float(by_tau[9]["speedup"])},
                             paper=paper,
                             missing="neither tau reached the goal in half the runs"
                             if both_inf else ""))
            if ds not in figs:
                continue
            tau, text, said = figs[ds]
            sp = float(by_tau[tau]["speedup"])
            judged[ds].append(Claim(
                f"{text} on {_NAMES[ds]}", scope, sp,
                None if math.isnan(sp) else bool(sp < 1 if tau == 9 else sp > 1),
                inputs={"ci": [float(by_tau[tau]["speedup_ci_low"]),
                               float(by_tau[tau]["speedup_ci_high"])]},
                paper=said, missing="no speed-up: neither run reached the goal in half the "
                                    "runs" if math.isnan(sp) else ""))
    if not out:
        out.append(Claim(claim, "-", math.nan, None, paper=paper,
                         missing="a " + NEED_FIG4.replace("DATASET", "<dataset>")
                         + " that reached a goal"))
    for d, (_, text, said) in figs.items():
        out += judged[d] or [Claim(f"{text} on {_NAMES[d]}", "-", math.nan, None, paper=said,
                                   missing=f"{_a(d)} {NEED_FIG4.replace('DATASET', d)}")]
    return out


def _same_table(study, table) -> str:
    """'' when `table` is the table the study ran on (same metadata), else why it is not."""
    meta = (getattr(study, "provenance", None) or {}).get("table_meta")
    if table is None:
        return NEED_TABLE
    if meta is not None and json.dumps(meta, sort_keys=True, default=str) != json.dumps(
            table.meta, sort_keys=True, default=str):
        return (f"the table the study ran on ({study.provenance.get('table', '?')}); --table "
                "has other metadata")
    return ""


def _untrainable(rows: pd.DataFrame, thr: float) -> np.ndarray:
    return (rows["diverged"].astype(bool) | (rows["complete"].astype(bool)
                                              & (rows["accuracy"].astype(float) < thr))
            ).to_numpy()


def _longest_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """Per repeat, the trace rows of the goal whose run went furthest: with shared replays
    the other goals' traces are prefixes of it (goals.replay_goals), so counting them too
    would count the same proposals twice."""
    n = rows.groupby(["repeat", "goal"]).size().reset_index(name="n")
    keep = n.sort_values("n", kind="stable").groupby("repeat").tail(1)
    return rows.merge(keep[["repeat", "goal"]], on=["repeat", "goal"])


def fewer_untrainable(studies: Sequence[Any], table=None, eps: float = CHANCE_EPS) -> list[Claim]:
    """Per study: the share of SMAC's proposals (runs without a rule; per repeat the longest
    run over the goals) that are untrainable, against random search's runs in the same study,
    else against the table's share among its candidates (what random search draws from,
    uniformly)."""
    claim = (f"SMAC (EI) proposes fewer untrainable configs (y(T) < 1/classes + {eps:g} or "
             "diverged) than random search")
    paper = "SMAC with EI rarely chooses non-trainable configs (Sec. V)"
    out = []
    for st in studies:
        meta = (getattr(st, "provenance", None) or {}).get("table_meta")
        n_cls = _num_classes(table if not _same_table(st, table) else None, meta)
        tr = st.traces[st.traces["rules"].astype(str) == "none"]
        opt = tr["optimizer"].astype(str)
        smac = _longest_runs(tr[opt.str.startswith("smac")])
        if smac.empty:
            continue
        scope = f"{st.name}: runs without a rule"
        if not n_cls:
            out.append(Claim(claim, scope, math.nan, None, paper=paper,
                             missing="the table's number of classes (--table)"))
            continue
        thr = 1 / n_cls + eps
        ours = float(_untrainable(smac, thr).mean())
        rnd = _longest_runs(tr[opt == "random"])
        inputs: dict[str, Any] = {"threshold": thr, "smac_proposals": len(smac)}
        if not rnd.empty:
            base, inputs["random_proposals"] = float(_untrainable(rnd, thr).mean()), len(rnd)
            inputs["random_from"] = "random-search runs of the study"
        elif not _same_table(st, table):
            cand = candidate_rows(table)
            status = np.asarray(table.status).astype(str)[cand]
            final = np.asarray(table.acc, dtype=np.float64)[cand, -1]
            base = float(np.mean((status == "diverged") | ((status == "complete")
                                                           & (final < thr))))
            inputs["random_from"] = "the table's candidates (random search's expectation)"
        else:
            out.append(Claim(claim, scope, ours, None, paper=paper,
                             missing="random-search runs without a rule in the study, or "
                                     f"{_same_table(st, table)}"))
            continue
        inputs["random_share"] = base
        out.append(Claim(claim, scope, ours, bool(ours < base), inputs=inputs, paper=paper))
    return out or [Claim(claim, "-", math.nan, None, paper=paper,
                         missing="a study with SMAC runs without a rule (--replay DIR)")]


def training_vs_optimizer(studies: Sequence[Any], table=None,
                          band: tuple[float, float] = (10.0, 100.0)) -> list[Claim]:
    """Per SMAC setting run with `charge_overhead` on one worker: training seconds (the
    table's, as the replay charged them) over the measured optimizer seconds (the rest of
    each run's time), summed over repeats; holds inside `band`."""
    lo, hi = band
    claim = f"training takes {lo:g}-{hi:g}x the optimizer's time (measured overhead)"
    paper = (f"{lo:g}-{hi:g}x (issue 17's reading; the sentence is cut off in our copy of the "
             "paper after 'Because the time required')")
    out = []
    for st in studies:
        for i, s in enumerate(st.settings):
            if not (s.get("charge_overhead") and s.get("workers", 1) == 1
                    and str(s["optimizer"]).startswith("smac")):
                continue
            scope = f"{st.name}: {s['optimizer']} | {'+'.join(s['rules']) or 'none'} | " \
                    f"{s['goal']}"
            why = _same_table(st, table)
            if why:
                out.append(Claim(claim, scope, math.nan, None, paper=paper, missing=why))
                continue
            costs = epoch_costs(table, s.get("time", "solo"), s.get("charge_eval", True))
            train = over = 0.0
            for _, run in st.traces[st.traces["setting"] == i].groupby("repeat"):
                trace = {c: run[c].to_numpy() for c in ("row", "epochs", "stopped")}
                spent = audit_run(trace, table, costs, 1)["charged_seconds"]
                train += spent
                over += float(run["time"].max()) - spent
            ratio = train / over if over > 0 else math.inf
            out.append(Claim(claim, scope, ratio, bool(lo <= ratio <= hi),
                             inputs={"training_s": train, "optimizer_s": over}, paper=paper))
    return out or [Claim(claim, "-", math.nan, None, paper=paper,
                         missing="a study of SMAC run with --charge-overhead on one worker "
                                 "(--replay DIR) and its table (--table)")]
