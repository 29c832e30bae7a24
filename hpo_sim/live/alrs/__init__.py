"""ALRS (automatic initial learning rate from the sign of the LR gradient) and its comparison.

- `search`: `SBF`, the soft binary + fractional search the signals steer.
- `algorithm`: `alrs(...) -> ALRSResult`, Algorithm 1 (`LRGradientProbe` per batch).
- `hypergrad`: `HypergradientLR`, online hypergradient descent (Baydin et al.) on any
  torch.optim optimizer.
- `compare`: the paper's comparison (`Experiment`, `run_experiment`) against standard rates,
  the LR range test, Prodigy, hypergradient descent and a grid; `summary`: its tables and
  plot; `results`: its result-folder layout; `cli`: `lcsim live alrs` and `alrs-compare`.
- `claims`: the paper's checkable claims judged on a result folder's frames.

Names are re-exported on first use, so `lcsim --help` does not import torch.
"""

from lcsim.hpo_sim.live.common import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "algorithm": ("ADJUSTMENTS", "ALRSConfig", "ALRSResult", "LRGradientProbe", "SignalRecord",
                  "alrs"),
    "claims": ("cost_about_one_epoch", "rate_within_grid", "seed_variation"),
    "compare": ("Experiment", "load_experiments", "run_experiment"),
    "hypergrad": ("HypergradientLR",),
    "search": ("SBF", "ParameterSearch", "SBFConfig", "SearchEvent"),
    "summary": ("format_summary", "plot_curves", "summarize"),
})
