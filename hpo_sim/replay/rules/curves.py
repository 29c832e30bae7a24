"""Domhan et al.'s parametric learning-curve families, fitted to y(1..t) together, and their
combination into a predictive distribution of y(T) (the engine of the `lce` rule).

The eleven families of Domhan, Springenberg & Hutter (IJCAI 2015), as their reference code
(automl/pylearningcurvepredictor, the model list of its termination criterion) combines them;
the paper's text was not at hand to check its table against it. x = epoch 1..T:

    vapor pressure   exp(a + b/x + c log x)
    pow3             c - a x^-alpha
    log log linear   log(a log x + b)
    Hill3            y_max x^eta / (kappa^eta + x^eta)
    log power        a / (1 + (x / e^b)^c)
    pow4             c - (a x + b)^-alpha
    MMF              alpha - (alpha - beta) / (1 + (kappa x)^delta)
    exp4             c - exp(-a x^alpha + b)
    Janoschek        alpha - (alpha - beta) exp(-kappa x^delta)
    Weibull          alpha - (alpha - beta) exp(-(kappa x)^delta)
    ilog2            c - a / log(x + 1)

Under least squares some of them are one curve shape written twice: exp4, Janoschek and Weibull
are all c - k exp(-a x^alpha); Hill3 and log power are both y_max / (1 + (kappa / x)^eta). So
eight shapes are fitted (`SHAPES`), each standing for the families it covers, and a shape's
prior weight is its share of the eleven (3/11 for the exp4 shape), as if each family had been
fitted on its own.

Fitting (ours, for speed; measured in benchmarks/lce_decision.py). Every shape is linear in one
or two parameters given at most two others (variable projection): c + b phi(x; theta),
b phi(x; theta) or phi(x; theta). For a grid of theta the linear ones have a closed form, so a
shape is fitted by evaluating a grid of theta in one numpy pass, then zooming in around the best
point (a 7 x 7 pattern, shrunk 3x per round while the best point is inside it). A warm start
(the previous epoch's theta) skips the coarse grid. Each call is deterministic. Fitting the
eleven families one by one with scipy.optimize.least_squares (bounded trf, warm-started) costs
3-8x more per decision (benchmarks/lce_decision.py: ~6-7 ms for this fit on the 2-core box).

Constraints, in the spirit of Domhan et al.'s prior (increasing curves, accuracies in [0, 1]):
a fitted curve may not decrease from x = 1 to x = T and its y(T) must lie in [0, 1]; grid
points that break them are not candidates.

Posterior approximation (ours, in place of the paper's MCMC). Per shape k with p_k parameters
and residual sum of squares RSS_k over t points: weight w_k proportional to
prior_k * exp(-BIC_k / 2), BIC_k = t log(RSS_k / t) + p_k log t (a Laplace approximation of
the marginal likelihood); predictive N(m_k, s_k^2) with m_k = f_k(T), s_k^2 = sigma_k^2 +
g' Cov g, sigma_k^2 = RSS_k / (t - p_k) the noise, Cov = sigma_k^2 (J'J + lambda I)^-1 the
parameters' Laplace covariance (J: d f(1..t) / d params, g: d f(T) / d params, lambda = 1e-4 a
weak Gaussian prior, so that a parameter the data do not pin down widens the prediction
instead of vanishing). The predictive distribution of y(T) is the mixture of these Gaussians.
Each sigma_k^2 is floored by a model-free estimate of the epoch-to-epoch noise (second
differences over the later half of y(1..t)) and by (1e-4)^2, about the resolution of a
validation accuracy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, ndtr

__all__ = ["FAMILIES", "SHAPES", "CurveFit", "fit_curves", "shape_curve"]

FAMILIES = ("vap", "pow3", "loglog_linear", "hill3", "log_power", "pow4", "mmf", "exp4",
            "janoschek", "weibull", "ilog2")

_SIGMA_MIN = 1e-4  # noise floor: about the resolution of a validation accuracy
_PRIOR_PRECISION = 1e-4  # lambda: weak Gaussian prior on every parameter (module docstring)
_ZOOM_POINTS = 7  # per axis and zoom round
_ZOOM_ROUNDS = 8  # shrink 3x per round: the last step is ~1e-4 of the coarse one


@dataclass(frozen=True)
class _Axis:
    lo: float
    hi: float
    log: bool  # the grid is even in log(value)
    n: int  # coarse grid points


@dataclass(frozen=True)
class _Shape:
    name: str
    families: tuple[str, ...]
    kind: str  # affine: c + b phi; scale: b phi (b >= 0); fixed: phi
    axes: Callable[[int], tuple[_Axis, ...]]  # the nonlinear parameters theta, given T
    phi: Callable[..., np.ndarray]  # phi(x [1, m], *theta [g, 1]) -> [g, m]

    @property
    def n_linear(self) -> int:
        return {"affine": 2, "scale": 1, "fixed": 0}[self.kind]


def _hill(x, eta, kappa):
    return 1.0 / (1.0 + np.exp(eta * (np.log(kappa) - np.log(x))))


SHAPES = (
    _Shape("vap", ("vap",), "scale",
           lambda T: (_Axis(-10.0, 2.0, False, 25), _Axis(-1.0, 1.0, False, 25)),
           lambda x, b, c: np.exp(b / x + c * np.log(x))),
    _Shape("pow3", ("pow3",), "affine",
           lambda T: (_Axis(1e-3, 5.0, True, 64),),
           lambda x, alpha: -(x ** -alpha)),
    _Shape("loglog_linear", ("loglog_linear",), "fixed",
           lambda T: (_Axis(1e-4, 10.0, True, 25), _Axis(1e-3, 3.0, True, 25)),
           lambda x, a, b: np.log(a * np.log(x) + b)),
    _Shape("hill3", ("hill3", "log_power"), "scale",
           lambda T: (_Axis(0.05, 10.0, True, 25), _Axis(1e-2, 10.0 * T, True, 25)),
           _hill),
    _Shape("pow4", ("pow4",), "affine",
           lambda T: (_Axis(1e-3, 10.0 * T, True, 25), _Axis(1e-3, 5.0, True, 25)),
           lambda x, s, alpha: -((x + s) ** -alpha)),
    _Shape("mmf", ("mmf",), "affine",
           lambda T: (_Axis(1e-2 / T, 10.0, True, 25), _Axis(0.05, 10.0, True, 25)),
           lambda x, kappa, delta: -1.0 / (1.0 + (kappa * x) ** delta)),
    _Shape("exp4", ("exp4", "janoschek", "weibull"), "affine",
           lambda T: (_Axis(1e-4, 10.0, True, 25), _Axis(0.05, 3.0, True, 25)),
           lambda x, a, alpha: -np.exp(-a * x ** alpha)),
    _Shape("ilog2", ("ilog2",), "affine", lambda T: (), lambda x: -1.0 / np.log(x + 1.0)),
)
assert sorted(f for s in SHAPES for f in s.families) == sorted(FAMILIES)


def _to_u(ax: _Axis, v):
    return np.log(v) if ax.log else v


def _from_u(ax: _Axis, u):
    return np.exp(u) if ax.log else u


@dataclass(frozen=True)
class _ShapeFit:
    u: np.ndarray  # theta in grid coordinates (log for log axes) [n_theta]
    lin: tuple[float, float]  # (c, b); c = 0 unless affine, b = 1 if fixed
    rss: float


def _solve(shape: _Shape, x: np.ndarray, y: np.ndarray, T: int, U: np.ndarray, axes
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of the linear parameters for each theta row of U [g, k] -> (rss [g],
    c [g], b [g]); rss is inf where the fitted curve breaks the constraints."""
    X = np.append(x, float(T))[None, :]  # observed epochs, then T
    theta = [_from_u(ax, U[:, j:j + 1]) for j, ax in enumerate(axes)]
    m = len(y)
    with np.errstate(all="ignore"):
        P = shape.phi(X, *theta)
        if P.shape[0] != len(U):  # a shape without theta
            P = np.repeat(P, len(U), axis=0)
        p, pT = P[:, :-1], P[:, -1]
        if shape.kind == "affine":
            pm = p.sum(axis=1) / m
            dp = p - pm[:, None]
            var = np.einsum("gm,gm->g", dp, dp)
            b = np.where(var > 0, (dp @ (y - y.sum() / m)) / var, 0.0)
            c = y.sum() / m - b * pm
            r = p * b[:, None] + (c[:, None] - y)
        elif shape.kind == "scale":
            pp = np.einsum("gm,gm->g", p, p)
            b = np.where(pp > 0, (p @ y) / pp, 0.0)
            c = np.zeros_like(b)
            r = p * b[:, None] - y
        else:
            b, c = np.ones(len(U)), np.zeros(len(U))
            r = p - y
        rss = np.einsum("gm,gm->g", r, r)
        f1, fT = c + b * p[:, 0], c + b * pT
        ok = (np.isfinite(rss) & np.isfinite(fT) & (fT >= 0) & (fT <= 1) & (fT >= f1 - 1e-9)
              & (b >= 0))
    return np.where(ok, rss, np.inf), c, b


