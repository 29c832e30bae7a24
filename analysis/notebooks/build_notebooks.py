"""Write the analysis notebooks (one per paper) with nbformat, without outputs.

    python analysis/notebooks/build_notebooks.py  # rewrites choi/alrs/esgd/epbt/your_method.ipynb

Each notebook runs end to end on a fresh machine in well under a minute of CPU: it reads the
shipped default table (or a synthetic one when none is shipped), makes its own small result
files with tiny runs (written under $LCSIM_NOTEBOOK_OUT, else a fresh temporary directory),
and draws the paper's figures with `analysis`. Edit the cells here, not in the .ipynb files,
so the notebooks stay reproducible and free of stored outputs. (Over 400 lines: five
notebooks' cells, built together from one set of shared imports.)
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
%matplotlib inline
import os
import tempfile
from pathlib import Path

from IPython.display import display

# Result files of this notebook's tiny runs: $LCSIM_NOTEBOOK_OUT, else a fresh temp dir.
OUT = Path(os.environ.get("LCSIM_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="lcsim-nb-"))
OUT.mkdir(parents=True, exist_ok=True)
print("results in", OUT)"""

OPEN_TABLE = """\
import numpy as np

from lcsim.tabular.schema import TableError
from lcsim.tabular.table import LookupTable

try:
    table = LookupTable.open("default")
except TableError as e:  # no table shipped yet: a synthetic one with the same shape of data
    print(f"no shipped default table ({e}); using a synthetic table")
    from lcsim.tabular.testing import make_table

    def curve(i, e):
        rng = np.random.default_rng(i)
        if rng.random() < 0.15:  # untrainable configs stay at chance (Choi Fig. 1c)
            return np.full(len(e), 0.1) + rng.normal(0, 0.005, len(e))
        final, rate = rng.uniform(0.5, 0.99), rng.uniform(0.2, 3.0)
        return 0.1 + (final - 0.1) * (1 - np.exp(-rate * e))

    table = make_table(300, 10, curve, seconds=lambda i, e: np.full(len(e), 5.0 + i % 11))
table"""

REPLAY_IMPORTS = """\
from lcsim.hpo_sim.replay import (
    Goal,
    ReplayConfig,
    audit_frame,
    format_summary,
    run_settings,
    summarize,
    time_unit,
    with_baselines,
    write_outputs,
)
"""

# replays `settings` on `table` (5 repeats), prints the summary and audit, writes OUT/<out>
RUN_STUDY = """\
results = run_settings(table, settings, repeats=5, seed=0, progress=False)
summary = summarize(settings, results, seed=0, table=table)
audit = audit_frame(table, settings, results)
print(format_summary(summary, audit, unit=time_unit(table)))
write_outputs(OUT / "{out}", settings, results, summary, audit, {{"notebook": "{name}"}})"""

