"""The book's intervals and tests: known answers on tiny arrays, and calibration measured by simulation.

The calibration tests draw many null "settings" (the per-seed paired differences
of two methods with no true difference) from a fixed generator and count how
often the book's verdict machinery calls one significant; the rate must match
the advertised 5% within the stated tolerance, and a true effect of one
standard deviation must be found at the power Student's t promises.
"""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ddlib.analysis.stats import (
    MIN_PAIRS,
    interval_power,
    decide,
    direction,
    equivalence,
    holm,
    interval_cell,
    p_value,
    paired,
    paired_interval,
    welch,
)

SIMS = 4000          # null settings per case
# 3.5 binomial standard errors of a 5% rate over SIMS draws: a miss this large is a real miscalibration
TOL = 3.5 * math.sqrt(0.05 * 0.95 / SIMS)


# -- known answers -------------------------------------------------------------------------
def test_paired_t_interval_known_answer():
    iv = paired_interval([1, 2, 3])
    assert (iv.mean, iv.n, iv.method) == (2.0, 3, "t")
    assert iv.low == pytest.approx(-0.484138, abs=1e-6) and iv.high == pytest.approx(4.484138, abs=1e-6)
    # the same as differences of two paired samples, and as scipy's own one-sample interval
    assert paired_interval([11, 12, 13], [10, 10, 10]) == iv
    ci = sps.ttest_1samp([1, 2, 3], 0).confidence_interval(0.95)
    assert (iv.low, iv.high) == pytest.approx((ci.low, ci.high))
    assert paired_interval([1, 2, 3], confidence=0.90).high == pytest.approx(2 + 2.919986 / math.sqrt(3), abs=1e-6)


def test_too_few_pairs_give_no_interval_and_say_so():
    for x in ([1.0], [1.0, 3.0]):
        iv = paired_interval(x)
        assert not iv.defined and math.isnan(iv.low) and iv.method == "none" and iv.n == len(x) < MIN_PAIRS
        assert p_value(x, "greater") != p_value(x, "greater")  # NaN: no test
    assert paired_interval([1.0, 3.0]).cell() == "+2.0 (n=2: no interval)"
    assert interval_cell(2.0, -0.484, 4.484, 3) == "+2.0 [-0.5, +4.5] (n=3)"


def test_bca_only_from_ten_pairs():
    with pytest.raises(ValueError, match="at least 10"):
        paired_interval([1, 2, 3, 4, 5], method="bca")
    x = np.arange(12.0)
    a, b = paired_interval(x, method="bca"), paired_interval(x, method="bca")
    assert a == b and a.method == "bca" and a.low < 5.5 < a.high   # fixed random_state: same interval


def test_one_sided_and_equivalence_known_answers():
    assert p_value([1, 2, 3], "greater") == pytest.approx(0.037090, abs=1e-6)
    assert p_value([1, 2, 3], "different") == pytest.approx(0.074180, abs=1e-6)
    # TOST with margin 5: p = max(P(T2 > 12.12), P(T2 < -5.196)) = 0.01755; the 90% interval [0.314, 3.686]
    e = equivalence([1, 2, 3], margin=5.0)
    assert e.equivalent and e.p == pytest.approx(0.017549, abs=1e-6)
    assert (e.low, e.high) == pytest.approx((0.314146, 3.685854), abs=1e-6)
    # margin 3 does not contain the 90% interval: not shown equivalent (and not a failed test either)
    assert not equivalence([1, 2, 3], margin=3.0).equivalent
    assert p_value([0.5, 1.5, 1.0, 0.8, 1.2], "not_greater", 2.0) == pytest.approx(0.002100, abs=1e-6)


def test_holm_known_answer():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm([0.2, float("nan"), 0.01])   # a setting without a test is not counted
    assert out[0] == pytest.approx(0.2) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([0.9, 0.8]).max() <= 1.0


def test_decide_and_direction_on_noisy_settings():
    up = [4.8, 5.6, 4.1, 5.3, 5.0]            # clearly above 0 and above the 1-point margin
    flat = [0.2, -0.3, 0.1, -0.1, 0.25]       # shown within +-1 point
    noisy = [3.0, -4.0, 2.5, -1.0, 0.5]        # neither
    down = [-5.2, -4.4, -6.0, -5.1, -4.9]
    assert direction([up, flat, noisy, down]) == ["greater", "same", "unclear", "less"]
    # "beats" (greater) against "does not beat by the margin" (not_greater)
    assert decide([up, flat, noisy, down], "greater", "not_greater") == ["support", "against", "unclear", "against"]
    # and the mirror claim: "does not beat"
    assert decide([up, flat, noisy, down], "not_greater", "greater") == ["against", "support", "unclear", "support"]
    # a significant but negligible gain (+0.3 +- 0.05) is no gain: the margin statement decides
    tiny = [0.30, 0.35, 0.25, 0.32, 0.28]
    assert decide([tiny], "greater", "not_greater") == ["against"]
    assert direction([tiny]) == ["same"]


def test_holm_makes_pooled_settings_harder():
    """A p = 0.03 setting is significant alone but not among five settings."""
    d = [1.1, 0.2, 0.9, 1.6, 0.5]    # p(greater) ~ 0.02
    assert p_value(d, "greater") < 0.05
    assert decide([d], "greater", "not_greater") == ["support"]
    many = [d] + [[0.5, -0.5, 0.3, -0.2, 0.0]] * 4
    assert decide(many, "greater", "not_greater")[0] == "unclear"


