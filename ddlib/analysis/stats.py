"""Uncertainty over seeds: intervals, tests, equivalence and pooled verdicts.

What an interval and a verdict mean in this book (the protocol chapter says the same):

* **Interval.**  A difference between two methods is paired by seed (same
  split, same student init, same data order) and its 95% interval is the
  paired Student-t interval of the mean difference, ``mean ± t(0.975, n-1) ·
  s / sqrt(n)`` (``scipy.stats.ttest_1samp``).  It is exact for normal seed
  noise at any n >= 2 and is what we use at the book's n = 5 seeds; a percentile
  bootstrap of 3 values is the seeds' [min, max] and covers far less than 95%.
  Fewer than :data:`MIN_PAIRS` pairs: no interval (the cell says so).  For
  n >= :data:`BCA_MIN_N` a BCa bootstrap (``scipy.stats.bootstrap``) may be asked for.
* **Tests.**  One-sided t-tests of the mean paired difference against 0 or
  against a margin.  "Same", "ties", "matches", "saturates" and "does not
  beat" are claims of (practical) equivalence: they need the two one-sided tests
  (TOST, Schuirmann 1987) to place the difference inside ``± margin`` points
  (:data:`MARGIN`), never a failure to find a difference.
* **Pooled verdicts.**  A statement about several settings (regimes x IPCs x
  budgets) adjusts each family of per-setting p-values by Holm's step-down
  rule (Holm 1979), so the chance that *any* setting is wrongly declared is at
  most :data:`ALPHA`; the verdict says how many settings it pooled.
* **Correlations** over condensed sets (tens of sets, not seeds): Spearman's
  rho with a percentile bootstrap (:func:`spearman_ci`, fixed ``random_state``)
  for the chapters' 95% intervals, and a Fisher-z interval with one-sided
  tests (:func:`ddlib.analysis.rank_correlation.spearman_fisher`) where a
  verdict needs p-values to Holm-adjust.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd
# the t quantiles and tails from scipy.special, the functions scipy.stats' t calls (the same floats):
# importing scipy.stats cost every notebook's kernel about 0.9 s (4.0 -> 3.1 s to import the chapters)
from scipy import special as sc

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
MIN_PAIRS = 3     # fewer paired seeds: no interval, no test
BCA_MIN_N = 10    # BCa bootstrap only from this many pairs (below it, its coverage is poor)
MARGIN = 1.0      # accuracy points: a difference smaller than this is "no difference"

# the statements a per-setting test can establish (mean paired difference d, margin m)
STATEMENTS = {
    "greater": "d > 0",
    "less": "d < 0",
    "different": "d != 0",
    "not_greater": "d < m (any advantage is below the margin)",
    "not_less": "d > -m (any deficit is below the margin)",
    "same": "-m < d < m (TOST)",
}
# a statement with a margin wins over the plain sign test when both hold: a significant
# difference that is shown to be smaller than the margin is practically none
_MARGINAL = ("not_greater", "not_less", "same")


def mean_std(x: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    a = np.asarray(x, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


@dataclass(frozen=True)
class Interval:
    """A mean (of paired differences, or of values) with its interval and n.

    Attributes:
        mean: the mean.
        low, high: the interval; NaN when ``n`` < :data:`MIN_PAIRS` (no interval).
        n: values (pairs) it rests on.
        confidence: the interval's nominal coverage.
        method: "t" (Student), "bca" (BCa bootstrap) or "none" (too few values).
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE
    method: str = "t"

    @property
    def defined(self) -> bool:
        return not math.isnan(self.low)

    def cell(self, fmt: str = "+.1f") -> str:
        """``"+1.2 [+0.4, +2.0] (n=5)"``, or ``"+1.2 (n=2: no interval)"``."""
        if not self.defined:
            return f"{self.mean:{fmt}} (n={self.n}: no interval)"
        return f"{self.mean:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}] (n={self.n})"


def _t_bounds(d: np.ndarray, confidence: float) -> Tuple[float, float]:
    m = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(len(d))
    if se == 0.0:  # identical differences: t is infinite, the interval is the point
        return m, m
    h = float(sc.stdtrit(len(d) - 1, 0.5 + confidence / 2)) * se
    return m - h, m + h


