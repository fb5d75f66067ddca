"""Datasets as device tensors: train pool / validation / test splits.

``load(name, profile, device, data_dir=...)`` returns a :class:`Split` whose
tensors are normalised per channel with the train pool's statistics, or, for a
name ending in ``+zca`` (``cifar10+zca``), ZCA-whitened with a matrix fitted on
the train pool (:mod:`ddlib.data.zca`; MTT's preprocessing); the
datasets' folder is an argument (the run layer passes ``$DDLIB_DATA``).  The validation split is carved
from train with a fixed seed; the test split is for the final number only.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ddlib.core.config import PROFILES
from ddlib.core.registry import DDLibError
from ddlib.data import zca
from ddlib.data.sources import SOURCES, RawData, data_root, imagefolder_source

SPLIT_SEED = 20260101  # fixed: splits never depend on the run seed
TEST_FRACTION = 0.2  # share of a source without a test split held out for test


@dataclass(frozen=True)
class DatasetMeta:
    name: str
    num_classes: int
    in_chans: int
    img_size: int
    classes: Tuple[str, ...]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    fingerprint: str = ""  # SHA-256 prefix of the train pool's pixels and labels
    # the ZCA transform every split went through (``NAME+zca``), None = per-channel normalisation
    zca: Optional[zca.Whitening] = None


@dataclass(frozen=True)
class Split:
    """Normalised tensors: ``*_x`` (N, C, H, W) float32, ``*_y`` (N,) int64."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    meta: DatasetMeta

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    def to(self, device) -> "Split":
        t = {k: getattr(self, k).to(device) for k in
             ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Split(**t, meta=self.meta)

    def without_test(self) -> "Split":
        """This split with an empty test set (0 images): what builders and teachers are given.

        The test split is only ever reported (by the run's evaluation); a
        builder, scorer or teacher that read it would fail or see nothing.
        """
        return Split(self.train_x, self.train_y, self.val_x, self.val_y, self.test_x[:0], self.test_y[:0], self.meta)

    def class_indices(self, c: int) -> torch.Tensor:
        """Indices (into the train pool) of class ``c``, ascending."""
        return torch.nonzero(self.train_y == c).flatten()


def dataset_names():
    return SOURCES.names() + ["imagefolder:PATH[@SIZE]", f"NAME{zca.SUFFIX} (ZCA-whitened, e.g. cifar10{zca.SUFFIX})"]


def _balanced_take(y: np.ndarray, per_class: int, rng: np.random.Generator):
    """Split indices into (taken: ``per_class`` of each class, rest)."""
    taken = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < per_class:
            raise DDLibError(f"class {c} has only {len(idx)} samples, {per_class} requested")
        taken.append(rng.permutation(idx)[:per_class])
    taken = np.sort(np.concatenate(taken))
    rest = np.setdiff1d(np.arange(len(y)), taken)
    return taken, rest


def _raw(name: str, data_dir: Optional[Path]) -> RawData:
    name = zca.base_name(name)
    if name.startswith("imagefolder:"):
        return imagefolder_source(name, data_dir)
    return SOURCES.get(name)(data_dir)


def val_count(y: np.ndarray, val_per_class: int, val_fraction: float) -> int:
    """Validation images per class: ``val_per_class``, at most ``val_fraction`` of the smallest class (>= 1)."""
    smallest = int(np.bincount(y).min())
    return max(1, min(val_per_class, int(val_fraction * smallest)))


@functools.lru_cache(maxsize=8)
def _load_cpu(name: str, pool_per_class: Optional[int], val_per_class: int,
              test_limit: Optional[int], data_dir: Optional[Path] = None, val_fraction: float = 1.0) -> Split:
    raw = _raw(name, data_dir)
    rng = np.random.default_rng(SPLIT_SEED)
    tx, ty, ex, ey = raw.train_x, raw.train_y, raw.test_x, raw.test_y
    k = len(raw.classes)
    if ex is None:  # carve a stratified test split
        per = int(round(TEST_FRACTION * len(ty) / k))
        te, tr = _balanced_take(ty, min(per, np.bincount(ty).min() // 2), rng)
        tx, ty, ex, ey = tx[tr], ty[tr], tx[te], ty[te]
    va, tr = _balanced_take(ty, val_count(ty, val_per_class, val_fraction), rng)
    vx, vy, tx, ty = tx[va], ty[va], tx[tr], ty[tr]
    if pool_per_class is not None:
        keep, _ = _balanced_take(ty, min(pool_per_class, int(np.bincount(ty).min())), rng)
        tx, ty = tx[keep], ty[keep]
    if test_limit is not None and test_limit < len(ey):
        keep, _ = _balanced_take(ey, test_limit // k, rng)
        ex, ey = ex[keep], ey[keep]
    digest = hashlib.sha256(np.ascontiguousarray(tx).tobytes())
    digest.update(np.ascontiguousarray(ty).tobytes())
    if zca.split_name(name)[1]:  # as MTT: pixels in [0, 1], whitened; the matrix is the pool's, for every split
        wh = zca.fitted(tx, digest.hexdigest(), data_root(data_dir))
        pool = wh.apply(tx)
        wh = zca.with_bounds(wh, pool)
        mean, std = np.zeros(tx.shape[1]), np.ones(tx.shape[1])
        norm = lambda a: torch.from_numpy(pool if a is tx else wh.apply(a))  # noqa: E731
    else:
        wh = None
        mean = tx.mean(axis=(0, 2, 3))
        std = tx.std(axis=(0, 2, 3)) + 1e-8
        norm = lambda a: torch.from_numpy(((a - mean[None, :, None, None]) / std[None, :, None, None])  # noqa: E731
                                          .astype(np.float32))
    meta = DatasetMeta(name, k, tx.shape[1], tx.shape[2], raw.classes,
                       tuple(float(m) for m in mean), tuple(float(s) for s in std),
                       digest.hexdigest()[:16], wh)
    return Split(norm(tx), torch.from_numpy(ty), norm(vx), torch.from_numpy(vy), norm(ex),
                 torch.from_numpy(ey), meta)


def load(name: str, profile=None, device="cpu", data_dir: Optional[Path] = None) -> Split:
    """Load dataset ``name`` sized by ``profile`` (a Profile or its name) onto ``device``.

    ``data_dir``: the datasets' folder (``$DDLIB_DATA``, passed by the run layer);
    None = :func:`ddlib.data.sources.default_data_dir` and the sources' own search lists.

    Raises:
        DDLibError: unknown name, missing or corrupt files.
    """
    prof = PROFILES.get(profile) if isinstance(profile, str) else profile
    if prof is None:
        prof = PROFILES.get("default")
    split = _load_cpu(name, prof.pool_per_class, prof.val_per_class, prof.test_limit,
                      Path(data_dir) if data_dir else None, prof.val_fraction)
    return split.to(device)


def unnormalize(x: torch.Tensor, meta: DatasetMeta) -> torch.Tensor:
    """Pixels in [0, 1] of normalised images ``x`` (M, C, H, W): ``x * std + mean``, clipped.

    A whitened dataset's images (``NAME+zca``) are un-whitened instead, ``x W^-1 + mean``
    (:meth:`ddlib.data.zca.Whitening.invert`), as MTT shows its sets: the charts show
    pixels, the students train and are tested on the whitened values.
    """
    if meta.zca is not None:
        return meta.zca.invert(x).clamp(0, 1)
    mean = torch.tensor(meta.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(meta.std, device=x.device).view(1, -1, 1, 1)
    return (x * std + mean).clamp(0, 1)


def pixel_bounds(meta: DatasetMeta, device="cpu") -> Tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi), each (1, C, 1, 1): the valid range of a normalised image's values per channel.

    Per-channel normalisation: where pixels 0 and 1 land, ``(0 - mean) / std`` and
    ``(1 - mean) / std``.  Whitened data have no such box per pixel; the range is then
    the whitened pool's per-channel extremes (:attr:`ddlib.data.zca.Whitening.lo` / ``hi``).
    """
    if meta.zca is not None:
        lo, hi = torch.tensor(meta.zca.lo), torch.tensor(meta.zca.hi)
    else:
        mean, std = torch.tensor(meta.mean), torch.tensor(meta.std)
        lo, hi = (0 - mean) / std, (1 - mean) / std
    return lo.to(device).view(1, -1, 1, 1), hi.to(device).view(1, -1, 1, 1)
