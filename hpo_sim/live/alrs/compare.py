"""ALRS against the rates practitioners use (ALRS paper, Sections 4 and 5).

For one dataset, model and optimizer, every method trains the same initial weights on the same
data order for the same number of epochs, once per seed:

- `alrs`: the ALRS rate (search value / 10), found per seed on that seed's initial weights;
- `standard`, `x10`, `x0.1`: the preset's standard rate per optimizer and its 10x / 0.1x;
- `range_test`: torch-lr-finder's LR range test (exponential sweep, `num_iter` batches). Its
  suggestion rule is the package's own "steepest gradient" of the smoothed loss (the minimum of
  np.gradient over the sweep, skipping the first 10 and last 5 points, as in
  `LRFinder.plot(suggest_lr=True)`); it is noisy, so the fastai-style "minimum loss / 10" of
  the same sweep is recorded beside it (`alt_lr`) but not trained;
- `prodigy`: Prodigy (prodigyopt, lr = 1, its defaults), learning-rate free;
- `hypergrad`: online hypergradient descent (hypergrad.py) on the same torch.optim optimizer,
  Baydin et al.'s initial rate and beta;
- `grid`: a log-spaced grid of rates; "grid best 3" are the three rates with the lowest mean
  final loss.

The final loss is the mean cross-entropy over the whole training split after the last epoch
(eval mode); the paper's number, the mean training loss of the last epoch, is kept as
`last_epoch_loss`. Cost columns count batches (forward + backward passes) spent choosing the
rate (`tune_batches`: ALRS's search, the range test's sweep, the grid's full trainings) apart
from the training itself (`train_batches`). The seed study (Table 4) runs ALRS from each LR
seed x random seed and reports mean LR, standard error and % variation (= se / mean).

Each finished run is written to OUT/runs/*.json at once, so an interrupted comparison resumes
where it stopped; results are assembled into OUT/runs.parquet, OUT/seed_study.parquet,
OUT/summary.parquet (+ summary.md) and one PNG of training-loss curves per optimizer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lcsim.hpo_sim.live.alrs import ALRSConfig, alrs
from lcsim.hpo_sim.live.hypergrad import HypergradientLR
from lcsim.hpo_sim.live.search import SBF
from torch import nn

__all__ = [
    "METHODS",
    "Experiment",
    "load_preset",
    "preset_path",
    "run_experiment",
    "summarize",
    "plot_curves",
]

METHODS = ("alrs", "standard", "x10", "x0.1", "range_test", "prodigy", "hypergrad", "grid")
PRESET_DIR = Path(__file__).parent / "presets"
_FIXED = {"standard": 1.0, "x10": 10.0, "x0.1": 0.1, "grid": 1.0}  # multiples of standard_lr


@dataclass(frozen=True)
class Experiment:
    """One comparison: a dataset, a model and the optimizers to compare (trainer names)."""

    dataset: str
    model: dict[str, Any]  # {"named": "mnist-cnn"} or {"space": "mnist", "config": {...}}
    # (an optional "name" labels a space model in results)
    optimizers: tuple[str, ...] = ("adam", "momentum")  # paper: Adam defaults, SGD momentum 0.9
    epochs: int = 10  # paper: MNIST 10, CIFAR 50
    batch_size: int = 128  # paper
    seeds: tuple[int, ...] = (0, 1, 2)  # paper: three random seeds
    val_size: int | None = None  # None: pregen's default validation split
    train_subset: int | None = None  # first N training examples (None: the whole split)
    # Standard rates (Zhang et al. 2019, the paper's reference): Adam 1e-3; SGD momentum 0.9
    # at 0.01 (0.1 is the CIFAR ResNet custom; 0.01 is the common MNIST CNN rate).
    standard_lr: dict[str, float] = field(default_factory=lambda: {"adam": 1e-3, "momentum": 0.01})
    grid: dict[str, list[float]] = field(default_factory=dict)  # rates per optimizer
    methods: tuple[str, ...] = METHODS
    range_test: dict[str, float] = field(
        default_factory=lambda: {"start_lr": 1e-7, "end_lr": 10.0, "num_iter": 100}
    )
    # Baydin et al. (2018): initial rate 1e-3; beta 1e-3 (SGD / SGD-N), 1e-7 (Adam).
    hypergrad_lr: float = 1e-3
    hypergrad_beta: dict[str, float] = field(
        default_factory=lambda: {"sgd": 1e-3, "momentum": 1e-3, "nesterov": 1e-3, "adam": 1e-7}
    )
    signals_per_epoch: int = 50  # ALRS window = num_batches // this (paper: 50)
    seed_study_lrs: tuple[float, ...] = ()  # paper Table 4: 10 log-spaced in [5e-5, 10]
    seed_study_seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        bad = set(self.methods) - set(METHODS)
        if bad:
            raise ValueError(f"Experiment.methods: unknown {sorted(bad)}; choose from {METHODS}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"Experiment.epochs and batch_size must be >= 1, got {self.epochs}, "
                f"{self.batch_size}"
            )
        for opt in self.optimizers:
            if opt not in self.standard_lr:
                raise ValueError(f"Experiment.standard_lr has no rate for optimizer {opt!r}")
            if "grid" in self.methods and not self.grid.get(opt):
                raise ValueError(f"Experiment.grid has no rates for optimizer {opt!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Experiment:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown experiment keys {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        for k in ("optimizers", "seeds", "methods", "seed_study_lrs", "seed_study_seeds"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    @property
    def label(self) -> str:
        m = self.model.get("name") or self.model.get("named") or f"{self.model['space']}-space-cnn"
        return f"{self.dataset}-{m}-{self.epochs}ep"


def preset_path(name: str) -> Path:
    """A preset name (`mnist-small`, `paper`) or a path to a JSON file."""
    p = Path(name)
    if p.suffix == ".json" and p.exists():
        return p
    p = PRESET_DIR / f"alrs-{name}.json"
    if not p.exists():
        have = sorted(q.stem.removeprefix("alrs-") for q in PRESET_DIR.glob("alrs-*.json"))
        raise FileNotFoundError(f"no ALRS preset {name!r} ({p}); presets: {', '.join(have)}")
    return p


def load_preset(name: str) -> tuple[dict[str, Any], list[Experiment]]:
    """(the preset JSON, its experiments)."""
    path = preset_path(name)
    try:
        raw = json.loads(path.read_text())
        return raw, [Experiment.from_dict(e) for e in raw["experiments"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"bad ALRS preset {path}: {e}") from e


# ---------------------------------------------------------------- building blocks (pregen)


def _load_data(exp: Experiment, device: str, data_root: str | None):
    from lcsim.pregen.data import load_dataset

    data = load_dataset(exp.dataset, data_root, val_size=exp.val_size, device=device)
    if exp.train_subset is not None:
        n = exp.train_subset
        if not 0 < n <= data.train_y.shape[0]:
            raise ValueError(
                f"Experiment.train_subset={n} must be in [1, {data.train_y.shape[0]}] for "
                f"{exp.dataset}"
            )
        data = dataclasses.replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n])
    return data


def _build_model(exp: Experiment, data, init_seed: int, device: str) -> nn.Module:
    from lcsim.pregen.models import build_model, build_named_model

    kw = {"in_shape": data.in_shape, "num_classes": data.num_classes, "seed": init_seed}
    if "named" in exp.model:
        model = build_named_model(exp.model["named"], **kw)
    else:
        model = build_model(exp.model["space"], exp.model["config"], **kw)
    return model.to(device)


def _num_batches(data, batch_size: int) -> int:
    n = data.train_y.shape[0]
    drop_last = n % batch_size == 1  # what pregen.trainer.train_epoch does
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def _train(exp: Experiment, data, model, optimizer, seed: int, device: str) -> dict[str, Any]:
    """Train with `optimizer` via pregen.trainer.train_epoch; per-batch losses are recorded."""
    from lcsim.pregen.models import fork_seeded
    from lcsim.pregen.trainer import TrainSpec, evaluate, seeds, train_epoch

    _, data_seed, dropout_seed = seeds(seed)
    gen = torch.Generator(device=device).manual_seed(data_seed)
    spec = TrainSpec(epochs=exp.epochs, batch_size=exp.batch_size)
    losses: list[torch.Tensor] = []

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, y)
        losses.append(loss.detach())  # stays on the device: no sync per batch
        return loss

    epoch_losses: list[float] = []
    status = "complete"
    with fork_seeded(dropout_seed, device):
        for _ in range(exp.epochs):
            mean = train_epoch(model, data, optimizer, spec, generator=gen, loss_fn=loss_fn)
            epoch_losses.append(mean)
            if not math.isfinite(mean):
                status = "diverged"
                break
    final, acc = (math.nan, math.nan)
    if status == "complete":
        final, _ = evaluate(model, data, "train")
        _, acc = evaluate(model, data, "val")
        if not math.isfinite(final):
            status = "diverged"
    curve = torch.stack(losses).float().cpu().numpy() if losses else np.zeros(0)
    return {
        "status": status,
        "final_loss": final,
        "last_epoch_loss": epoch_losses[-1],
        "val_accuracy": acc,
        "train_batches": len(losses),
        "curve": [float(v) for v in curve],
    }


def _alrs_rate(exp, data, opt_name, seed, device, initial_lr=1.0):
    from lcsim.pregen.trainer import make_optimizer, seeds

    init_seed, data_seed, dropout_seed = seeds(seed)
    model = _build_model(exp, data, init_seed, device)
    opt = make_optimizer(opt_name, model.parameters(), initial_lr)
    gen = torch.Generator(device=device).manual_seed(data_seed)
    nb = _num_batches(data, exp.batch_size)
    cfg = ALRSConfig(initial_lr=initial_lr, signals_per_epoch=exp.signals_per_epoch)

    def batches():
        return data.batches("train", exp.batch_size, shuffle=True, generator=gen)

    return alrs(model, opt, batches, nb, config=cfg, search=SBF(initial_lr), seed=dropout_seed)


class _Pass:
    """One pass over the training split, re-iterable (what torch-lr-finder's iterator wants)."""

    def __init__(self, data, batch_size: int, gen: torch.Generator):
        self.data, self.batch_size, self.gen = data, batch_size, gen

    def __iter__(self):
        return self.data.batches("train", self.batch_size, shuffle=True, generator=self.gen)


def _range_test(exp, data, opt_name, seed, device) -> tuple[float, float, int]:
    """(steepest-gradient suggestion, min-loss / 10, batches) of torch-lr-finder's range test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lcsim.pregen.models import fork_seeded
    from lcsim.pregen.trainer import make_optimizer, seeds
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    init_seed, data_seed, dropout_seed = seeds(seed)
    model = _build_model(exp, data, init_seed, device)
    rt = exp.range_test
    opt = make_optimizer(opt_name, model.parameters(), rt["start_lr"])
    gen = torch.Generator(device=device).manual_seed(data_seed)
    finder = LRFinder(model, opt, nn.CrossEntropyLoss(), device=device)
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with fork_seeded(dropout_seed, device), quiet[0], quiet[1]:  # its prints and tqdm bar
        finder.range_test(
            TrainDataLoaderIter(_Pass(data, exp.batch_size, gen)),
            end_lr=rt["end_lr"],
            num_iter=int(rt["num_iter"]),
        )
        fig, ax = plt.subplots()
        _, steepest = finder.plot(ax=ax, suggest_lr=True)
        plt.close(fig)
    lrs, losses = np.array(finder.history["lr"]), np.array(finder.history["loss"])
    min_over_10 = float(lrs[np.argmin(losses)] / 10)
    return float(steepest), min_over_10, len(lrs)


# ---------------------------------------------------------------- one run per (method, seed)


def _one_run(exp, data, opt_name, method, seed, device, grid_lr=None) -> dict[str, Any]:
    from lcsim.pregen.trainer import make_optimizer, seeds
    from prodigyopt import Prodigy

    init_seed = seeds(seed)[0]
    std = exp.standard_lr[opt_name]
    row: dict[str, Any] = {"tune_batches": 0, "tune_seconds": 0.0, "alt_lr": math.nan}
    hd = None
    if method == "alrs":
        res = _alrs_rate(exp, data, opt_name, seed, device)
        lr = res.lr
        row.update(tune_batches=res.batches, tune_seconds=res.seconds)
    elif method in ("standard", "x10", "x0.1"):
        lr = std * {"standard": 1.0, "x10": 10.0, "x0.1": 0.1}[method]
    elif method == "range_test":
        lr, alt, n = _range_test(exp, data, opt_name, seed, device)
        row.update(tune_batches=n, alt_lr=alt)
    elif method == "grid":
        lr = grid_lr
    elif method == "prodigy":
        lr = 1.0  # Prodigy's documented setting; it estimates the step size itself
    elif method == "hypergrad":
        lr = exp.hypergrad_lr
    else:
        raise ValueError(f"unknown method {method!r}")
    model = _build_model(exp, data, init_seed, device)
    if method == "prodigy":
        opt = Prodigy(model.parameters(), lr=1.0)
    else:
        opt = make_optimizer(opt_name, model.parameters(), lr)
    if method == "hypergrad":
        hd = HypergradientLR(opt, exp.hypergrad_beta[opt_name])
    out = _train(exp, data, model, opt, seed, device)
    if hd is not None:
        row["alt_lr"] = hd.lrs[-1]  # the rate HD ended at
    return {"optimizer": opt_name, "method": method, "seed": seed, "lr": float(lr), **row, **out}


def _key(opt_name: str, method: str, seed: int, lr: float | None) -> str:
    lr_part = "" if lr is None else f"-{lr:.3e}"
    return f"{opt_name}-{method}{lr_part}-s{seed}"


def run_experiment(
    exp: Experiment,
    out: Path,
    *,
    device: str = "cpu",
    data_root: str | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or resume) one experiment; returns (runs, seed_study) tables."""
    from tqdm.auto import tqdm

    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    data = _load_data(exp, device, data_root)
    # (key, method, fixed-rate identity or None, job). Fixed-rate runs (standard, x10, x0.1,
    # grid) are deterministic given (optimizer, rate, seed): one that repeats another is copied.
    jobs: list[tuple[str, str, tuple | None, Callable[[], dict[str, Any]]]] = []
    for opt_name in exp.optimizers:
        for method in exp.methods:
            rates = exp.grid[opt_name] if method == "grid" else [None]
            for lr in rates:
                for seed in exp.seeds:
                    fixed = _FIXED.get(method)
                    rate = (
                        lr
                        if method == "grid"
                        else (exp.standard_lr[opt_name] * fixed if fixed else None)
                    )
                    ident = (opt_name, seed, float(f"{rate:.6e}")) if rate else None
                    jobs.append(
                        (
                            _key(opt_name, method, seed, lr),
                            method,
                            ident,
                            lambda o=opt_name, m=method, s=seed, r=lr: _one_run(
                                exp, data, o, m, s, device, grid_lr=r
                            ),
                        )
                    )
        for lr0 in exp.seed_study_lrs:
            for seed in exp.seed_study_seeds:

                def study(o=opt_name, s=seed, l0=lr0):
                    r = _alrs_rate(exp, data, o, s, device, initial_lr=l0)
                    return {
                        "optimizer": o,
                        "method": "seed_study",
                        "seed": s,
                        "lr_seed": l0,
                        "lr": r.lr,
                        "tune_batches": r.batches,
                        "tune_seconds": r.seconds,
                    }

                jobs.append((_key(opt_name, "seedstudy", seed, lr0), "seed_study", None, study))
    rows = []
    done: dict[tuple, dict[str, Any]] = {}
    bar = tqdm(jobs, desc=exp.label, disable=not progress, unit="run")
    for key, method, ident, job in bar:
        path = out / "runs" / f"{exp.label}-{key}.json"
        if path.exists():  # resume: finished runs are kept
            row = json.loads(path.read_text())
        else:
            bar.set_postfix_str(key)
            if ident in done:
                row = {**done[ident], "method": method}
            else:
                row = {"experiment": exp.label, "dataset": exp.dataset, **job()}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(row))
            tmp.replace(path)  # atomic: a killed run leaves no half-written result
        if ident is not None:
            done.setdefault(ident, row)
        rows.append(row)
    df = pd.DataFrame(rows)
    study = df[df["method"] == "seed_study"].reset_index(drop=True)
    runs = df[df["method"] != "seed_study"].reset_index(drop=True)
    return runs, study