def n_range(n) -> str:
    """The paired counts of several settings for a sentence: "5", or "3–5" when they differ."""
    lo, hi = int(min(n)), int(max(n))
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def interval_power(n: int, effect_sd: float = 1.0, confidence: float = CONFIDENCE) -> float:
    """How often the paired t-interval of ``n`` seeds excludes 0 when the true mean difference is
    ``effect_sd`` standard deviations of the per-seed differences (Student's power, from the
    noncentral t with ``n - 1`` degrees of freedom and noncentrality ``effect_sd * sqrt(n)``)."""
    df, ncp = n - 1, effect_sd * math.sqrt(n)
    tc = sc.stdtrit(df, 1 - (1 - confidence) / 2)
    return float(1 - sc.nctdtr(df, ncp, tc) + sc.nctdtr(df, ncp, -tc))


def paired_interval(x: Sequence[float], y: Optional[Sequence[float]] = None, confidence: float = CONFIDENCE,
                    *, method: str = "t", random_state: int = 0) -> Interval:
    """The interval of mean(x - y) over pairs (of mean(x) when ``y`` is None).

    Args:
        x, y: paired values (n,), e.g. two methods' accuracies by seed, in the same seed order.
        confidence: nominal coverage (0.95: a 95% interval).
        method: "t" (paired Student-t, the book's) or "bca" (``scipy.stats.bootstrap``,
            n >= :data:`BCA_MIN_N` only, ``random_state`` fixed so the same data give the same interval).

    Returns:
        :class:`Interval`; ``[1, 2, 3]`` gives mean 2 and ``[-0.484, 4.484]`` at 95%.
        With fewer than :data:`MIN_PAIRS` pairs low and high are NaN (method "none").
    """
    d = np.asarray(x, dtype=float)
    if y is not None:
        b = np.asarray(y, dtype=float)
        if d.shape != b.shape:
            raise ValueError("paired samples must have the same length")
        d = d - b
    if d.ndim != 1 or len(d) == 0:
        raise ValueError("need a non-empty 1-D sample")
    n, m = len(d), float(d.mean())
    if n < MIN_PAIRS:
        return Interval(m, math.nan, math.nan, n, confidence, "none")
    if method == "t":
        lo, hi = _t_bounds(d, confidence)
    elif method == "bca":
        if n < BCA_MIN_N:
            raise ValueError(f"a BCa interval needs at least {BCA_MIN_N} pairs; got {n} (use method='t')")
        from scipy.stats import bootstrap

        res = bootstrap((d,), np.mean, confidence_level=confidence, method="BCa", n_resamples=9999,
                        random_state=np.random.default_rng(random_state))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    else:
        raise ValueError(f"unknown interval method {method!r}; use 't' or 'bca'")
    return Interval(m, lo, hi, n, confidence, method)


def welch(x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE) -> Tuple[Interval, float]:
    """Welch's interval of mean(x) - mean(y) for two independent groups, and its two-sided p-value.

    For comparisons whose units are not paired (e.g. the methods of two families).
    Fewer than 2 values in either group: no interval, p NaN (``Interval.n`` = len(x) + len(y)).
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    m = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):
        return Interval(m, math.nan, math.nan, len(a) + len(b), confidence, "none"), math.nan
    # Welch's t written out (as scipy.stats.ttest_ind(equal_var=False)): numpy's two-pass variances, so a
    # group of nearly equal values (precision ~ 1.0 for every set) is a small variance, not scipy's
    # "catastrophic cancellation" warning printed onto the page
    va, vb = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(sc.stdtrit(df, 1 - (1 - confidence) / 2)) * se
    p = float(2 * sc.stdtr(df, -abs(m) / se))
    return Interval(m, m - half, m + half, len(a) + len(b), confidence, "welch"), p


def _t_p(d: np.ndarray, popmean: float, alternative: str) -> float:
    if len(d) < MIN_PAIRS:
        return math.nan
    if float(d.std(ddof=1)) == 0.0:  # a point mass: decided by where it lies
        m = float(d.mean())
        return 0.0 if ((alternative == "greater" and m > popmean) or (alternative == "less" and m < popmean)
                       or (alternative == "two-sided" and m != popmean)) else 1.0
    # Student's one-sample t statistic (as scipy.stats.ttest_1samp; written out: called per setting, often)
    t = (float(d.mean()) - popmean) / (float(d.std(ddof=1)) / math.sqrt(len(d)))
    df = len(d) - 1
    if alternative == "greater":
        return float(sc.stdtr(df, -t))
    if alternative == "less":
        return float(sc.stdtr(df, t))
    return float(2 * sc.stdtr(df, -abs(t)))


def p_value(d: Sequence[float], statement: str, margin: float = MARGIN) -> float:
    """p-value of one :data:`STATEMENTS` entry for the paired differences ``d`` (NaN below MIN_PAIRS).

    ``same`` is the TOST p-value, the larger of the two one-sided ones: it is
    below alpha exactly when the (1 - 2 alpha) interval lies inside ``± margin``.
    """
    a = np.asarray(d, dtype=float)
    if statement == "greater":
        return _t_p(a, 0.0, "greater")
    if statement == "less":
        return _t_p(a, 0.0, "less")
    if statement == "different":
        return _t_p(a, 0.0, "two-sided")
    if statement == "not_greater":
        return _t_p(a, margin, "less")
    if statement == "not_less":
        return _t_p(a, -margin, "greater")
    if statement == "same":
        return max(_t_p(a, -margin, "greater"), _t_p(a, margin, "less"))
    raise ValueError(f"unknown statement {statement!r}; one of {', '.join(STATEMENTS)}")


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests that ``-margin < mean(d) < margin``.

    Attributes:
        p: the TOST p-value; equivalent when below ``alpha``.
        low, high: the (1 - 2 alpha) t-interval, the one TOST's decision matches.
        margin: the equivalence margin (same units as ``d``).
        n: pairs.
        equivalent: whether the margin is established.
    """

    p: float
    low: float
    high: float
    margin: float
    n: int
    equivalent: bool


