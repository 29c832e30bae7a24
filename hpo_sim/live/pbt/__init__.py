"""PBT (Jaderberg et al. 2017): exploit / explore decisions on a population's hyperparameters.

The decisions are pure (`operators`: numpy, an explicit Generator). PBT runs as the EPBT
paper's Baseline 2, on EPBT's population engine: `lcsim live epbt --method pbt`
(`hpo_sim.live.epbt.baselines.run_pbt`), results in EPBT's layout (`epbt.results`).
"""

from lcsim.hpo_sim.live.pbt.operators import PBT_SPACE, PBTConfig, exploit, explore

__all__ = ["PBT_SPACE", "PBTConfig", "exploit", "explore"]