CHOI = [
    new_markdown_cell("""\
# Choi et al.: learning curves and early-termination rules

Figures 1-2 (random / top / bottom learning curves), final accuracy against each
hyperparameter, and Figures 4-5 (time to reach a goal accuracy with ETR-1 and ETR-2),
plus SMAC against random search over simulated time, and the learning-curve prediction rules
the paper compares itself with, on the same clock and in the same audit. The table is the
shipped default (`LookupTable.open("default")`: `digits-mlp`, 2,000 LCBench-style MLPs trained
for 50 epochs on scikit-learn's real 8x8 digits; see `tabular/data/digits-mlp/README.md`); the
HPO runs are small studies replayed here on the simulated clock (seconds of CPU), written to
files and read back the way `lcsim report` does.
"""),
    new_code_cell(SETUP),
    new_code_cell(OPEN_TABLE),
    new_markdown_cell("## Learning curves (Figs 1-2) and hyperparameters"),
    new_code_cell("""\
from lcsim.analysis import final_accuracy_vs_hyperparameters, learning_curves

display(learning_curves(table, n=100, seed=0))
display(final_accuracy_vs_hyperparameters(table))"""),
    new_markdown_cell("""\
## A small replay study

SMAC (random-forest surrogate with EI over the table's configs) and random search, each
without a rule, with ETR-1 (tau = 1) and with ETR-2 (p = 0.9, q = 0.75), to the top 2% of
the table's final accuracies. The paper uses 50 repeats and SMAC with 50 trees; here 5
repeats and 20 trees keep the notebook fast (`lcsim study --preset readme` runs 20 repeats,
`--preset choi-fig4` the paper's ETR-1 grid)."""),
    new_code_cell(REPLAY_IMPORTS + """
goal = Goal(top_percent=2)
opts = {"smac": {"n_trees": 20}, "random": {}}
settings = with_baselines([
    ReplayConfig(optimizer=o, rules=r, goal=goal, optimizer_options=opts[o])
    for o in ("smac", "random") for r in (("etr1:tau=1",), ("etr2:p=0.9",))])
""" + RUN_STUDY.format(out="study", name="choi")),
    new_markdown_cell("## Time to goal per rule (Figs 4-5) and SMAC vs random search"),
    new_code_cell("""\
from lcsim.analysis import best_so_far, load_replay, time_to_goal_distributions

study = load_replay(OUT / "study")
for opt, runs in study.runs.groupby("optimizer"):
    display(time_to_goal_distributions(runs, title=f"{opt}: time to reach the goal"))
no_rule = study.traces[study.traces["rules"] == "none"]
display(best_so_far(no_rule, panel_col="goal", goal=study.goal_accuracy()))"""),
    new_markdown_cell("""\
## Beyond ETR: learning-curve prediction rules on the same clock

Are simple rules enough? The rules Choi et al. compare themselves with, replayed beside
ETR-1, ETR-2 and the median rule: `lce` (Domhan et al. 2015: eleven parametric curve
families combined into a predictive distribution of the final accuracy; stop when
P(final > incumbent's final) < 0.05), `svr` (Baker et al. 2017: a nu-SVR from the curve so far,
its differences and the hyperparameters, trained on the configs completed so far), `gp`
(Google Vizier's performance-curve rule: a Gaussian process on the same kind of data) and `sh`
(successive halving's promotion rule, eta = 3). Random search, 3 repeats here (lce, svr and
gp cost milliseconds per decision); `lcsim study --preset beyond-etr` adds SMAC and more
repeats. The audit scores each rule on
the top configs it wrongly stopped and, for the predicting rules, on the error and calibration
of what they predicted."""),
    new_code_cell(REPLAY_IMPORTS + """from lcsim.hpo_sim.replay import calibration_frame

settings = with_baselines([
    ReplayConfig(optimizer="random", rules=r, goal=Goal(top_percent=5))
    for r in (("etr1:tau=3",), ("etr2:p=0.9",), ("median",), ("lce",), ("svr",), ("gp",),
              ("sh",))])
results = run_settings(table, settings, repeats=3, seed=0, progress=False)
summary = summarize(settings, results, seed=0)
audit = audit_frame(table, settings, results)
print(format_summary(summary, audit))
write_outputs(OUT / "beyond", settings, results, summary, audit, {"notebook": "choi"},
              calibration_frame(table, settings, results))"""),
    new_code_cell("""\
from lcsim.analysis import calibration_curves, load_replay, speedup_vs_wrong_stops

beyond = load_replay(OUT / "beyond")
display(speedup_vs_wrong_stops(beyond.summary, beyond.audit))
display(calibration_curves(beyond.calibration))"""),
    new_markdown_cell("## Everything as one HTML page (`lcsim report`)"),
    new_code_cell("""\
from lcsim.analysis import render_report

done = render_report(OUT / "report", table=table, replays=[study, beyond])
print(len(done["written"]), "figures; open", OUT / "report" / "index.html")
assert not done["skipped"], done["skipped"]"""),
]