@functools.cache
def _grid(axes: tuple[_Axis, ...]) -> np.ndarray:
    """The coarse grid of theta in grid coordinates, [prod(n), k]."""
    if not axes:
        return np.zeros((1, 0))
    lines = [np.linspace(_to_u(a, a.lo), _to_u(a, a.hi), a.n) for a in axes]
    grid = np.stack([g.ravel() for g in np.meshgrid(*lines, indexing="ij")], axis=1)
    grid.setflags(write=False)
    return grid


@functools.cache
def _mesh(k: int) -> np.ndarray:
    """The zoom pattern: a 7^k grid of offsets in [-1, 1]^k, [7^k, k]."""
    offsets = np.linspace(-1.0, 1.0, _ZOOM_POINTS)
    mesh = np.stack([g.ravel() for g in np.meshgrid(*[offsets] * k, indexing="ij")], axis=1)
    mesh.setflags(write=False)
    return mesh


def _fit_shape(shape: _Shape, x: np.ndarray, y: np.ndarray, T: int,
               warm: np.ndarray | None) -> _ShapeFit | None:
    axes = shape.axes(T)
    lo = np.array([_to_u(a, a.lo) for a in axes])
    hi = np.array([_to_u(a, a.hi) for a in axes])
    step = (hi - lo) / np.array([a.n - 1 for a in axes]) if axes else np.zeros(0)
    if warm is None or not axes:
        U = _grid(axes)
        rss, c, b = _solve(shape, x, y, T, U, axes)
        i = int(np.argmin(rss))
        if not np.isfinite(rss[i]):
            return None
        center, best = U[i], (rss[i], c[i], b[i])
        h, rounds = step.copy(), _ZOOM_ROUNDS
    else:  # near last epoch's optimum: start finer, end at the same resolution
        center, best = np.clip(warm, lo, hi), (np.inf, 0.0, 0.0)
        h, rounds = step / 9.0, _ZOOM_ROUNDS - 2
    if axes:
        mesh = _mesh(len(axes))
        for _ in range(rounds):
            U = np.clip(center + mesh * h, lo, hi)
            rss, c, b = _solve(shape, x, y, T, U, axes)
            i = int(np.argmin(rss))
            if rss[i] < best[0]:
                center, best = U[i], (rss[i], c[i], b[i])
            inside = np.abs(mesh[i]) < 1  # the best is inside the window on every axis
            h = np.where(inside, h / 3.0, h)
    if not np.isfinite(best[0]):
        return None if warm is None else _fit_shape(shape, x, y, T, None)
    return _ShapeFit(np.asarray(center, dtype=float), (float(best[1]), float(best[2])),
                     float(best[0]))


