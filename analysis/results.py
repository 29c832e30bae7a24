"""Read the result directories lcsim writes into pandas frames for the figure functions.

- `load_replay(DIR)`: `lcsim study` output (hpo_sim.replay.study.write_outputs):
  DIR/traces/NNN.parquet (one file per setting, its ReplayConfig as JSON under the Parquet
  key `lcsim_replay`), DIR/summary.csv, DIR/audit.csv and DIR/calibration.csv (optional),
  DIR/summary.json (its provenance: the command, the table's metadata).
- `load_esgd(DIR)`: `lcsim live esgd` output: DIR/<method>/records.parquet and
  generations.parquet, DIR/summary.csv (Table 1: top-15 ranges `top15_*_low/_high`, `_mean`).
- `load_epbt(DIR)`: `lcsim live epbt` output: DIR/<method>-seed<s>/{records,lineage}.parquet,
  DIR/summary.csv.
- `load_alrs(DIR)`: `lcsim live alrs-compare` output: DIR/runs.parquet,
  DIR/seed_study.parquet, DIR/summary.parquet.

The live layouts (file names, columns) are defined once beside the code that writes them,
`lcsim.hpo_sim.live.{esgd,epbt,alrs}.results`, and imported here.

Every loader raises FileNotFoundError naming the directory and the file it expected.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from lcsim.hpo_sim.live.alrs import results as alrs_layout
from lcsim.hpo_sim.live.epbt import results as epbt_layout
from lcsim.hpo_sim.live.esgd import results as esgd_layout

__all__ = [
    "ReplayResults",
    "LiveResults",
    "load_replay",
    "runs_from_traces",
    "load_esgd",
    "load_epbt",
    "load_alrs",
]

REPLAY_META_KEY = b"lcsim_replay"


@dataclass
class ReplayResults:
    """A study directory as frames.

    traces: every trace row (simulate.TRACE_COLUMNS + repeat) with the setting's `optimizer`,
    `rules` (label as in summary.csv), `goal`, `setting` (file index) columns.
    runs: one row per (setting, repeat): `time_to_goal` (simulated seconds, inf if not
    reached), `reached`, `end_time`, `configs`. summary / audit / calibration: the CSVs as
    written (calibration: predicting rules' reliability bins, None when no rule predicted).
    """

    path: Path
    traces: pd.DataFrame
    runs: pd.DataFrame
    summary: pd.DataFrame
    audit: pd.DataFrame | None = None
    settings: list[dict] = field(default_factory=list)
    calibration: pd.DataFrame | None = None
    provenance: dict = field(default_factory=dict)  # summary.json's: command, table_meta, ...

    @property
    def name(self) -> str:
        return self.path.name

    def goal_accuracy(self) -> dict[str, float]:
        """goal label -> resolved goal accuracy (from summary.csv)."""
        return dict(zip(self.summary["goal"].astype(str), self.summary["goal_accuracy"],
                        strict=True))


@dataclass
class LiveResults:
    """A live-comparison directory: per-individual `records`, `summary`, and for EPBT the
    best individual's ancestry per run (`lineages`: run label -> frame)."""

    path: Path
    records: pd.DataFrame
    summary: pd.DataFrame | None = None
    lineages: dict[str, pd.DataFrame] = field(default_factory=dict)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)


def _need_dir(path: str | os.PathLike, what: str) -> Path:
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"{what} results: {d} is not a directory")
    return d


def _rule_label(specs) -> str:
    # labels as written by the study; a user's rule module need not be importable here
    from lcsim.hpo_sim.replay.resolve import rules_label

    return rules_label(list(specs or []))


def load_replay(path: str | os.PathLike) -> ReplayResults:
    """Read a study directory (module docstring)."""
    import pyarrow.parquet as pq

    d = _need_dir(path, "replay")
    files = sorted((d / "traces").glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"replay results: no {d / 'traces'}/*.parquet (write them with "
                                "`lcsim study ... --out DIR`)")
    if not (d / "summary.csv").exists():
        raise FileNotFoundError(f"replay results: {d / 'summary.csv'} is missing")
    summary = pd.read_csv(d / "summary.csv")
    goal_acc = dict(zip(summary["goal"].astype(str), summary["goal_accuracy"], strict=True))
    frames, settings = [], []
    for i, f in enumerate(files):
        t = pq.read_table(f)
        raw = (t.schema.metadata or {}).get(REPLAY_META_KEY)
        if raw is None:
            raise ValueError(f"{f}: no `lcsim_replay` metadata; not a trace file of "
                             "`lcsim study`")
        setting = json.loads(raw)["setting"]
        settings.append(setting)
        df = t.to_pandas()
        df.insert(0, "setting", i)
        df.insert(1, "optimizer", setting["optimizer"])
        df.insert(2, "rules", _rule_label(setting.get("rules")))
        df.insert(3, "goal", str(setting["goal"]))
        frames.append(df)
    traces = pd.concat(frames, ignore_index=True)
    missing = sorted(set(traces["goal"]) - set(goal_acc))
    if missing:
        raise ValueError(f"{d / 'summary.csv'}: no goal_accuracy for goal(s) {missing}")
    runs = runs_from_traces(traces, goal_acc)
    audit = pd.read_csv(d / "audit.csv") if (d / "audit.csv").exists() else None
    doc = json.loads((d / "summary.json").read_text()) if (d / "summary.json").exists() else {}
    return ReplayResults(d, traces, runs, summary, audit, settings,
                         _read_csv(d / "calibration.csv"), doc.get("provenance") or {})


