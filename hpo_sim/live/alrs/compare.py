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
from the training itself (`train_batches`); `epoch_batches` is one epoch's batches, so
`tune_epochs` = tune_batches / epoch_batches is the cost in epochs (the paper: "typically
equal to that of one training epoch"). The seed study (Table 4) runs ALRS from each LR seed x
random seed and reports mean LR, standard error and % variation (= se / mean).

The seed study's LR seeds differ between the paper's sections: Section 4.1 says ten seeds in
[0.001, 10], Section 5 (with Table 4) ten in [5e-5, 10]. The shipped presets follow Section 5
(`seed_study_range: [5e-5, 10]`, 10 log-spaced values); set the range (or list the values in
`seed_study_lrs`) to take the other. `alrs_adjustment` picks the reading of the listing's
ADJUSTMENT line (`algorithm`); every row records it.

Every training run goes through `pregen.trainer.train` (the one training loop) with the
method's own torch.optim optimizer (Prodigy, hypergradient hooks): the same data order,
dropout and drop-last rule for every method. Each finished run is written to
OUT/runs/*.json at once, so an interrupted comparison resumes where it stopped; results are
assembled by `results.write_results` (layout in `results`) and summarized by `summary`.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lcsim.hpo_sim.live.alrs.algorithm import ADJUSTMENTS, ALRSConfig, alrs
from lcsim.hpo_sim.live.alrs.hypergrad import HypergradientLR
from lcsim.hpo_sim.live.alrs.results import RUN_FILES
from lcsim.hpo_sim.live.alrs.search import SBF
from lcsim.hpo_sim.live.common import (
    PresetError,
    build_config,
    check_model_spec,
    load_data,
    load_preset,
    model_factory,
    write_json,
)
from lcsim.pregen.models import fork_seeded
from lcsim.pregen.trainer import (
    OPTIMIZERS,
    TrainSpec,
    batches_per_epoch,
    epoch_batches,
    evaluate,
    make_optimizer,
    seeds,
    train,
)
from torch import nn

__all__ = ["METHODS", "PRESET_KEYS", "Experiment", "load_experiments", "run_experiment"]

METHODS = ("alrs", "standard", "x10", "x0.1", "range_test", "prodigy", "hypergrad", "grid")
PRESET_KEYS = {"required": ("experiments",), "optional": ("device",)}
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
    train_examples: int | None = None  # first N training examples (None: the whole split)
    # train-time augmentation ops (pregen.augment); None: the dataset's default. The paper
    # states none ("default datasets"); the presets keep the defaults (CIFAR crop + flip)
    augment: tuple[str, ...] | None = None
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
    alrs_adjustment: str = "last"  # the ADJUSTMENT reading: "last" (DESIGN) or "cumulative"
    # LR seeds of the study: listed, or `seed_study_count` log-spaced over `seed_study_range`
    # (paper: 10 in [5e-5, 10] in Section 5 / Table 4, but [0.001, 10] in Section 4.1)
    seed_study_lrs: tuple[float, ...] = ()
    seed_study_range: tuple[float, float] | None = None
    seed_study_count: int = 10
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
        check_model_spec(self.model, "Experiment.model")
        if self.augment is not None:
            from lcsim.pregen.augment import check_augment

            check_augment(self.augment)
        if self.alrs_adjustment not in ADJUSTMENTS:
            raise ValueError(f"Experiment.alrs_adjustment must be one of "
                             f"{', '.join(ADJUSTMENTS)}, got {self.alrs_adjustment!r}")
        if self.seed_study_range is not None:
            lo, hi = self.seed_study_range
            if self.seed_study_lrs:
                raise ValueError("Experiment: give seed_study_lrs or seed_study_range, not both")
            if not 0 < lo <= hi or self.seed_study_count < 1:
                raise ValueError(f"Experiment.seed_study_range must be 0 < low <= high with "
                                 f"seed_study_count >= 1, got {self.seed_study_range}, "
                                 f"{self.seed_study_count}")
        for name in ("seeds", "seed_study_seeds"):
            if any(s < 0 for s in getattr(self, name)):
                raise ValueError(f"Experiment.{name} must be >= 0, got {getattr(self, name)}")
        missing = {"start_lr", "end_lr", "num_iter"} - set(self.range_test)
        if "range_test" in self.methods and missing:
            raise ValueError(f"Experiment.range_test lacks {sorted(missing)}")
        for opt in self.optimizers:
            if opt not in OPTIMIZERS:
                raise ValueError(f"Experiment.optimizers: unknown optimizer {opt!r}; choose "
                                 f"from {', '.join(OPTIMIZERS)}")
            if "hypergrad" in self.methods and opt not in self.hypergrad_beta:
                raise ValueError(f"Experiment.hypergrad_beta has no beta for optimizer {opt!r}")
            if opt not in self.standard_lr:
                raise ValueError(f"Experiment.standard_lr has no rate for optimizer {opt!r}")
            if "grid" in self.methods and not self.grid.get(opt):
                raise ValueError(f"Experiment.grid has no rates for optimizer {opt!r}")

    @property
    def augment_ops(self) -> tuple[str, ...]:
        """The augmentation this experiment trains with (`augment`, else the default)."""
        from lcsim.pregen.data import default_augment

        return default_augment(self.dataset) if self.augment is None else self.augment

    @property
    def seed_study_values(self) -> tuple[float, ...]:
        """The study's LR seeds: `seed_study_lrs`, else log-spaced over `seed_study_range`."""
        if self.seed_study_range is None:
            return tuple(self.seed_study_lrs)
        lo, hi = self.seed_study_range
        return tuple(float(f"{v:.3g}") for v in np.geomspace(lo, hi, self.seed_study_count))

    @property
    def label(self) -> str:
        m = self.model.get("name") or self.model.get("named") or f"{self.model['space']}-space-cnn"
        return f"{self.dataset}-{m}-{self.epochs}ep"


def load_experiments(name_or_path: str) -> tuple[dict[str, Any], list[Experiment]]:
    """(the preset JSON, its experiments) of an ALRS preset name or .json path."""
    preset = load_preset("alrs", name_or_path, **PRESET_KEYS)
    exps = preset["experiments"]
    where = f"ALRS preset {name_or_path}: experiments"
    if not isinstance(exps, list) or not exps:
        raise PresetError(f"{where}: expected a non-empty list of experiments, got {exps!r}")
    return preset, [build_config(Experiment, e, f"{where}[{i}]") for i, e in enumerate(exps)]


# ---------------------------------------------------------------- training runs (pregen)


def _model(exp: Experiment, data, init_seed: int, device: str) -> nn.Module:
    return model_factory(exp.model, data, "Experiment.model")(init_seed).to(device)


def _train(exp: Experiment, data, model, optimizer, seed: int, device: str) -> dict[str, Any]:
    """Train with `optimizer` through pregen.trainer.train (data order and dropout from
    `seed`, as for every method); per-batch losses are recorded."""
    losses: list[torch.Tensor] = []

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, y)
        losses.append(loss.detach())  # stays on the device: no sync per batch
        return loss

    spec = TrainSpec(epochs=exp.epochs, batch_size=exp.batch_size, seed=seed)
    res = train(model, data, spec, device=device, loss_fn=loss_fn, optimizer=optimizer)
    status, final, acc = res.status, math.nan, math.nan
    if status == "complete":
        final, _ = evaluate(model, data, "train")
        acc = res.final_accuracy
        if not math.isfinite(final):
            status = "diverged"
    curve = torch.stack(losses).float().cpu().numpy() if losses else np.zeros(0)
    return {
        "status": status,
        "final_loss": final,
        # the paper's number; a diverged run has no finished epoch to report
        "last_epoch_loss": res.epochs[-1].train_loss if res.status == "complete" else math.nan,
        "val_accuracy": acc,
        "train_batches": len(losses),
        "curve": [float(v) for v in curve],
    }


def _alrs_rate(exp, data, opt_name, seed, device, initial_lr=1.0):
    init_seed, data_seed, dropout_seed = seeds(seed)
    model = _model(exp, data, init_seed, device)
    opt = make_optimizer(opt_name, model.parameters(), initial_lr)
    gen = torch.Generator(device=device).manual_seed(data_seed)
    nb = batches_per_epoch(data.train_y.shape[0], exp.batch_size)
    cfg = ALRSConfig(initial_lr=initial_lr, signals_per_epoch=exp.signals_per_epoch,
                     adjustment=exp.alrs_adjustment)

    def batches():
        return epoch_batches(data, exp.batch_size, generator=gen)

    return alrs(model, opt, batches, nb, config=cfg, search=SBF(initial_lr), seed=dropout_seed)


class _Pass:
    """One pass over the training split, re-iterable (what torch-lr-finder's iterator wants)."""

    def __init__(self, data, batch_size: int, gen: torch.Generator):
        self.data, self.batch_size, self.gen = data, batch_size, gen

    def __iter__(self):
        return epoch_batches(self.data, self.batch_size, generator=self.gen)


def _range_test(exp, data, opt_name, seed, device) -> tuple[float, float, int]:
    """(steepest-gradient suggestion, min-loss / 10, batches) of torch-lr-finder's range test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    init_seed, data_seed, dropout_seed = seeds(seed)
    model = _model(exp, data, init_seed, device)
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
    model = _model(exp, data, init_seed, device)
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


def run_experiment(exp: Experiment, out: Path, *, device: str = "cpu",
                   data_root: str | None = None,
                   progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or resume) one experiment; returns (runs, seed_study) tables."""
    from tqdm.auto import tqdm

    runs_dir = Path(out) / RUN_FILES
    runs_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(exp.dataset, data_root, device=device, val_size=exp.val_size,
                     train_examples=exp.train_examples, augment=exp.augment)
    # (key, method, fixed-rate identity or None, job). Fixed-rate runs (standard, x10, x0.1,
    # grid) are deterministic given (optimizer, rate, seed): one that repeats another is copied.
    jobs: list[tuple[str, str, tuple | None, Callable[[], dict[str, Any]]]] = []
    for opt_name in exp.optimizers:
        for method in exp.methods:
            rates = exp.grid[opt_name] if method == "grid" else [None]
            for lr in rates:
                for seed in exp.seeds:
                    fixed = _FIXED.get(method)
                    rate = lr if method == "grid" else (
                        exp.standard_lr[opt_name] * fixed if fixed else None)
                    ident = (opt_name, seed, float(f"{rate:.6e}")) if rate else None
                    jobs.append((_key(opt_name, method, seed, lr), method, ident,
                                 lambda o=opt_name, m=method, s=seed, r=lr: _one_run(
                                     exp, data, o, m, s, device, grid_lr=r)))
        for lr0 in exp.seed_study_values:
            for seed in exp.seed_study_seeds:

                def study(o=opt_name, s=seed, l0=lr0):
                    r = _alrs_rate(exp, data, o, s, device, initial_lr=l0)
                    return {"optimizer": o, "method": "seed_study", "seed": s, "lr_seed": l0,
                            "lr": r.lr, "tune_batches": r.batches, "tune_seconds": r.seconds}

                jobs.append((_key(opt_name, "seedstudy", seed, lr0), "seed_study", None, study))
    rows = []
    done: dict[tuple, dict[str, Any]] = {}
    bar = tqdm(jobs, desc=exp.label, disable=not progress, unit="run")
    for key, method, ident, job in bar:
        path = runs_dir / f"{exp.label}-{key}.json"
        if path.exists():  # resume: finished runs are kept
            row = json.loads(path.read_text())
        else:
            bar.set_postfix_str(key)
            if ident in done:
                row = {**done[ident], "method": method}
            else:
                row = {"experiment": exp.label, "dataset": exp.dataset, **job()}
            write_json(path, row)  # atomic: a killed run leaves no half-written result
        if ident is not None:
            done.setdefault(ident, row)
        rows.append(row)
    df = pd.DataFrame(rows)
    # experiment-level facts on every row (computed here, so resumed rows get them too)
    nb = batches_per_epoch(data.train_y.shape[0], exp.batch_size)
    df["alrs_adjustment"] = exp.alrs_adjustment
    df["epoch_batches"] = nb
    df["tune_epochs"] = df["tune_batches"] / nb
    study = df[df["method"] == "seed_study"].reset_index(drop=True)
    runs = df[df["method"] != "seed_study"].reset_index(drop=True)
    return runs, study
