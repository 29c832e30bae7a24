"""EPBT's baselines on its engine: PBT (Baseline 2) and Baseline 1 (paper Section 4.1).

- **PBT**: every member trains E epochs with cross-entropy, SGD momentum 0.9 and its own
  constant lr (log-uniform in [1e-4, 0.1], `pbt.PBT_SPACE`); then `pbt.exploit` /
  `pbt.explore` (bottom 25% copy weights, optimizer state and h of a top-25% member, then
  perturb h).
- **Baseline 1**: one member, cross-entropy, SGD momentum 0.9, the step schedule
  (`config.step_lr` with lr_scale 1, lr_decay `baseline_decay`), T epochs.

Both return the records of `engine.generation_rows`, as EPBT does.
"""

from __future__ import annotations

import numpy as np
from lcsim.hpo_sim.live import pbt
from lcsim.hpo_sim.live.epbt.config import EPBTConfig, epbt_space
from lcsim.hpo_sim.live.epbt.engine import (
    Engine,
    generation_rows,
    new_state,
    soft_cross_entropy,
    train_and_measure,
)
from lcsim.hpo_sim.live.population import StackedOptimizer

__all__ = ["run_baseline", "run_pbt"]


def run_pbt(eng: Engine, cfg: EPBTConfig, progress) -> list[dict]:
    space, P = pbt.PBT_SPACE, cfg.population
    h = space.sample(P, eng.rng)
    pop = eng.new_population(P)
    opt = StackedOptimizer(pop, ["momentum"] * P, h[:, 0], momentum=cfg.momentum)
    ids, parent = np.arange(P), np.full(P, -1)
    role = np.array(["initial"] * P, dtype=object)
    trained = np.zeros(P, dtype=np.int64)
    next_id, rows = P, []
    for g in range(cfg.generations):
        m = train_and_measure(eng, cfg, space, pop, opt, h, g, soft_cross_entropy, None,
                               "constant")
        trained = trained + cfg.epochs_per_generation
        s = new_state(h, ids, parent, np.full(P, -1), role, trained, m)
        rows += generation_rows(g, cfg, space, s, novelty_on=False, alpha=0.0)
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


def run_baseline(eng: Engine, cfg: EPBTConfig, progress) -> list[dict]:
    space = epbt_space(taylorglo=False)
    h = np.array([[1.0, cfg.baseline_decay, cfg.momentum]])  # Baseline 1's schedule exactly
    pop = eng.new_population(1)
    opt = StackedOptimizer(pop, ["momentum"], cfg.base_lr, momentum=cfg.momentum)
    rows = []
    for g in range(cfg.generations):
        m = train_and_measure(eng, cfg, space, pop, opt, h, g, soft_cross_entropy, None,
                               "step")
        s = new_state(h, np.zeros(1), np.full(1, -1), np.full(1, -1), ["baseline"],
                       np.full(1, (g + 1) * cfg.epochs_per_generation), m)
        rows += generation_rows(g, cfg, space, s, novelty_on=False, alpha=0.0)
        if progress:
            progress(g, cfg.generations, {"best": float(m["fitness"].max())})
    return rows