ALRS = [
    new_markdown_cell("""\
# ALRS: automatic initial learning rate from the sign of the LR gradient

Training-loss curves with the rate ALRS finds against the standard rate, 10x and 0.1x of it,
the LR range test (torch-lr-finder), Prodigy and hypergradient descent (paper Tables 1-3,
Figure 1), and the seed study (Table 4: the rate found from several initial LR seeds and
random seeds). The comparison is a tiny version of `lcsim live alrs-compare --preset
mnist-small` (Adam only, 2 epochs on the first 512 digits of the shipped MNIST subset, two
seeds, three LR seeds), run through the same command with a preset file written here."""),
    new_code_cell(SETUP),
    new_code_cell("""\
import json

from lcsim.cli import main as lcsim

small_cnn = {"c1_filters": 8, "c2_filters": 16, "fc_units": 64, "filter_size": 3, "pool1": 2,
             "pool2": 2, "dropout": 0.0, "activation": "relu", "regularizer": "none"}
preset = {"description": "notebook-sized ALRS comparison", "device": "cpu", "experiments": [{
    "dataset": "mnist", "model": {"name": "small-cnn", "space": "mnist", "config": small_cnn},
    "optimizers": ["adam"], "epochs": 2, "batch_size": 32, "seeds": [0, 1],
    "train_examples": 512,
    "methods": ["alrs", "standard", "x10", "x0.1", "range_test", "prodigy", "hypergrad"],
    "range_test": {"start_lr": 1e-7, "end_lr": 10.0, "num_iter": 30},
    "seed_study_lrs": [0.001, 0.1, 10.0], "seed_study_seeds": [0, 1]}]}
(OUT / "alrs-tiny.json").write_text(json.dumps(preset))
rc = lcsim(["live", "alrs-compare", "--preset", str(OUT / "alrs-tiny.json"),
            "--out", str(OUT / "alrs"), "--no-progress"])
assert rc == 0"""),
    new_code_cell("""\
from lcsim.analysis import (
    alrs_curves, alrs_loss_curves, alrs_seed_figure, alrs_seed_table, load_alrs,
)

alrs = load_alrs(OUT / "alrs")
display(alrs_loss_curves(alrs_curves(alrs.records), smooth=5))
display(alrs_seed_figure(alrs.extra["seeds"]))
display(alrs_seed_table(alrs.extra["seeds"]))
alrs.summary[["optimizer", "method", "lr_mean", "loss_mean", "loss_se", "tune_batches"]]"""),
]

ESGD = [
    new_markdown_cell("""\
# ESGD: evolutionary stochastic gradient descent

Figure 1 (fitness over generations: best to 15th best of each population, single baseline)
and Figure 2 (share of offspring among the m-elitist survivors). The runs are a tiny version
of `lcsim live esgd --preset mnist-small` (4 parents, 6 offspring, 3 generations on the
first 256 digits of the shipped MNIST subset), run through the same command line, which
writes one Parquet file of records per method."""),
    new_code_cell(SETUP),
    new_code_cell("""\
from lcsim.cli import main as lcsim

rc = lcsim(["live", "esgd", "--preset", "mnist-small", "--method", "esgd", "population",
            "single", "--mu", "4", "--lam", "6", "--generations", "3",
            "--train-examples", "256", "--out", str(OUT / "esgd")])
assert rc == 0"""),
    new_code_cell("""\
from lcsim.analysis import esgd_fitness_bands, esgd_offspring_share, load_esgd

esgd = load_esgd(OUT / "esgd")
display(esgd_fitness_bands(esgd.records))
display(esgd_offspring_share(esgd.records))
esgd.summary"""),
]

