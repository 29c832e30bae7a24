"""ESGD (Cui et al. 2018): evolutionary SGD against population and single-model baselines.

- `config`: `ESGDConfig`, `OptimizerPool` (the optimizer and learning-rate draws).
- `operators`: roulette selection, recombination, m-elitist selection, the SGD step with
  back-off.
- `algorithm`: `run(method, ...) -> ESGDResult` for esgd | population | no-evolution | single.
- `summary`: `summarize` (paper Table 1, top 15 as a range) and `generations` (best and
  m-elitist fitness per generation); `claims`: the paper's claims judged on those frames.
- `results`: the result-folder layout; `cli`: `lcsim live esgd`.

Names are re-exported on first use, so `lcsim --help` does not import torch.
"""

from lcsim.hpo_sim.live.common import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "algorithm": ("ESGDResult", "fitness_size", "run"),
    "claims": ("esgd_vs_population", "theorem1"),
    "config": ("METHODS", "ESGDConfig", "OptimizerPool"),
    "operators": ("m_elitist_select", "recombine", "roulette_probabilities", "select_parents",
                  "sgd_step"),
    "summary": ("GENERATION_COLUMNS", "generations", "summarize"),
})