def equivalence(d: Sequence[float], margin: float = MARGIN, alpha: float = ALPHA) -> Equivalence:
    """TOST on paired differences ``d`` with margin ``margin`` (not equivalent below MIN_PAIRS)."""
    a = np.asarray(d, dtype=float)
    p = p_value(a, "same", margin)
    iv = paired_interval(a, confidence=1 - 2 * alpha)
    return Equivalence(p, iv.low, iv.high, margin, len(a), bool(p < alpha))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979); NaN (no test) stays NaN and is not counted.

    The i-th smallest of m p-values is multiplied by (m - i + 1), made
    non-decreasing along the order and capped at 1; rejecting the adjusted ones
    below alpha keeps the family-wise error at most alpha.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    idx = np.flatnonzero(ok)[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate(p[idx] * (m - np.arange(m))))
    out[idx] = adj
    return out


def p_values(d: Sequence[float], margin: float = MARGIN) -> dict:
    """``{"p_<statement>": p}`` for every :data:`STATEMENTS` entry (a table row's test columns)."""
    return {f"p_{s}": p_value(d, s, margin) for s in STATEMENTS}


def decide_p(ps: Sequence[float], pa: Sequence[float], supports: Sequence[str], alpha: float = ALPHA) -> list:
    """Per setting "support" / "against" / "unclear" from its supporting and contradicting p-values.

    Each family is Holm-adjusted over the settings; ``supports`` names each setting's
    supporting statement: when both are significant, a statement with a margin decides.
    """
    out = []
    for s, a, sup in zip(holm(ps) < alpha, holm(pa) < alpha, supports):
        if s and a:
            out.append("support" if sup in _MARGINAL else "against")
        else:
            out.append("support" if s else "against" if a else "unclear")
    return out


def _decide(ps: np.ndarray, pa: np.ndarray, support: str, alpha: float) -> list:
    return decide_p(ps, pa, [support] * len(ps), alpha)


def decide(diffs: Sequence[Sequence[float]], support: str, against: str, *, margin: float = MARGIN,
           alpha: float = ALPHA) -> list:
    """Per setting "support", "against" or "unclear", each statement Holm-adjusted over the settings.

    Args:
        diffs: one array of paired differences per setting.
        support, against: the :data:`STATEMENTS` that support and contradict the claim.

    A setting supports when ``support``'s adjusted p is below ``alpha``, and
    contradicts when ``against``'s is; if both are (a significant difference
    smaller than the margin), the statement with a margin decides.
    """
    return _decide(np.array([p_value(d, support, margin) for d in diffs]),
                   np.array([p_value(d, against, margin) for d in diffs]), support, alpha)


def decide_table(t: pd.DataFrame, support: str, against: str, alpha: float = ALPHA) -> list:
    """:func:`decide` on a table's ``p_<statement>`` columns (:func:`p_values`), Holm over its rows."""
    return _decide(t[f"p_{support}"].to_numpy(float), t[f"p_{against}"].to_numpy(float), support, alpha)


def _direction(pg, pl, pe, alpha: float) -> list:
    return ["same" if e < alpha else "greater" if g < alpha else "less" if lo < alpha else "unclear"
            for g, lo, e in zip(holm(pg), holm(pl), holm(pe))]


