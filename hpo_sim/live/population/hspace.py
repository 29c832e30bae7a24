"""HSpace: the box of per-member hyperparameters a population method samples and evolves.

Rows of a float array h [n, d] are d variables (names, bounds [low, high], log-uniform and
integer flags). `sample` draws fresh rows from an explicit numpy Generator, `clip` puts
perturbed rows back into the box (clip, then round integers rather than truncate). EPBT's
genetic operators and PBT's explore both work on these rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["HSpace"]


@dataclass(frozen=True)
class HSpace:
    """Box of hyperparameters: d variables with bounds [low, high]; init samples the same box.

    `log[j]`: sample variable j log-uniformly (needs low > 0); `integer[j]`: round to integer.
    """

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    log: tuple[bool, ...]
    integer: tuple[bool, ...]

    def __post_init__(self):
        d = len(self.names)
        for field_name in ("low", "high", "log", "integer"):
            if len(getattr(self, field_name)) != d:
                raise ValueError(f"HSpace.{field_name} has {len(getattr(self, field_name))} "
                                 f"entries for {d} names {self.names}")
        for n, lo, hi, lg in zip(self.names, self.low, self.high, self.log, strict=True):
            if not lo < hi:
                raise ValueError(f"HSpace parameter {n!r}: low {lo} must be < high {hi}")
            if lg and lo <= 0:
                raise ValueError(f"HSpace parameter {n!r} is log-scaled but low = {lo} <= 0")

    @classmethod
    def build(cls, params: Sequence[tuple]) -> HSpace:
        """From (name, low, high[, log[, integer]]) tuples."""
        rows = [(p[0], float(p[1]), float(p[2]), bool(p[3]) if len(p) > 3 else False,
                 bool(p[4]) if len(p) > 4 else False) for p in params]
        names, low, high, log, integer = zip(*rows, strict=True)
        return cls(names, low, high, log, integer)

    @property
    def dim(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no hyperparameter {name!r}; have {self.names}") from None

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n fresh rows [n, d], uniform (log-uniform where `log`) in each variable's box."""
        u = rng.random((n, self.dim))
        return self.clip(self._from_unit(u))

    def _from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi, lg = np.array(self.low), np.array(self.high), np.array(self.log)
        lin = lo + u * (hi - lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            logv = np.exp(np.log(np.where(lg, lo, 1.0))
                          + u * (np.log(np.where(lg, hi, 2.0)) - np.log(np.where(lg, lo, 1.0))))
        return np.where(lg, logv, lin)

    def clip(self, h: np.ndarray) -> np.ndarray:
        """Clip to [low, high] and round (not truncate) integer variables."""
        h = np.clip(np.asarray(h, dtype=float), self.low, self.high)
        ints = np.array(self.integer)
        return np.where(ints, np.rint(h), h)

    def as_dict(self, row: np.ndarray) -> dict[str, float]:
        return {n: (int(v) if i else float(v))
                for n, v, i in zip(self.names, row, self.integer, strict=True)}