# ---------------------------------------------------------------- tables and plot


def _se(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan


def summarize(runs: pd.DataFrame, study: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (experiment, optimizer, method): final loss mean +- se, LR, cost in batches.

    Grid rates appear as `grid lr=...` rows and as `grid best 3` (the three rates with the
    lowest mean final loss: loss range over them, total grid cost). `within_grid_best3` says
    whether a method's mean final loss is at most the third-best grid rate's.
    """
    out = []
    for (exp_label, opt), g in runs.groupby(["experiment", "optimizer"], sort=False):
        rows = []
        for (method, lr_key), r in g.assign(
            lr_key=np.where(g["method"] == "grid", g["lr"], np.nan)
        ).groupby(["method", "lr_key"], dropna=False, sort=False):
            name = method if method != "grid" else f"grid lr={lr_key:.3g}"
            rows.append(
                {
                    "experiment": exp_label,
                    "optimizer": opt,
                    "method": name,
                    "lr_mean": r["lr"].mean(),
                    "lr_se": _se(r["lr"]),
                    "loss_mean": r["final_loss"].mean(skipna=False),  # NaN if any seed diverged
                    "loss_se": _se(r["final_loss"]),
                    "last_epoch_loss": r["last_epoch_loss"].mean(),
                    "val_accuracy": r["val_accuracy"].mean(),
                    "tune_batches": r["tune_batches"].mean(),
                    "train_batches": r["train_batches"].mean(),
                    "diverged": int((r["status"] != "complete").sum()),
                    "n": len(r),
                }
            )
        tab = pd.DataFrame(rows)
        grid = tab[tab["method"].str.startswith("grid lr=")].sort_values("loss_mean")
        if len(grid) >= 3:
            best = grid.head(3)
            tab = pd.concat(
                [
                    tab,
                    pd.DataFrame(
                        [
                            {
                                "experiment": exp_label,
                                "optimizer": opt,
                                "method": "grid best 3",
                                "lr_mean": float(np.exp(np.log(best["lr_mean"]).mean())),
                                "lr_se": math.nan,
                                "loss_mean": best["loss_mean"].min(),
                                "loss_se": best["loss_mean"].max() - best["loss_mean"].min(),
                                "tune_batches": grid["train_batches"].sum(),
                                "train_batches": best["train_batches"].mean(),
                                "diverged": 0,
                                "n": 3,
                            }
                        ]
                    ),
                ],
                ignore_index=True,
            )
            third = best["loss_mean"].max()
            tab["within_grid_best3"] = tab["loss_mean"] <= third
        out.append(tab)
    summary = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if study is not None and len(study):
        st = study.groupby(["experiment", "optimizer"])["lr"].agg(["mean", _se, "count"])
        st = st.rename(
            columns={"mean": "study_lr_mean", "_se": "study_lr_se", "count": "study_n"}
        ).reset_index()
        st["study_variation_pct"] = 100 * st["study_lr_se"] / st["study_lr_mean"]
        summary = summary.merge(st, on=["experiment", "optimizer"], how="left")
    return summary


def plot_curves(runs: pd.DataFrame, summary: pd.DataFrame, optimizer: str, smooth: int = 10):
    """Training loss per batch (mean over seeds, running mean over `smooth`), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    r = runs[runs["optimizer"] == optimizer]
    s = summary[summary["optimizer"] == optimizer]
    best = s[s["method"].str.startswith("grid lr=")].sort_values("loss_mean").head(1)
    for method, g in r.groupby("method", sort=False):
        if method == "grid":
            if best.empty:
                continue
            g = g[np.isclose(g["lr"], best["lr_mean"].iloc[0])]
            method = f"grid best ({best['lr_mean'].iloc[0]:.2g})"
        curves = [np.asarray(c, dtype=float) for c in g["curve"] if len(c)]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        mean = np.mean([c[:n] for c in curves], axis=0)
        k = max(1, min(smooth, n))
        sm = np.convolve(mean, np.ones(k) / k, mode="valid")
        lr = g["lr"].mean()
        ax.plot(np.arange(k, n + 1), sm, label=f"{method} (lr {lr:.2g})")
    ax.set_yscale("log")
    ax.set_xlabel("batch")
    ax.set_ylabel(f"training loss (mean of seeds, running mean {smooth})")
    ax.set_title(f"{', '.join(sorted(r['experiment'].unique()))}: {optimizer}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_results(out: Path, runs: pd.DataFrame, study: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """Parquet tables (with provenance in the key-value metadata), summary.md and PNG plots."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    summary = summarize(runs, study)
    kv = {b"lcsim": json.dumps(meta, default=str).encode()}
    for name, df in (("runs", runs), ("seed_study", study), ("summary", summary)):
        table = pa.Table.from_pandas(df, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **kv})
        pq.write_table(table, out / f"{name}.parquet")
    (out / "summary.md").write_text(format_summary(summary))
    for opt in runs["optimizer"].unique():
        fig = plot_curves(runs, summary, opt)
        fig.savefig(out / f"loss-{opt}.png", dpi=120)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return summary


def format_summary(summary: pd.DataFrame) -> str:
    lines = [
        "| experiment | optimizer | method | LR | final loss (mean +- se) | tune batches |"
        " train batches | within grid best 3 |",
        "|---" * 8 + "|",
    ]
    for _, r in summary.iterrows():
        pm = "range" if r["method"] == "grid best 3" else "+-"
        within = r.get("within_grid_best3", "")
        lines.append(
            f"| {r['experiment']} | {r['optimizer']} | {r['method']} | {r['lr_mean']:.3g} | "
            f"{r['loss_mean']:.4f} {pm} {r['loss_se']:.4f} | {r['tune_batches']:.0f} | "
            f"{r['train_batches']:.0f} | {within} |"
        )
    if "study_lr_mean" in summary:
        st = summary.drop_duplicates(["experiment", "optimizer"])
        lines += [
            "",
            "| experiment | optimizer | seed study mean LR | se | % variation | n |",
            "|---" * 6 + "|",
        ]
        for _, r in st.iterrows():
            if pd.notna(r.get("study_lr_mean")):
                lines.append(
                    f"| {r['experiment']} | {r['optimizer']} | {r['study_lr_mean']:.4g} | "
                    f"{r['study_lr_se']:.2g} | {r['study_variation_pct']:.1f}% | "
                    f"{r['study_n']:.0f} |"
                )
    return "\n".join(lines) + "\n"


def experiment_meta(preset: dict, exps: list[Experiment], device: str) -> dict[str, Any]:
    """Provenance stored in every result file."""
    import platform
    import subprocess

    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    dev = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()
    return {
        "preset": preset,
        "experiments": [asdict(e) for e in exps],
        "device": device,
        "device_name": dev,
        "torch": torch.__version__,
        "code_revision": rev,
    }
