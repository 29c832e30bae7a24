"""Live training-time methods on pregen's trainer stack: one subpackage per method.

- `alrs`: ALRS (initial learning rate) and its comparison; `lcsim live alrs|alrs-compare`.
- `esgd`: ESGD and its baselines; `lcsim live esgd`.
- `epbt`: EPBT, its ablations and baselines (PBT, Baseline 1); `lcsim live epbt`.
- `pbt`: PBT's exploit / explore decisions (run as EPBT's Baseline 2).
- `population`: stacked populations, their optimizer and training steps (ESGD, EPBT).
- `common`: presets, result files, model factory, data, seeds.

Each method folder holds its modules, its `cli.py`, its `results.py` (the result-folder
layout that `lcsim.analysis.results` imports) and its `presets/*.json`.
"""