def direction(diffs: Sequence[Sequence[float]], *, margin: float = MARGIN, alpha: float = ALPHA) -> list:
    """Per setting "greater", "less", "same" or "unclear" (Holm over the settings, per statement).

    "same" (TOST within ``± margin``) wins over a significant sign: a difference
    shown to be smaller than the margin is no difference.
    """
    return _direction([p_value(d, "greater", margin) for d in diffs], [p_value(d, "less", margin) for d in diffs],
                      [p_value(d, "same", margin) for d in diffs], alpha)


def direction_table(t: pd.DataFrame, alpha: float = ALPHA) -> list:
    """:func:`direction` on a table's ``p_greater``, ``p_less``, ``p_same`` columns, Holm over its rows."""
    return _direction(t["p_greater"].to_numpy(float), t["p_less"].to_numpy(float), t["p_same"].to_numpy(float),
                      alpha)


@dataclass(frozen=True)
class Paired:
    """``a - b`` over the units both have (seeds): the mean difference, its 95% interval, n.

    Attributes:
        diff: mean of the paired differences.
        ci_low, ci_high: its :func:`paired_interval` (NaN below :data:`MIN_PAIRS` pairs).
        n: pairs.
        a, b: the paired values (n,), in pairing order.
    """

    diff: float
    ci_low: float
    ci_high: float
    n: int
    a: np.ndarray
    b: np.ndarray

    @property
    def d(self) -> np.ndarray:
        """The paired differences a - b (n,)."""
        return self.a - self.b


def paired(a: pd.Series, b: pd.Series, *, scale: float = 1.0, order: str = "a") -> Optional[Paired]:
    """``a - b`` paired by index label (a seed, or e.g. (budget, seed)), times ``scale``.

    Every paired-by-seed comparison of the book goes through here, so the
    interval method is one line (:func:`paired_interval`).

    Args:
        a, b: values indexed by the pairing unit; labels only one side has are dropped.
        scale: factor on both (100: accuracy fractions to percentage points).
        order: ``"a"`` or ``"b"``: whose index order the pairs follow.

    Returns:
        the :class:`Paired` comparison, or None when no label is shared.
    """
    common = a.index.intersection(b.index) if order == "a" else b.index.intersection(a.index)
    if len(common) == 0:
        return None
    x, y = a.loc[common].to_numpy() * scale, b.loc[common].to_numpy() * scale
    iv = paired_interval(x, y)
    return Paired(iv.mean, iv.low, iv.high, iv.n, x, y)


def interval_cell(mean: float, low: float, high: float, n: int, fmt: str = "+.1f") -> str:
    """A table cell for a stored interval: the mean, its interval and n, or why there is none."""
    return Interval(mean, low, high, int(n)).cell(fmt)


def mean_std_cell(mean: float, std: float, n: Optional[int] = None) -> str:
    """A table cell "77.5 ± 2.7 (n=5)": a mean with its spread over seeds (no ± when ``std`` is
    missing, as for a published number without one; no n when ``n`` is None)."""
    cell = f"{mean:.1f}" + ("" if pd.isna(std) else f" ± {std:.1f}")
    return cell + ("" if n is None else f" (n={int(n)})")


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair of (B, n) arrays; nan where a row's ranks are constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)  # average ranks for ties
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=-1) * (ry ** 2).sum(axis=-1))
    num = (rx * ry).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def spearman_ci(x: Sequence[float], y: Sequence[float], *, n_boot: int = 2000, random_state: int = 0,
                confidence: float = CONFIDENCE) -> Tuple[float, float, float]:
    """Spearman rank correlation over sets with a paired percentile bootstrap CI.

    rho is the Pearson correlation of the average ranks (ties share the mean
    of the ranks they span; Spearman 1904).  The bootstrap resamples the n
    (x, y) pairs — n condensed sets, tens in the DCS and quality chapters, not
    seeds — with replacement from ``np.random.default_rng(random_state)``
    and re-ranks every resample; the pairs are put in one canonical order
    (by x, then y) first, so the interval does not depend on the order the rows
    came in.  A resample in which x or y is constant has no defined rho: it is
    left out of the quantiles.  The resampling is written here because
    ``scipy.stats.bootstrap`` takes the quantiles of every resample, so one
    constant resample makes its interval NaN.

    Returns:
        (rho, low, high); rho is nan when x or y is constant (or n < 2), and
        low/high are nan when every resample is degenerate.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("x and y must be 1-D and of the same length")
    if len(a) < 2:
        return float("nan"), float("nan"), float("nan")
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    rho = float(_spearman_rows(a[None], b[None])[0])
    rng = np.random.default_rng(random_state)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    boots = _spearman_rows(a[idx], b[idx])
    boots = boots[~np.isnan(boots)]
    if len(boots) == 0:
        return rho, float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    return rho, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))

