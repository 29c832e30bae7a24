"""Repeated replays, studies over settings, summaries with bootstrap CIs, and their files.

A *setting* is one ReplayConfig (optimizer, rules, goal, ...). Settings that differ only in their
goal share their replays: one run per repeat to the hardest goal, read for each goal
(`goals.replay_goals`; one summary row per goal all the same). Repeat r of every setting uses
the same child seed `np.random.SeedSequence(seed).spawn(repeats)[r]`, so a rule and its no-rule
baseline are paired: same optimizer, same seeds. Repeats run in-process (`jobs=1`), over a local
process pool (`jobs>1`; each worker opens the table once), or on a Dask cluster
(`scheduler="tcp://..."`; workers open the table by path, or receive it scattered).

Summaries, audits and their text live in `summary` (re-exported here: `summarize`,
`audit_frame`, `format_summary`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcsim.errors import UserError

from .audit import decision_frame
from .fast import eligible, random_search_runs
from .goals import goal_plan, read_goals
from .resolve import label_of
from .simulate import ReplayConfig, RunResult, replay
from .summary import audit_frame, format_summary, summarize

__all__ = [
    "run_settings",
    "summarize",
    "traces_frame",
    "audit_frame",
    "write_outputs",
    "format_summary",
    "with_baselines",
    "OUTPUTS",
]

# what `write_outputs` (and run_settings' resume folder, "runs") put in an output directory
OUTPUTS = ("runs", "traces", "decisions", "summary.csv", "summary.json", "audit.csv",
           "calibration.csv")

# ----- running ---------------------------------------------------------------------------------
_TABLE: Any = None  # the table of this worker process (set by _init_worker)


def _open_table(ref):
    if isinstance(ref, str | os.PathLike):
        from lcsim.tabular.table import LookupTable

        return LookupTable.open(ref)
    return ref


def _init_worker(ref) -> None:
    global _TABLE
    _TABLE = _open_table(ref)


def _run_task(cfg: ReplayConfig, seed: np.random.SeedSequence, table=None) -> RunResult:
    return replay(table if table is not None else _TABLE, cfg, seed)


def _dask_task(cfg: ReplayConfig, seed: np.random.SeedSequence, ref) -> RunResult:
    # on a Dask worker: open the table by path once per worker process, or use the scattered one
    global _TABLE
    if not isinstance(ref, str | os.PathLike):
        return replay(ref, cfg, seed)
    if _TABLE is None or getattr(_TABLE, "_lcsim_ref", None) != str(ref):
        _TABLE = _open_table(ref)
        _TABLE._lcsim_ref = str(ref)
    return replay(_TABLE, cfg, seed)


def run_settings(
    table_ref,
    settings: Sequence[ReplayConfig],
    repeats: int,
    seed: int,
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    on_result: Callable[[int, int, RunResult], None] | None = None,
    resume_dir: str | os.PathLike | None = None,
) -> list[list[RunResult]]:
    """Run `repeats` replays of every setting; result[s][r] for setting s, repeat r.

    table_ref: a LookupTable, or a path / shipped name (needed for Dask workers that do not
    share this process's memory). resume_dir: each finished run is saved there (atomically)
    under a key of its setting, root seed, repeat and table, and runs found there are not run
    again, so an interrupted study resumes, and a study with more repeats reuses the first ones
    (repeat r's child seed does not depend on the number of repeats).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    seeds = np.random.SeedSequence(seed).spawn(repeats)
    opened: list = []

    def _local():  # the table in this process, opened once
        if not opened:
            opened.append(_open_table(table_ref))
        return opened[0]

    # random search with stateless rules on one worker: numpy, in this process (fast.py)
    fast = set() if scheduler else {s for s, c in enumerate(settings) if eligible(c)}
    # settings that differ in their goal only share one replay per repeat (replay_goals)
    shared = _goal_groups(_local(), settings, skip=fast)
    tasks = [(s, r) for s in sorted(shared) for r in range(repeats)]
    out: list[list[RunResult | None]] = [[None] * repeats for _ in settings]
    bar = _bar(len(settings) * repeats, progress)
    keys = _run_keys(_local(), settings, repeats, seed) if resume_dir is not None else None

    def done(s: int, r: int, res: RunResult, new: bool = True) -> None:
        group, accs, best = shared.get(s, ([s], None, None))
        for s2, res2 in zip(group, read_goals(res, accs, best) if accs else [res],
                            strict=True):
            out[s2][r] = res2
            bar.update(1)
            if new and on_result is not None:
                on_result(s2, r, res2)
        if new and keys is not None and s not in fast:  # the shared run, under its setting
            _atomic(Path(resume_dir) / f"{keys[s][r]}.pkl",
                    lambda p: Path(p).write_bytes(pickle.dumps(res)))

    if keys is not None:
        rd = Path(resume_dir)
        rd.mkdir(parents=True, exist_ok=True)
        for s, r in list(tasks):
            f = rd / f"{keys[s][r]}.pkl"
            if f.exists():
                done(s, r, pickle.loads(f.read_bytes()), new=False)
        tasks = [(s, r) for s, r in tasks if out[s][r] is None]

    try:
        for s in sorted(fast):
            for r, res in enumerate(random_search_runs(_local(), settings[s], seeds)):
                done(s, r, res)
        if not tasks:
            pass  # everything came from the numpy path or the resume directory
        elif scheduler:
            from distributed import Client

            try:
                client = Client(scheduler)
            except OSError as e:  # a mistyped address or a scheduler that is not running
                raise UserError(f"--dask-scheduler {scheduler}: cannot connect ({e})") from None
            with client:
                ref = table_ref
                if not isinstance(table_ref, str | os.PathLike):
                    ref = client.scatter(table_ref, broadcast=True)
                futs = {client.submit(_dask_task, settings[s], seeds[r], ref, pure=False): (s, r)
                        for s, r in tasks}
                from distributed import as_completed as dask_completed

                for f in dask_completed(futs):
                    done(*futs[f], f.result())
        elif jobs == 1:
            for s, r in tasks:
                done(s, r, _run_task(settings[s], seeds[r], _local()))
        else:
            with ProcessPoolExecutor(jobs, initializer=_init_worker,
                                     initargs=(table_ref,)) as pool:
                futs = {pool.submit(_run_task, settings[s], seeds[r]): (s, r) for s, r in tasks}
                for f in as_completed(futs):
                    done(*futs[f], f.result())
    finally:
        bar.close()
    return out  # type: ignore[return-value]


def _goal_groups(table, settings: Sequence[ReplayConfig], skip: set[int]
                 ) -> dict[int, tuple[list[int], list[float] | None, float | None]]:
    """driver setting -> (the settings it runs for, their goal accuracies, the table's best
    final accuracy): settings equal but for their goal share one replay per repeat, driven by
    the hardest goal the table reaches (goals.goal_plan). A lone setting maps to itself."""
    groups: list[list[int]] = []
    for s, cfg in enumerate(settings):
        if s in skip:
            continue
        for g in groups:
            if replace(settings[g[0]], goal=cfg.goal) == cfg:
                g.append(s)
                break
        else:
            groups.append([s])
    out: dict[int, tuple[list[int], list[float] | None, float | None]] = {}
    for g in groups:
        if len(g) == 1:
            out[g[0]] = (g, None, None)
            continue
        drive, accs, best = goal_plan(table, [settings[s].goal for s in g])
        out[g[drive]] = (g, accs, best)
    return out


def _run_keys(t, settings, repeats: int, seed: int) -> list[list[str]]:
    """Per (setting, repeat), a hash of what determines the run: setting, seed, table."""
    ident = json.dumps([str(getattr(t, "path", "")), getattr(t, "meta", {}), len(t.ids)],
                       sort_keys=True, default=str)
    out = []
    for cfg in settings:
        c = json.dumps(_cfg_dict(cfg), sort_keys=True, default=str)
        out.append([hashlib.sha1(f"{ident}|{c}|{seed}|{r}".encode()).hexdigest()[:20]
                    for r in range(repeats)])
    return out


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="replays", unit="run", disable=not enabled, smoothing=0.1)


def with_baselines(settings: Sequence[ReplayConfig]) -> list[ReplayConfig]:
    """Settings plus, where missing, the no-rule baseline of each (optimizer, goal, ...),
    placed just before the first setting it is the baseline of."""
    out: list[ReplayConfig] = []
    for cfg in settings:
        base = replace(cfg, rules=())
        if base not in out and base not in settings[settings.index(cfg):]:
            out.append(base)
        if cfg not in out:
            out.append(cfg)
    return out


def traces_frame(cfg: ReplayConfig, results: Sequence[RunResult]) -> pd.DataFrame:
    """All repeats of one setting as one frame: repeat + simulate.TRACE_COLUMNS."""
    frames = []
    for r, res in enumerate(results):
        df = pd.DataFrame(res.trace)
        df.insert(0, "repeat", np.int64(r))
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    for c in ("stopped", "diverged", "complete"):
        df[c] = df[c].astype(bool)
    return df


def write_outputs(out: str | os.PathLike, settings: Sequence[ReplayConfig],
                  results: Sequence[Sequence[RunResult]], summary: pd.DataFrame,
                  audit: pd.DataFrame | None, provenance: dict[str, Any],
                  calibration: pd.DataFrame | None = None) -> Path:
    """DIR/traces/<nnn>.parquet (one per setting, with its settings in the file metadata),
    DIR/decisions/<nnn>.parquet (the predictions of a predicting rule, `audit.decision_frame`),
    DIR/summary.csv, DIR/summary.json (summary + audit + settings + provenance), DIR/audit.csv
    (when a setting has rules), DIR/calibration.csv (`audit.calibration_frame`, when given and
    not empty). Files of settings beyond these (an earlier run's) are removed, so a reader of
    DIR sees this run only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = Path(out)
    (d / "traces").mkdir(parents=True, exist_ok=True)
    cfg_dicts = [_cfg_dict(c) for c in settings]
    names = [f"{i:03d}.parquet" for i in range(len(settings))]
    for i, (cfg, rs) in enumerate(zip(settings, results, strict=True)):
        t = pa.Table.from_pandas(traces_frame(cfg, rs), preserve_index=False)
        meta = {b"lcsim_replay": json.dumps({"setting": cfg_dicts[i], **provenance}).encode()}
        _atomic(d / "traces" / names[i],
                lambda p, t=t, meta=meta: pq.write_table(t.replace_schema_metadata(meta), p))
    logged = []
    for i, rs in enumerate(results):
        df = decision_frame([getattr(r, "decisions", {}) for r in rs])
        if len(df):
            (d / "decisions").mkdir(exist_ok=True)
            meta = {b"lcsim_replay": json.dumps({"setting": cfg_dicts[i]}).encode()}
            t = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(meta)
            _atomic(d / "decisions" / names[i], lambda p, t=t: pq.write_table(t, p))
            logged.append(names[i])
    for sub, keep in (("traces", names), ("decisions", logged)):  # an earlier, larger study's
        for old in (d / sub).glob("*.parquet"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
    _atomic(d / "summary.csv", lambda p: summary.to_csv(p, index=False))
    if calibration is not None and len(calibration):
        _atomic(d / "calibration.csv", lambda p: calibration.to_csv(p, index=False))
    else:
        (d / "calibration.csv").unlink(missing_ok=True)
    if audit is not None and len(audit):
        _atomic(d / "audit.csv", lambda p: audit.to_csv(p, index=False))
    else:  # no setting with rules: no audit (and none of an earlier run)
        (d / "audit.csv").unlink(missing_ok=True)
    doc = {"provenance": provenance, "settings": cfg_dicts,
           "summary": json.loads(summary.to_json(orient="records")),
           "audit": None if audit is None else json.loads(audit.to_json(orient="records"))}
    _atomic(d / "summary.json", lambda p: Path(p).write_text(json.dumps(doc, indent=1)))
    return d


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


def _cfg_dict(cfg: ReplayConfig) -> dict[str, Any]:
    """The setting as JSON values: optimizer and rules by their labels (a user's objects too)."""
    d = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    d["optimizer"] = cfg.optimizer_label
    d["goal"] = str(cfg.goal)
    d["rules"] = [label_of(r) for r in cfg.rules]
    return d