def shape_curve(shape: _Shape, fit: _ShapeFit, x: np.ndarray, T: int) -> np.ndarray:
    """The fitted curve of one shape at epochs x [m]."""
    axes = shape.axes(T)
    theta = [_from_u(ax, fit.u[j]) for j, ax in enumerate(axes)]
    with np.errstate(all="ignore"):
        p = np.broadcast_to(shape.phi(np.asarray(x, float)[None, :], *theta), (1, len(x)))[0]
    c, b = fit.lin
    return c + b * p


def _jacobian(shape: _Shape, fit: _ShapeFit, x: np.ndarray, T: int) -> np.ndarray:
    """d f / d params at epochs (x..., T), params = (theta in grid coordinates, linear ones);
    shape [m + 1, p]."""
    X = np.append(x, float(T))
    f0 = shape_curve(shape, fit, X, T)
    cols = []
    for j in range(len(fit.u)):  # forward differences in grid coordinates
        u = fit.u.copy()
        hj = 1e-6 * max(1.0, abs(u[j]))
        u[j] += hj
        cols.append((shape_curve(shape, _ShapeFit(u, fit.lin, fit.rss), X, T) - f0) / hj)
    if shape.kind == "affine":
        cols.append(np.ones_like(X))
    if shape.kind != "fixed":
        cols.append(shape_curve(shape, _ShapeFit(fit.u, (0.0, 1.0), 0.0), X, T))  # phi
    return np.stack(cols, axis=1)


