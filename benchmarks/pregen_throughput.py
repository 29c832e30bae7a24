"""Table-generation throughput: configs/hour of a naive loop vs `lcsim pregen run`, one device.

Both train the same fixed Sobol sample of the MNIST space (ids 0..n-1, --sobol-seed) on the
shipped 10,000-digit MNIST subset, with the same recipe (Adam, batch 128, the config's
learning rate and L2 weight), the same number of training and validation examples and
epochs, one after the other in one process run:

(a) naive: what a user would write: one config at a time, torchvision.datasets.MNIST with
    ToTensor + Normalize through a torch DataLoader (shuffle, num_workers=0), fp32,
    a validation pass per epoch through a second DataLoader;
(b) lcsim: `pregen.runner.run` into a temp table directory: the split as one tensor on the
    device, --workers-per-device configs at once, bf16 + channels_last on CUDA, plus
    everything the real command does (planning, solo timing when shared, shard writes).

Prints configs/hour of each and the ratio (b)/(a).

    OMP_NUM_THREADS=1 python benchmarks/pregen_throughput.py                  # CPU, small
    python benchmarks/pregen_throughput.py --device cuda --workers 4 --n-configs 64

Measured 2026-11-23 on CPU (a 2-core AMD EPYC VM shared with ~8 other jobs, load ~8,
OMP_NUM_THREADS=1), `--n-configs 6 --n-train 512 --n-val 256`, 1 epoch:
    (a) naive 129.9 s = 166 configs/h; (b) lcsim 127.1 s = 170 configs/h; ratio 1.02x.
On one CPU thread the MNIST-space configs are compute-bound (most FLOPs in the second conv),
so keeping the data as a tensor only removes the small per-sample transform cost; the gains
lcsim is built for (several configs per device, bf16, channels_last) need a GPU, where this
script has not been run yet (no device in that session).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch


def naive(configs, root: str, n_train: int, n_val: int, epochs: int, device: str,
          seed: int) -> float:
    """Seconds to train every config the naive way (returns wall time)."""
    import torchvision
    from lcsim.pregen.models import build_model
    from lcsim.tabular.spaces import MNIST_SPACE
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = torchvision.datasets.MNIST(root, train=True, transform=tf)
    train_ds = Subset(ds, range(n_train))
    val_ds = Subset(ds, range(n_train, n_train + n_val))
    t0 = time.perf_counter()
    for i, cfg in enumerate(configs):
        full = MNIST_SPACE.full(cfg)
        model = build_model("mnist", full, in_shape=(1, 28, 28), num_classes=10,
                            seed=seed + i).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=full["learning_rate"])
        weights = [m.weight for m in model.modules()
                   if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
        g = torch.Generator().manual_seed(seed + i)
        train_dl = DataLoader(train_ds, batch_size=128, shuffle=True, generator=g)
        val_dl = DataLoader(val_ds, batch_size=1024)
        for _ in range(epochs):
            model.train()
            for x, y in train_dl:
                x, y = x.to(device), y.to(device)
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss = loss + full["l2_weight"] * sum(w.pow(2).sum() for w in weights)
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for x, y in val_dl:
                    correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
            if not torch.isfinite(loss):
                break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def lcsim(n_configs: int, sobol_seed: int, n_train: int, n_val: int, epochs: int,
          device: str, workers: int, seed: int) -> float:
    from lcsim.pregen.runner import RunConfig, run

    with tempfile.TemporaryDirectory() as d:
        cfg = RunConfig(out=os.path.join(d, "table"), space="mnist", dataset="mnist",
                        n_configs=n_configs, epochs=epochs, devices=(device,),
                        workers_per_device=workers, sobol_seed=sobol_seed, seed=seed,
                        val_size=n_val, max_train=n_train, progress=False)
        t0 = time.perf_counter()
        summary = run(cfg)
        dt = time.perf_counter() - t0
    assert summary.planned == n_configs, summary
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-configs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=1024)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1, help="lcsim workers per device")
    ap.add_argument("--sobol-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    from lcsim.pregen.data import shipped_mnist_root
    from lcsim.tabular.spaces import MNIST_SPACE

    root = str(shipped_mnist_root())
    configs = MNIST_SPACE.configs(0, a.n_configs, a.sobol_seed)
    print(f"device {a.device}, torch threads {torch.get_num_threads()}, {a.n_configs} MNIST "
          f"configs (Sobol 0..{a.n_configs - 1}, seed {a.sobol_seed}) x {a.epochs} epoch(s), "
          f"{a.n_train} train / {a.n_val} val digits", flush=True)
    t_naive = naive(configs, root, a.n_train, a.n_val, a.epochs, a.device, a.seed)
    print(f"(a) naive loop:  {t_naive:8.1f} s  {a.n_configs / t_naive * 3600:9.1f} configs/h",
          flush=True)
    t_lcsim = lcsim(a.n_configs, a.sobol_seed, a.n_train, a.n_val, a.epochs, a.device,
                    a.workers, a.seed)
    print(f"(b) lcsim ({a.workers} worker(s)): {t_lcsim:8.1f} s  "
          f"{a.n_configs / t_lcsim * 3600:9.1f} configs/h")
    print(f"ratio lcsim / naive: {t_naive / t_lcsim:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
