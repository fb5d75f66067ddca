"""ZCA whitening (:mod:`ddlib.data.zca`) against its definition, and the ``NAME+zca`` datasets' loader.

W = U diag(1/sqrt(lambda + eps)) U^T of the centred, flattened train pool's
unbiased covariance U diag(lambda) U^T; the whitened pool's covariance is
U diag(lambda / (lambda + eps)) U^T.  The loader fits on the pool only and applies
that one matrix to the pool, validation and test splits.
"""
import numpy as np
import pytest
import torch

import ddlib.data
from ddlib.core.config import RunConfig
from ddlib.core.registry import DDLibError
from ddlib.data import pixel_bounds, unnormalize, zca
from ddlib.data.cifar import write_cifar
from ddlib.engine.augment import DSA_FLIP, DSA_NO_FLIP, dsa_strategy
from ddlib.run.runner import validate

R = np.array([[1.0, 1.0], [-1.0, 1.0]]) / np.sqrt(2.0)  # a rotation: the covariance is not diagonal


def _exact():
    """Four 2-feature samples (as (4, 1, 1, 2) images): mean 0, unbiased covariance R^T diag(2/3, 8/3) R."""
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]]) @ R
    return x.reshape(4, 1, 1, 2)


def test_matrix_on_a_tiny_array_has_the_exact_values():
    # lambda = 2/3, 8/3 (sum of squares 2 and 8 over N - 1 = 3); eps = 1/3 makes lambda + eps = 1 and 3
    wh = zca.fit(_exact(), eps=1 / 3)
    want = R.T @ np.diag([1.0, 1 / np.sqrt(3.0)]) @ R
    assert np.allclose(wh.matrix(), want, atol=1e-12)
    assert np.allclose(wh.inverse_matrix(), R.T @ np.diag([1.0, np.sqrt(3.0)]) @ R, atol=1e-12)
    assert np.allclose(wh.mean, 0.0)
    out = wh.apply(_exact()).reshape(4, 2).astype(np.float64)
    assert np.allclose(out, _exact().reshape(4, 2) @ want, atol=1e-6)
    # the whitened covariance: R^T diag(lambda / (lambda + eps)) R = R^T diag(2/3, 8/9) R
    assert np.allclose(np.cov(out.T), R.T @ np.diag([2 / 3, 8 / 9]) @ R, atol=1e-6)


@pytest.mark.parametrize("n", [5, 60])  # fewer samples than features (thin SVD) and more (eigh)
def test_matrix_matches_the_definition_on_random_data(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 2, 3, 3)) * np.linspace(0.1, 2.0, 18).reshape(1, 2, 3, 3) + 0.5
    flat = x.reshape(n, -1)
    lam, u = np.linalg.eigh(np.cov(flat.T))  # unbiased, as kornia's default in MTT's code
    lam = np.clip(lam, 0, None)
    w = u @ np.diag(1 / np.sqrt(lam + zca.EPS)) @ u.T
    wh = zca.fit(x)
    assert np.allclose(wh.matrix(), w, atol=1e-9)
    white = wh.apply(x).reshape(n, -1).astype(np.float64)
    assert np.allclose(white, (flat - flat.mean(0)) @ w, atol=1e-5)
    assert np.allclose(np.cov(white.T), u @ np.diag(lam / (lam + zca.EPS)) @ u.T, atol=1e-5)
    # un-whitening returns the pixels
    back = wh.invert(torch.from_numpy(wh.apply(x))).numpy()
    assert np.allclose(back, x, atol=1e-5)


def test_names_keep_their_source_and_dsa_list():
    assert zca.split_name("cifar10+zca") == ("cifar10", True) and zca.split_name("cifar10") == ("cifar10", False)
    assert dsa_strategy("mnist+zca") == DSA_NO_FLIP and dsa_strategy("cifar100+zca") == DSA_FLIP
    assert validate(RunConfig("cifar10+zca", "random", 1, "hl", 1.0, 0, "smoke")).dataset == "cifar10+zca"
    with pytest.raises(DDLibError, match="unknown dataset"):
        validate(RunConfig("nosuch+zca", "random", 1, "hl", 1.0, 0, "smoke"))


def _fake_cifar(root, test_seed=1):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 24)  # smoke: 15 per class to validation, 9 to the pool
    x = (rng.integers(0, 60, size=(len(y), 3, 32, 32)) + (y * 18)[:, None, None, None]).astype(np.uint8)
    ey = np.repeat(np.arange(10), 2)
    ex = np.random.default_rng(test_seed).integers(0, 255, size=(len(ey), 3, 32, 32)).astype(np.uint8)
    write_cifar("cifar10", root, x, y, ex, ey, [f"c{i}" for i in range(10)])
    return ex


def _load(name, root):
    ddlib.data._load_cpu.cache_clear()
    return ddlib.data.load(name, "smoke", "cpu", data_dir=root)


def test_loader_fits_on_the_pool_and_applies_one_matrix_to_every_split(tmp_path, monkeypatch):
    ex = _fake_cifar(tmp_path)
    plain, white = _load("cifar10", tmp_path), _load("cifar10+zca", tmp_path)
    assert white.meta.name == "cifar10+zca" and white.meta.zca is not None and plain.meta.zca is None
    # the raw pixels of each split, from the plain split (x * std + mean)
    raw = {k: unnormalize(getattr(plain, k), plain.meta).numpy() for k in ("train_x", "val_x", "test_x")}
    assert np.allclose(raw["test_x"], ex / 255.0, atol=1e-5)
    wh = zca.fit(raw["train_x"])  # the pool's matrix (the definition is tested above)
    assert np.allclose(white.meta.zca.mean, wh.mean, atol=1e-6)
    for k, r in raw.items():  # pool, validation and test: (x - pool mean) W with the same W
        assert np.allclose(getattr(white, k).numpy(), wh.apply(r), atol=2e-4), k
    # charts show pixels: un-whitened, as MTT saves its sets
    assert np.allclose(unnormalize(white.train_x, white.meta).numpy(), raw["train_x"], atol=1e-4)
    # bounds for builders that clip: the whitened pool's per-channel extremes
    lo, hi = pixel_bounds(white.meta)
    assert torch.allclose(lo.flatten(), white.train_x.amin(dim=(0, 2, 3))) and (hi > lo).all()
    # another test split changes no matrix (it is never fitted on), and the matrix is read from its cache
    ex2 = _fake_cifar(tmp_path, test_seed=7)
    monkeypatch.setattr(zca, "fit", lambda *a, **k: pytest.fail("refitted despite the cache"))
    again = _load("cifar10+zca", tmp_path)
    assert again.meta.zca.key == white.meta.zca.key and torch.equal(again.train_x, white.train_x)
    assert np.allclose(again.test_x.numpy(), wh.apply(ex2 / 255.0), atol=2e-4)
    assert len(list((tmp_path / "zca-cache").glob("*.npz"))) == 1


def test_plain_bounds_are_where_pixels_zero_and_one_land(digits):
    lo, hi = pixel_bounds(digits.meta)
    m, s = digits.meta.mean[0], digits.meta.std[0]
    assert torch.allclose(lo.flatten(), torch.tensor([(0 - m) / s])) and torch.allclose(hi.flatten(),
                                                                                         torch.tensor([(1 - m) / s]))
