"""ESGD's evolution operators ((mu/rho + lambda)-ES, Cui et al. 2018) and its SGD step.

Roulette wheel for a loss: P(select j) = (1 / f_j) / sum_i (1 / f_i). Inverse loss keeps
every selection probability positive (windowing f_max - f_j would never select the worst),
is invariant to the loss's scale, and makes a loss half as large twice as likely. Diverged
individuals (f = inf / NaN) get probability 0. Parents of one offspring are drawn without
replacement (numpy's weighted `choice`, i.e. repeated roulette among those not yet drawn).
Offspring are the intermediate recombination (mean) of their parents plus N(0, sigma^2) per
weight; the m best of mu + lambda survive, mu - m more are drawn uniformly from the rest.
`sgd_step` trains K_s epochs with exact back-off of members whose fitness got worse.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from lcsim.hpo_sim.live.population import Population, StackedOptimizer

__all__ = ["m_elitist_select", "recombine", "roulette_probabilities", "select_parents",
           "sgd_step"]


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
