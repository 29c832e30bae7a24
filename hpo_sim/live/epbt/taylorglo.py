"""TaylorGLO loss functions (Liang et al., EPBT, equation 2; Gonzalez & Miikkulainen 2020).

Third-order TaylorGLO with parameters theta_0..theta_7. For one sample with one-hot (or soft,
see PBD) label x in R^n and softmax prediction y in R^n, n = number of classes:

    L(x, y) = -(1/n) * sum_{i=1..n} [ theta_2 (y_i - theta_1)
                                      + 1/2 theta_3 (y_i - theta_1)^2
                                      + 1/6 theta_4 (y_i - theta_1)^3
                                      + theta_5 (x_i - theta_0) (y_i - theta_1)
                                      + 1/2 theta_6 (x_i - theta_0) (y_i - theta_1)^2
                                      + 1/2 theta_7 (x_i - theta_0)^2 (y_i - theta_1) ]

and the batch loss is the mean of L over the batch. The 1/n is the paper's; it only rescales
the learning rate, which EPBT evolves anyway.

Roles matter: theta_0 shifts the *label* x, theta_1 shifts the *prediction* y. The known slip in
public code swaps them (x := prediction, y := label); then the three "pure" terms theta_2..4
depend on the label only and carry no gradient. Here theta_3 and theta_4 terms always carry a
gradient w.r.t. the logits. One subtlety of the equation itself (not a bug): with a softmax
prediction sum_i y_i = 1, so the theta_2 term sums to the constant theta_2 (1 - n theta_1) and
has zero gradient w.r.t. the logits (its gradient w.r.t. y is non-zero).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "N_THETA",
    "taylorglo_terms",
    "taylorglo_loss",
    "taylorglo_from_probs",
    "TaylorGLOLoss",
    "as_target",
]

N_THETA = 8


def as_target(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Integer labels [..., B] -> one-hot [..., B, C]; a float target [..., B, C] is kept.

    A float target is a distribution over classes (PBD's mixed teacher/label target).
    """
    if y.dtype.is_floating_point:
        if y.shape[-1] != num_classes:
            raise ValueError(
                f"soft target has {y.shape[-1]} classes in its last dim, expected {num_classes}"
            )
        return y.to(dtype)
    return F.one_hot(y.long(), num_classes).to(dtype)


def _theta_cols(theta: torch.Tensor) -> list[torch.Tensor]:
    """theta [..., 8] -> eight tensors [..., 1, 1] that broadcast over [..., B, C]."""
    if theta.shape[-1] != N_THETA:
        raise ValueError(f"TaylorGLO theta must have {N_THETA} entries in its last dim, "
                         f"got shape {tuple(theta.shape)}")
    return [t[..., None, None] for t in theta.unbind(-1)]


def taylorglo_terms(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The six bracket terms of equation 2, each already multiplied by its theta and factor.

    x: label [..., B, C] (one-hot or soft); y: prediction [..., B, C]; theta [..., 8].
    Returns [6, ..., B, C] in the order theta_2, theta_3, theta_4, theta_5, theta_6, theta_7.
    """
    t0, t1, t2, t3, t4, t5, t6, t7 = _theta_cols(theta)
    dx = x - t0
    dy = y - t1
    return torch.stack([
        t2 * dy,
        0.5 * t3 * dy**2,
        (1.0 / 6.0) * t4 * dy**3,
        t5 * dx * dy,
        0.5 * t6 * dx * dy**2,
        0.5 * t7 * dx**2 * dy,
    ])


def taylorglo_from_probs(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Per-sample loss [..., B] from label x [..., B, C] and prediction y [..., B, C]."""
    bracket = taylorglo_terms(x, y, theta).sum(0)
    return -bracket.mean(-1)  # -(1/n) sum over the n classes


def taylorglo_loss(logits: torch.Tensor, target: torch.Tensor,
                   theta: torch.Tensor) -> torch.Tensor:
    """Batch-mean TaylorGLO loss.

    logits [..., B, C]; target int labels [..., B] or a soft target [..., B, C];
    theta [8] (one loss) or [M, 8] with logits [M, B, C] (one loss per population member).
    Returns a scalar for theta [8], else [M] (each member's batch mean).
    """
    # bf16/fp16 logits are lifted to fp32 (cubic terms overflow fp16); fp64 stays fp64
    work = logits if logits.dtype == torch.float64 else logits.float()
    probs = torch.softmax(work, dim=-1)
    x = as_target(target, logits.shape[-1], probs.dtype)
    x = x.expand_as(probs) if x.dim() < probs.dim() else x
    return taylorglo_from_probs(x, probs, theta.to(probs)).mean(-1)


class TaylorGLOLoss:
    """Drop-in `loss_fn(logits, y) -> scalar` for the trainer, with fixed theta [8]."""

    def __init__(self, theta) -> None:
        self.theta = torch.as_tensor(theta, dtype=torch.float32)
        if self.theta.shape != (N_THETA,):
            raise ValueError(f"TaylorGLOLoss needs {N_THETA} thetas, got shape "
                             f"{tuple(self.theta.shape)}")
        if not torch.isfinite(self.theta).all():
            raise ValueError(f"TaylorGLOLoss thetas must be finite, got {self.theta.tolist()}")

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return taylorglo_loss(logits, y, self.theta.to(logits.device))

    def __repr__(self) -> str:
        return f"TaylorGLOLoss(theta={[round(v, 4) for v in self.theta.tolist()]})"
