"""Shared plotting helpers: Agg figures with constrained layout, time units, column checks.

Figure functions never touch pyplot's global figure registry (no `plt.figure`), so a report
rendering hundreds of figures does not leak memory and works without a display.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

__all__ = ["new_figure", "require_columns", "time_unit", "band_stats", "log_if_wide",
           "plain_log_labels", "fitted_suptitle", "legend_columns"]

# Seconds per unit, largest first: the first unit the data reaches at least twice is used.
_TIME_UNITS = (("hours", 3600.0), ("minutes", 60.0), ("seconds", 1.0))


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 4.2, height: float = 3.2,
               **subplot_kw) -> tuple[Figure, np.ndarray]:
    """A Figure (not registered with pyplot) and its axes as a 2-D array [nrows, ncols].

    width/height are per panel, in inches.
    """
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def fitted_suptitle(fig: Figure, text: str, fontsize: float = 12.0) -> None:
    """fig.suptitle, wrapped to the figure's width (constrained layout moves text, it does not
    shrink or wrap it, so a title wider than a narrow figure would be cut at both sides)."""
    import textwrap

    chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))  # ~0.6 em per character
    fig.suptitle(textwrap.fill(text, chars), fontsize=fontsize)


def legend_columns(fig: Figure, labels: Iterable[str], fontsize: float = 8.0) -> int:
    """How many legend entries fit side by side across the figure (at least 1)."""
    labels = list(labels)
    if not labels:
        return 1
    entry = (max(len(s) for s in labels) * 0.6 * fontsize + 3 * fontsize) / 72  # text + handle
    return max(1, min(len(labels), int(0.95 * fig.get_figwidth() // entry)))


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise a ValueError naming the missing columns of `df` and the figure that needs them."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; the frame has "
                         f"{list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: the frame has no rows")


def time_unit(seconds: np.ndarray | pd.Series | float) -> tuple[str, float]:
    """(unit name, seconds per unit) that suits the median of finite, positive `seconds`."""
    s = np.asarray(seconds, dtype=float).ravel()
    s = s[np.isfinite(s) & (s > 0)]
    typical = float(np.median(s)) if s.size else 1.0
    for name, scale in _TIME_UNITS:
        if typical >= 2 * scale:
            return name, scale
    return "seconds", 1.0


def band_stats(values: np.ndarray, kind: str = "quartiles") -> tuple[np.ndarray, ...]:
    """Centre, low, high over axis 0 of `values` [repeats, points], ignoring NaN.

    kind "quartiles": median, 25th and 75th percentile; "sem": mean and mean -/+ standard error.
    Columns with no finite value give NaN (matplotlib leaves a gap there).
    """
    v = np.asarray(values, dtype=float)
    out = np.full((3, v.shape[1]), np.nan)
    ok = np.isfinite(v).any(axis=0)
    if ok.any():
        w = v[:, ok]
        if kind == "quartiles":
            out[:, ok] = np.nanpercentile(w, [50, 25, 75], axis=0)
        elif kind == "sem":
            n = np.isfinite(w).sum(axis=0)
            mean = np.nanmean(w, axis=0)
            sem = np.nanstd(w, axis=0, ddof=1) / np.sqrt(n) if v.shape[0] > 1 else 0 * mean
            sem = np.nan_to_num(sem)  # one finite repeat: no spread to show
            out[:, ok] = mean, mean - sem, mean + sem
        else:
            raise ValueError(f"band_stats: kind must be 'quartiles' or 'sem', got {kind!r}")
    return out[0], out[1], out[2]


def log_if_wide(ax, which: str, values, decades: float = 1.0) -> bool:
    """Log scale on axis `which` ("x" or "y") when all finite `values` are positive and
    span at least `decades` decades; a narrower range stays linear, where log ticks would be
    unreadable (no major tick inside, minor labels like 1.1x10^-2). True if log was set."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]  # missing values (NaN) do not decide the scale
    wide = v.size > 0 and (v > 0).all() and np.log10(v.max() / v.min()) >= decades
    if wide:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    return bool(wide)


def plain_log_labels(axis) -> None:
    """Label a log axis with plain numbers (0.3, 2, 10) instead of 3x10^-1; minor ticks at 2
    and 5 per decade are labelled too while the axis spans at most three decades (otherwise
    they would crowd it, and a narrow axis would show one major label or none)."""

    def minor(v: float, _pos) -> str:
        lo, hi = sorted(axis.get_view_interval())
        return f"{v:g}" if lo > 0 and np.log10(hi / lo) <= 3 else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    axis.set_minor_formatter(FuncFormatter(minor))