def test_paired_follows_labels_and_reports_the_t_interval():
    a = pd.Series([0.60, 0.62, 0.58, 0.61], index=[0, 1, 2, 3])
    b = pd.Series([0.50, 0.55, 0.50, 0.52, 0.9], index=[3, 2, 1, 0, 7])   # other order, an extra label
    p = paired(a, b, scale=100)
    d = np.array([60 - 52, 62 - 50, 58 - 55, 61 - 50], dtype=float)
    iv = paired_interval(d)
    assert p.n == 4 and p.diff == pytest.approx(iv.mean) and (p.ci_low, p.ci_high) == pytest.approx((iv.low, iv.high))
    assert np.allclose(p.d, d)


# -- calibration -----------------------------------------------------------------------------
def _null(kind: str, n: int, rng) -> np.ndarray:
    if kind == "normal":
        return rng.normal(0.0, 1.0, size=(SIMS, n))
    return rng.standard_t(3, size=(SIMS, n))   # heavy tails: t with 3 degrees of freedom


@pytest.mark.parametrize("kind", ["normal", "t3"])
@pytest.mark.parametrize("n", [3, 5])
def test_false_significance_rate_is_the_advertised_five_percent(kind, n):
    """Null settings: the 95% interval excludes 0 in 5% of them (normal noise: within TOL; heavy
    tails: at most 5% + TOL, the t-interval is conservative there)."""
    rng = np.random.default_rng(1000 + n + (kind == "t3"))
    sims = _null(kind, n, rng)
    rate = np.mean([not (iv.low <= 0 <= iv.high) for iv in map(paired_interval, sims)])
    if kind == "normal":
        assert abs(rate - 0.05) <= TOL, rate
    else:
        assert 0.05 - 3 * TOL <= rate <= 0.05 + TOL, rate
    # the one-sided test behind "beats": 2.5% of null settings (half the two-sided rate)
    one = np.mean([p_value(d, "greater") < 0.05 for d in sims[: SIMS // 2]])
    assert one <= 0.05 + TOL


def test_percentile_bootstrap_of_three_seeds_would_not_be_calibrated():
    """Why not a percentile bootstrap: with 3 seeds its "95%" interval is the seeds' [min, max]."""
    rng = np.random.default_rng(7)
    sims = rng.normal(size=(SIMS, 3))
    minmax = np.mean((sims.min(axis=1) > 0) | (sims.max(axis=1) < 0))   # [min, max] excludes 0
    assert minmax == pytest.approx(0.25, abs=0.03)                        # 2 x (1/2)^3, not 5%


@pytest.mark.parametrize("n,power", [(3, 0.179), (5, 0.401)])
def test_power_for_a_one_sd_effect(n, power):
    """A true effect of 1 SD is found (interval above 0) at Student's power: 18% with 3 seeds, 40% with 5
    (two-sided 5%); the book's verdicts at n = 5 miss more than half of such effects."""
    ncp, df = math.sqrt(n), n - 1
    tc = sps.t.ppf(0.975, df)
    theory = 1 - sps.nct.cdf(tc, df, ncp) + sps.nct.cdf(-tc, df, ncp)
    assert theory == pytest.approx(power, abs=0.001)
    assert interval_power(n) == pytest.approx(theory, abs=1e-12)  # what the protocol page quotes
    sims = np.random.default_rng(50 + n).normal(1.0, 1.0, size=(SIMS, n))
    found = np.mean([paired_interval(d).low > 0 for d in sims])
    assert abs(found - theory) <= 3.5 * math.sqrt(theory * (1 - theory) / SIMS) + 0.01, found


def test_equivalence_is_not_declared_at_the_margin():
    """A true difference exactly at the margin is declared 'same' in at most 5% of settings."""
    sims = np.random.default_rng(3).normal(1.0, 0.5, size=(SIMS, 5))
    rate = np.mean([equivalence(d, margin=1.0).equivalent for d in sims])
    assert rate <= 0.05 + TOL, rate


@pytest.mark.parametrize("alt,statement", [("greater", "greater"), ("less", "less"), ("two-sided", "different")])
def test_p_values_are_scipys_t_test(alt, statement):
    d = [0.4, -1.2, 2.5, 1.1, 0.3, 0.9]
    assert p_value(d, statement) == pytest.approx(sps.ttest_1samp(d, 0.0, alternative=alt).pvalue, rel=1e-9)


def test_welch_is_scipys_welch_test():
    x, y = [71.2, 69.8, 73.1, 70.4], [66.0, 68.9, 65.2]
    got, p = welch(x, y)
    ref = sps.ttest_ind(x, y, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)
    assert (got.low, got.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    one, p1 = welch([1.0, 1.0, 1.0], [0.9, 0.95, 1.0])  # one group constant: df = n - 1 of the other
    ref1 = sps.ttest_1samp([0.9, 0.95, 1.0], 1.0)
    assert p1 == pytest.approx(ref1.pvalue, rel=1e-9)


def test_welch_of_values_close_together_far_from_zero_is_quiet_and_shift_invariant():
    import warnings

    x, y = [0.998, 0.998, 0.998 + 1e-13], [0.9985, 0.9985, 0.9985 + 2e-13]  # scipy warns on these as they are
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got, p = welch(x, y)
    assert got.mean == pytest.approx(-0.0005, abs=1e-12) and p < 1e-6  # the gap is 10^9 of its noise
    assert got.low < -0.0005 < got.high and got.high - got.low < 1e-9


def test_n_range_says_one_count_once():
    from ddlib.analysis.stats import n_range

    assert n_range([5, 5, 5]) == "5" and n_range([3, 5, 4]) == "3–5"
