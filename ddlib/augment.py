"""Differentiable, batched, on-device augmentation: the DSA operations.

Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021, Sec. 3): one
operation family is drawn per call from the ``strategy`` string (``"color"``
applies brightness, saturation and contrast together), with parameters drawn
per sample.  Drawing and applying are separate, so the *same* parameters can
be applied to a real and a synthetic batch (the siamese part): draw ``G``
parameter rows and map each sample to its row with ``groups``.

Parameters follow the DSA reference settings: scale 1.2, rotate 15 deg,
crop-pad 0.125, cutout 0.5, brightness 1.0, saturation 2.0, contrast 0.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from .registry import DDLibError

SCALE, ROTATE_DEG, CROP_PAD, CUTOUT = 1.2, 15.0, 0.125, 0.5
BRIGHTNESS, SATURATION, CONTRAST = 1.0, 2.0, 0.5
OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class AugParams:
    """One drawn operation with per-row parameters (each tensor has G rows)."""

    op: str
    p: Dict[str, torch.Tensor]

    def rows(self) -> int:
        return next(iter(self.p.values())).shape[0]


def parse_strategy(strategy: str):
    ops = tuple(s for s in strategy.split("_") if s)
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise DDLibError(f"unknown augmentation op(s) {bad}; choose from {', '.join(OPS)}")
    return ops


def draw(strategy: str, rows: int, gen: torch.Generator, img_size: int) -> Optional[AugParams]:
    """Draw one op from ``strategy`` and its parameters for ``rows`` rows (CPU generator)."""
    ops = parse_strategy(strategy)
    if not ops:
        return None
    op = ops[int(torch.randint(len(ops), (1,), generator=gen))]
    u = lambda: torch.rand(rows, generator=gen)  # noqa: E731
    if op == "color":
        p = {"b": u(), "s": u(), "c": u()}
    elif op == "crop":
        shift = int(img_size * CROP_PAD + 0.5)
        p = {"tx": torch.randint(-shift, shift + 1, (rows,), generator=gen),
             "ty": torch.randint(-shift, shift + 1, (rows,), generator=gen)}
    elif op == "cutout":
        size = int(img_size * CUTOUT + 0.5)
        hi = img_size + (1 - size % 2)
        p = {"cx": torch.randint(0, hi, (rows,), generator=gen),
             "cy": torch.randint(0, hi, (rows,), generator=gen)}
    elif op == "flip":
        p = {"f": u() < 0.5}
    elif op == "scale":
        lo = 1.0 / SCALE
        p = {"sx": u() * (SCALE - lo) + lo, "sy": u() * (SCALE - lo) + lo}
    else:  # rotate
        p = {"a": (u() - 0.5) * 2 * ROTATE_DEG / 180 * math.pi}
    return AugParams(op, p)


def _affine(x: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=True)


def apply(x: torch.Tensor, params: Optional[AugParams],
          groups: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Apply drawn ``params`` to ``x`` (N, C, H, W); differentiable w.r.t. ``x``.

    Args:
        groups: (N,) long, row of ``params`` used by each sample; default row i for sample i.
    """
    if params is None:
        return x
    n, _, h, w = x.shape
    p = {k: v.to(x.device) for k, v in params.p.items()}
    if groups is not None:
        p = {k: v[groups.to(x.device)] for k, v in p.items()}
    elif params.rows() != n:
        raise ValueError(f"{params.rows()} parameter rows for a batch of {n}")
    col = lambda v: v.to(x.dtype).view(n, 1, 1, 1)  # noqa: E731
    if params.op == "color":
        x = x + (col(p["b"]) - 0.5) * BRIGHTNESS
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (col(p["s"]) * SATURATION) + m
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - m) * (col(p["c"]) + CONTRAST) + m
    if params.op == "flip":
        return torch.where(p["f"].view(n, 1, 1, 1), x.flip(3), x)
    if params.op == "crop":  # integer translation with zero fill
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2] = -p["ty"].to(x.dtype) * 2 / max(w - 1, 1)
        theta[:, 1, 2] = -p["tx"].to(x.dtype) * 2 / max(h - 1, 1)
        return _affine(x, theta, mode="nearest")
    if params.op == "cutout":
        size = int(h * CUTOUT + 0.5)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        r0 = (p["cx"] - size // 2).view(n, 1, 1)
        c0 = (p["cy"] - size // 2).view(n, 1, 1)
        hole = (rows >= r0) & (rows < r0 + size) & (cols >= c0) & (cols < c0 + size)
        return x * (~hole).unsqueeze(1).to(x.dtype)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    if params.op == "scale":
        theta[:, 0, 0] = p["sx"].to(x.dtype)
        theta[:, 1, 1] = p["sy"].to(x.dtype)
    else:
        a = p["a"].to(x.dtype)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(a), torch.sin(-a)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(a), torch.cos(a)
    return _affine(x, theta)


def augment(x: torch.Tensor, strategy: str, gen: torch.Generator) -> torch.Tensor:
    """Draw per-sample parameters for one op of ``strategy`` and apply them to ``x``."""
    return apply(x, draw(strategy, x.shape[0], gen, x.shape[-1]))
