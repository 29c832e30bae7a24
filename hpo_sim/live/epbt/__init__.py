"""EPBT (Liang et al.): evolutionary PBT with TaylorGLO losses, against PBT and Baseline 1.

- `config`: `EPBTConfig`, `epbt_space`, the step learning-rate schedule and the PBD ramp.
- `taylorglo`: the TaylorGLO loss (equation 2); `genetic`: EPBT's genetic operators.
- `engine`: the population engine the three methods share (`Engine`, `train_and_measure`).
- `algorithm`: EPBT itself (`EPBTRun`, `run`, `EPBTResult`, `lineage`).
- `baselines`: PBT (Baseline 2, decisions in `hpo_sim.live.pbt`) and Baseline 1.
- `summary`: the paper's tables and member-epochs; `claims`: the paper's claims judged on the
  records; `results`: the result-folder layout; `cli`: `lcsim live epbt`.

Names are re-exported on first use, so `lcsim --help` does not import torch.
"""

from lcsim.hpo_sim.live.common import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "algorithm": ("EPBTResult", "EPBTRun", "lineage", "make_engine", "run", "training_data"),
    "claims": ("beats", "loss_functions"),
    "config": ("METHODS", "EPBTConfig", "epbt_space", "pbd_alpha", "step_lr"),
    "engine": ("Engine", "pbd_target", "soft_cross_entropy"),
    "summary": ("closing_tables", "epochs_to_pass", "member_epochs", "summarize"),
})
