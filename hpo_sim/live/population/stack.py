"""Populations of P models of one architecture, trained and evaluated together (torch.func).

A `Population` holds every member's parameters and buffers as stacked tensors
(`torch.func.stack_module_state`: one tensor ``[P, ...]`` per parameter / buffer) and runs the
forward pass of all members at once with `torch.func.functional_call` under `torch.func.vmap`.
Members are independent: the summed loss has, for member i's slice of each stacked parameter,
exactly member i's own gradient, so one backward pass trains all of them.

Because one stacked tensor cannot sit in per-member torch.optim param groups, `StackedOptimizer`
is a small functional optimizer over the stacked tensors with per-member kind (sgd, momentum,
nesterov, adam), lr, momentum, betas, eps and weight decay. It follows torch.optim.SGD /
torch.optim.Adam update for update; `tests/test_population.py` checks each member's trajectory
against torch.optim on the same data. Steps are grouped by optimizer kind (the SGD family in one
batched update, Adam in another).

Evolution operators are indexed copies on the stacked tensors (`copy_`, `take`, `cat`,
`snapshot` / `restore_`), never checkpoint files. Batch-norm running statistics are buffers, so
they travel with the weights; `recalibrate_bn` recomputes them after recombination.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from lcsim.pregen.models import fork_seeded
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

__all__ = [
    "OPTIMIZER_KINDS",
    "Population",
    "PopulationState",
    "StackedOptimizer",
    "cross_entropy_per_member",
    "evaluate",
    "recalibrate_bn",
    "train_step",
]

OPTIMIZER_KINDS = ("sgd", "momentum", "nesterov", "adam")

LossFn = Callable[[Tensor, Tensor, object], Tensor]


def _as_index(idx: Sequence[int] | Tensor | np.ndarray | None, size: int, device) -> Tensor:
    if idx is None:
        return torch.arange(size, device=device)
    t = torch.as_tensor(np.asarray(idx) if not isinstance(idx, Tensor) else idx)
    t = t.to(device=device, dtype=torch.long).reshape(-1)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= size):
        raise IndexError(f"member index out of range for a population of {size}: {t.tolist()}")
    return t


def _expand(v: Tensor, like: Tensor) -> Tensor:
    """Per-member values [P] reshaped to broadcast against a stacked tensor [P, ...]."""
    return v.reshape((-1,) + (1,) * (like.dim() - 1)).to(like.dtype)


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
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(size)]
        models = []
        for s in seeds:
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
        if train and self._has_random_layers():
            if generator is None:
                raise ValueError("Population.forward(train=True) on a model with dropout needs "
                                 "a torch.Generator for its randomness")
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
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

    def _has_random_layers(self) -> bool:
        return any(isinstance(m, nn.modules.dropout._DropoutNd) for m in self.base.modules())

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
        d = _as_index(dst, self.size, self.device)
        s = _as_index(src, self.size, self.device)
        if d.numel() != s.numel():
            raise ValueError(f"copy_ needs as many sources as destinations: {d.numel()} vs "
                             f"{s.numel()}")
        for t in (*self.params.values(), *self.buffers.values()):
            t[d] = t[s]  # advanced indexing on the right copies first, so overlap is safe

    def take(self, idx) -> Population:
        """A new population made of members `idx` (repeats allowed: cloning)."""
        i = _as_index(idx, self.size, self.device)
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
        i = _as_index(idx, self.size, self.device)
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
        i = _as_index(idx, self.size, self.device)
        for k, v in self.params.items():
            v[i] = state.params[k][i]
        for k, v in self.buffers.items():
            v[i] = state.buffers[k][i]

    def flat(self, idx=None) -> Tensor:
        """Weight vectors ``[k, D]`` of members `idx` (parameters only, in `params` order)."""
        i = _as_index(idx, self.size, self.device)
        return torch.cat([v.detach()[i].reshape(len(i), -1) for v in self.params.values()], 1)

    def zero_grad(self) -> None:
        for v in self.params.values():
            v.grad = None


# -------------------------------------------------------------------- optimizer
class StackedOptimizer:
    """Functional SGD / momentum / Nesterov / Adam over a population's stacked parameters.

    Each member has its own kind, lr, momentum, betas, eps and weight decay (tensors ``[P]`` on
    the population's device; change `lr` between steps for schedules). Updates follow
    torch.optim.SGD (dampening 0) and torch.optim.Adam (amsgrad off) exactly in order of
    operations, with L2 weight decay added to the gradient as torch.optim does.
    """

    def __init__(
        self, pop: Population, kinds: Sequence[str], lr, *, momentum=0.0, betas=(0.9, 0.999),
        eps=1e-8, weight_decay=0.0,
    ):
        P, dev = pop.size, pop.device
        kinds = list(kinds)
        if len(kinds) != P:
            raise ValueError(f"StackedOptimizer needs one kind per member: {len(kinds)} kinds "
                             f"for {P} members")
        bad = [k for k in kinds if k not in OPTIMIZER_KINDS]
        if bad:
            raise ValueError(f"unknown optimizer kind(s) {sorted(set(bad))}; "
                             f"choose from {OPTIMIZER_KINDS}")

        def vec(v, name):
            t = torch.as_tensor(v, dtype=torch.float64).to(dev).reshape(-1)
            t = t.expand(P).clone() if t.numel() == 1 else t
            if t.numel() != P:
                raise ValueError(f"StackedOptimizer.{name}: expected 1 or {P} values, "
                                 f"got {t.numel()}")
            if not torch.isfinite(t).all() or (t < 0).any():
                raise ValueError(f"StackedOptimizer.{name} must be finite and >= 0: "
                                 f"{t.tolist()}")
            return t

        self.pop = pop
        self.kinds = kinds
        self.lr = vec(lr, "lr")
        mom = vec(momentum, "momentum")
        self.momentum = torch.where(
            torch.tensor([k == "sgd" for k in kinds], device=dev), 0.0, mom)
        self.nesterov = torch.tensor([k == "nesterov" for k in kinds], device=dev)
        self.beta1 = vec(betas[0], "beta1")
        self.beta2 = vec(betas[1], "beta2")
        self.eps = vec(eps, "eps")
        self.weight_decay = vec(weight_decay, "weight_decay")
        self.step_count = torch.zeros(P, dtype=torch.float64, device=dev)  # Adam's t
        # state: SGD momentum buffer / Adam exp_avg share `buf`; Adam also has `sq`
        self.buf = {k: torch.zeros_like(v, requires_grad=False) for k, v in pop.params.items()}
        self.sq = {k: torch.zeros_like(v, requires_grad=False) for k, v in pop.params.items()}
        self._regroup()

    def _regroup(self) -> None:
        dev = self.pop.device
        is_adam = torch.tensor([k == "adam" for k in self.kinds], device=dev)
        self._adam = torch.nonzero(is_adam).reshape(-1)
        self._sgd = torch.nonzero(~is_adam).reshape(-1)
        self._n_nesterov = self.kinds.count("nesterov")  # from the kinds: no device sync

    @torch.no_grad()
    def step(self) -> None:
        """One update of every member from the gradients in ``pop.params[*].grad``."""
        P = self.pop.size
        for group, fn in ((self._sgd, self._sgd_update), (self._adam, self._adam_update)):
            if group.numel() == 0:
                continue
            whole = group.numel() == P  # one kind for everybody: update in place, no gathers
            fn(slice(None) if whole else group, whole)

    def _sgd_update(self, g_idx, whole: bool) -> None:
        lr, mu = self.lr[g_idx], self.momentum[g_idx]
        nest, wd = self.nesterov[g_idx], self.weight_decay[g_idx]
        use_wd = bool((wd != 0).any())
        n_nest = self._n_nesterov
        for k, p in self.pop.params.items():
            if p.grad is None:
                continue
            w = p.data[g_idx] if not whole else p.data
            g = p.grad[g_idx] if not whole else p.grad
            g = torch.addcmul(g, _expand(wd, w), w) if use_wd else g
            buf = self.buf[k][g_idx] if not whole else self.buf[k]
            mu_e = _expand(mu, buf)
            buf.mul_(mu_e).add_(g)  # torch: buf = g on step 1 == 0 * 0 + g
            if n_nest == 0:
                d = buf
            elif n_nest == len(nest):
                d = torch.addcmul(g, mu_e, buf)  # Nesterov: g + mu * buf
            else:
                d = torch.where(_expand(nest, buf).bool(), torch.addcmul(g, mu_e, buf), buf)
            w.addcmul_(_expand(-lr, w), d)  # w - lr * d, fused
            if not whole:
                p.data[g_idx] = w
                self.buf[k][g_idx] = buf

    def _adam_update(self, g_idx, whole: bool) -> None:
        self.step_count[g_idx] += 1
        t = self.step_count[g_idx]
        lr, b1, b2 = self.lr[g_idx], self.beta1[g_idx], self.beta2[g_idx]
        eps, wd = self.eps[g_idx], self.weight_decay[g_idx]
        use_wd = bool((wd != 0).any())
        step_size = lr / (1 - b1**t)
        bc2_sqrt = torch.sqrt(1 - b2**t)
        for k, p in self.pop.params.items():
            if p.grad is None:
                continue
            w = p.data[g_idx] if not whole else p.data
            g = p.grad[g_idx] if not whole else p.grad
            g = g + _expand(wd, w) * w if use_wd else g
            m = self.buf[k][g_idx] if not whole else self.buf[k]
            v = self.sq[k][g_idx] if not whole else self.sq[k]
            m.lerp_(g, _expand(1 - b1, m))
            v.mul_(_expand(b2, v)).addcmul_(g, g * _expand(1 - b2, v))
            denom = (v.sqrt() / _expand(bc2_sqrt, v)).add_(_expand(eps, v))
            w.sub_(_expand(step_size, w) * m / denom)
            if not whole:
                p.data[g_idx] = w
                self.buf[k][g_idx] = m
                self.sq[k][g_idx] = v

    # ---------------------------------------------------------------- member surgery
    @torch.no_grad()
    def copy_(self, dst, src) -> None:
        """Members `dst` take the optimizer of members `src`: kind, hyperparameters, state."""
        d = _as_index(dst, self.pop.size, self.pop.device)
        s = _as_index(src, self.pop.size, self.pop.device)
        for t in (self.lr, self.momentum, self.nesterov, self.beta1, self.beta2, self.eps,
                  self.weight_decay, self.step_count, *self.buf.values(), *self.sq.values()):
            t[d] = t[s]
        for di, si in zip(d.tolist(), s.tolist(), strict=True):
            self.kinds[di] = self.kinds[si]
        self._regroup()

    _PER_MEMBER = ("lr", "momentum", "nesterov", "beta1", "beta2", "eps", "weight_decay",
                   "step_count")

    @classmethod
    def _assemble(cls, pop: Population, kinds: list[str], parts: dict) -> StackedOptimizer:
        new = cls.__new__(cls)
        new.pop, new.kinds = pop, kinds
        for name in cls._PER_MEMBER:
            setattr(new, name, parts[name])
        new.buf, new.sq = parts["buf"], parts["sq"]
        if len(kinds) != pop.size:
            raise ValueError(f"optimizer for {len(kinds)} members bound to a population of "
                             f"{pop.size}")
        new._regroup()
        return new

    def take(self, pop: Population, idx) -> StackedOptimizer:
        """The optimizers of members `idx` (kind, hyperparameters, state) bound to `pop`, the
        population built with ``self.pop.take(idx)``."""
        i = _as_index(idx, self.pop.size, self.pop.device)
        parts = {n: getattr(self, n)[i].clone() for n in self._PER_MEMBER}
        parts["buf"] = {k: v[i].clone() for k, v in self.buf.items()}
        parts["sq"] = {k: v[i].clone() for k, v in self.sq.items()}
        return self._assemble(pop, [self.kinds[j] for j in i.tolist()], parts)

    @torch.no_grad()
    def put_(self, idx, other: StackedOptimizer) -> None:
        """Members `idx` take kind, hyperparameters and state from `other`'s members."""
        i = _as_index(idx, self.pop.size, self.pop.device)
        if len(i) != len(other.kinds):
            raise ValueError(f"put_: {len(i)} indices for {len(other.kinds)} members")
        for n in self._PER_MEMBER:
            getattr(self, n)[i] = getattr(other, n)
        for k in self.buf:
            self.buf[k][i] = other.buf[k]
            self.sq[k][i] = other.sq[k]
        for j, kind in zip(i.tolist(), other.kinds, strict=True):
            self.kinds[j] = kind
        self._regroup()

    @classmethod
    def cat(cls, pop: Population, opts: Sequence[StackedOptimizer]) -> StackedOptimizer:
        """`opts` one after the other, bound to ``pop = Population.cat([o.pop for o in opts])``."""
        parts = {n: torch.cat([getattr(o, n) for o in opts]) for n in cls._PER_MEMBER}
        parts["buf"] = {k: torch.cat([o.buf[k] for o in opts]) for k in opts[0].buf}
        parts["sq"] = {k: torch.cat([o.sq[k] for o in opts]) for k in opts[0].sq}
        return cls._assemble(pop, sum((list(o.kinds) for o in opts), []), parts)

    @torch.no_grad()
    def reset_state(self, idx=None) -> None:
        """Forget momentum / Adam moments of members `idx` (a freshly created optimizer)."""
        i = _as_index(idx, self.pop.size, self.pop.device)
        self.step_count[i] = 0
        for t in (*self.buf.values(), *self.sq.values()):
            t[i] = 0

    def state(self) -> dict[str, object]:
        """A detached copy of the per-member state (for back-off)."""
        return {"buf": {k: v.clone() for k, v in self.buf.items()},
                "sq": {k: v.clone() for k, v in self.sq.items()},
                "step": self.step_count.clone()}

    @torch.no_grad()
    def restore_(self, state: dict[str, object], idx=None) -> None:
        i = _as_index(idx, self.pop.size, self.pop.device)
        self.step_count[i] = state["step"][i]
        for k in self.buf:
            self.buf[k][i] = state["buf"][k][i]
            self.sq[k][i] = state["sq"][k][i]

    def hyperparameters(self, i: int) -> dict[str, object]:
        """Member i's optimizer as plain values (for records)."""
        kind = self.kinds[i]
        out: dict[str, object] = {"optimizer": kind, "lr": float(self.lr[i])}
        if kind in ("momentum", "nesterov"):
            out["momentum"] = float(self.momentum[i])
        if kind == "adam":
            out["beta1"], out["beta2"] = float(self.beta1[i]), float(self.beta2[i])
        if float(self.weight_decay[i]):
            out["weight_decay"] = float(self.weight_decay[i])
        return out


# -------------------------------------------------------------------- steps and evaluation
def cross_entropy_per_member(logits: Tensor, y: Tensor, member_params: object = None) -> Tensor:
    """Mean cross-entropy per member: logits ``[P, B, C]``, y ``[P, B]`` or ``[B]`` -> ``[P]``."""
    P, B, C = logits.shape
    if y.dim() == 1:
        y = y.expand(P, B)
    return F.cross_entropy(logits.reshape(P * B, C), y.reshape(P * B),
                           reduction="none").reshape(P, B).mean(1)


def train_step(
    pop: Population, opt: StackedOptimizer, x: Tensor, y: Tensor, *,
    loss_fn: LossFn | None = None, member_params: object = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One optimizer step for every member; returns the per-member training losses ``[P]``.

    x: ``[P, B, ...]`` (own batches) or ``[B, ...]`` (shared); y: ``[P, B]`` or ``[B]`` (or any
    targets `loss_fn` understands). `loss_fn(logits [P, B, C], y, member_params) -> [P]` lets
    each member have its own loss (e.g. TaylorGLO parameters ``[P, k]`` in `member_params`);
    default: mean cross-entropy. Each member's gradient is that of its own loss because the
    members share no parameters and the objective is the sum of their losses.
    """
    loss_fn = loss_fn or cross_entropy_per_member
    pop.zero_grad()
    logits = pop.forward(x, train=True, generator=generator)
    losses = loss_fn(logits, y, member_params)
    if losses.shape != (pop.size,):
        raise ValueError(f"loss_fn must return one loss per member, shape ({pop.size},), got "
                         f"{tuple(losses.shape)}")
    losses.sum().backward()
    opt.step()
    return losses.detach()


@torch.no_grad()
def evaluate(
    pop: Population, batches: Iterable[tuple[Tensor, Tensor]], *, idx=None,
    max_members: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy loss and accuracy of members `idx` on `batches` (eval mode).

    batches: ``(x [B, ...], y [B])`` shared by all members (a fixed list, so the numbers are
    deterministic). `max_members` bounds how many members run at once (memory). Returns
    ``(loss [k], accuracy [k])`` as float64 example-weighted means.
    """
    i = _as_index(idx, pop.size, pop.device)
    batches = list(batches)
    if not batches:
        raise ValueError("evaluate needs at least one batch")
    chunk = max_members or len(i)
    losses, accs = [], []
    for c0 in range(0, len(i), chunk):
        ci = i[c0:c0 + chunk]
        whole = len(ci) == pop.size
        pp = pop.params if whole else {k: v.detach()[ci] for k, v in pop.params.items()}
        bb = pop.buffers if whole else {k: v[ci] for k, v in pop.buffers.items()}
        tot_l = torch.zeros(len(ci), dtype=torch.float64, device=pop.device)
        tot_c = torch.zeros_like(tot_l)
        n = 0
        for x, y in batches:
            logits = pop.forward(x, train=False, params=pp, buffers=bb)
            B = y.shape[0]
            tot_l += cross_entropy_per_member(logits, y).double() * B
            tot_c += (logits.argmax(-1) == y).double().sum(1)
            n += B
        losses.append(tot_l / n)
        accs.append(tot_c / n)
    return torch.cat(losses), torch.cat(accs)


@torch.no_grad()
def recalibrate_bn(pop: Population, idx, batches: Iterable) -> int:
    """Recompute the batch-norm running statistics of members `idx` from training batches.

    Mirrors torch.optim.swa_utils.update_bn for each member: running mean / var reset, then
    the exact (cumulative) average over `batches` of the batch statistics.
    Unlike update_bn, layers other than batch-norm stay in eval mode, so dropout does not
    disturb the statistics and the result is deterministic. `batches` yield ``x`` or
    ``(x, y)`` with x ``[B, ...]`` shared by the members. Returns the number of batches used
    (0 if the model has no batch-norm).
    """
    bns = [m for m in pop.base.modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return 0
    i = _as_index(idx, pop.size, pop.device)
    if i.numel() == 0:
        return 0
    pp = {k: v.detach()[i] for k, v in pop.params.items()}
    bb = {k: v[i].clone() for k, v in pop.buffers.items()}
    for k, v in bb.items():
        if k.endswith("running_mean") or k.endswith("num_batches_tracked"):
            v.zero_()
        elif k.endswith("running_var"):
            v.fill_(1)
    saved = [m.momentum for m in bns]
    n = 0
    try:
        for b in batches:
            x = b[0] if isinstance(b, tuple | list) else b
            pop.base.eval()
            for m in bns:
                m.train()
                # momentum 1/(n+1) at batch n is the cumulative average that momentum=None
                # gives; None itself reads num_batches_tracked with .item(), which vmap refuses
                m.momentum = 1.0 / (n + 1)
            fn = pop._forward_vmap if pop.batched is not False else pop._forward_loop
            fn(pp, bb, x, True)
            n += 1
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
        pop.base.eval()
    if n == 0:
        raise ValueError("recalibrate_bn got no batches")
    for k, v in pop.buffers.items():
        v[i] = bb[k]
    return n
