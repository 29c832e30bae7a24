"""How far apart are fp32 and bf16 learning curves? The same configs trained both ways.

A small Sobol sample of the MNIST space (ids 0..n-1) is trained twice with the table recipe
(`pregen.recipe`: Adam, batch 128, each config's learning rate and L2 weight, its seed from
(seed, id)), once in fp32 and once with bf16 autocast (+ channels_last on CUDA), on the same
data split. Printed per config: final validation accuracy in each precision and the largest
per-epoch gap; then the mean and largest |final fp32 - final bf16| over the sample. With
--figure, a PNG of both curves per config.

    python benchmarks/bf16_vs_fp32.py --device cuda --n-configs 12 --epochs 5
    OMP_NUM_THREADS=1 python benchmarks/bf16_vs_fp32.py --device cpu --n-configs 2 \\
        --epochs 1 --max-train 128 --val-size 64                       # a toy run on a CPU

No measurement yet: written without a GPU at hand (run it through benchmarks/gpu_check.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n-configs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--data-root", help="MNIST root (default: the shipped 10k subset)")
    ap.add_argument("--max-train", type=int, help="first N training digits only")
    ap.add_argument("--val-size", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sobol-seed", type=int, default=0)
    ap.add_argument("--figure", type=Path, help="write the curves to this PNG")
    ap.add_argument("--json", type=Path, help="write the numbers to this JSON file")
    a = ap.parse_args(argv)

    from lcsim.pregen.recipe import config_seed
    from lcsim.pregen.runner import RunConfig
    from lcsim.pregen.trainer import train_config
    from lcsim.pregen.workers import load_run_data, run_train_spec
    from lcsim.tabular.spaces import get_space

    cfg = RunConfig(out="unused", space="mnist", dataset="mnist", data_root=a.data_root,
                    n_configs=a.n_configs, epochs=a.epochs, max_train=a.max_train,
                    val_size=a.val_size, seed=a.seed, sobol_seed=a.sobol_seed, progress=False)
    space = get_space("mnist")
    data = load_run_data(cfg, a.device)
    base = run_train_spec(cfg, a.device)
    cuda = a.device.startswith("cuda")
    print(f"device {a.device}; {a.n_configs} MNIST configs x {a.epochs} epoch(s); "
          f"{len(data.train_y)} train / {len(data.val_y)} val digits; bf16 autocast"
          f"{' + channels_last' if cuda else ''} vs fp32", flush=True)
    print(f"{'id':>4} {'final fp32':>10} {'final bf16':>10} {'max |gap|':>9} status", flush=True)
    rows = []
    for i, config in enumerate(space.configs(0, a.n_configs, a.sobol_seed)):
        curves = {}
        status = {}
        for name, bf16 in (("fp32", False), ("bf16", True)):
            spec = replace(base, seed=config_seed(a.seed, i), bf16=bf16,
                           channels_last=bf16 and cuda)
            res = train_config(space, config, data, spec, a.device)
            acc = np.full(a.epochs, np.nan)
            acc[:len(res.epochs)] = [r.val_accuracy for r in res.epochs]
            curves[name], status[name] = acc, res.status
        gap = np.abs(curves["fp32"] - curves["bf16"])
        rows.append({"config_id": i, "fp32": curves["fp32"].tolist(),
                     "bf16": curves["bf16"].tolist(), "status": status})
        print(f"{i:>4} {curves['fp32'][-1]:>10.4f} {curves['bf16'][-1]:>10.4f} "
              f"{np.nanmax(gap) if np.isfinite(gap).any() else float('nan'):>9.4f} "
              f"{status['fp32']}/{status['bf16']}", flush=True)
    final = np.array([[r["fp32"][-1], r["bf16"][-1]] for r in rows])
    ok = np.isfinite(final).all(axis=1)
    d = np.abs(final[ok, 0] - final[ok, 1])
    print(f"final accuracy |fp32 - bf16| over {int(ok.sum())} configs: mean "
          f"{d.mean() if d.size else float('nan'):.4f}, max "
          f"{d.max() if d.size else float('nan'):.4f}")
    if a.json:
        a.json.write_text(json.dumps({"device": a.device, "epochs": a.epochs, "rows": rows},
                                     indent=1))
    if a.figure:
        _figure(rows, a.epochs, a.device, a.figure)
        print(f"figure: {a.figure}")
    return 0


def _figure(rows: list[dict], epochs: int, device: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    e = np.arange(1, epochs + 1)
    for k, r in enumerate(rows):
        color = plt.cm.tab20(k % 20)
        ax.plot(e, r["fp32"], color=color, lw=1.5)
        ax.plot(e, r["bf16"], color=color, lw=1.5, ls="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"fp32 (solid) vs bf16 (dashed), {len(rows)} MNIST configs, {device}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