def runs_from_traces(traces: pd.DataFrame, goal_accuracy: dict[str, float]) -> pd.DataFrame:
    """One row per (setting, repeat) from trace rows.

    A replay ends right after the first fully trained config at or above the goal
    (hpo_sim.replay.simulate), so a run reached its goal exactly when its last row is
    complete with accuracy >= the goal; its time to goal is that row's time.
    """
    keys = ["setting", "optimizer", "rules", "goal", "repeat"]
    last = traces.sort_values(keys + ["iteration"]).groupby(keys, sort=True).tail(1)
    goal = last["goal"].map(goal_accuracy).to_numpy(dtype=float)
    reached = last["complete"].astype(bool).to_numpy() & (
        last["accuracy"].to_numpy(dtype=float) >= goal)
    counts = traces.groupby(keys, sort=True).size()
    runs = last[keys].reset_index(drop=True)
    runs["reached"] = reached
    runs["time_to_goal"] = np.where(reached, last["time"].to_numpy(dtype=float), np.inf)
    runs["end_time"] = last["time"].to_numpy(dtype=float)
    runs["configs"] = counts.to_numpy()
    return runs


def _read_parquets(files: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def load_esgd(path: str | os.PathLike) -> LiveResults:
    """Read `lcsim live esgd` output: every DIR/<method>/records.parquet, concatenated, and
    every DIR/<method>/generations.parquet (best and m-elitist fitness per generation; a
    folder from before they were written has none) as `extra["generations"]`."""
    d = _need_dir(path, "ESGD")
    dirs = esgd_layout.method_dirs(d)
    if not dirs:
        raise FileNotFoundError(f"ESGD results: no {d}/<method>/{esgd_layout.RECORDS}")
    summary = _read_csv(d / esgd_layout.SUMMARY)
    gens = [m / esgd_layout.GENERATIONS for m in dirs if (m / esgd_layout.GENERATIONS).exists()]
    extra = {"generations": _read_parquets(gens)} if gens else {}
    return LiveResults(d, _read_parquets([m / esgd_layout.RECORDS for m in dirs]), summary,
                       extra=extra)


def load_epbt(path: str | os.PathLike) -> LiveResults:
    """Read `lcsim live epbt` output: DIR/<method>-seed<s>/records.parquet (concatenated) and
    lineage.parquet (one frame per run, keyed "<method> seed <s>")."""
    d = _need_dir(path, "EPBT")
    runs = [r for r in epbt_layout.run_dirs(d) if (r / epbt_layout.RECORDS).exists()]
    if not runs:
        raise FileNotFoundError(f"EPBT results: no {d}/<method>-seed<s>/{epbt_layout.RECORDS}")
    lineages = {}
    for r in runs:
        if (r / epbt_layout.LINEAGE).exists():
            method, seed = epbt_layout.parse_run_dir(r)
            lineages[f"{method} seed {seed}"] = pd.read_parquet(r / epbt_layout.LINEAGE)
    summary = _read_csv(d / epbt_layout.SUMMARY)
    return LiveResults(d, _read_parquets([r / epbt_layout.RECORDS for r in runs]), summary,
                       lineages)


def load_alrs(path: str | os.PathLike) -> LiveResults:
    """Read `lcsim live alrs-compare --out DIR` output: DIR/runs.parquet (one row per
    optimizer, method, seed; `curve` holds the per-batch losses) as `records`,
    DIR/seed_study.parquet as `extra["seeds"]` (if present) and DIR/summary.parquet as
    `summary`."""
    d = _need_dir(path, "ALRS")
    if not (d / alrs_layout.RUNS).exists():
        raise FileNotFoundError(f"ALRS results: no {d / alrs_layout.RUNS} (write it with "
                                "`lcsim live alrs-compare --out DIR`)")
    runs = pd.read_parquet(d / alrs_layout.RUNS)
    extra = {}
    if (d / alrs_layout.SEED_STUDY).exists():
        study = pd.read_parquet(d / alrs_layout.SEED_STUDY)
        if len(study):
            extra["seeds"] = study
    summary = (pd.read_parquet(d / alrs_layout.SUMMARY) if (d / alrs_layout.SUMMARY).exists()
               else None)
    return LiveResults(d, runs, summary, extra=extra)
