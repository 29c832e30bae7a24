"""Search spaces (Choi et al.'s Table I, LCBench's MLP space) and the Sobol-point -> config map.

A config's stable id is its Sobol index: `space.config_at(i, seed)` is the i-th point of the
scrambled, seeded Sobol sequence in [0, 1)^d, mapped dimension by dimension:
floats linearly, the learning rate on a log10 scale, integers by equal-width bins over the
inclusive range, log-integers by equal-width bins of log(v) over [low, high + 1) (so integer k
has probability log((k+1)/k) / log((high+1)/low)), categoricals by equal bins. Fixed values
(marked * in Table I) are not dimensions; they are carried in `space.fixed` so a model can be
built from the config alone.

Each space also carries its training `Recipe` (optimizer, schedule, and which config keys set
which `pregen.trainer.TrainSpec` fields), so the trainer and the table generator treat every
space alike.

Table I lists 9 dimensions for MNIST and 10 for CIFAR-10 (C1-C4, Fc, filter size, learning
rate, L2 weight, activation, regularizer); the paper's text says "nine". We follow the table.
`lcbench-mlp` is documented at its definition below.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.stats import qmc

from lcsim.errors import UserError

__all__ = [
    "Param",
    "Recipe",
    "Space",
    "MNIST_SPACE",
    "CIFAR10_SPACE",
    "LCBENCH_MLP_SPACE",
    "SPACES",
    "get_space",
    "ConfigError",
]


class ConfigError(UserError, ValueError):
    """A config that lies outside its search space; the message names parameter and range."""


_KINDS = ("int", "logint", "float", "logfloat", "cat")
# TrainSpec fields a recipe may set from a config (pregen.trainer.TrainSpec has them all)
_SPEC_FIELDS = ("lr", "momentum", "weight_decay", "l2_weight", "batch_size")


@dataclass(frozen=True)
class Recipe:
    """How a space's configs are trained; `pregen.trainer.train_config` applies it.

    `spec_keys` pairs a TrainSpec field with the config key (free or fixed) that sets it;
    everything else (epochs, seed, device options) comes from the caller's TrainSpec.
    """

    optimizer: str = "adam"  # Choi et al. (a pregen.trainer.OPTIMIZERS name)
    schedule: str = "constant"  # a pregen.trainer.SCHEDULES name, stepped once per epoch
    spec_keys: tuple[tuple[str, str], ...] = (("lr", "learning_rate"),
                                              ("l2_weight", "l2_weight"))

    def __post_init__(self):
        bad = [f for f, _ in self.spec_keys if f not in _SPEC_FIELDS]
        if bad:
            raise ValueError(f"Recipe.spec_keys: unknown TrainSpec field(s) {bad}; "
                             f"allowed {list(_SPEC_FIELDS)}")

    def overrides(self, full_config: Mapping[str, Any]) -> dict[str, Any]:
        """TrainSpec field -> value for one config (`space.full(config)`)."""
        out: dict[str, Any] = {"optimizer": self.optimizer, "schedule": self.schedule}
        for f, key in self.spec_keys:
            out[f] = int(full_config[key]) if f == "batch_size" else float(full_config[key])
        return out

    @property
    def text(self) -> str:
        """One line for help texts and table metadata."""
        keys = ", ".join(f"{f} <- {k}" for f, k in self.spec_keys)
        return f"optimizer {self.optimizer}, schedule {self.schedule}; from the config: {keys}"


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "int" | "logint" | "float" | "logfloat" | "cat"
    low: float | None = None  # inclusive, for int / logint / float / logfloat
    high: float | None = None  # inclusive
    choices: tuple[str, ...] = ()  # for cat

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"Param {self.name}: unknown kind {self.kind!r}")
        if self.kind == "cat":
            if not self.choices:
                raise ValueError(f"Param {self.name}: a categorical needs choices")
        elif self.low is None or self.high is None or not self.low <= self.high:
            raise ValueError(f"Param {self.name}: bad range [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"Param {self.name}: log scale needs low > 0, got {self.low}")

    @property
    def log(self) -> bool:
        """Whether values are spread on a log scale (plots use a log axis for these)."""
        return self.kind in ("logfloat", "logint")

    @property
    def integer(self) -> bool:
        return self.kind in ("int", "logint")

    @property
    def range_text(self) -> str:
        if self.kind == "cat":
            return "one of " + ", ".join(self.choices)
        return f"[{self.low:g}, {self.high:g}]"

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map unit values, shape [n], to this parameter's values, shape [n]."""
        u = np.asarray(u, dtype=np.float64)
        if self.kind == "float":
            return self.low + u * (self.high - self.low)
        if self.kind == "logfloat":
            lo, hi = math.log10(self.low), math.log10(self.high)
            return 10.0 ** (lo + u * (hi - lo))
        if self.kind == "logint":
            lo, hi = math.log(self.low), math.log(self.high + 1)
            v = np.floor(np.exp(lo + u * (hi - lo))).astype(np.int64)
            return np.clip(v, int(self.low), int(self.high))
        n = (len(self.choices) if self.kind == "cat" else int(self.high - self.low) + 1)
        b = np.minimum(np.floor(u * n).astype(np.int64), n - 1)
        return b if self.kind == "cat" else b + int(self.low)

    def to_unit(self, v: Any) -> float:
        """Centre of the unit interval that maps to value v (inverse of from_unit)."""
        if self.kind == "float":
            span = self.high - self.low
            return 0.0 if span == 0 else (float(v) - self.low) / span
        if self.kind == "logfloat":
            lo, hi = math.log10(self.low), math.log10(self.high)
            return (math.log10(float(v)) - lo) / (hi - lo)
        if self.kind == "logint":
            lo, hi = math.log(self.low), math.log(self.high + 1)
            return ((math.log(int(v)) + math.log(int(v) + 1)) / 2 - lo) / (hi - lo)
        if self.kind == "cat":
            return (self.choices.index(v) + 0.5) / len(self.choices)
        n = int(self.high - self.low) + 1
        return (int(v) - int(self.low) + 0.5) / n

    def validate(self, v: Any) -> Any:
        """Return v normalised to the parameter's Python type, or raise ConfigError."""
        if self.kind == "cat":
            if v not in self.choices:
                raise ConfigError(f"{self.name}={v!r} is not {self.range_text}")
            return str(v)
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{self.name}={v!r} is not a number; allowed {self.range_text}") from None
        if not math.isfinite(x) or not self.low <= x <= self.high:
            raise ConfigError(f"{self.name}={v!r} is outside the allowed range {self.range_text}")
        if self.integer:
            if x != int(x):
                raise ConfigError(f"{self.name}={v!r} must be an integer in {self.range_text}")
            return int(x)
        return x


