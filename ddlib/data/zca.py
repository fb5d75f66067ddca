"""ZCA whitening of a dataset (the ``NAME+zca`` datasets), fitted on the train pool only.

MTT (Cazenavette et al. 2022) whitens CIFAR-10/100 before anything else: pixels
in [0, 1] (no per-channel normalisation), flattened to D = C*H*W features,
centred on the train set's mean and multiplied by the ZCA matrix

    W = U diag(1 / sqrt(lambda + eps)) U^T,   Sigma = U diag(lambda) U^T,

where Sigma is the unbiased (N - 1) covariance of the centred, flattened
images and eps = 0.1 (the reference's ``--zca``: kornia's ``ZCAWhitening(eps=0.1)``).
The whitened data's covariance is then ``W Sigma W = U diag(lambda / (lambda + eps)) U^T``:
directions of variance well above eps come out with unit variance, weaker ones
are damped rather than blown up.  ``W`` is symmetric and invertible, with
``W^-1 = U diag(sqrt(lambda + eps)) U^T``, which maps a set built in whitened
space back to pixels for the charts (:func:`ddlib.data.unnormalize`).

ddlib fits on the train *pool* (the reference on the whole train set; ddlib's
validation images are carved out of it first, so nothing about them or the
test split enters the matrix) and applies the same ``(mean, W)`` to the pool,
validation and test splits.  The eigen-decomposition (seconds for CIFAR's
D = 3,072) is cached on disk by a hash of what determines it: the pool's
pixels and labels, eps and this module's format.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

#: the dataset-name suffix that asks for whitening: ``cifar10+zca``
SUFFIX = "+zca"
#: the reference's regulariser (MTT's ``K.enhance.ZCAWhitening(eps=0.1)``)
EPS = 0.1
_FORMAT = "zca-v1"  # part of the cache key: a change to how the matrix is computed is a new entry


def split_name(name: str) -> Tuple[str, bool]:
    """``("cifar10", True)`` for ``"cifar10+zca"``; ``(name, False)`` for a name without the suffix."""
    if name.endswith(SUFFIX):
        return name[: -len(SUFFIX)], True
    return name, False


def base_name(name: str) -> str:
    """The source's name without the whitening suffix (what DSA's per-dataset choices look at)."""
    return split_name(name)[0]


@dataclass(frozen=True, eq=False)
class Whitening:
    """A fitted ZCA transform of D-feature images.

    The covariance's eigenvectors are kept only where it can be non-zero: with N
    images the centred data span at most N - 1 directions, so for a pool smaller than
    D (every CPU profile's CIFAR pool) ``eigvecs`` is (D, r), r < D, and every
    direction orthogonal to it has lambda = 0.  With P = U U^T,

        W = U diag(1/sqrt(lambda + eps) - 1/sqrt(eps)) U^T + I / sqrt(eps),

    which is U diag(1/sqrt(lambda + eps)) U^T exactly when U is square (P = I), and
    the same definition on the complement (lambda = 0) when it is not.

    Attributes:
        mean: (D,) float64, the pool's per-feature mean.
        eigvals: (r,) float64, lambda of the pool's covariance (clipped at 0).
        eigvecs: (D, r) float64, U (orthonormal columns).
        eps: the regulariser added to every lambda.
        key: the cache key (hash of the pool, eps and format).
        lo, hi: per-channel smallest and largest whitened value of the pool: the box a
            builder that clips "to the valid pixel range" keeps its images in.
    """

    mean: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    eps: float
    key: str
    lo: Tuple[float, ...] = ()
    hi: Tuple[float, ...] = ()

    def _spectral(self, f) -> np.ndarray:
        """U diag(f(lambda) - f(0)) U^T + f(0) I: the matrix function f of the covariance, (D, D)."""
        u, f0 = self.eigvecs, f(0.0)
        return (u * (f(self.eigvals) - f0)) @ u.T + f0 * np.eye(len(u))

    def matrix(self) -> np.ndarray:
        """W = U diag(1/sqrt(lambda + eps)) U^T (over all D directions), (D, D)."""
        return self._spectral(lambda lam: 1.0 / np.sqrt(lam + self.eps))

    def inverse_matrix(self) -> np.ndarray:
        """W^-1 = U diag(sqrt(lambda + eps)) U^T, (D, D)."""
        return self._spectral(lambda lam: np.sqrt(lam + self.eps))

    def apply(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Whitened (x - mean) W of images ``x`` (N, C, H, W) in [0, 1]; float32, same shape."""
        w = self.matrix()
        flat = x.reshape(len(x), -1)
        out = np.empty(flat.shape, dtype=np.float32)
        for i in range(0, len(flat), chunk):  # chunks: CIFAR's 50,000 x 3,072 in float64 would be 1.2 GB
            out[i:i + chunk] = (flat[i:i + chunk].astype(np.float64) - self.mean) @ w
        return out.reshape(x.shape)

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels ``x W^-1 + mean`` of whitened images ``x`` (M, C, H, W), same device, float32."""
        inv = torch.from_numpy(self.inverse_matrix()).to(x.device, torch.float64)
        mean = torch.from_numpy(self.mean).to(x.device, torch.float64)
        flat = x.detach().reshape(len(x), -1).to(torch.float64)
        return (flat @ inv + mean).to(torch.float32).reshape(x.shape)


def fit(x: np.ndarray, eps: float = EPS, key: str = "") -> Whitening:
    """The ZCA transform of images ``x`` (N, C, H, W), N >= 2: unbiased covariance, in float64.

    N <= D: thin SVD of the centred data, X_c = V S U^T, so lambda = S^2 / (N - 1) and U
    (D, N) (O(N^2 D), seconds where the D x D eigen-decomposition takes a minute on 2
    cores); N > D: eigh of the covariance X_c^T X_c / (N - 1).
    """
    if len(x) < 2:
        raise ValueError("ZCA needs at least two images")
    flat = x.reshape(len(x), -1).astype(np.float64)
    mean = flat.mean(axis=0)
    centred = flat - mean
    n, d = centred.shape
    if n <= d:
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        lam, u = sv ** 2 / (n - 1), vt.T
    else:
        lam, u = np.linalg.eigh(centred.T @ centred / (n - 1))
    return Whitening(mean, np.clip(lam, 0.0, None), u, float(eps), key)


def with_bounds(wh: Whitening, whitened_pool: np.ndarray) -> Whitening:
    """``wh`` with ``lo``/``hi``: per-channel extremes of the whitened pool (N, C, H, W)."""
    lo = tuple(float(v) for v in whitened_pool.min(axis=(0, 2, 3)))
    hi = tuple(float(v) for v in whitened_pool.max(axis=(0, 2, 3)))
    return Whitening(wh.mean, wh.eigvals, wh.eigvecs, wh.eps, wh.key, lo, hi)


def cache_key(pool_digest: str, eps: float) -> str:
    """Hash of what determines the matrix: the pool's pixels and labels (their digest), eps, the format."""
    return hashlib.sha256(f"{_FORMAT}|{pool_digest}|{float(eps)!r}".encode()).hexdigest()[:20]


def fitted(pool: np.ndarray, pool_digest: str, cache_dir: Optional[Path], eps: float = EPS) -> Whitening:
    """:func:`fit` of the pool, read from ``cache_dir/zca-cache/KEY.npz`` when present, else fitted and written.

    The file is written to a temporary name and renamed, so a killed process never
    leaves a half-written matrix behind; ``cache_dir`` None: no cache.
    """
    key = cache_key(pool_digest, eps)
    path = Path(cache_dir) / "zca-cache" / f"{key}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return Whitening(z["mean"], z["eigvals"], z["eigvecs"], float(z["eps"]), key)
    wh = fit(pool, eps, key)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        os.close(fd)
        try:
            np.savez(tmp, mean=wh.mean, eigvals=wh.eigvals, eigvecs=wh.eigvecs, eps=np.float64(wh.eps))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return wh
