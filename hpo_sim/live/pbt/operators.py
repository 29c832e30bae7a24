"""PBT (Jaderberg et al. 2017) exploit/explore decisions: EPBT's Baseline 2.

Exploit (truncation selection): rank by fitness; every member of the bottom 25% copies the
weights, optimizer state and hyperparameters of a member drawn uniformly from the top 25%.
Explore: each hyperparameter of a copied member is, with probability 0.25, resampled from its
initial distribution, otherwise multiplied by 0.8 or 1.2 (equal odds). Perturbed values are
clipped to their bounds and integers are rounded, not truncated (common implementations let
values leave the box and truncate with int()).

The decisions here are pure (numpy, explicit Generator); the training loop that applies them
lives in `hpo_sim.live.epbt.baselines` beside Baseline 1 (PBT is the EPBT paper's Baseline 2:
it shares EPBT's engine, configuration, command and result layout).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lcsim.hpo_sim.live.population.hspace import HSpace

__all__ = ["PBTConfig", "PBT_SPACE", "exploit", "explore"]

# Paper Section 4.1: the learning rate is PBT's evolvable hyperparameter, initialised between
# 1e-4 and 0.1; log-uniform so that every decade is equally likely.
PBT_SPACE = HSpace.build([("lr", 1e-4, 0.1, True, False)])


@dataclass(frozen=True)
class PBTConfig:
    frac: float = 0.25          # truncation: bottom frac copies from top frac (Jaderberg et al.)
    factors: tuple[float, float] = (0.8, 1.2)   # multiplicative perturbation choices
    p_resample: float = 0.25    # chance a variable is resampled instead of perturbed

    def __post_init__(self):
        if not 0 < self.frac <= 0.5:
            raise ValueError(f"PBTConfig.frac must be in (0, 0.5], got {self.frac}")
        if not 0 <= self.p_resample <= 1:
            raise ValueError(f"PBTConfig.p_resample must be in [0, 1], got {self.p_resample}")
        if len(self.factors) != 2 or min(self.factors) <= 0:
            raise ValueError(f"PBTConfig.factors must be two positive numbers, got "
                             f"{self.factors}")


def exploit(fitness: np.ndarray, rng: np.random.Generator,
            frac: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Truncation selection: (dst [q], src [q]) with dst the bottom q, src drawn from the top q.

    q = max(1, round(frac * P)) for a population of P >= 2; ties in fitness keep lower indices
    ranked higher.
    """
    fitness = np.asarray(fitness, dtype=float)
    p = len(fitness)
    if p < 2:
        raise ValueError(f"PBT exploit needs a population of at least 2, got {p}")
    q = max(1, int(round(frac * p)))
    order = np.argsort(-fitness, kind="stable")
    top, bottom = order[:q], order[p - q:]
    src = rng.choice(top, size=q, replace=True)
    return bottom.astype(np.int64), src.astype(np.int64)


def explore(h: np.ndarray, space: HSpace, rng: np.random.Generator,
            cfg: PBTConfig = PBTConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Perturb rows h [n, d]; returns (h_new [n, d] clipped and rounded, resampled [n, d])."""
    h = np.asarray(h, dtype=float)
    resampled = rng.random(h.shape) < cfg.p_resample
    factor = np.where(rng.random(h.shape) < 0.5, cfg.factors[0], cfg.factors[1])
    fresh = space.sample(h.shape[0], rng)
    return space.clip(np.where(resampled, fresh, h * factor)), resampled