@dataclass(frozen=True)
class CurveFit:
    """The predictive distribution of y(T) from a curve y(1..t): a mixture of Gaussians, one
    per fitted shape. Arrays are per valid shape, in `names` order."""

    names: tuple[str, ...]
    weights: np.ndarray  # [k], sum 1
    means: np.ndarray  # [k] f_k(T)
    stds: np.ndarray  # [k] predictive standard deviation
    thetas: dict[str, np.ndarray]  # shape name -> theta (grid coordinates), for a warm start

    @property
    def mean(self) -> float:
        return float(self.weights @ self.means) if len(self.names) else float("nan")

    @property
    def std(self) -> float:
        if not len(self.names):
            return float("nan")
        second = self.weights @ (self.stds ** 2 + self.means ** 2)
        return float(np.sqrt(max(second - self.mean ** 2, 0.0)))

    def prob_above(self, y: float) -> float:
        """P(y(T) > y) under the mixture (NaN when no shape fitted)."""
        if not len(self.names):
            return float("nan")
        return float(self.weights @ ndtr((self.means - y) / self.stds))


def fit_curves(y: np.ndarray, T: int, warm: dict[str, np.ndarray] | None = None) -> CurveFit:
    """Fit every shape to y [t] (epochs 1..t, t >= 3) and combine them (module docstring).
    warm: the `thetas` of a fit of the same curve one epoch earlier."""
    y = np.asarray(y, dtype=np.float64)
    t = len(y)
    if t < 3 or t > T or not np.isfinite(y).all():
        raise ValueError(f"fit_curves: need 3 <= t <= T finite accuracies, got t={t}, T={T}")
    x = np.arange(1.0, t + 1.0)
    # epoch-to-epoch noise, model-free: second differences of white noise have variance
    # 6 sigma^2; over the later half of the curve, where curvature biases it least (a floor
    # for every shape's noise: a curve fitted too well by chance does not look certain)
    noise2 = max(float(np.mean(np.diff(y[-max(4, t // 2):], 2) ** 2)) / 6.0, _SIGMA_MIN ** 2)
    names, logw, means, stds, thetas = [], [], [], [], {}
    for shape in SHAPES:
        n_par = len(shape.axes(T)) + shape.n_linear
        if n_par >= t:
            continue  # as many parameters as points: no noise estimate
        fit = _fit_shape(shape, x, y, T, None if warm is None else warm.get(shape.name))
        if fit is None:
            continue
        thetas[shape.name] = fit.u
        s2 = max(fit.rss / (t - n_par), noise2)
        bic = t * np.log(max(fit.rss / t, _SIGMA_MIN ** 2)) + n_par * np.log(t)
        J = _jacobian(shape, fit, x, T)
        Jo, g = J[:-1], J[-1]
        A = Jo.T @ Jo + _PRIOR_PRECISION * np.eye(n_par)
        var_par = s2 * float(g @ np.linalg.solve(A, g))
        names.append(shape.name)
        logw.append(np.log(len(shape.families) / len(FAMILIES)) - bic / 2)
        means.append(shape_curve(shape, fit, np.array([float(T)]), T)[0])
        stds.append(min(np.sqrt(s2 + max(var_par, 0.0)), 1.0))
    logw = np.asarray(logw)
    w = np.exp(logw - logsumexp(logw)) if len(logw) else logw
    return CurveFit(tuple(names), w, np.asarray(means), np.asarray(stds), thetas)
