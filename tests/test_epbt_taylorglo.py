"""TaylorGLO (EPBT equation 2): hand evaluation, finite differences, gradient of every term."""

import numpy as np
import pytest
import torch
from lcsim.hpo_sim.live.epbt.taylorglo import TaylorGLOLoss, taylorglo_loss, taylorglo_terms

THETA = [0.3, -0.2, 1.5, -2.0, 3.0, 0.7, -1.1, 2.4]


def hand_eq2(x: np.ndarray, y: np.ndarray, t: list[float]) -> float:
    """Equation 2 written out with Python loops: -1/n sum_i [...], then mean over samples."""
    total = 0.0
    for xs, ys in zip(x, y, strict=True):
        n = len(xs)
        s = 0.0
        for xi, yi in zip(xs, ys, strict=True):
            dx, dy = xi - t[0], yi - t[1]
            s += (t[2] * dy + 0.5 * t[3] * dy**2 + t[4] * dy**3 / 6 + t[5] * dx * dy
                  + 0.5 * t[6] * dx * dy**2 + 0.5 * t[7] * dx**2 * dy)
        total += -s / n
    return total / len(x)


def test_matches_hand_evaluation_of_equation_2():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 2])
    probs = torch.softmax(logits, -1).numpy()
    onehot = np.eye(3)[labels.numpy()]
    got = taylorglo_loss(logits, labels, torch.tensor(THETA, dtype=torch.float64))
    assert got.item() == pytest.approx(hand_eq2(onehot, probs, THETA), rel=1e-5)


def test_soft_targets_and_drop_in_callable_agree_with_hand_evaluation():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 4, generator=g)
    soft = torch.softmax(torch.randn(5, 4, generator=g), -1)
    got = TaylorGLOLoss(THETA)(logits, soft)
    want = hand_eq2(soft.double().numpy(), torch.softmax(logits.double(), -1).numpy(), THETA)
    assert got.item() == pytest.approx(want, rel=1e-4)


def test_batched_member_form_equals_one_loss_per_member():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 6, 5, generator=g)          # [M, B, C]
    labels = torch.randint(0, 5, (6,), generator=g)    # shared batch labels
    theta = torch.empty(3, 8).uniform_(-10, 10, generator=g)
    batched = taylorglo_loss(logits, labels, theta)
    assert batched.shape == (3,)
    for m in range(3):
        assert batched[m].item() == pytest.approx(
            taylorglo_loss(logits[m], labels, theta[m]).item(), rel=1e-5, abs=1e-6)


def test_gradient_wrt_logits_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 0, 3])
    theta = torch.tensor(THETA, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: taylorglo_loss(z, labels, theta), (logits,))


@pytest.mark.parametrize("term", range(6), ids=[f"theta_{j}" for j in range(2, 8)])
def test_every_prediction_term_has_a_gradient(term):
    """Each term alone (its theta non-zero) moves with the prediction y.

    The swapped-roles slip (x := prediction, y := label) makes the theta_2..4 terms constant,
    so their gradient w.r.t. y vanishes; here every term has a non-zero gradient w.r.t. y, and
    every term except theta_2 (whose class sum is constant under softmax) a non-zero gradient
    w.r.t. the logits.
    """
    g = torch.Generator().manual_seed(4)
    theta = torch.zeros(8, dtype=torch.float64)
    theta[0], theta[1] = 0.2, -0.3
    theta[2 + term] = 1.0
    logits = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3).double()
    y = torch.softmax(logits, -1)
    y.retain_grad()
    loss = -taylorglo_terms(x, y, theta).sum(0).mean(-1).mean()
    loss.backward()
    assert y.grad.abs().max() > 1e-3
    if term == 0:
        assert logits.grad.abs().max() < 1e-12  # sum_i (y_i - theta_1) is constant
    else:
        assert logits.grad.abs().max() > 1e-4


def test_bad_theta_raises_with_the_shape():
    with pytest.raises(ValueError, match="8 thetas"):
        TaylorGLOLoss([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        TaylorGLOLoss([float("nan")] * 8)


def test_drop_in_loss_trains_with_the_pregen_trainer(tiny_images, bn_net):
    from lcsim.pregen.trainer import TrainSpec, train

    data = tiny_images
    # theta_5 = 10, the rest 0: L = -(10/n) sum_i x_i y_i, i.e. raise the true class's probability
    loss = TaylorGLOLoss([0, 0, 0, 0, 0, 10.0, 0, 0])
    spec = TrainSpec(epochs=6, batch_size=16, optimizer="momentum", lr=0.5, seed=0)
    res = train(bn_net(0), data, spec, device="cpu", loss_fn=loss)
    assert res.status == "complete"
    assert res.epochs[-1].val_accuracy > 0.6  # chance is 1/3
    assert res.epochs[-1].train_loss < res.epochs[0].train_loss
