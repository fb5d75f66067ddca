"""Uncertainty over seeds: mean, standard deviation and bootstrap intervals.

Percentile bootstrap (Efron & Tibshirani 1993, Ch. 13) with a fixed
``random_state``, as rliable (Agarwal et al. 2021) recommends for few-run
reports: the same data always give the same interval.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


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
