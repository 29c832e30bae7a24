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
the first `fitness_examples` examples (0: all) of the split `fitness_on` names. The paper's
CIFAR-10 protocol is "train" on data loaded with val_size=0: "we do not split a validation
set ... we evaluate training fitness over the entire training-set"; "val" asks for a
validation split and is refused (EmptySplitError) when the data has none. Fitness is computed
once whenever an individual's weights change and carried with the individual, so back-off
and selection compare exactly the numbers recorded.

The pool is `config.OptimizerPool`, the ES operators and the SGD step with back-off are
`operators`; this module runs the methods.

Methods (same epoch budget K * K_s per individual):
- `esgd`: the above.
- `no-evolution`: ablation, the SGD step with redraws and back-off, no evolution step.
- `population`: population baseline, mu individuals whose optimizers and hyperparameters are
  drawn once (generation-1 ranges) and kept, with their optimizer state, for the whole
  run; no back-off, no evolution.
- `single`: one model, one hand-tuned optimizer (pregen.trainer.make_optimizer, torch.optim)
  at `single_lr` times the pool's base-lr schedule (constant unless `base_lr` is set), no
  back-off, trained by `pregen.trainer.train` (the one training loop; it stops a diverged
  run, whose remaining generations are recorded with fitness inf).

All randomness comes from `SeedSequence(seed)` (children: init, decisions, noise, data):
population init, a numpy Generator for the optimizer draws and selections, one
torch.Generator per member slot for data order, one for mutation noise and dropout. The
single baseline's model is member 0's initialisation; its data order and dropout come from
`TrainSpec.seed` = the first child seed of the data sequence.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from lcsim.hpo_sim.live.common import child_seeds, torch_generator
from lcsim.hpo_sim.live.esgd.config import METHODS, ESGDConfig
from lcsim.hpo_sim.live.esgd.operators import (
    m_elitist_select,
    recombine,
    select_parents,
    sgd_step,
)
from lcsim.hpo_sim.live.population import (
    Population,
    StackedOptimizer,
    evaluate,
    recalibrate_bn,
    train_epoch,
)
from lcsim.pregen.data import EmptySplitError
from lcsim.pregen.trainer import EpochRecord, TrainSpec, make_optimizer, train
from torch import nn

__all__ = ["ESGDResult", "fitness_size", "run"]


@dataclass
class ESGDResult:
    """`records`: one row per individual per generation (see `run`); `final`: the last
    population with fitness and test loss / error; `population`: its weights."""

    method: str
    records: pd.DataFrame
    final: pd.DataFrame
    population: Population


def fitness_size(data, cfg: ESGDConfig) -> int:
    """Examples fitness is measured on: the first `fitness_examples` (0: all) of its split.

    Raises EmptySplitError for fitness_on 'val' when the data has no validation split."""
    n_split = data.split(cfg.fitness_on)[1].shape[0]
    if n_split == 0:
        raise EmptySplitError(
            f"ESGD fitness_on={cfg.fitness_on!r} needs a validation split, but the data has "
            "none (loaded with val_size=0); use fitness_on 'train' (the paper's: fitness on "
            "the training set) or load a validation split (val_size > 0)")
    return n_split if cfg.fitness_examples == 0 else min(cfg.fitness_examples, n_split)


