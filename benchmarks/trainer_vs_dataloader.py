"""Throughput: pregen's on-device trainer vs a plain torchvision DataLoader loop.

Both sides train the same configs (same model init, same train/validation split, Adam, batch
128, the config's lr and L2 penalty) for the same epochs on the same device and evaluate on
the validation split after each epoch. Runs are interleaved config by config, so both see
the same machine load. The DataLoader side is the usual recipe: torchvision.datasets.MNIST
with ToTensor + Normalize transforms, a Subset for the split, DataLoader(shuffle=True), and
each batch moved to the device. Data loading before training (one load_dataset for the
trainer, the dataset object for the loop) is outside the timed region on both sides.

    OMP_NUM_THREADS=1 python benchmarks/trainer_vs_dataloader.py            # CPU, shipped MNIST
    python benchmarks/trainer_vs_dataloader.py --device cuda --configs 5 --epochs 2

Prints seconds and final validation accuracy per config for both, configs/hour for both and
their ratio.

Measured 2026-11-23 on the shared 2-core CPU dev box (load average ~9, torch 2.14.1, 1 thread),
`OMP_NUM_THREADS=1 python benchmarks/trainer_vs_dataloader.py --configs 3 --epochs 1`: trainer
1112.7 vs DataLoader 680.4 configs/hour, ratio 1.64x (a second run: 1.60x); same final
accuracies to within 0.02. No GPU figure yet.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
import torchvision
from lcsim.pregen.data import default_val_size, load_dataset, shipped_mnist_root, split_indices
from lcsim.pregen.models import build_model
from lcsim.pregen.trainer import TrainSpec, l2_params, l2_penalty, seeds, train_config
from lcsim.tabular.spaces import MNIST_SPACE
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

# Small MNIST configs (Table I ranges), so a CPU run takes a minute or two.
CONFIGS = [
    {"c1_filters": 8, "c2_filters": 16, "fc_units": 64, "filter_size": 3, "pool1": 2,
     "pool2": 2, "learning_rate": 1e-3, "l2_weight": 0.0, "dropout": 0.2},
    {"c1_filters": 16, "c2_filters": 32, "fc_units": 128, "filter_size": 5, "pool1": 2,
     "pool2": 3, "learning_rate": 3e-3, "l2_weight": 1e-4, "dropout": 0.5},
    {"c1_filters": 12, "c2_filters": 24, "fc_units": 96, "filter_size": 4, "pool1": 3,
     "pool2": 2, "learning_rate": 2e-3, "l2_weight": 1e-3, "dropout": 0.0},
    {"c1_filters": 24, "c2_filters": 48, "fc_units": 256, "filter_size": 3, "pool1": 2,
     "pool2": 2, "learning_rate": 1e-3, "l2_weight": 0.0, "dropout": 0.3},
    {"c1_filters": 6, "c2_filters": 12, "fc_units": 32, "filter_size": 7, "pool1": 3,
     "pool2": 3, "learning_rate": 5e-3, "l2_weight": 1e-4, "dropout": 0.1},
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dataloader_run(cfg: dict, root, device: torch.device, spec: TrainSpec, workers: int,
                   val_size: int | None) -> tuple[float, float]:
    """Train cfg with a torchvision DataLoader loop; return (seconds, final val accuracy)."""
    full = MNIST_SPACE.full(cfg)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = torchvision.datasets.MNIST(root, train=True, transform=tf)
    n = len(ds)
    val_n = default_val_size("mnist", n) if val_size is None else val_size
    tr_idx, val_idx = split_indices(n, val_n, 0)
    init_seed, data_seed, dropout_seed = seeds(spec.seed)
    train_dl = DataLoader(Subset(ds, tr_idx.tolist()), batch_size=spec.batch_size,
                          shuffle=True, num_workers=workers,
                          generator=torch.Generator().manual_seed(data_seed),
                          pin_memory=device.type == "cuda")
    val_dl = DataLoader(Subset(ds, val_idx.tolist()), batch_size=spec.eval_batch_size,
                        num_workers=workers)
    model = build_model("mnist", full, in_shape=(1, 28, 28), num_classes=10,
                        seed=init_seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=full["learning_rate"])
    lam, penalized = full["l2_weight"], l2_params(model)
    torch.manual_seed(dropout_seed)  # benchmark script: global RNG is fine here
    acc = float("nan")
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(spec.epochs):
        model.train()
        for x, y in train_dl:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            if lam > 0:
                loss = loss + lam * l2_penalty(penalized)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val_dl:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        acc = correct / total
    _sync(device)
    return time.perf_counter() - t0, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", help="root holding MNIST/raw (default: shipped 10k subset)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", type=int, default=3, help=f"how many (max {len(CONFIGS)})")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader num_workers")
    ap.add_argument("--val-size", type=int)
    args = ap.parse_args()
    device = torch.device(args.device)
    root = args.data_root or shipped_mnist_root()
    spec = TrainSpec(epochs=args.epochs, batch_size=128, seed=0)
    data = load_dataset("mnist", root, val_size=args.val_size, device=device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {len(data.train_y)} train"
          f" / {len(data.val_y)} val, {args.epochs} epoch(s), DataLoader workers {args.workers}")
    print(f"{'config':>6} {'trainer_s':>10} {'loader_s':>10} {'trainer_acc':>12} "
          f"{'loader_acc':>11}")
    t_tr = t_dl = 0.0
    for i, cfg in enumerate(CONFIGS[:args.configs]):
        _sync(device)
        t0 = time.perf_counter()
        r = train_config(MNIST_SPACE, cfg, data, spec, device)
        _sync(device)
        s_tr = time.perf_counter() - t0
        s_dl, acc_dl = dataloader_run(cfg, root, device, spec, args.workers, args.val_size)
        t_tr, t_dl = t_tr + s_tr, t_dl + s_dl
        print(f"{i:>6} {s_tr:>10.2f} {s_dl:>10.2f} {r.final_accuracy:>12.4f} {acc_dl:>11.4f}",
              flush=True)
    n = min(args.configs, len(CONFIGS))
    cph_tr, cph_dl = 3600 * n / t_tr, 3600 * n / t_dl
    print(f"configs/hour: trainer {cph_tr:.1f}, DataLoader loop {cph_dl:.1f}, "
          f"ratio trainer/DataLoader {cph_tr / cph_dl:.2f}x")


if __name__ == "__main__":
    main()
