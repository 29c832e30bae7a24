"""Throughput of a stacked population step vs the same members trained one after another.

For P members of one architecture (default 16) on one device, times a training step
(forward, backward, optimizer step) for every member, three ways, side by side in one run:

- `sequential`: P ordinary nn.Modules, each with its own torch.optim optimizer, stepped one
  after another (what one would write without stacking);
- `loop`: the stacked Population with `batched=False` (per-member functional_call loop);
- `batched`: the stacked Population under torch.func.vmap (hpo_sim.live.population).

and prints images per second and the ratio batched / sequential (and batched / loop), plus
the same for evaluation (forward only, one shared batch, as ESGD's fitness does).

    OMP_NUM_THREADS=1 python benchmarks/population_throughput.py --device cpu --batch 16
    python benchmarks/population_throughput.py --device cuda --batch 128     # the issue's goal

Measured numbers are in the ESGD engineer's closing note; rerun to reproduce.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved(fns: dict, rounds: int, warmup: int, device: torch.device) -> dict:
    """Median seconds per call of each fn, timing them in turn, round after round, so a
    shared machine's load changes hit every mode alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(name: str, args, device: torch.device) -> dict[str, float]:
    from lcsim.hpo_sim.live.population import (
        Population,
        StackedOptimizer,
        cross_entropy_per_member,
        train_step,
    )
    from lcsim.pregen.models import build_named_model

    in_shape = (1, 28, 28) if name == "mnist-cnn" else (3, 32, 32)
    P, B = args.members, args.batch
    models = [build_named_model(name, in_shape=in_shape, num_classes=10, seed=s).to(device)
              for s in range(P)]
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn((P, B, *in_shape), generator=g, device=device)
    y = torch.randint(0, 10, (P, B), generator=g, device=device)
    lrs = [0.01 * (1 + j / P) for j in range(P)]  # per-member lr: what stacking must support

    opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, nesterov=True)
            for m, lr in zip(models, lrs, strict=True)]
    loss_fn = nn.CrossEntropyLoss()

    def sequential_step():
        for j, (m, o) in enumerate(zip(models, opts, strict=True)):
            m.train()
            o.zero_grad(set_to_none=True)
            loss_fn(m(x[j]), y[j]).backward()
            o.step()

    @torch.no_grad()
    def sequential_eval():
        for m in models:
            m.eval()
            loss_fn(m(x[0]), y[0])

    fns = {"train sequential": sequential_step, "eval sequential": sequential_eval}
    for mode, batched in (("loop", False), ("batched", True)):
        pop = Population.from_models(models, batched=batched)
        opt = StackedOptimizer(pop, ["nesterov"] * P, lrs, momentum=0.9)

        def pop_step(pop=pop, opt=opt):
            train_step(pop, opt, x, y)

        @torch.no_grad()
        def pop_eval(pop=pop):
            cross_entropy_per_member(pop.forward(x[0], train=False), y[0])

        fns[f"train {mode}"] = pop_step
        fns[f"eval {mode}"] = pop_eval
    out = _interleaved(fns, args.steps, args.warmup, device)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=["mnist-cnn", "resnet20"])
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--batch", type=int, default=128, help="images per member per step")
    ap.add_argument("--steps", type=int, default=10, help="timed rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {name}; {args.members} members x batch {args.batch}; torch "
          f"{torch.__version__}; median of {args.steps} interleaved rounds after {args.warmup} "
          "warm-up")
    for model in args.models:
        t = bench(model, args, device)
        imgs = args.members * args.batch
        for phase in ("train", "eval"):
            seq, loop, bat = (t[f"{phase} {m}"] for m in ("sequential", "loop", "batched"))
            print(f"{model:10s} {phase:5s} img/s: sequential {imgs / seq:9.0f}  loop "
                  f"{imgs / loop:9.0f}  batched {imgs / bat:9.0f}  ratio batched/sequential "
                  f"{seq / bat:5.2f}x  batched/loop {loop / bat:5.2f}x")


if __name__ == "__main__":
    main()
