"""Uncertainty over seeds: mean, standard deviation and bootstrap intervals.

Percentile bootstrap (Efron & Tibshirani 1993, Ch. 13) with a fixed
``random_state``, as rliable (Agarwal et al. 2021) recommends for few-run
reports: the same data always give the same interval.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def mean_std(x: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    a = np.asarray(x, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def bootstrap_ci(x: Sequence[float], *, confidence: float = 0.95, n_boot: int = 2000,
                 random_state: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``x``.

    Returns:
        (low, high); both equal the value itself when ``x`` has one element.
    """
    a = np.asarray(x, dtype=float)
    if len(a) < 2:
        return float(a.mean()), float(a.mean())
    rng = np.random.default_rng(random_state)
    means = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_bootstrap_ci(x: Sequence[float], y: Sequence[float], **kw) -> Tuple[float, float]:
    """Bootstrap CI of mean(x - y) for paired samples (same seeds)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError("paired samples must have the same length")
    return bootstrap_ci(x - y, **kw)


@dataclass(frozen=True)
class Paired:
    """``a - b`` over the units both have (seeds): the mean difference, its 95% interval, n.

    Attributes:
        diff: mean of the paired differences.
        ci_low, ci_high: its interval (:func:`paired_bootstrap_ci`).
        n: pairs.
        a, b: the paired values (n,), in pairing order.
    """

    diff: float
    ci_low: float
    ci_high: float
    n: int
    a: np.ndarray
    b: np.ndarray


def paired(a: pd.Series, b: pd.Series, *, scale: float = 1.0, order: str = "a") -> Optional[Paired]:
    """``a - b`` paired by index label (a seed, or e.g. (budget, seed)), times ``scale``.

    Every paired-by-seed comparison of the book goes through here, so the
    interval method is one line (``paired_bootstrap_ci`` below).

    Args:
        a, b: values indexed by the pairing unit; labels only one side has are dropped.
        scale: factor on both (100: accuracy fractions to percentage points).
        order: ``"a"`` or ``"b"``: whose index order the pairs follow (the
            bootstrap resamples positions, so the order fixes the interval's draws).

    Returns:
        the :class:`Paired` comparison, or None when no label is shared.
    """
    common = a.index.intersection(b.index) if order == "a" else b.index.intersection(a.index)
    if len(common) == 0:
        return None
    x, y = a.loc[common].to_numpy() * scale, b.loc[common].to_numpy() * scale
    lo, hi = paired_bootstrap_ci(x, y)
    return Paired(float((x - y).mean()), lo, hi, len(common), x, y)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair of (B, n) arrays; nan where a row's ranks are constant."""
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)  # average ranks for ties
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    num = (rx * ry).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def spearman_ci(x: Sequence[float], y: Sequence[float], *, n_boot: int = 2000, random_state: int = 0,
                confidence: float = 0.95) -> Tuple[float, float, float]:
    """Spearman rank correlation with a paired percentile bootstrap CI.

    rho is the Pearson correlation of the average ranks (ties share the mean
    of the ranks they span; Spearman 1904).  The bootstrap resamples the n
    (x, y) pairs with replacement from ``np.random.default_rng(random_state)``
    and re-ranks every resample.  A resample in which x or y is constant has
    no defined rho: it is counted as nan and excluded from the quantiles (so
    the interval rests on fewer than ``n_boot`` values when n is tiny).

    Returns:
        (rho, low, high); rho is nan when x or y is constant (or n < 2), and
        low/high are nan when every resample is degenerate.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("x and y must be 1-D and of the same length")
    if len(a) < 2:
        return float("nan"), float("nan"), float("nan")
    rho = float(_spearman_rows(a[None], b[None])[0])
    rng = np.random.default_rng(random_state)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    boots = _spearman_rows(a[idx], b[idx])
    boots = boots[~np.isnan(boots)]
    if len(boots) == 0:
        return rho, float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    return rho, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))