@dataclass(frozen=True)
class Space:
    """A search space: its dimensions, in Sobol order, fixed values and training recipe."""

    name: str
    params: tuple[Param, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int = 10
    recipe: Recipe = field(default_factory=Recipe)
    dataset: str | None = None  # the dataset it is trained on by default (None: its name)

    @property
    def default_dataset(self) -> str:
        return self.dataset or self.name

    def __post_init__(self):
        known = set(self.names) | set(self.fixed)
        bad = [k for _, k in self.recipe.spec_keys if k not in known]
        if bad:
            raise ValueError(f"space {self.name!r}: recipe reads {bad}, which are neither "
                             f"parameters nor fixed values")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def dim(self) -> int:
        return len(self.params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"space {self.name!r} has no parameter {name!r}; it has {self.names}")

    def unit_points(self, start: int, stop: int, seed: int) -> np.ndarray:
        """Scrambled Sobol points with indices start..stop-1, shape [stop - start, dim]."""
        if not 0 <= start <= stop:
            raise ValueError(f"bad Sobol index range {start}:{stop}")
        return _sobol_block(self.dim, seed, stop)[start:stop]

    def from_unit(self, u: np.ndarray) -> list[dict[str, Any]]:
        """Map unit points, shape [n, dim], to config dicts (free parameters only)."""
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        if u.shape[1] != self.dim:
            raise ValueError(f"{self.name}: points must have {self.dim} columns, got {u.shape}")
        cols = [p.from_unit(u[:, j]) for j, p in enumerate(self.params)]
        out = []
        for i in range(u.shape[0]):
            cfg = {}
            for p, c in zip(self.params, cols, strict=True):
                v = c[i]
                cfg[p.name] = (p.choices[int(v)] if p.kind == "cat"
                               else int(v) if p.integer else float(v))
            out.append(cfg)
        return out

    def configs(self, start: int, stop: int, seed: int) -> list[dict[str, Any]]:
        """Configs for Sobol indices start..stop-1."""
        return self.from_unit(self.unit_points(start, stop, seed))

    def config_at(self, index: int, seed: int) -> dict[str, Any]:
        return self.configs(index, index + 1, seed)[0]

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check every free parameter is present and in range; fixed ones, if given, match."""
        missing = [n for n in self.names if n not in config]
        if missing:
            raise ConfigError(f"{self.name} config is missing {missing}")
        out = {p.name: p.validate(config[p.name]) for p in self.params}
        for k, v in config.items():
            if k in out:
                continue
            if k in self.fixed:
                if v != self.fixed[k]:
                    raise ConfigError(f"{k}={v!r} is fixed to {self.fixed[k]!r} in {self.name}")
            else:
                raise ConfigError(f"{self.name} has no parameter {k!r}; it has {self.names}")
        return out

    def full(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Validated config plus the fixed values: everything a model builder needs."""
        return {**self.fixed, **self.validate(config)}

    def to_unit(self, configs: list[Mapping[str, Any]]) -> np.ndarray:
        """Configs to unit-cube features, shape [n, dim] (for surrogate models, nearest)."""
        return np.array([[p.to_unit(c[p.name]) for p in self.params] for c in configs],
                        dtype=np.float64).reshape(len(configs), self.dim)

    def to_json(self, config: Mapping[str, Any]) -> str:
        return json.dumps(self.validate(config), sort_keys=True)

    def from_json(self, text: str) -> dict[str, Any]:
        return self.validate(json.loads(text))


@lru_cache(maxsize=8)
def _sobol_block(dim: int, seed: int, n: int) -> np.ndarray:
    # Sobol points must be drawn from index 0 to keep ids stable; cache the prefix.
    m = max(1, math.ceil(math.log2(max(n, 1))))
    pts = qmc.Sobol(d=dim, scramble=True, seed=seed).random_base2(m)
    pts.setflags(write=False)
    return pts


MNIST_SPACE = Space(
    name="mnist",
    params=(
        Param("c1_filters", "int", 1, 350),
        Param("c2_filters", "int", 1, 350),
        Param("fc_units", "int", 1, 1024),
        Param("filter_size", "int", 2, 10),
        Param("pool1", "int", 2, 3),
        Param("pool2", "int", 2, 3),
        Param("learning_rate", "logfloat", 1e-4, 10**-0.5),
        Param("l2_weight", "float", 0.0, 1.0),
        Param("dropout", "float", 0.0, 0.9),
    ),
    fixed={"activation": "relu", "regularizer": "dropout"},
)

CIFAR10_SPACE = Space(
    name="cifar10",
    params=(
        Param("c1_filters", "int", 8, 32),
        Param("c2_filters", "int", 32, 64),
        Param("c3_filters", "int", 64, 128),
        Param("c4_filters", "int", 64, 128),
        Param("fc_units", "int", 10, 1000),
        Param("filter_size", "int", 2, 3),
        Param("learning_rate", "logfloat", 1e-4, 10**-0.5),
        Param("l2_weight", "float", 0.0, 1.0),
        Param("activation", "cat", choices=("relu", "elu", "tanh")),
        Param("regularizer", "cat", choices=("none", "dropout", "batchnorm")),
    ),
    fixed={"pool1": 2, "pool2": 2, "dropout": 0.5},
)

# LCBench (Zimmer et al. 2021, "Auto-PyTorch Tabular"; github.com/automl/LCBench): the seven
# randomly sampled hyperparameters and ranges of its README / Table, log scale where LCBench
# says so (batch size, learning rate, max units; momentum and weight decay are linear there,
# as in Auto-PyTorch's SGD space). Fixed as in LCBench's configs: funnel-shaped MLP with ReLU
# (Auto-PyTorch's ShapedMlpNet, see pregen.models), SGD with momentum and weight decay, cosine
# annealing over the T epochs (eta_min 1e-8). Ours: Sobol points instead of LCBench's random
# sampling; log-integers mapped by log-width bins (module docstring); no class weighting in
# the loss (LCBench: weighted cross-entropy; the digits classes are balanced to within 5%).
LCBENCH_MLP_SPACE = Space(
    name="lcbench-mlp",
    params=(
        Param("batch_size", "logint", 16, 512),
        Param("learning_rate", "logfloat", 1e-4, 1e-1),
        Param("momentum", "float", 0.1, 0.99),
        Param("weight_decay", "float", 1e-5, 1e-1),
        Param("num_layers", "int", 1, 5),  # Linear layers, the output layer included
        Param("max_units", "logint", 64, 1024),  # width of the first hidden layer
        Param("max_dropout", "float", 0.0, 1.0),  # dropout of the first hidden layer
    ),
    fixed={"mlp_shape": "funnel", "activation": "relu"},
    dataset="digits",
    recipe=Recipe(optimizer="momentum", schedule="cosine",
                  spec_keys=(("lr", "learning_rate"), ("momentum", "momentum"),
                             ("weight_decay", "weight_decay"), ("batch_size", "batch_size"))),
)

SPACES: dict[str, Space] = {s.name: s for s in (MNIST_SPACE, CIFAR10_SPACE, LCBENCH_MLP_SPACE)}


def get_space(name: str) -> Space:
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; choose from {sorted(SPACES)}") from None