EPBT = [
    new_markdown_cell("""\
# EPBT: evolutionary population-based training with TaylorGLO losses

Figure 2 (test accuracy of the fittest individual over epochs against PBT and Baseline 1),
Figure 6 (learning rate and momentum of the best individual) and Figure 5 (TaylorGLO loss
shapes along the best individual's ancestry, in the 2-D binary projection). The runs are
tiny (population 4, 3 generations of one epoch on 512 digits of the shipped MNIST subset,
two seeds) and are written in the layout of `lcsim live epbt --out DIR`."""),
    new_code_cell(SETUP),
    new_code_cell("""\
import dataclasses

from lcsim.hpo_sim.live.epbt import EPBTConfig, closing_tables, run
from lcsim.hpo_sim.live.epbt import results as layout
from lcsim.pregen.data import load_dataset
from lcsim.pregen.models import build_model
from lcsim.tabular.spaces import get_space

data = load_dataset("mnist")  # the shipped 10k subset
data = dataclasses.replace(data, train_x=data.train_x[:512], train_y=data.train_y[:512],
                           val_x=data.val_x[:400], val_y=data.val_y[:400],
                           test_x=data.test_x[:500], test_y=data.test_y[:500])
# the small batch-norm CNN of the mnist-small preset
cnn = {**get_space("mnist").fixed, "c1_filters": 8, "c2_filters": 16, "fc_units": 64,
       "filter_size": 3, "pool1": 2, "pool2": 2, "dropout": 0.0}

def factory(seed):
    return build_model("mnist", cnn, in_shape=data.in_shape, num_classes=data.num_classes,
                       seed=seed)

for method in ("epbt", "pbt", "baseline"):
    for seed in (0, 1):
        cfg = EPBTConfig(method=method, population=4, elites=2, generations=3,
                         epochs_per_generation=1, novelty_period=1, behaviour_size=100,
                         bn_batches=2, seed=seed)
        res = run(cfg, data, factory)
        d = layout.run_dir(OUT / "epbt", method, seed)
        d.mkdir(parents=True, exist_ok=True)
        res.records.to_parquet(d / layout.RECORDS)
        res.lineage.to_parquet(d / layout.LINEAGE)"""),
    new_code_cell("""\
from lcsim.analysis import (
    epbt_best_hyperparameters,
    epbt_test_accuracy,
    load_epbt,
    taylorglo_shapes,
)

epbt = load_epbt(OUT / "epbt")
display(epbt_test_accuracy(epbt.records))
display(epbt_best_hyperparameters(epbt.records, method="epbt", seed=0))
display(taylorglo_shapes({k: v for k, v in epbt.lineages.items() if k.startswith("epbt ")}))
closing_tables(epbt.records)"""),
]


