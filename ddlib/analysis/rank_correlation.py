"""Tests of a rank correlation itself: Spearman's rho with a Fisher-z interval and one-sided p-values.

The chapters show Spearman's rho with a percentile-bootstrap interval
(:func:`ddlib.analysis.stats.spearman_ci`); a verdict that tests a correlation
against a threshold over several settings needs p-values to Holm-adjust, and
tails that do not rest on a handful of resamples: :func:`spearman_fisher`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special as sc

from ddlib.analysis.stats import CONFIDENCE, _spearman_rows

FISHER_MIN_N = 10   # fewer (x, y) pairs: no Fisher-z interval or test of a rank correlation


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman rho of n (x, y) pairs with its Fisher-z interval (:func:`spearman_fisher`).

    Attributes:
        rho: the rank correlation (NaN when x or y is constant).
        low, high: its interval; NaN below :data:`FISHER_MIN_N` pairs.
        n: pairs.
        se: the standard error of ``atanh(rho)``, ``sqrt((1 + rho^2 / 2) / (n - 3))``.
    """

    rho: float
    low: float
    high: float
    n: int
    se: float

    def p(self, statement: str, r0: float = 0.0) -> float:
        """One-sided p-value that rho is ``"greater"`` or ``"less"`` than ``r0`` (NaN without a test).

        ``z = (atanh(rho) - atanh(r0)) / se``, referred to the standard normal:
        below alpha exactly when the one-sided (1 - alpha) Fisher bound excludes ``r0``.
        """
        if math.isnan(self.se) or math.isnan(self.rho):
            return math.nan
        z = (_atanh(self.rho) - _atanh(r0)) / self.se
        if statement == "greater":
            return float(sc.ndtr(-z))
        if statement == "less":
            return float(sc.ndtr(z))
        raise ValueError(f"unknown statement {statement!r}; use 'greater' or 'less'")


def _atanh(r: float) -> float:
    # |rho| = 1 (a perfect ranking) has an infinite z: clipped, it stays finite and decided
    return float(np.arctanh(np.clip(r, -1 + 1e-9, 1 - 1e-9)))


def spearman_fisher(x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE) -> RankCorrelation:
    """Spearman's rho of (x, y) and its Fisher-z interval, for tests of the correlation itself.

    ``atanh(rho)`` is close to normal with variance ``(1 + rho^2 / 2) / (n - 3)``
    for a rank correlation (Bonett & Wright 2000, Psychometrika 65: 23-28; the
    Pearson value ``1 / (n - 3)`` is too small for Spearman's), so the interval
    is ``tanh(atanh(rho) ± z_{1 - alpha/2} · se)`` and one-sided tests against
    any ``r0`` follow (:meth:`RankCorrelation.p`); Bonett & Wright find its
    coverage close to nominal from about 10 pairs, below which there is no
    interval.  Unlike the bootstrap of :func:`spearman_ci` it gives p-values
    (so several correlations can be Holm-adjusted) and its tails do not rest
    on a handful of resamples.  The pairs are treated as independent units
    (condensed sets), as the bootstrap treats them.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("x and y must be 1-D and of the same length")
    n = len(a)
    rho = float(_spearman_rows(a[None], b[None])[0]) if n >= 2 else math.nan
    if n < FISHER_MIN_N or math.isnan(rho):
        return RankCorrelation(rho, math.nan, math.nan, n, math.nan)
    se = math.sqrt((1 + rho ** 2 / 2) / (n - 3))
    h = float(sc.ndtri(0.5 + confidence / 2)) * se
    z = _atanh(rho)
    return RankCorrelation(rho, math.tanh(z - h), math.tanh(z + h), n, se)
