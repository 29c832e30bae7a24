"""Populations of P models of one architecture, trained and evaluated together (torch.func).

A `Population` holds every member's parameters and buffers as stacked tensors
(`torch.func.stack_module_state`: one tensor ``[P, ...]`` per parameter / buffer) and runs the
forward pass of all members at once with `torch.func.functional_call` under `torch.func.vmap`.
Members are independent: the summed loss has, for member i's slice of each stacked parameter,
exactly member i's own gradient, so one backward pass trains all of them.

Evolution operators are indexed copies on the stacked tensors (`copy_`, `take`, `cat`,
`put_`, `snapshot` / `restore_`), never checkpoint files. Batch-norm running statistics are
buffers, so they travel with the weights (`steps.recalibrate_bn` recomputes them after
recombination).

Fallback: the batched path needs every op of the model to have a vmap batching rule. Models
with data-dependent Python control flow (``if x.sum() > 0``), ``.item()`` calls, in-place
writes into tensors that are not batched (e.g. a module attribute mutated in forward), or
custom autograd functions without ``vmap`` support cannot be batched; for them the forward
falls back to a loop over members (still on the stacked tensors, so gradients, optimizer and
evolution are unchanged). `Population(batched=None)` tries vmap once and falls back with a
warning; `batched=False` forces the loop (the baseline of benchmarks/population_throughput.py).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from lcsim.hpo_sim.live.common import child_seeds
from lcsim.pregen.models import fork_seeded
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

__all__ = ["Population", "PopulationState", "member_index"]


def member_index(idx: Sequence[int] | Tensor | np.ndarray | None, size: int, device) -> Tensor:
    """Member indices as a long tensor on `device` (None: all `size`), range-checked."""
    if idx is None:
        return torch.arange(size, device=device)
    t = torch.as_tensor(np.asarray(idx) if not isinstance(idx, Tensor) else idx)
    t = t.to(device=device, dtype=torch.long).reshape(-1)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= size):
        raise IndexError(f"member index out of range for a population of {size}: {t.tolist()}")
    return t


@dataclass(frozen=True)
class PopulationState:
    """A detached copy of all members' parameters and buffers (for back-off)."""

    params: dict[str, Tensor]
    buffers: dict[str, Tensor]


