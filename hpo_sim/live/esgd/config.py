"""ESGD's configuration: the optimizer pool (supplement B, C) and the run settings.

`OptimizerPool.draw` gives each individual of generation k its optimizer (Adam with
probability p_adam, otherwise SGD with momentum with probability p_momentum, of which
Nesterov with probability p_nesterov, else plain SGD) and a learning rate uniform in
[a_k, b_k] = gamma^k [a_0, b_0] (times the piecewise-constant `base_lr` schedule).
`ESGDConfig` holds mu, lambda, rho, K, K_s and the rest of Algorithm 1's settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["METHODS", "ESGDConfig", "OptimizerPool"]

METHODS = ("esgd", "population", "no-evolution", "single")


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
    # fitness split: "train" (paper, CIFAR-10: "we do not split a validation set", load with
    # val_size 0) or "val"; fitness on its first `fitness_examples` examples, 0: all of them
    fitness_on: str = "train"
    fitness_examples: int = 2048
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
        if self.fitness_on not in ("train", "val"):
            raise ValueError(f"ESGDConfig.fitness_on must be 'train' or 'val', got "
                             f"{self.fitness_on!r}")
        if self.init not in ("random", "perturb"):
            raise ValueError(f"ESGDConfig.init must be 'random' or 'perturb', got {self.init!r}")
        if self.rho > self.mu:
            raise ValueError(f"ESGDConfig.rho={self.rho} parents cannot exceed mu={self.mu}")
        if not 0 < self.elite_fraction <= 1:
            raise ValueError(f"ESGDConfig.elite_fraction must be in (0, 1], got "
                             f"{self.elite_fraction}")
        for name in ("sigma0", "fitness_examples", "weight_decay", "single_lr",
                     "train_members", "seed"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ESGDConfig.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def m(self) -> int:
        """Elitist level: the m best of mu + lambda always survive."""
        return max(1, round(self.elite_fraction * self.mu))

    def sigma(self, k: int) -> float:
        return self.sigma0 / k