def _fitness_batches(data, cfg: ESGDConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    n = fitness_size(data, cfg)
    out, seen = [], 0
    for x, y in data.batches(cfg.fitness_on, 512, shuffle=False, augment=False):
        take = min(len(y), n - seen)
        out.append((x[:take], y[:take]))
        seen += take
        if seen >= n:
            break
    return out


def _train_epoch(pop, opt, data, cfg, data_gens, gen) -> None:
    """One epoch for every member, each in its own data order; with `cfg.train_members`,
    chunk after chunk of members (taken out, trained, put back: the members are
    independent, so only memory changes)."""
    chunk = cfg.train_members or pop.size
    for c0 in range(0, pop.size, chunk):
        idx = list(range(c0, min(pop.size, c0 + chunk)))
        whole = len(idx) == pop.size
        sub = pop if whole else pop.take(idx)
        sub_opt = opt if whole else opt.take(sub, idx)
        train_epoch(sub, sub_opt, data, cfg.batch_size, order=[data_gens[j] for j in idx],
                    generator=gen)
        if not whole:
            pop.put_(idx, sub)
            opt.put_(idx, sub_opt)


def _as_np(t: torch.Tensor) -> np.ndarray:
    f = t.detach().double().cpu().numpy()
    return np.where(np.isnan(f), np.inf, f)  # NaN loss = diverged = worst


def run(
    method: str, cfg: ESGDConfig, model_factory: Callable[[int], nn.Module], data, *,
    device: str | torch.device = "cpu", progress: Callable[[str], None] | None = None,
) -> ESGDResult:
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
    fitness_size(data, cfg)  # a fitness split that cannot work fails before any training
    if method == "single":
        return _run_single(cfg, model_factory, data, device=device, progress=progress)
    evolve = method == "esgd"
    redraw = method in ("esgd", "no-evolution")
    backoff = redraw
    ss = np.random.SeedSequence(cfg.seed)
    s_init, s_np, s_torch, s_data = ss.spawn(4)
    rng = np.random.default_rng(s_np)
    gen = torch_generator(s_torch, device)
    data_gens = [torch_generator(s, device) for s in s_data.spawn(cfg.mu)]
    init_seeds = child_seeds(s_init, cfg.mu, below=2**31)
    if cfg.init == "perturb":
        pop = Population.from_models([model_factory(init_seeds[0])] * cfg.mu, device=device)
        with torch.no_grad():
            for v in pop.params.values():
                v.add_(cfg.sigma0 * torch.randn(v.shape, generator=gen, device=v.device,
                                                dtype=v.dtype))
    else:
        pop = Population.from_models([model_factory(s) for s in init_seeds], device=device)
    fit_batches = _fitness_batches(data, cfg)
    # the order is drawn at the first batch: stopping early leaves `gen` where a full pass would
    recal = [x for x, _ in itertools.islice(data.batches(
        "train", cfg.batch_size, shuffle=True, generator=gen, augment=False), cfg.recal_batches)]

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
    return ESGDResult(method, _frame(records, method), _final(pop, fit, ids, data, cfg), pop)


def _frame(records: list[dict], method: str) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records)
    df.insert(0, "method", method)
    return df


def _final(pop: Population, fit: np.ndarray, ids: np.ndarray, data, cfg) -> pd.DataFrame:
    test = list(data.batches("test", 512, shuffle=False))
    loss, acc = evaluate(pop, test, max_members=cfg.eval_members)
    return pd.DataFrame({"individual": ids.astype(np.int64), "fitness": fit,
                         "test_loss": _as_np(loss), "test_error": 1 - acc.cpu().numpy()})


def _run_single(cfg, model_factory, data, *, device, progress) -> ESGDResult:
    """One model, one fixed optimizer (torch.optim via pregen.trainer.make_optimizer), the
    same epoch budget through pregen.trainer.train; fitness recorded every K_s epochs."""
    s_init, _, _, s_data = np.random.SeedSequence(cfg.seed).spawn(4)
    model = model_factory(child_seeds(s_init, 1, below=2**31)[0]).to(device)
    opt = make_optimizer(cfg.single_optimizer, model.parameters(), cfg.single_lr,
                         cfg.single_momentum, cfg.weight_decay)
    # the pool's base-lr schedule (Table 4 / [37]: 0.1, 0.01, 0.001) scales the single lr too
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: cfg.pool.base(e + 1) / cfg.pool.base(1))
    K, Ks = cfg.generations, cfg.epochs_per_generation
    spec = TrainSpec(epochs=K * Ks, batch_size=cfg.batch_size, optimizer=cfg.single_optimizer,
                     lr=cfg.single_lr, momentum=cfg.single_momentum,
                     seed=child_seeds(s_data, 1)[0])
    fit_batches = _fitness_batches(data, cfg)

    def fitness() -> float:
        pop = Population.from_models([model])
        return float(_as_np(evaluate(pop, fit_batches)[0])[0])

    def row(k: int, start: float, fit: float, lr: float) -> dict:
        return dict(generation=k, individual=0, slot=0, offspring=False, parents=[],
                    optimizer=cfg.single_optimizer if k else "", lr=lr,
                    momentum=cfg.single_momentum if k else math.nan, fitness_start=start,
                    fitness=fit, backoffs=0, elite=True, selected=True)

    rec = [row(0, math.nan, fitness(), math.nan)]
    lr_start = [math.nan]

    def after_epoch(r: EpochRecord) -> None:
        if (r.epoch - 1) % Ks == 0:
            lr_start[0] = r.lr
        if r.epoch % Ks == 0:
            rec.append(row(r.epoch // Ks, rec[-1]["fitness"], fitness(), lr_start[0]))
            if progress:
                progress(f"single generation {r.epoch // Ks}/{K}: fitness "
                         f"{rec[-1]['fitness']:.4f}")

    train(model, data, spec, device=device, optimizer=opt, scheduler=sched,
          callback=after_epoch)
    while len(rec) <= K:  # diverged: the remaining generations have no fitness
        rec.append(row(len(rec), rec[-1]["fitness"], math.inf, math.nan))
    fit = rec[-1]["fitness"]
    pop = Population.from_models([model])
    return ESGDResult("single", _frame(rec, "single"),
                      _final(pop, np.array([fit]), np.array([0]), data, cfg), pop)
