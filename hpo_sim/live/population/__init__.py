"""The population machinery ESGD and EPBT share: P models trained together as stacked tensors.

- `stack`: `Population` (stacked parameters and buffers, vmap forward, member surgery).
- `optimizer`: `StackedOptimizer` (per-member SGD / momentum / Nesterov / Adam, torch.optim's
  updates; its surgery mirrors the population's).
- `steps`: `train_step`, `train_epoch` (on pregen.trainer's batching and loss rules),
  `evaluate`, `recalibrate_bn`, `cross_entropy_per_member`.
- `hspace`: `HSpace`, the box of per-member hyperparameters that EPBT and PBT evolve (numpy
  only: names are re-exported on first use, so importing `hspace` does not import torch).
"""

from lcsim.hpo_sim.live.common import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "hspace": ("HSpace",),
    "optimizer": ("OPTIMIZER_KINDS", "StackedOptimizer"),
    "stack": ("Population", "PopulationState", "member_index"),
    "steps": ("cross_entropy_per_member", "evaluate", "recalibrate_bn", "train_epoch",
              "train_step"),
})
