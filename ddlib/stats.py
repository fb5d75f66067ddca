"""The book's statistics, at the package's top level: ``ddlib.stats.paired_interval(x, y)`` is exactly
what every gain, gap and duel in the book shows (see :mod:`ddlib.analysis.stats` for the rest)."""
from ddlib.analysis.stats import (  # noqa: F401
    ALPHA,
    MARGIN,
    MIN_PAIRS,
    Equivalence,
    Interval,
    decide,
    direction,
    equivalence,
    holm,
    p_value,
    paired_interval,
    welch,
)

__all__ = ["ALPHA", "MARGIN", "MIN_PAIRS", "Equivalence", "Interval", "decide", "direction", "equivalence", "holm",
           "p_value", "paired_interval", "welch"]
