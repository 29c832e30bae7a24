"""EPBT (Liang et al., "Regularized Evolutionary Population-Based Training"), PBT and Baseline 1.

All three train on `hpo_sim.live.population` (stacked members, one backward pass for all), so
they share one engine and differ only in their decisions:

- **EPBT** (Algorithm 1). Generation 0 trains the P random initial individuals for E epochs and
  evaluates them (the paper's "40 new loss functions in the first generation"). Each later
  generation g: tournament selection (t = 2) of P - k parents from M_g; mutation then uniform
  crossover of their h (the crossover partner is another selected parent, with its mutated h);
  children copy their parent's weights *and* optimizer state, train E epochs, then batch-norm
  statistics are recalibrated on training batches and fitness (validation accuracy) and the
  behaviour vector (correct/incorrect on N = 400 fixed validation images) are measured.
  The k elites of M_g (fitness order, or with Novelty Selection on: the k most novel of the
  m = 1.5 k fittest) are carried over untouched (no training, same weights), and
  M_{g+1} = children + elites. Novelty Pulsation: off for generations [0, p), on for [p, 2p)...
- **h** = (theta_0..theta_7, lr_scale, lr_decay, momentum). Learning rate at global epoch e of
  T = G * E: lr_scale * base_lr * lr_decay ** (number of milestones <= e), milestones at
  0.3, 0.6, 0.8 of T: Baseline 1's schedule (0.1, /5 at 60/120/160 of 200) with a tunable
  scale and decay (paper 4.1); lr_scale = 1, lr_decay = 0.2 rediscovers it.
- **PBD** (equation 3): the training target is alpha * softmax(teacher) + (1 - alpha) * one-hot
  with the teacher = the fittest individual of M_g (eval mode, no gradient). The ramp follows
  PS-KD (Kim et al. 2020, the paper's reference [23]): alpha(e) = alpha_max * e / T at global
  epoch e (0 at the start of training, alpha_max = 0.8 at the end); generation 0 has no teacher.
- **PBT** (Baseline 2): every member trains E epochs with cross-entropy, SGD momentum 0.9 and its
  own constant lr (log-uniform in [1e-4, 0.1]); then `pbt.exploit` / `pbt.explore`.
- **Baseline 1**: one member, cross-entropy, SGD momentum 0.9, the step schedule above, T epochs.

All members of a population see the same shuffled batches in an epoch (one order per epoch,
seeded), which lets PBD compute the teacher's predictions once per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from lcsim.hpo_sim.live import genetic, pbt
from lcsim.hpo_sim.live.epbt_engine import Engine, cat_optimizers, pbd_target, take_optimizer
from lcsim.hpo_sim.live.genetic import HSpace
from lcsim.hpo_sim.live.population import Population, StackedOptimizer
from lcsim.hpo_sim.live.taylorglo import THETA_HIGH, THETA_LOW, as_target, taylorglo_loss
from torch import Tensor, nn

__all__ = [
    "METHODS",
    "EPBTConfig",
    "EPBTRun",
    "epbt_space",
    "step_lr",
    "pbd_alpha",
    "pbd_target",
    "soft_cross_entropy",
    "RunResult",
    "run",
    "lineage",
    "summarize",
    "epochs_to_pass",
]

METHODS = ("epbt", "epbt-no-novelty", "epbt-no-pbd", "epbt-ce", "pbt", "baseline")

# Ranges of the non-loss hyperparameters (the paper does not give them; chosen so the
# Baseline 1 schedule, lr_scale 1 / lr_decay 0.2 / momentum 0.9, lies inside).
LR_SCALE = (0.1, 2.0)    # x base_lr: initial lr in [0.01, 0.2]
LR_DECAY = (0.05, 1.0)   # factor per milestone; 1 = no decay
MOMENTUM = (0.5, 0.99)


@dataclass(frozen=True)
class EPBTConfig:
    """One live run. Defaults are the paper's CIFAR-10 setup (Section 4.1)."""

    method: str = "epbt"          # one of METHODS
    population: int = 40          # P
    elites: int = 20              # k = P / 2 (paper 3.2)
    generations: int = 25         # G; total epochs T = G * E = 200 (paper 4.1)
    epochs_per_generation: int = 8  # E
    batch_size: int = 128         # paper 4.1
    base_lr: float = 0.1          # Baseline 1's initial lr (paper 4.1)
    milestones: tuple[float, ...] = (0.3, 0.6, 0.8)  # of T: epochs 60, 120, 160 of 200
    baseline_decay: float = 0.2   # Baseline 1: lr / 5 at each milestone
    momentum: float = 0.9         # Baseline 1 and PBT
    tournament: int = 2           # t (paper 3.2)
    mutation_sigma: float = 0.2   # multiplicative factor 1 + sigma N(0,1) (not in the paper)
    p_mutate: float = 1.0         # noise on every variable ("independently to each variable")
    p_reinit: float = 0.05        # chance a variable is re-initialised (not in the paper)
    p_crossover: float = 0.5      # uniform crossover (paper 3.2)
    novelty_period: int = 5       # p (paper 3.4)
    novelty_m_factor: float = 1.5  # m = 1.5 k (paper 3.4)
    behaviour_size: int = 400     # N validation images for the behaviour vector (paper 3.4)
    alpha_max: float = 0.8        # PBD: alpha at the end of training (PS-KD's alpha_T)
    bn_batches: int = 20          # training batches for BN recalibration before fitness
    val_copies: int = 1           # augmented copies of the validation split for fitness
    pbt: pbt.PBTConfig = field(default_factory=pbt.PBTConfig)
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"EPBTConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.population < 2 and self.method != "baseline":
            raise ValueError(f"EPBTConfig.population must be >= 2, got {self.population}")
        if not 0 < self.elites < self.population and self.method.startswith("epbt"):
            raise ValueError(f"EPBTConfig.elites must be in (0, population={self.population}),"
                             f" got {self.elites}")
        for name in ("generations", "epochs_per_generation", "batch_size", "novelty_period",
                     "val_copies"):
            if getattr(self, name) < 1:
                raise ValueError(f"EPBTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.alpha_max <= 1:
            raise ValueError(f"EPBTConfig.alpha_max must be in [0, 1], got {self.alpha_max}")
        if self.novelty_m_factor < 1:
            raise ValueError(f"EPBTConfig.novelty_m_factor must be >= 1, got "
                             f"{self.novelty_m_factor}")

    @property
    def total_epochs(self) -> int:
        return self.generations * self.epochs_per_generation

    @property
    def novelty(self) -> bool:
        return self.method in ("epbt", "epbt-no-pbd", "epbt-ce")

    @property
    def pbd(self) -> bool:
        return self.method in ("epbt", "epbt-no-novelty", "epbt-ce")

    @property
    def taylorglo(self) -> bool:
        return self.method in ("epbt", "epbt-no-novelty", "epbt-no-pbd")


def epbt_space(taylorglo: bool = True) -> HSpace:
    """EPBT's h: 8 TaylorGLO thetas in [-10, 10] (if used), lr_scale, lr_decay, momentum."""
    params = [(f"theta_{j}", THETA_LOW, THETA_HIGH) for j in range(8)] if taylorglo else []
    params += [("lr_scale", *LR_SCALE), ("lr_decay", *LR_DECAY), ("momentum", *MOMENTUM)]
    return HSpace.build(params)


def step_lr(scale: np.ndarray, decay: np.ndarray, epoch: int, total: int, base_lr: float,
            milestones: tuple[float, ...]) -> np.ndarray:
    """lr at 0-based global epoch `epoch`: what torch's MultiStepLR(gamma=decay) gives there."""
    passed = sum(epoch >= int(round(f * total)) for f in milestones)
    return np.asarray(scale, dtype=float) * base_lr * np.asarray(decay, dtype=float) ** passed


def pbd_alpha(epoch: int, total: int, alpha_max: float) -> float:
    """PBD ramp: alpha_max * epoch / total at 0-based global epoch (linear, PS-KD)."""
    return alpha_max * epoch / total


def soft_cross_entropy(logits: Tensor, target: Tensor, _params: object = None) -> Tensor:
    """Per-member cross-entropy: logits [P, B, C], target labels [B] or soft [B, C] -> [P]."""
    x = as_target(target, logits.shape[-1], torch.float32)
    return -(x * torch.log_softmax(logits.float(), -1)).sum(-1).mean(-1)


# ------------------------------------------------------------------ the three loops
def _engine(cfg: EPBTConfig, data, factory, device: str) -> Engine:
    return Engine(data, factory, seed=cfg.seed, batch_size=cfg.batch_size,
                  behaviour_size=cfg.behaviour_size, bn_batches=cfg.bn_batches,
                  val_copies=cfg.val_copies, device=device)


def _rows(g: int, cfg: EPBTConfig, space: HSpace, s: dict, **extra) -> list[dict]:
    """Records of the individuals alive after generation g (state arrays `s`, [P] each)."""
    out = []
    for i in range(len(s["id"])):
        row = {"generation": g, "epoch": (g + 1) * cfg.epochs_per_generation,
               "individual": int(s["id"][i]), "parent": int(s["parent"][i]),
               "partner": int(s["partner"][i]), "role": str(s["role"][i]),
               "fitness": float(s["fitness"][i]), "test_accuracy": float(s["test"][i]),
               "train_loss": float(s["loss"][i]), "lr": float(s["lr"][i]),
               "trained_epochs": int(s["trained"][i]), "diverged": bool(s["diverged"][i])}
        row.update({f"h_{k}": v for k, v in space.as_dict(s["h"][i]).items()})
        row.update(extra)
        out.append(row)
    return out


def _train_and_measure(eng: Engine, cfg: EPBTConfig, space: HSpace, pop: Population,
                       opt: StackedOptimizer, h: np.ndarray, g: int, loss_fn,
                       teacher: Population | None, schedule: str) -> dict:
    """E epochs of generation g for all members of `pop`, then BN recalibration and fitness."""
    T, E = cfg.total_epochs, cfg.epochs_per_generation
    theta = (torch.as_tensor(h[:, :8], dtype=torch.float32, device=eng.device)
             if loss_fn is taylorglo_loss else None)
    if schedule == "step":
        opt.momentum[:] = torch.as_tensor(h[:, space.index("momentum")],
                                          device=opt.momentum.device)
    alpha = 0.0
    for e in range(g * E, (g + 1) * E):
        if schedule == "step":
            lr = step_lr(h[:, space.index("lr_scale")], h[:, space.index("lr_decay")], e, T,
                         cfg.base_lr, cfg.milestones)
        else:  # PBT: the member's own constant lr
            lr = h[:, space.index("lr")]
        opt.lr[:] = torch.as_tensor(lr, device=opt.lr.device)
        alpha = pbd_alpha(e, T, cfg.alpha_max) if teacher is not None else 0.0
        losses = eng.train_epoch(pop, opt, loss_fn, theta, teacher, alpha)
    eng.recalibrate(pop)  # BN statistics of the recombined, retrained members, before fitness
    m = eng.measure(pop)
    m.update(loss=losses, lr=np.asarray(lr, dtype=float) * np.ones(pop.size), alpha=alpha)
    return m


def _new_state(h, ids, parent, partner, role, trained, m) -> dict:
    return {"h": h, "id": ids, "parent": parent, "partner": partner,
            "role": np.asarray(role, dtype=object), "trained": trained,
            "fitness": m["fitness"], "test": m["test_accuracy"], "beh": m["behaviour"],
            "diverged": m["diverged"], "loss": m["loss"], "lr": m["lr"]}


class EPBTRun:
    """EPBT state between generations: `start()` is generation 0, `step(g)` generation g >= 1.

    `pop` / `opt` hold M_g; `s` holds its per-individual arrays (ids, h, fitness, ...);
    `last_parents` / `last_elites` index the M_g that produced the current population.
    """

    def __init__(self, eng: Engine, cfg: EPBTConfig):
        self.eng, self.cfg = eng, cfg
        self.space = epbt_space(cfg.taylorglo)
        self.loss_fn = taylorglo_loss if cfg.taylorglo else soft_cross_entropy
        k = cfg.elites
        self.m_cand = min(cfg.population, max(k, int(round(cfg.novelty_m_factor * k))))
        self.rows: list[dict] = []

    def start(self) -> None:
        cfg, eng, P, E = self.cfg, self.eng, self.cfg.population, self.cfg.epochs_per_generation
        h = self.space.sample(P, eng.rng)
        self.pop = eng.new_population(P)
        self.opt = StackedOptimizer(self.pop, ["momentum"] * P, cfg.base_lr,
                                    momentum=cfg.momentum)
        m = _train_and_measure(eng, cfg, self.space, self.pop, self.opt, h, 0, self.loss_fn,
                               None, "step")
        none = np.full(P, -1)
        self.s = _new_state(h, np.arange(P), none, none, ["initial"] * P, np.full(P, E), m)
        self.next_id = P
        self.rows += _rows(0, cfg, self.space, self.s, novelty_on=False, alpha=0.0)

    def step(self, g: int) -> None:
        cfg, eng, s = self.cfg, self.eng, self.s
        k, n_child = cfg.elites, cfg.population - cfg.elites
        nov = cfg.novelty and genetic.novelty_on(g, cfg.novelty_period)
        teacher = None
        if cfg.pbd:  # the fittest individual of M_g
            teacher = self.pop.take([int(genetic.elite_select(s["fitness"], 1)[0])])
        # Step 1: tournament selection of P - k parents
        parents = genetic.tournament_select(s["fitness"], n_child, eng.rng, t=cfg.tournament)
        # Step 2: mutation, then uniform crossover with another selected parent
        hm, _, _ = genetic.mutate(s["h"][parents], self.space, eng.rng,
                                  sigma=cfg.mutation_sigma, p_mutate=cfg.p_mutate,
                                  p_reinit=cfg.p_reinit)
        pos = _other_positions(n_child, eng.rng)
        hc, _ = genetic.uniform_crossover(hm, hm[pos], eng.rng, p=cfg.p_crossover)
        # elites of M_g: decided on M_g alone (fitness, or novelty among the m fittest)
        if nov:
            elites = genetic.novelty_select(s["fitness"], s["beh"], k, self.m_cand)
        else:
            elites = genetic.elite_select(s["fitness"], k)
        # Step 3: children copy weights and optimizer state, train E epochs, get fitness
        children = self.pop.take(parents)
        copt = take_optimizer(self.opt, children, parents)
        mc = _train_and_measure(eng, cfg, self.space, children, copt, hc, g, self.loss_fn,
                                teacher, "step")
        kept = self.pop.take(elites)  # elites: untouched weights, buffers, optimizer state
        self.pop = Population.cat([kept, children])
        self.opt = cat_optimizers([take_optimizer(self.opt, kept, elites), copt], self.pop)
        ids = np.arange(self.next_id, self.next_id + n_child)
        self.next_id += n_child
        cs = _new_state(hc, ids, s["id"][parents], s["id"][parents][pos], ["child"] * n_child,
                        s["trained"][parents] + cfg.epochs_per_generation, mc)
        self.s = {key: np.concatenate([np.asarray(s[key])[elites], cs[key]]) for key in s}
        self.s["role"][:k] = "elite"
        self.last_parents, self.last_elites = parents, elites
        self.rows += _rows(g, cfg, self.space, self.s, novelty_on=nov,
                           alpha=float(mc["alpha"]))


def _run_epbt(eng: Engine, cfg: EPBTConfig, progress) -> list[dict]:
    run_ = EPBTRun(eng, cfg)
    run_.start()
    for g in range(cfg.generations):
        if g:
            run_.step(g)
        if progress:
            progress(g, cfg.generations, {"best": float(run_.s["fitness"].max())})
    return run_.rows


def _other_positions(n: int, rng: np.random.Generator) -> np.ndarray:
    """For each position i in [0, n), a uniformly drawn position j != i (j = i when n == 1)."""
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    j = rng.integers(0, n - 1, size=n)
    return j + (j >= np.arange(n))


def _run_pbt(eng: Engine, cfg: EPBTConfig, progress) -> list[dict]:
    space, P = pbt.PBT_SPACE, cfg.population
    h = space.sample(P, eng.rng)
    pop = eng.new_population(P)
    opt = StackedOptimizer(pop, ["momentum"] * P, h[:, 0], momentum=cfg.momentum)
    ids, parent = np.arange(P), np.full(P, -1)
    role = np.array(["initial"] * P, dtype=object)
    trained = np.zeros(P, dtype=np.int64)
    next_id, rows = P, []
    for g in range(cfg.generations):
        m = _train_and_measure(eng, cfg, space, pop, opt, h, g, soft_cross_entropy, None,
                               "constant")
        trained = trained + cfg.epochs_per_generation
        s = _new_state(h, ids, parent, np.full(P, -1), role, trained, m)
        rows += _rows(g, cfg, space, s, novelty_on=False, alpha=0.0)
        if progress:
            progress(g, cfg.generations, {"best": float(m["fitness"].max())})
        if g == cfg.generations - 1:
            break
        dst, src = pbt.exploit(m["fitness"], eng.rng, cfg.pbt.frac)
        pop.copy_(dst, src)
        opt.copy_(dst, src)
        h, ids, parent, trained = h.copy(), ids.copy(), parent.copy(), trained.copy()
        h[dst], _ = pbt.explore(h[src], space, eng.rng, cfg.pbt)
        parent[dst], trained[dst] = ids[src], trained[src]
        ids[dst] = np.arange(next_id, next_id + len(dst))
        next_id += len(dst)
        role = np.array(["kept"] * P, dtype=object)
        role[dst] = "exploited"
    return rows


def _run_baseline(eng: Engine, cfg: EPBTConfig, progress) -> list[dict]:
    space = epbt_space(taylorglo=False)
    h = np.array([[1.0, cfg.baseline_decay, cfg.momentum]])  # Baseline 1's schedule exactly
    pop = eng.new_population(1)
    opt = StackedOptimizer(pop, ["momentum"], cfg.base_lr, momentum=cfg.momentum)
    rows = []
    for g in range(cfg.generations):
        m = _train_and_measure(eng, cfg, space, pop, opt, h, g, soft_cross_entropy, None,
                               "step")
        s = _new_state(h, np.zeros(1), np.full(1, -1), np.full(1, -1), ["baseline"],
                       np.full(1, (g + 1) * cfg.epochs_per_generation), m)
        rows += _rows(g, cfg, space, s, novelty_on=False, alpha=0.0)
        if progress:
            progress(g, cfg.generations, {"best": float(m["fitness"].max())})
    return rows


@dataclass
class RunResult:
    """records: one row per individual alive after each generation; lineage: best's ancestry."""

    records: pd.DataFrame
    lineage: pd.DataFrame
    seconds: float


def run(cfg: EPBTConfig, data, factory: Callable[[int], nn.Module], *, device: str = "cpu",
        progress: Callable[[int, int, dict], None] | None = None) -> RunResult:
    """Run `cfg.method` on `data` (a pregen DeviceData) with models from `factory(seed)`.

    `progress(generation, generations, info)` is called after every generation.
    """
    t0 = time.perf_counter()
    eng = _engine(cfg, data, factory, device)
    loop = {"pbt": _run_pbt, "baseline": _run_baseline}.get(cfg.method, _run_epbt)
    rows = loop(eng, cfg, progress)
    records = pd.DataFrame(rows)
    records.insert(0, "method", cfg.method)
    records.insert(1, "seed", cfg.seed)
    return RunResult(records, lineage(records), time.perf_counter() - t0)


def lineage(records: pd.DataFrame) -> pd.DataFrame:
    """Ancestry of the final generation's fittest individual, oldest first.

    One row per distinct individual (elites carried over unchanged appear once, at the
    generation they were created), following the weight parent `parent`.
    """
    last = records[records.generation == records.generation.max()]
    best = last.sort_values(["fitness", "individual"], ascending=[False, True]).iloc[0]
    first_seen = records.sort_values("generation").drop_duplicates("individual")
    by_id = first_seen.set_index("individual")
    chain, cur = [], int(best.individual)
    while cur >= 0:
        row = by_id.loc[cur]
        chain.append({"individual": cur, **row.to_dict()})
        cur = int(row.parent)
    return pd.DataFrame(chain[::-1]).reset_index(drop=True)


def summarize(records: pd.DataFrame) -> pd.DataFrame:
    """Per generation, the fittest individual's test accuracy (what the paper plots)."""
    idx = (records.sort_values(["fitness", "individual"], ascending=[False, True])
           .groupby(["method", "seed", "generation"], sort=True).head(1))
    return idx[["method", "seed", "generation", "epoch", "individual", "fitness",
                "test_accuracy"]].sort_values(["method", "seed", "generation"]).reset_index(
        drop=True)


def epochs_to_pass(curve: pd.DataFrame, target: float) -> int | None:
    """First epoch at which `curve` (summarize() rows of one run) exceeds `target`; None if never
    (the paper's Table 2)."""
    hit = curve[curve.test_accuracy > target]
    return None if hit.empty else int(hit.epoch.min())

