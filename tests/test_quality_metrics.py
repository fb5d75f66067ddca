"""Known answers of the condensed-set quality metrics and of spearman_ci."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddlib.analysis.quality import (
    features,
    frechet_distance,
    mean_pairwise_distance,
    median_bandwidth,
    mmd2,
    prdc,
    set_quality,
    subsample,
    vendi_score,
)
from ddlib.analysis.stats import spearman_ci
from ddlib.core.registry import DDLibError


def gauss(n=60, d=4, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- PRDC ------------------------------------------------------------------
def test_prdc_identical_sets():
    x = gauss()
    m = prdc(x, x.clone(), k=5)
    # each real ball (open, radius = 5th-NN distance) holds its centre and its
    # 4 nearest neighbours: sum_j sum_i 1[...] = 5 N, density = 5N / (5N) = 1
    assert m == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_prdc_two_clusters_hand_made():
    # two far-apart clusters of 4 points each (unit square corners); k = 1:
    # every real radius is 1 (nearest corner), the synthetic set copies cluster A
    sq = torch.tensor([[0., 0.], [1., 0.], [0., 1.], [1., 1.]], dtype=torch.float64)
    real = torch.cat([sq, sq + 100])
    syn = sq.clone()
    m = prdc(real, syn, k=1)
    assert m["coverage"] == 0.5  # only cluster A's 4 balls hold a synthetic point
    assert m["precision"] == 1.0  # every synthetic point sits on a real one
    assert m["recall"] == 0.5  # synthetic radii are 1: cluster B is out of reach
    assert m["density"] == 1.0  # each Y_j is inside only its own real ball (open balls, r = 1)
    full = prdc(real, real.clone(), k=1)
    assert full["coverage"] == 1.0 and full["coverage"] > m["coverage"]


def test_prdc_far_set_is_zero():
    x = gauss()
    m = prdc(x, x + 1e3, k=5)
    assert m == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_clamps_k_for_small_sets():
    x = gauss(n=3)
    assert prdc(x, x.clone(), k=5)["density"] == 1.0  # k -> 2
    with pytest.raises(DDLibError):
        prdc(x, x[:1], k=5)


# -- Fréchet distance --------------------------------------------------------
def test_fd_identical_is_zero():
    x = gauss(n=200, d=6)
    assert abs(frechet_distance(x, x.clone())) < 1e-8


def test_fd_shift_is_squared_norm():
    x = gauss(n=200, d=6)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 0.25], dtype=torch.float64)
    assert frechet_distance(x, x + shift) == pytest.approx(float((shift ** 2).sum()), abs=1e-7)


def test_fd_known_gaussians_and_small_n():
    # diagonal covariances: FD = sum (sqrt(a) - sqrt(b))^2 for the variances
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)  # exact unit variances (ddof=1), zero mean
    y = x * torch.tensor([2.0, 3.0], dtype=torch.float64)  # variances 4 and 9; cross terms scale too
    cov = torch.cov(x.T)
    # exact answer via the definition on the sample covariances (scaled: S2 = D S1 D)
    d = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))
    s1, s2 = cov, d @ cov @ d
    w, v = torch.linalg.eig(s1 @ s2)
    expect = float(torch.trace(s1 + s2) - 2 * w.sqrt().real.sum())
    assert frechet_distance(x, y, eps=0.0) == pytest.approx(expect, abs=1e-8)
    # fewer samples than dimensions: singular covariances stay finite and >= 0
    small = gauss(n=3, d=10)
    fd = frechet_distance(gauss(n=50, d=10), small)
    assert math.isfinite(fd) and fd > 0


# -- MMD ---------------------------------------------------------------------
def test_mmd_identical_matches_closed_form():
    x = gauss(n=40)
    sigma = 1.5
    k = torch.exp(-torch.cdist(x, x) ** 2 / (2 * sigma ** 2))
    off = (k.sum() - 40) / (40 * 39)
    val = mmd2(x, x.clone(), bandwidth=sigma)
    assert val == pytest.approx(2 / 40 * float(off - 1), abs=1e-12)
    assert -2 / 40 <= val <= 0


def test_mmd_symmetric_and_grows_with_shift():
    x, y = gauss(seed=0), gauss(seed=1)
    assert mmd2(x, y) == pytest.approx(mmd2(y, x), abs=1e-12)
    assert median_bandwidth(x, y) == median_bandwidth(y, x)
    near, far = mmd2(x, y + 0.5, bandwidth=2.0), mmd2(x, y + 3.0, bandwidth=2.0)
    assert 0 < near < far


# -- diversity -----------------------------------------------------------------
@pytest.mark.parametrize("n,d", [(5, 5), (3, 8)])
def test_vendi_orthogonal_is_n(n, d):
    z = torch.zeros(n, d, dtype=torch.float64)
    z[torch.arange(n), torch.arange(n)] = torch.arange(1, n + 1, dtype=torch.float64)  # norms do not matter
    assert vendi_score(z) == pytest.approx(n, abs=1e-9)


def test_vendi_identical_is_one_and_both_grams_agree():
    assert vendi_score(torch.ones(7, 3)) == pytest.approx(1.0, abs=1e-9)
    z = gauss(n=6, d=4)  # n > d: the d x d Gram is used
    k = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(z, dim=1).T
    lam = torch.linalg.eigvalsh(k / 6).clamp(min=0)
    lam = lam[lam > 1e-15]
    assert vendi_score(z) == pytest.approx(float(torch.exp(-(lam * lam.log()).sum())), abs=1e-9)


def test_mean_pairwise_distance():
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])
    assert mean_pairwise_distance(z) == pytest.approx((5 + 8 + 5) / 3)
    assert mean_pairwise_distance(z[:1]) == 0.0


# -- entry points --------------------------------------------------------------
def test_set_quality_identical_and_deterministic():
    x = gauss(n=80, d=5)
    q = set_quality(x, x.clone(), k=5)
    assert (q["precision"], q["recall"], q["coverage"], q["density"]) == (1.0, 1.0, 1.0, 1.0)
    assert abs(q["fd"]) < 1e-8 and abs(q["mmd2"]) < 2 / 80
    assert q["n_real"] == 80 and q["n_syn"] == 80 and q["k"] == 5
    y = gauss(n=30, d=5, seed=3)
    assert set_quality(x, y, seed=1, max_real=50) == set_quality(x.numpy(), y.numpy(), seed=1, max_real=50)
    assert set_quality(x, y, seed=1, max_real=50)["n_real"] == 50
    assert set_quality(x, y, seed=1, max_real=50) != set_quality(x, y, seed=2, max_real=50)


def test_set_quality_vendi_centred_simplex():
    # n points c + 5 e_i: raw cosines are all near 1 (vendi ~ 1); minus their mean
    # they are the vertices of a regular simplex, cosines -1/(n-1): K/n has
    # eigenvalue 1/(n-1) n-1 times and 0 once, so the centred score is n - 1
    n = 6
    z = 100.0 + 5 * torch.eye(n, dtype=torch.float64)
    q = set_quality(z, z.clone())
    assert q["vendi_centred"] == pytest.approx(n - 1, abs=1e-9)
    assert q["vendi"] < 1.01


def test_subsample_is_seeded_subset():
    x = gauss(n=100, d=3)
    a = subsample(x, 10, seed=0, stream="s")
    assert torch.equal(a, subsample(x, 10, seed=0, stream="s"))
    assert not torch.equal(a, subsample(x, 10, seed=1, stream="s"))
    rows = {tuple(r.tolist()) for r in x}
    assert all(tuple(r.tolist()) in rows for r in a)


def test_features_eval_mode_restored():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)
            self.drop = torch.nn.Dropout(0.9)

        def embed(self, x):
            return self.drop(self.lin(x.flatten(1)))

    net = Net().train()
    x = torch.randn(10, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    f = features(net, x, batch=3)  # dropout off in eval mode: equals the plain linear map
    assert f.shape == (10, 3) and net.training
    assert torch.allclose(f, net.lin(x.flatten(1)).detach())


# -- spearman_ci -----------------------------------------------------------------
def test_spearman_monotone_and_reversed():
    x = [0.1, 0.5, 0.7, 2.0, 9.0, 10.0]
    assert spearman_ci(x, np.exp(x)) == (1.0, 1.0, 1.0)
    assert spearman_ci(x, [-v for v in x]) == (-1.0, -1.0, -1.0)


def test_spearman_ties_hand_computed():
    # average ranks x: 1, 2.5, 2.5, 4; y: 1, 3, 2, 4 -> centred dx = (-1.5, 0, 0, 1.5),
    # dy = (-1.5, .5, -.5, 1.5): rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    rho, lo, hi = spearman_ci([1, 2, 2, 3], [1, 3, 2, 4])
    assert rho == pytest.approx(math.sqrt(0.9), abs=1e-12)
    assert lo <= rho <= hi <= 1.0
    assert (rho, lo, hi) == spearman_ci([1, 2, 2, 3], [1, 3, 2, 4])  # fixed generator


def test_spearman_interval_does_not_depend_on_the_order_of_the_pairs():
    x, y = [0.3, 1.2, 0.7, 2.2, 1.9, 0.1, 1.5], [2.0, 1.0, 3.5, 0.5, 2.5, 1.5, 3.0]
    perm = [4, 0, 6, 2, 5, 1, 3]
    assert spearman_ci(x, y) == spearman_ci([x[i] for i in perm], [y[i] for i in perm])


def test_spearman_degenerate():
    rho, lo, hi = spearman_ci([1, 2, 3], [4, 4, 4])
    assert math.isnan(rho) and math.isnan(lo) and math.isnan(hi)
    # n = 2: every non-constant resample is the original pair order
    assert spearman_ci([1, 2], [3, 5]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        spearman_ci([1, 2], [1, 2, 3])
