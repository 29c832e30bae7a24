"""EPBT's configuration and its schedules (Liang et al., "Regularized Evolutionary PBT").

- **h** = (theta_0..theta_7, lr_scale, lr_decay, momentum). Learning rate at global epoch e of
  T = G * E: lr_scale * base_lr * lr_decay ** (number of milestones <= e), milestones at
  0.3, 0.6, 0.8 of T: Baseline 1's schedule (0.1, /5 at 60/120/160 of 200) with a tunable
  scale and decay (paper 4.1); lr_scale = 1, lr_decay = 0.2 rediscovers it (`step_lr`).
- **PBD** (equation 3) ramp, following PS-KD (Kim et al. 2020, the paper's reference [23]):
  alpha(e) = alpha_max * e / T at global epoch e (`pbd_alpha`).
- `EPBTConfig` holds one run of any of METHODS (EPBT, its ablations, PBT, Baseline 1);
  its defaults are the paper's CIFAR-10 setup (Section 4.1). No torch here: the CLI reads
  METHODS for its choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lcsim.hpo_sim.live.pbt.operators import PBTConfig
from lcsim.hpo_sim.live.population.hspace import HSpace

__all__ = ["LR_DECAY", "LR_SCALE", "METHODS", "MOMENTUM", "THETA_HIGH", "THETA_LOW", "EPBTConfig",
           "epbt_space", "pbd_alpha", "step_lr"]

METHODS = ("epbt", "epbt-no-novelty", "epbt-no-pbd", "epbt-ce", "pbt", "baseline")
THETA_LOW, THETA_HIGH = -10.0, 10.0  # initial range of every TaylorGLO theta (paper 4.1)

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
    # Baseline 1 trains on every training image, the validation split included (paper 4.1:
    # "on all 50,000 training images"; 4.2: "on the full training set"); False: as the
    # population methods, without the validation split
    baseline_full_train: bool = True
    pbt: PBTConfig = field(default_factory=PBTConfig)
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"EPBTConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.seed < 0:  # a SeedSequence entropy
            raise ValueError(f"EPBTConfig.seed must be >= 0, got {self.seed}")
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
