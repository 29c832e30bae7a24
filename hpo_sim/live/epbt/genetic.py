"""Genetic operators for EPBT and PBT: pure numpy, every draw from an explicit Generator.

Hyperparameter vectors are rows of a float array h [n, d] over an `HSpace`
(hpo_sim.live.population.hspace: names, bounds, log/integer flags). Operators (EPBT paper,
Sections 2.5, 3.2, 3.4):

- `tournament_select`: t individuals drawn uniformly without replacement, the fittest wins.
- `mutate`: per variable, with probability p_reinit re-sample it from its range, otherwise with
  probability p_mutate multiply it by (1 + sigma * N(0, 1)); then clip to the bounds and round
  integers.
- `uniform_crossover`: each variable taken from the partner with probability 0.5.
- `novelty_scores` / `novelty_select`: S_i = sum_j d(b_i, b_j) over the m fittest, d = Hamming
  distance of binary behaviour vectors; keep the k most novel, skipping a candidate whose
  behaviour duplicates one already kept (the paper's "same cluster") while others remain.
- `novelty_on`: Novelty Pulsation, fitness-only for p generations, then novelty for p, ...
"""

from __future__ import annotations

import numpy as np
from lcsim.hpo_sim.live.population.hspace import HSpace
from scipy.spatial.distance import cdist

__all__ = [
    "tournament_select",
    "mutate",
    "uniform_crossover",
    "elite_select",
    "novelty_scores",
    "novelty_select",
    "novelty_on",
]


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    return rng


def tournament_select(fitness: np.ndarray, n: int, rng: np.random.Generator,
                      t: int = 2) -> np.ndarray:
    """n winners [n] (indices into fitness); ties go to the first of the t drawn."""
    fitness = np.asarray(fitness, dtype=float)
    _check_rng(rng)
    if not 1 <= t <= len(fitness):
        raise ValueError(f"tournament size t={t} must be in [1, {len(fitness)}]")
    winners = np.empty(n, dtype=np.int64)
    for i in range(n):
        entrants = rng.choice(len(fitness), size=t, replace=False)
        winners[i] = entrants[np.argmax(fitness[entrants])]
    return winners


def mutate(h: np.ndarray, space: HSpace, rng: np.random.Generator, *, sigma: float = 0.2,
           p_mutate: float = 1.0, p_reinit: float = 0.05
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multiplicative Gaussian mutation with re-initialisation.

    h [n, d] -> (h_new [n, d], mutated [n, d] bool, reinit [n, d] bool).
    """
    _check_rng(rng)
    for name, p in (("p_mutate", p_mutate), ("p_reinit", p_reinit)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mutate: {name} must be in [0, 1], got {p}")
    if sigma < 0:
        raise ValueError(f"mutate: sigma must be >= 0, got {sigma}")
    h = np.asarray(h, dtype=float)
    u = rng.random(h.shape)
    reinit = u < p_reinit
    mutated = ~reinit & (u < p_reinit + (1 - p_reinit) * p_mutate)
    noise = 1.0 + sigma * rng.standard_normal(h.shape)
    fresh = space.sample(h.shape[0], rng)
    out = np.where(reinit, fresh, np.where(mutated, h * noise, h))
    return space.clip(out), mutated, reinit


def uniform_crossover(h: np.ndarray, partner: np.ndarray, rng: np.random.Generator,
                      p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Each variable of h [n, d] is swapped for the partner's [n, d] with probability p.

    Returns (child [n, d], taken_from_partner [n, d] bool).
    """
    _check_rng(rng)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"uniform_crossover: p must be in [0, 1], got {p}")
    h, partner = np.asarray(h, dtype=float), np.asarray(partner, dtype=float)
    if h.shape != partner.shape:
        raise ValueError(f"crossover shapes differ: {h.shape} vs {partner.shape}")
    swap = rng.random(h.shape) < p
    return np.where(swap, partner, h), swap


def elite_select(fitness: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k fittest, best first (stable: ties keep the lower index first)."""
    fitness = np.asarray(fitness, dtype=float)
    if not 0 <= k <= len(fitness):
        raise ValueError(f"elite count k={k} must be in [0, {len(fitness)}]")
    return np.argsort(-fitness, kind="stable")[:k]


def novelty_scores(behaviours: np.ndarray) -> np.ndarray:
    """S_i = sum_j Hamming(b_i, b_j) for binary behaviour vectors [m, N] -> [m]."""
    b = np.asarray(behaviours)
    if b.ndim != 2:
        raise ValueError(f"behaviours must be [m, N], got shape {b.shape}")
    return cdist(b.astype(float), b.astype(float), metric="cityblock").sum(1)


def novelty_select(fitness: np.ndarray, behaviours: np.ndarray, k: int, m: int) -> np.ndarray:
    """Novelty Selection: the m fittest, then the k most novel among them (indices [k]).

    Novelty is computed within the m candidates. A candidate whose behaviour equals that of one
    already kept is skipped while enough distinct candidates remain, then taken in order.
    """
    fitness = np.asarray(fitness, dtype=float)
    if not 0 < k <= m <= len(fitness):
        raise ValueError(f"novelty_select needs 0 < k ({k}) <= m ({m}) <= population "
                         f"({len(fitness)})")
    if len(behaviours) != len(fitness):
        raise ValueError(f"{len(behaviours)} behaviour vectors for {len(fitness)} fitnesses")
    cand = elite_select(fitness, m)
    b = np.asarray(behaviours)[cand]
    order = np.argsort(-novelty_scores(b), kind="stable")
    kept: list[int] = []
    skipped: list[int] = []
    for j in order:
        if len(kept) == k:
            break
        if any(np.array_equal(b[j], b[i]) for i in kept):
            skipped.append(j)
        else:
            kept.append(j)
    kept += skipped[: k - len(kept)]
    return cand[np.array(kept, dtype=np.int64)]


def novelty_on(generation: int, period: int) -> bool:
    """Novelty Pulsation: off for generations [0, p), on for [p, 2p), off for [2p, 3p), ..."""
    if period <= 0:
        raise ValueError(f"pulsation period must be > 0, got {period}")
    return (generation // period) % 2 == 1