class Population:
    """P models of one architecture as stacked tensors.

    `params[name]` is a leaf tensor ``[P, *shape]`` with ``requires_grad``; `buffers[name]` is
    ``[P, *shape]`` (batch-norm running statistics and counters). `base` is a copy of the
    architecture on the ``meta`` device used only as the function for `functional_call`.
    """

    def __init__(
        self,
        base: nn.Module,
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        *,
        batched: bool | None = None,
        example_ndim: int = 3,
    ):
        sizes = {t.shape[0] for t in (*params.values(), *buffers.values())}
        if len(sizes) != 1:
            raise ValueError(f"stacked tensors disagree on the population size: {sorted(sizes)}")
        self.base = base
        self.params = params
        self.buffers = buffers
        self.batched = batched  # None: try vmap, fall back to a loop on the first failure
        self.example_ndim = example_ndim  # dims of one input example: 3 for [C, H, W] images
        self._bn = [m for m in base.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self._random = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in base.modules())

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_models(
        cls, models: Sequence[nn.Module], *, device: str | torch.device | None = None,
        batched: bool | None = None, example_ndim: int = 3,
    ) -> Population:
        """Stack `models` (same architecture) into a population; the models are not modified."""
        if not models:
            raise ValueError("Population.from_models needs at least one model")
        models = [copy.deepcopy(m) for m in models]
        if device is not None:
            models = [m.to(device) for m in models]
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        return cls(base, params, buffers, batched=batched, example_ndim=example_ndim)

    @classmethod
    def from_factory(
        cls, factory: Callable[[], nn.Module], size: int, *, seed: int,
        device: str | torch.device = "cpu", batched: bool | None = None, example_ndim: int = 3,
    ) -> Population:
        """`size` independently initialised members; member j is initialised from child seed j
        of ``SeedSequence(seed)`` (layer init draws from torch's global RNG, so it runs inside
        `torch.random.fork_rng` and leaves the caller's RNG state untouched)."""
        if size < 1:
            raise ValueError(f"population size must be >= 1, got {size}")
        models = []
        for s in child_seeds(seed, size):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                models.append(factory())
        return cls.from_models(models, device=device, batched=batched,
                               example_ndim=example_ndim)

    # ---------------------------------------------------------------- basic properties
    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def __len__(self) -> int:
        return self.size

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    @property
    def has_batchnorm(self) -> bool:
        return bool(self._bn)

    def num_params(self) -> int:
        """Parameters per member."""
        return sum(p[0].numel() for p in self.params.values())

    def member(self, i: int) -> nn.Module:
        """Member i as an ordinary nn.Module (a copy: changing it leaves the population alone)."""
        m = copy.deepcopy(self.base).to_empty(device=self.device)
        sd = {k: v[i].detach().clone() for k, v in (*self.params.items(), *self.buffers.items())}
        m.load_state_dict(sd, strict=True)
        return m

    # ---------------------------------------------------------------- forward
    def forward(
        self, x: Tensor, *, train: bool, generator: torch.Generator | None = None,
        params: dict[str, Tensor] | None = None, buffers: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """Logits ``[P, B, C]`` for all members.

        `x` is ``[P, B, ...]`` (each member its own batch) or ``[B, ...]`` (one batch shared by
        all members). In train mode batch-norm updates the stacked running statistics in place
        and dropout draws from torch's RNG, forked and seeded from `generator` (required then,
        so the caller's global RNG state is never used or changed).
        `params` / `buffers` override the population's own (e.g. a gathered subset).
        """
        params = self.params if params is None else params
        buffers = self.buffers if buffers is None else buffers
        p = next(iter(params.values())).shape[0]
        if x.dim() == self.example_ndim + 1:
            shared = True
        elif x.dim() == self.example_ndim + 2 and x.shape[0] == p:
            shared = False
        else:
            raise ValueError(f"Population.forward: x has shape {tuple(x.shape)}; expected "
                             f"[B, ...] or [{p}, B, ...] with {self.example_ndim} example dims")
        self.base.train(train)
        ctx = contextlib.nullcontext()
        if train and self._random:  # dropout: the members need seeded randomness
            if generator is None:
                raise ValueError("Population.forward(train=True) on a model with dropout needs "
                                 "a torch.Generator for its randomness")
            seed = int(torch.randint(0, 2**62, (1,), generator=generator,
                                     device=generator.device))  # a CUDA generator draws there
            # forks and seeds only the CPU's and x's device's generators
            ctx = fork_seeded(seed, x.device)
        with ctx:
            if self.batched is not False:
                try:
                    return self._forward_vmap(params, buffers, x, shared)
                except (RuntimeError, NotImplementedError) as e:
                    msg = str(e).lower()
                    if self.batched is True or not ("vmap" in msg or "batch" in msg):
                        raise
                    warnings.warn(f"vmap cannot batch this model ({e}); falling back to a "
                                  "per-member loop", RuntimeWarning, stacklevel=2)
                    self.batched = False
            return self._forward_loop(params, buffers, x, shared)

    __call__ = forward

    def _forward_vmap(self, params, buffers, x, shared) -> Tensor:
        def f(pp, bb, xx):
            return functional_call(self.base, (pp, bb), (xx,))

        in_dims = (0, 0, None if shared else 0)
        return vmap(f, in_dims=in_dims, randomness="different")(params, buffers, x)

    def _forward_loop(self, params, buffers, x, shared) -> Tensor:
        p = next(iter(params.values())).shape[0]
        outs = []
        # unbind: one backward stack per tensor instead of P full-size scatters of v[i]
        pv = {k: v.unbind(0) for k, v in params.items()}
        bv = {k: v.unbind(0) for k, v in buffers.items()}  # views: BN updates land in the stack
        for i in range(p):
            pp = {k: v[i] for k, v in pv.items()}
            bb = {k: v[i] for k, v in bv.items()}
            outs.append(functional_call(self.base, (pp, bb), (x if shared else x[i],)))
        return torch.stack(outs)

    # ---------------------------------------------------------------- indexed copies
    @torch.no_grad()
    def copy_(self, dst, src) -> None:
        """Members `dst` become copies of members `src` (weights and buffers), in place."""
        d = member_index(dst, self.size, self.device)
        s = member_index(src, self.size, self.device)
        if d.numel() != s.numel():
            raise ValueError(f"copy_ needs as many sources as destinations: {d.numel()} vs "
                             f"{s.numel()}")
        for t in (*self.params.values(), *self.buffers.values()):
            t[d] = t[s]  # advanced indexing on the right copies first, so overlap is safe

    def take(self, idx) -> Population:
        """A new population made of members `idx` (repeats allowed: cloning)."""
        i = member_index(idx, self.size, self.device)
        params = {k: v.detach()[i].clone().requires_grad_(v.requires_grad)
                  for k, v in self.params.items()}
        buffers = {k: v[i].clone() for k, v in self.buffers.items()}
        return Population(self.base, params, buffers, batched=self.batched,
                          example_ndim=self.example_ndim)

    @staticmethod
    def cat(pops: Sequence[Population]) -> Population:
        """Members of `pops` one after the other (same architecture)."""
        first = pops[0]
        for p in pops[1:]:
            if p.params.keys() != first.params.keys():
                raise ValueError("Population.cat: populations have different architectures")
        params = {k: torch.cat([p.params[k].detach() for p in pops]).requires_grad_(True)
                  for k in first.params}
        buffers = {k: torch.cat([p.buffers[k] for p in pops]) for k in first.buffers}
        return Population(first.base, params, buffers, batched=first.batched,
                          example_ndim=first.example_ndim)

    @torch.no_grad()
    def put_(self, idx, other: Population) -> None:
        """Members `idx` become the members of `other` (in order), weights and buffers: the
        inverse of `take`, e.g. to train a population in chunks of members."""
        i = member_index(idx, self.size, self.device)
        if len(i) != other.size:
            raise ValueError(f"put_: {len(i)} indices for {other.size} members")
        for k, v in self.params.items():
            v[i] = other.params[k].detach()
        for k, v in self.buffers.items():
            v[i] = other.buffers[k]

    def snapshot(self) -> PopulationState:
        return PopulationState(
            params={k: v.detach().clone() for k, v in self.params.items()},
            buffers={k: v.clone() for k, v in self.buffers.items()},
        )

    @torch.no_grad()
    def restore_(self, state: PopulationState, idx=None) -> None:
        """Members `idx` (all if None) get back exactly their weights and buffers in `state`."""
        i = member_index(idx, self.size, self.device)
        for k, v in self.params.items():
            v[i] = state.params[k][i]
        for k, v in self.buffers.items():
            v[i] = state.buffers[k][i]

    def flat(self, idx=None) -> Tensor:
        """Weight vectors ``[k, D]`` of members `idx` (parameters only, in `params` order)."""
        i = member_index(idx, self.size, self.device)
        return torch.cat([v.detach()[i].reshape(len(i), -1) for v in self.params.values()], 1)

    def zero_grad(self) -> None:
        for v in self.params.values():
            v.grad = None
