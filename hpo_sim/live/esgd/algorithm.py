"""ESGD: evolutionary stochastic gradient descent (Cui et al., NeurIPS 2018), with its baselines.

Algorithm 1 of the paper, on a stacked `Population` (hpo_sim.live.population):

for generation k = 1..K
  SGD step: each of the mu individuals draws an optimizer from the pool (plain SGD, momentum,
    Nesterov, Adam; supplement B: Adam with probability p_adam, otherwise SGD with momentum
    with probability p_momentum, of which Nesterov with probability p_nesterov) and a learning
    rate uniformly from [a_k, b_k] = gamma^k [a_0, b_0] (momentum uniformly from its range),
    then trains K_s epochs on the training split; after every epoch whose fitness is worse
    than before it (a NaN counts as worse), the individual backs off: weights, BN buffers
    and optimizer state return exactly to the previous epoch's.
  evolution step ((mu/rho + lambda)-ES): lambda offspring, each the intermediate
    recombination (mean) of rho distinct parents drawn by roulette wheel, plus Gaussian
    noise of standard deviation sigma_k = sigma_0 / k per weight (the paper's tables call
    sigma_k the "mutation strength"; we read it as the standard deviation); BN running
    statistics of offspring are recalibrated on `recal_batches` training batches (drawn once
    per run, so every generation uses the same ones); of the mu + lambda individuals the
    m = round(elite_fraction * mu) best survive, and mu - m more are drawn uniformly from the
    rest.

Fitness is the mean cross-entropy (a loss: lower is better) in eval mode on a fixed subset:
the first `fitness_examples` examples of the training split (the paper measures fitness on
the training set). It is computed once whenever an individual's weights change and carried
with the individual, so back-off and selection compare exactly the numbers recorded.

Roulette wheel for a loss: P(select j) = (1 / f_j) / sum_i (1 / f_i). Inverse loss keeps
every selection probability positive (windowing f_max - f_j would never select the worst),
is invariant to the loss's scale, and makes a loss half as large twice as likely. Diverged
individuals (f = inf / NaN) get probability 0. Parents of one offspring are drawn without
replacement (numpy's weighted `choice`, i.e. repeated roulette among those not yet drawn).

Methods (same epoch budget K * K_s per individual):
- `esgd`: the above.
- `no-evolution`: ablation, the SGD step with redraws and back-off, no evolution step.
- `population`: population baseline, mu individuals whose optimizers and hyperparameters are
  drawn once (generation-1 ranges) and kept, with their optimizer state, for the whole
  run; no back-off, no evolution.
- `single`: one model, one hand-tuned optimizer (pregen.trainer.make_optimizer, torch.optim)
  at `single_lr` times the pool's base-lr schedule (constant unless `base_lr` is set), no
  back-off.

All randomness comes from `SeedSequence(seed)`: population init, a numpy Generator for the
optimizer draws and selections, one torch.Generator per member slot for data order, one for
mutation noise and dropout.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from lcsim.hpo_sim.live.population import (
    Population,
    StackedOptimizer,
    evaluate,
    recalibrate_bn,
    train_step,
)
from torch import nn

__all__ = [
    "METHODS",
    "ESGDConfig",
    "OptimizerPool",
    "RunResult",
    "m_elitist_select",
    "recombine",
    "roulette_probabilities",
    "run",
    "select_parents",
    "sgd_step",
    "summarize",
]

METHODS = ("esgd", "population", "no-evolution", "single")


# -------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class OptimizerPool:
    """Where each individual's optimizer and hyperparameters come from (supplement B, C)."""

    p_adam: float = 0.2  # Adam vs SGD family: the 20/80 mix of supplement C
    p_momentum: float = 0.8  # SGD: 20% plain, 80% with momentum (supplement B)
    p_nesterov: float = 0.5  # of those with momentum, half Nesterov (supplement B)
    sgd_lr: tuple[float, float] = (1e-2, 3e-2)  # [a_0, b_0] for SGD (Table 3, SWB300)
    adam_lr: tuple[float, float] = (5e-5, 1e-3)  # [a_0, b_0] for Adam (Table 3, SWB300)
    momentum: tuple[float, float] = (0.1, 0.9)  # uniform (Tables 2, 3)
    gamma: float = 0.9  # range annealing a_k = gamma^k a_0, b_k = gamma^k b_0 (Tables 2, 3)
    # learning rate = base(epoch) * U(a_k, b_k); base is piecewise constant, [(from_epoch, lr)]
    # (Table 4: 0.1 / 0.01 / 0.001 from epochs 1 / 81 / 122 times U(0.9, 1.1)); () means 1
    base_lr: tuple[tuple[int, float], ...] = ()

    def __post_init__(self):
        for name in ("p_adam", "p_momentum", "p_nesterov"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"OptimizerPool.{name} must be in [0, 1], got {v}")
        for name in ("sgd_lr", "adam_lr", "momentum"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"OptimizerPool.{name} must be 0 <= low <= high, got "
                                 f"{(lo, hi)}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"OptimizerPool.gamma must be in (0, 1], got {self.gamma}")
        epochs = [e for e, _ in self.base_lr]
        if epochs and (epochs[0] != 1 or epochs != sorted(epochs)):
            raise ValueError(f"OptimizerPool.base_lr must start at epoch 1 and increase, got "
                             f"{self.base_lr}")

    def lr_range(self, kind: str, k: int) -> tuple[float, float]:
        """[a_k, b_k] = gamma^k [a_0, b_0] for generation k >= 1 (a multiplier if base_lr)."""
        a0, b0 = self.adam_lr if kind == "adam" else self.sgd_lr
        return self.gamma**k * a0, self.gamma**k * b0

    def base(self, epoch: int) -> float:
        """Base learning rate at (1-based, per-individual) epoch `epoch`."""
        out = 1.0
        for start, lr in self.base_lr:
            if epoch >= start:
                out = lr
        return out

    def draw(self, k: int, n: int, rng: np.random.Generator) -> list[dict]:
        """`n` optimizers for generation k: dicts with kind, lr (multiplier of base), momentum."""
        out = []
        for _ in range(n):
            if rng.random() < self.p_adam:
                kind = "adam"
            elif rng.random() < self.p_momentum:
                kind = "nesterov" if rng.random() < self.p_nesterov else "momentum"
            else:
                kind = "sgd"
            a, b = self.lr_range(kind, k)
            mom = float(rng.uniform(*self.momentum)) if kind in ("momentum", "nesterov") else 0.0
            out.append({"optimizer": kind, "lr": float(rng.uniform(a, b)), "momentum": mom})
        return out


@dataclass(frozen=True)
class ESGDConfig:
    mu: int = 16  # parent population size
    lam: int = 32  # lambda, offspring per generation (paper: 4x-6x mu)
    rho: int = 2  # parents per offspring (all paper tables)
    generations: int = 5  # K
    epochs_per_generation: int = 1  # K_s (paper: 1 for speech, 20 for CIFAR-10)
    elite_fraction: float = 0.6  # m = 60% of mu (paper, Sec. 4)
    sigma0: float = 0.01  # mutation std at generation 1; sigma_k = sigma0 / k (Tables 2-4)
    pool: OptimizerPool = field(default_factory=OptimizerPool)
    batch_size: int = 128  # per individual (paper: 128)
    fitness_examples: int = 2048  # fitness on the first N training examples; 0: all of them
    recal_batches: int = 8  # training batches for BN recalibration of offspring
    eval_members: int = 64  # members evaluated at once (memory bound)
    train_members: int = 0  # members trained at once, chunk after chunk (memory); 0: all
    # initial population (Sec. 3.3 names both): "random" = mu independent initialisations;
    # "perturb" = one initialisation plus N(0, sigma0^2) per weight for each member
    init: str = "random"
    weight_decay: float = 0.0  # L2 added to the gradient, torch.optim style (paper: none)
    # single baseline: one hand-tuned optimizer, torch.optim through pregen.trainer
    single_optimizer: str = "nesterov"
    single_lr: float = 0.05
    single_momentum: float = 0.9
    seed: int = 0

    def __post_init__(self):
        for name in ("mu", "lam", "rho", "generations", "epochs_per_generation", "batch_size",
                     "recal_batches", "eval_members"):
            if getattr(self, name) < 1:
                raise ValueError(f"ESGDConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.init not in ("random", "perturb"):
            raise ValueError(f"ESGDConfig.init must be 'random' or 'perturb', got {self.init!r}")
        if self.rho > self.mu:
            raise ValueError(f"ESGDConfig.rho={self.rho} parents cannot exceed mu={self.mu}")
        if not 0 < self.elite_fraction <= 1:
            raise ValueError(f"ESGDConfig.elite_fraction must be in (0, 1], got "
                             f"{self.elite_fraction}")
        for name in ("sigma0", "fitness_examples", "weight_decay", "single_lr",
                     "train_members"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ESGDConfig.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def m(self) -> int:
        """Elitist level: the m best of mu + lambda always survive."""
        return max(1, round(self.elite_fraction * self.mu))

    def sigma(self, k: int) -> float:
        return self.sigma0 / k

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> ESGDConfig:
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown ESGD setting(s): {sorted(unknown)}")
        if "pool" in d and isinstance(d["pool"], dict):
            pool = dict(d["pool"])
            bad = set(pool) - {f.name for f in dataclasses.fields(OptimizerPool)}
            if bad:
                raise ValueError(f"unknown ESGD pool setting(s): {sorted(bad)}")
            for key in ("sgd_lr", "adam_lr", "momentum"):
                if key in pool:
                    pool[key] = tuple(pool[key])
            if "base_lr" in pool:
                pool["base_lr"] = tuple((int(e), float(v)) for e, v in pool["base_lr"])
            d["pool"] = OptimizerPool(**pool)
        return cls(**d)


# -------------------------------------------------------------------- ES operators
def roulette_probabilities(fitness: np.ndarray) -> np.ndarray:
    """Selection probabilities ``[n]`` from losses ``[n]``: proportional to 1 / loss.

    Non-finite losses (diverged) get 0; a loss of exactly 0 is clamped to 1e-12 (its member
    then dominates the wheel, as a perfect individual should).
    """
    f = np.asarray(fitness, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"fitness must be a non-empty vector, got shape {f.shape}")
    if (f[np.isfinite(f)] < 0).any():
        raise ValueError("roulette_probabilities expects losses >= 0")
    inv = np.where(np.isfinite(f), 1.0 / np.maximum(f, 1e-12), 0.0)
    if inv.sum() <= 0:
        raise ValueError("every individual has a non-finite fitness; nothing to select")
    return inv / inv.sum()


def recombine(
    pop: Population, parents: np.ndarray, sigma: float, generator: torch.Generator | None,
) -> Population:
    """Offspring ``[lam]`` from parent indices ``[lam, rho]``: mean of the parents' weights
    plus N(0, sigma^2) per weight (intermediate recombination, Eq. 12).

    The mean is taken as theta_1 + mean_j(theta_j - theta_1), so identical parents give back
    exactly that parent. Float buffers (BN statistics) are averaged the same way, integer
    ones (batch counters) come from the first parent; `recalibrate_bn` then replaces the
    statistics.
    """
    par = torch.as_tensor(np.asarray(parents), dtype=torch.long, device=pop.device)
    if par.dim() != 2 or par.shape[1] < 1:
        raise ValueError(f"parents must be [lambda, rho], got shape {tuple(par.shape)}")
    if sigma > 0 and generator is None:
        raise ValueError("recombine with sigma > 0 needs a torch.Generator")

    def mean(v: torch.Tensor) -> torch.Tensor:
        g = v.detach()[par]  # [lam, rho, ...]
        first = g[:, 0]
        return first + (g - first.unsqueeze(1)).mean(1)

    params = {}
    for k, v in pop.params.items():
        child = mean(v)
        if sigma > 0:
            child = child + sigma * torch.randn(child.shape, generator=generator,
                                                device=child.device, dtype=child.dtype)
        params[k] = child.requires_grad_(True)
    buffers = {k: mean(v) if v.is_floating_point() else v[par[:, 0]].clone()
               for k, v in pop.buffers.items()}
    return Population(pop.base, params, buffers, batched=pop.batched,
                      example_ndim=pop.example_ndim)


def m_elitist_select(
    fitness: np.ndarray, mu: int, m: int, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the next parents: the m best of `fitness` (ties by index), then mu - m drawn
    uniformly without replacement from the rest. Returns (selected [mu], is_elite [mu])."""
    f = np.asarray(fitness, dtype=np.float64)
    if not 1 <= m <= mu <= f.size:
        raise ValueError(f"need 1 <= m <= mu <= population, got m={m}, mu={mu}, n={f.size}")
    order = np.argsort(np.where(np.isnan(f), np.inf, f), kind="stable")
    elite, rest = order[:m], order[m:]
    others = rng.choice(rest, size=mu - m, replace=False) if mu > m else rest[:0]
    sel = np.concatenate([elite, np.sort(others)])
    return sel, np.arange(mu) < m


def select_parents(
    fitness: np.ndarray, lam: int, rho: int, rng: np.random.Generator,
) -> np.ndarray:
    """Parent indices ``[lam, rho]``: for each offspring, rho distinct parents by roulette
    wheel (`roulette_probabilities`); fewer if fewer than rho have a finite fitness."""
    probs = roulette_probabilities(fitness)
    rho = min(rho, int((probs > 0).sum()))
    return np.stack([rng.choice(probs.size, size=rho, replace=False, p=probs)
                     for _ in range(lam)])


def sgd_step(
    pop: Population, opt: StackedOptimizer, fitness: np.ndarray, lr_factor: torch.Tensor,
    train_epoch: Callable[[Population, StackedOptimizer], None],
    fitness_of: Callable[[Population], np.ndarray], *, epochs: int, first_epoch: int = 1,
    base_lr: Callable[[int], float] = lambda epoch: 1.0, backoff: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The SGD step of one generation: `epochs` epochs of `train_epoch`, each followed by a
    fitness evaluation; with `backoff`, every member whose fitness got worse (or non-finite)
    gets back exactly its weights, buffers and optimizer state from before that epoch.

    fitness: ``[P]`` at the start; lr_factor: ``[P]`` (lr = base_lr(epoch) * factor).
    Returns (fitness ``[P]`` after the step, number of epochs backed off ``[P]``).
    """
    fit = np.asarray(fitness, dtype=np.float64).copy()
    backoffs = np.zeros(pop.size, dtype=np.int64)
    for s in range(epochs):
        opt.lr = base_lr(first_epoch + s) * lr_factor
        if backoff:
            snap, ostate = pop.snapshot(), opt.state()
        train_epoch(pop, opt)
        new = np.asarray(fitness_of(pop), dtype=np.float64)
        if backoff:
            bad = np.flatnonzero(~(new <= fit))  # NaN / inf count as worse
            if bad.size:
                pop.restore_(snap, bad)
                opt.restore_(ostate, bad)
                new[bad] = fit[bad]
                backoffs[bad] += 1
        fit = new
    return fit, backoffs


# -------------------------------------------------------------------- running
@dataclass
class RunResult:
    """`records`: one row per individual per generation (see `run`); `final`: the last
    population with fitness and test loss / error; `population`: its weights."""

    method: str
    records: pd.DataFrame
    final: pd.DataFrame
    population: Population


def _fitness_batches(data, cfg: ESGDConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    n_train = data.train_y.shape[0]
    n = n_train if cfg.fitness_examples == 0 else min(cfg.fitness_examples, n_train)
    out, seen = [], 0
    for x, y in data.batches("train", 512, shuffle=False, augment=False):
        take = min(len(y), n - seen)
        out.append((x[:take], y[:take]))
        seen += take
        if seen >= n:
            break
    return out


def _train_epoch(pop, opt, data, cfg, data_gens, gen) -> None:
    """One epoch for every member; with `cfg.train_members`, chunk after chunk of members
    (taken out, trained, put back: the members are independent, so only memory changes)."""
    chunk = cfg.train_members or pop.size
    if chunk < pop.size:
        for c0 in range(0, pop.size, chunk):
            idx = list(range(c0, min(pop.size, c0 + chunk)))
            sub = pop.take(idx)
            sub_opt = opt.take(sub, idx)
            _train_epoch_all(sub, sub_opt, data, cfg, [data_gens[j] for j in idx], gen)
            pop.put_(idx, sub)
            opt.put_(idx, sub_opt)
    else:
        _train_epoch_all(pop, opt, data, cfg, data_gens, gen)


def _train_epoch_all(pop, opt, data, cfg, data_gens, gen) -> None:
    # a last batch of one example breaks batch norm in train mode (as in pregen.trainer)
    drop_last = data.train_y.shape[0] % cfg.batch_size == 1
    streams = [data.batches("train", cfg.batch_size, shuffle=True, generator=g,
                            drop_last=drop_last) for g in data_gens]
    for batch in zip(*streams, strict=True):
        x = torch.stack([b[0] for b in batch])  # each member its own order: [P, B, ...]
        y = torch.stack([b[1] for b in batch])
        train_step(pop, opt, x, y, generator=gen)


def _as_np(t: torch.Tensor) -> np.ndarray:
    f = t.detach().double().cpu().numpy()
    return np.where(np.isnan(f), np.inf, f)  # NaN loss = diverged = worst


def run(
    method: str, cfg: ESGDConfig, model_factory: Callable[[int], nn.Module], data, *,
    device: str | torch.device = "cpu", progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Run `method` (one of METHODS). `model_factory(seed) -> nn.Module` builds one
    initialised model; `data` is a pregen.data.DeviceData on `device`.

    records columns: method, generation (0 = initial population), individual (unique id),
    slot (position in the next generation's population, -1 if not selected), offspring,
    parents (ids), optimizer, lr, momentum, fitness_start (at the start of
    the generation's SGD step), fitness (after it, or after recalibration for offspring),
    backoffs (epochs undone), elite, selected (parent of the next generation).
    """
    if method not in METHODS:
        raise ValueError(f"unknown ESGD method {method!r}; choose from {', '.join(METHODS)}")
    if method == "single":
        return _run_single(cfg, model_factory, data, device=device, progress=progress)
    evolve = method == "esgd"
    redraw = method in ("esgd", "no-evolution")
    backoff = redraw
    ss = np.random.SeedSequence(cfg.seed)
    s_init, s_np, s_torch, s_data = ss.spawn(4)
    rng = np.random.default_rng(s_np)
    gen = torch.Generator(device=device).manual_seed(int(s_torch.generate_state(1)[0]))
    data_gens = [torch.Generator(device=device).manual_seed(int(s.generate_state(1)[0]))
                 for s in s_data.spawn(cfg.mu)]
    init_seeds = [int(s.generate_state(1)[0] % 2**31) for s in s_init.spawn(cfg.mu)]
    if cfg.init == "perturb":
        pop = Population.from_models([model_factory(init_seeds[0])] * cfg.mu, device=device)
        with torch.no_grad():
            for v in pop.params.values():
                v.add_(cfg.sigma0 * torch.randn(v.shape, generator=gen, device=v.device,
                                                dtype=v.dtype))
    else:
        pop = Population.from_models([model_factory(s) for s in init_seeds], device=device)
    fit_batches = _fitness_batches(data, cfg)
    recal = [x for x, _ in data.batches("train", cfg.batch_size, shuffle=True,
                                        generator=gen, augment=False)][:cfg.recal_batches]

    def fitness_of(p: Population) -> np.ndarray:
        return _as_np(evaluate(p, fit_batches, max_members=cfg.eval_members)[0])

    fit = fitness_of(pop)
    ids = np.arange(cfg.mu)
    next_id = cfg.mu
    records: list[dict] = [
        dict(generation=0, individual=int(ids[j]), slot=j, offspring=False, parents=[],
             optimizer="", lr=math.nan, momentum=math.nan, fitness_start=math.nan,
             fitness=float(fit[j]), backoffs=0, elite=False, selected=True)
        for j in range(cfg.mu)]
    draws = cfg.pool.draw(1, cfg.mu, rng)
    opt = None
    for k in range(1, cfg.generations + 1):
        if redraw and k > 1:
            draws = cfg.pool.draw(k, cfg.mu, rng)
        if redraw or opt is None:  # a fresh optimizer (no momentum carried over)
            opt = StackedOptimizer(pop, [d["optimizer"] for d in draws],
                                   [d["lr"] for d in draws],
                                   momentum=[d["momentum"] for d in draws],
                                   weight_decay=cfg.weight_decay)
        factor = torch.tensor([d["lr"] for d in draws], dtype=torch.float64, device=opt.lr.device)
        fit_start = fit.copy()
        first_epoch = (k - 1) * cfg.epochs_per_generation + 1
        fit, backoffs = sgd_step(
            pop, opt, fit, factor, lambda p, o: _train_epoch(p, o, data, cfg, data_gens, gen),
            fitness_of, epochs=cfg.epochs_per_generation, first_epoch=first_epoch,
            base_lr=cfg.pool.base, backoff=backoff)
        rows = [dict(generation=k, individual=int(ids[j]), slot=j, offspring=False, parents=[],
                     optimizer=draws[j]["optimizer"],
                     lr=cfg.pool.base(first_epoch) * draws[j]["lr"],
                     momentum=draws[j]["momentum"],
                     fitness_start=float(fit_start[j]), fitness=float(fit[j]),
                     backoffs=int(backoffs[j]), elite=False, selected=True)
                for j in range(cfg.mu)]
        if evolve:
            parents = select_parents(fit, cfg.lam, cfg.rho, rng)
            kids = recombine(pop, parents, cfg.sigma(k), gen)
            recalibrate_bn(kids, None, recal)
            kid_fit = fitness_of(kids)
            kid_ids = np.arange(next_id, next_id + cfg.lam)
            next_id += cfg.lam
            rows += [dict(generation=k, individual=int(kid_ids[i]), slot=-1, offspring=True,
                          parents=[int(ids[p]) for p in parents[i]], optimizer="",
                          lr=math.nan, momentum=math.nan, fitness_start=math.nan,
                          fitness=float(kid_fit[i]), backoffs=0, elite=False, selected=False)
                     for i in range(cfg.lam)]
            all_fit = np.concatenate([fit, kid_fit])
            sel, is_elite = m_elitist_select(all_fit, cfg.mu, cfg.m, rng)
            for r in rows:
                r["selected"], r["slot"] = False, -1
            for new_slot, (i, e) in enumerate(zip(sel, is_elite, strict=True)):
                rows[i]["selected"], rows[i]["elite"] = True, bool(e)
                rows[i]["slot"] = new_slot
            pop = Population.cat([pop, kids]).take(sel)
            fit = all_fit[sel]
            ids = np.concatenate([ids, kid_ids])[sel]
            opt = None
        else:
            elite = np.argsort(fit, kind="stable")[:cfg.m]
            for j in elite:
                rows[j]["elite"] = True
        records += rows
        if progress:
            srt = np.sort(fit)
            progress(f"{method} generation {k}/{cfg.generations}: best fitness {srt[0]:.4f}, "
                     f"m-elitist mean {srt[:cfg.m].mean():.4f}")
    return RunResult(method, _frame(records, method), _final(pop, fit, ids, data, cfg), pop)


def _frame(records: list[dict], method: str) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records)
    df.insert(0, "method", method)
    return df


def _final(pop: Population, fit: np.ndarray, ids: np.ndarray, data, cfg) -> pd.DataFrame:
    test = list(data.batches("test", 512, shuffle=False))
    loss, acc = evaluate(pop, test, max_members=cfg.eval_members)
    return pd.DataFrame({"individual": ids.astype(np.int64), "fitness": fit,
                         "test_loss": _as_np(loss), "test_error": 1 - acc.cpu().numpy()})


def _run_single(cfg, model_factory, data, *, device, progress) -> RunResult:
    """One model, one fixed optimizer (torch.optim via pregen.trainer.make_optimizer, epochs by
    pregen.trainer.train_epoch), the same epoch budget; fitness recorded every K_s epochs."""
    from lcsim.pregen.models import fork_seeded
    from lcsim.pregen.trainer import TrainSpec, make_optimizer, train_epoch

    ss = np.random.SeedSequence(cfg.seed)
    s_init, _, s_torch, s_data = ss.spawn(4)
    model = model_factory(int(s_init.spawn(1)[0].generate_state(1)[0] % 2**31)).to(device)
    opt = make_optimizer(cfg.single_optimizer, model.parameters(), cfg.single_lr,
                         cfg.single_momentum)
    for group in opt.param_groups:
        group["weight_decay"] = cfg.weight_decay
    # the pool's base-lr schedule (Table 4 / [37]: 0.1, 0.01, 0.001) scales the single lr too
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: cfg.pool.base(e + 1) / cfg.pool.base(1))
    g = torch.Generator(device=device).manual_seed(int(s_data.spawn(1)[0].generate_state(1)[0]))
    fit_batches = _fitness_batches(data, cfg)

    def fitness() -> float:
        pop = Population.from_models([model])
        return float(_as_np(evaluate(pop, fit_batches)[0])[0])

    fit = fitness()
    rec = [dict(generation=0, individual=0, slot=0, offspring=False, parents=[], optimizer="",
                lr=math.nan, momentum=math.nan, fitness_start=math.nan, fitness=fit,
                backoffs=0, elite=True, selected=True)]
    spec = TrainSpec(batch_size=cfg.batch_size, optimizer=cfg.single_optimizer,
                     lr=cfg.single_lr, momentum=cfg.single_momentum)
    for k in range(1, cfg.generations + 1):
        start, lr = fit, opt.param_groups[0]["lr"]
        # dropout draws from torch's global RNG: fork it, seeded from g
        seed = int(torch.randint(0, 2**62, (1,), generator=g))
        with fork_seeded(seed, device):
            for _ in range(cfg.epochs_per_generation):
                train_epoch(model, data, opt, spec, generator=g)
                sched.step()
        fit = fitness()
        rec.append(dict(generation=k, individual=0, slot=0, offspring=False, parents=[],
                        optimizer=cfg.single_optimizer, lr=lr,
                        momentum=cfg.single_momentum, fitness_start=start, fitness=fit,
                        backoffs=0, elite=True, selected=True))
        if progress:
            progress(f"single generation {k}/{cfg.generations}: fitness {fit:.4f}")
    pop = Population.from_models([model])
    return RunResult("single", _frame(rec, "single"),
                     _final(pop, np.array([fit]), np.array([0]), data, cfg), pop)


def summarize(finals: dict[str, pd.DataFrame], top: int = 15,
              elite: int | None = None) -> pd.DataFrame:
    """Paper Table 1 layout from each method's final population (`RunResult.final`): fitness
    (training loss) of the best individual and mean of the `top` best, and the test error of
    those same individuals (ranked by fitness). With `elite` (= m), also the mean of the m best:
    with a small mu the top 15 include the mu - m randomly kept individuals, whereas in the
    paper's populations (mu >= 100) they are all elite."""
    rows = []
    for method, final in finals.items():
        f = final.sort_values("fitness", kind="stable")
        row = {"method": method, "best_fitness": f["fitness"].iloc[0],
               f"top{top}_fitness": f["fitness"].head(top).mean(),
               "best_test_error": f["test_error"].iloc[0],
               f"top{top}_test_error": f["test_error"].head(top).mean()}
        if elite:
            row[f"top{elite}_fitness"] = f["fitness"].head(elite).mean()
            row[f"top{elite}_test_error"] = f["test_error"].head(elite).mean()
        rows.append({**row, "n_final": len(f)})
    return pd.DataFrame(rows)
