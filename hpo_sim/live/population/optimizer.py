"""StackedOptimizer: per-member SGD / momentum / Nesterov / Adam over a Population.

One stacked tensor cannot sit in per-member torch.optim param groups, so this is a small
functional optimizer over the stacked tensors with per-member kind (sgd, momentum, nesterov,
adam), lr, momentum, betas, eps and weight decay. It follows torch.optim.SGD /
torch.optim.Adam update for update; tests/test_population_optimizer.py checks each member's
trajectory against torch.optim on the same data. Steps are grouped by optimizer kind (the SGD
family in one batched update, Adam in another).

An optimizer is bound to one Population object; member surgery on the population has its
counterpart here (`copy_`, `take`, `cat`, `put_`, `state` / `restore_`), and kind, every
hyperparameter and the state travel with the member.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lcsim.hpo_sim.live.population.stack import Population, member_index
from torch import Tensor

__all__ = ["OPTIMIZER_KINDS", "StackedOptimizer"]

OPTIMIZER_KINDS = ("sgd", "momentum", "nesterov", "adam")


def _expand(v: Tensor, like: Tensor) -> Tensor:
    """Per-member values [P] reshaped to broadcast against a stacked tensor [P, ...]."""
    return v.reshape((-1,) + (1,) * (like.dim() - 1)).to(like.dtype)


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
        d = member_index(dst, self.pop.size, self.pop.device)
        s = member_index(src, self.pop.size, self.pop.device)
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
        i = member_index(idx, self.pop.size, self.pop.device)
        parts = {n: getattr(self, n)[i].clone() for n in self._PER_MEMBER}
        parts["buf"] = {k: v[i].clone() for k, v in self.buf.items()}
        parts["sq"] = {k: v[i].clone() for k, v in self.sq.items()}
        return self._assemble(pop, [self.kinds[j] for j in i.tolist()], parts)

    @torch.no_grad()
    def put_(self, idx, other: StackedOptimizer) -> None:
        """Members `idx` take kind, hyperparameters and state from `other`'s members."""
        i = member_index(idx, self.pop.size, self.pop.device)
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
        i = member_index(idx, self.pop.size, self.pop.device)
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
        i = member_index(idx, self.pop.size, self.pop.device)
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