YOUR_METHOD = [
    new_markdown_cell("""\
# Replay your own method

Your stopping rule and your optimizer run on the same simulated clock, traces, summary and
audit as lcsim's built-ins (ETR-1, ETR-2, median, random, SMAC, Hyperband) and as Optuna's
samplers and pruners. The two protocols (`lcsim.hpo_sim.replay.protocols`):

- a **stopping rule** has `should_stop(curve, epoch, state) -> bool`, asked after every
  trained epoch before the last. `curve` is the config's accuracy so far; `state` is the replay
  at that simulated moment, read-only, holding only what has been observed (`state.acc`,
  `state.completed`, `state.incumbent`, `state.running`, `state.candidate`);
- an **optimizer** is made fresh for every run as `YourClass(pool, rng, **options)` from the
  table's pool (unit-cube features of its configs, the candidate rows, T; no curves) and a
  seeded Generator, and has `ask(pending) -> Job(row, until) | None` and
  `tell(job, accuracy, epochs)`.

On the command line the same classes are `--rule mymodule:BelowIncumbent:ratio=0.8` and
`--optimizer mymodule:LocalSearch` (a module on `PYTHONPATH`)."""),
    new_code_cell(SETUP),
    new_code_cell(OPEN_TABLE),
    new_markdown_cell("## A stopping rule in 15 lines"),
    new_code_cell("""\
from dataclasses import dataclass


@dataclass(frozen=True)
class BelowIncumbent:
    \"\"\"Stop a config at epoch t >= min_epoch when its accuracy is below `ratio` times the
    accuracy the best finished config had at the same epoch.\"\"\"

    ratio: float = 0.8
    min_epoch: int = 2

    def should_stop(self, curve, epoch, state):
        if epoch < self.min_epoch or state.incumbent < 0:
            return False  # too early, or nothing finished yet to compare with
        return curve[-1] < self.ratio * state.acc[state.incumbent, epoch - 1]"""),
    new_markdown_cell("## An optimizer in 25 lines"),
    new_code_cell("""\
from lcsim.hpo_sim.replay import Job


class LocalSearch:
    \"\"\"n_init random configs; then, mostly, the untried config nearest to the best one so
    far in the unit cube, and with probability `explore` a random untried one.\"\"\"

    def __init__(self, pool, rng, n_init=5, explore=0.2):
        self.X, self.T, self.rng = pool.features, pool.T, rng
        self.free = np.zeros(len(self.X), dtype=bool)
        self.free[pool.candidates] = True
        self.n_init, self.explore = n_init, explore
        self.best, self.best_acc, self.told = None, -1.0, 0

    def ask(self, pending):
        free = np.flatnonzero(self.free)
        if free.size == 0:
            return None
        if self.told < self.n_init or self.best is None or self.rng.random() < self.explore:
            row = int(self.rng.choice(free))
        else:
            row = int(free[np.argmin(((self.X[free] - self.X[self.best]) ** 2).sum(axis=1))])
        self.free[row] = False
        return Job(row, self.T)

    def tell(self, job, accuracy, epochs):
        self.told += 1
        if epochs == self.T and accuracy > self.best_acc:  # only fully trained configs count
            self.best, self.best_acc = job.row, accuracy"""),
    new_markdown_cell("""\
## Against ETR-2 and SMAC

Each optimizer without a rule, with ETR-2 (p = 0.9) and with the new rule, to the top 5% of the
table's final accuracies; SMAC with 20 trees and 5 repeats keep the notebook fast. When Optuna
is installed, TPE with Optuna's median pruner joins through the bridge."""),
    new_code_cell(REPLAY_IMPORTS + """
goal = Goal(top_percent=5)
optimizers = {LocalSearch: {}, "smac": {"n_trees": 20}}
settings = [ReplayConfig(optimizer=o, rules=r, goal=goal, optimizer_options=opts)
            for o, opts in optimizers.items()
            for r in ((), ("etr2:p=0.9",), (BelowIncumbent(ratio=0.8),))]
try:
    import optuna  # noqa: F401  (optional extra: pip install "lcsim[optuna]")

    settings.append(ReplayConfig(optimizer="optuna:tpe", rules=("optuna:median",), goal=goal))
except ImportError:
    print("optuna is not installed: the Optuna setting is left out")
settings = with_baselines(settings)
""" + RUN_STUDY.format(out="mine", name="your_method")),
    new_markdown_cell("## Time to goal per method and rule, and the best accuracy over time"),
    new_code_cell("""\
from lcsim.analysis import best_so_far, load_replay, time_to_goal_distributions

study = load_replay(OUT / "mine")
runs = study.runs.assign(method=study.runs["optimizer"] + " + " + study.runs["rules"])
display(time_to_goal_distributions(runs, rule_col="method", baseline="smac + none",
                                   title="time to reach the goal"))
no_rule = study.traces[study.traces["rules"] == "none"]
display(best_so_far(no_rule, goal=study.goal_accuracy()[str(goal)]))"""),
]


def build() -> list[Path]:
    out = []
    for name, cells in (("choi", CHOI), ("alrs", ALRS), ("esgd", ESGD), ("epbt", EPBT),
                        ("your_method", YOUR_METHOD)):
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3",
                           "language": "python"},
            "language_info": {"name": "python"}})
        for i, cell in enumerate(nb.cells):
            cell.id = f"{name}-{i:02d}"  # stable ids: a rebuild changes only edited cells
        path = HERE / f"{name}.ipynb"
        nbformat.validate(nb)
        nbformat.write(nb, path)
        out.append(path)
    return out


if __name__ == "__main__":
    for p in build():
        print("wrote", p)
