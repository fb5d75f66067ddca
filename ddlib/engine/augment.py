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

from ddlib.core.registry import DDLibError
from ddlib.data.zca import base_name

SCALE, ROTATE_DEG, CROP_PAD, CUTOUT = 1.2, 15.0, 0.125, 0.5
BRIGHTNESS, SATURATION, CONTRAST = 1.0, 2.0, 0.5
OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")

# The reference's lists (DatasetCondensation README): with flip for Fashion-MNIST and
# CIFAR-10/100, without for digits (MNIST, SVHN), "as flip augmentation is not good for
# digit datasets".  ``"dsa"`` names "DSA's list for this dataset": protocols and the
# distillers' ``strategy`` default to it and resolve it with :func:`resolve`.
AUTO = "dsa"
DSA_FLIP = "color_crop_cutout_flip_scale_rotate"
DSA_NO_FLIP = "color_crop_cutout_scale_rotate"
#: datasets of digits, where a mirrored sample is another (or no) class
DIGIT_DATASETS = ("digits", "mnist5k", "mnist", "svhn")


def dsa_strategy(dataset: str) -> str:
    """The reference's DSA list for ``dataset``: without flip on digits, with flip elsewhere."""
    return DSA_NO_FLIP if base_name(dataset) in DIGIT_DATASETS else DSA_FLIP


def resolve(strategy: str, dataset: str = "") -> str:
    """``strategy`` with the sentinel :data:`AUTO` replaced by :func:`dsa_strategy` of ``dataset``.

    With no dataset named (a bare :func:`ddlib.engine.train.fit` call) :data:`AUTO`
    is the flip-free list, safe on every dataset; the run layer always names it.
    """
    if strategy != AUTO:
        return strategy
    return dsa_strategy(dataset) if dataset else DSA_NO_FLIP


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
    if ops == (AUTO,):
        raise DDLibError(f"augmentation {AUTO!r} must be resolved per dataset first (ddlib.engine.augment.resolve)")
    if bad:
        raise DDLibError(f"unknown augmentation op(s) {bad}; choose from {', '.join(OPS)}")
    return ops


def draw(strategy: str, rows: int, gen: torch.Generator, img_size: int) -> Optional[AugParams]:
    """Draw one op from ``strategy`` and its parameters for ``rows`` rows (CPU generator)."""
    ops = parse_strategy(strategy)
    if not ops:
        return None
    op = ops[int(torch.randint(len(ops), (1,), generator=gen))]
    return draw_op(op, rows, gen, img_size)


def draw_op(op: str, rows: int, gen: torch.Generator, img_size: int) -> AugParams:
    """Parameters of operation ``op`` for ``rows`` rows (CPU generator)."""
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


# ---- per-row ops of mixed type (stored per-view augmentation, FKD-style) ----
# Fixed slots of each op's parameters in a packed (rows, PARAM_SLOTS) float32 table.
OP_KEYS = {"color": ("b", "s", "c"), "crop": ("tx", "ty"), "cutout": ("cx", "cy"), "flip": ("f",),
           "scale": ("sx", "sy"), "rotate": ("a",)}
PARAM_SLOTS = 3


@dataclass(frozen=True)
class MixedParams:
    """One op per row, of possibly different types.

    Attributes:
        ops: the strategy's op names; ``op_ids`` index into it.
        op_ids: (R,) uint8, the op of each row.
        values: (R, PARAM_SLOTS) float32, the op's parameters in ``OP_KEYS`` order
            (integer and boolean parameters are stored exactly as floats).
    """

    ops: tuple
    op_ids: torch.Tensor
    values: torch.Tensor

    def nbytes(self) -> int:
        return self.op_ids.numel() * self.op_ids.element_size() + self.values.numel() * self.values.element_size()

    def take(self, groups: torch.Tensor) -> "MixedParams":
        """Row ``groups[i]`` for sample ``i``: (N,) long -> N rows (a siamese group shares one row)."""
        g = groups.cpu().long()
        return MixedParams(self.ops, self.op_ids[g], self.values[g])


def draw_mixed(strategy: str, rows: int, gen: torch.Generator, img_size: int) -> MixedParams:
    """Draw an op of ``strategy`` independently for each of ``rows`` rows, and its parameters."""
    ops = parse_strategy(strategy)
    if not ops:
        return MixedParams((), torch.zeros(rows, dtype=torch.uint8), torch.zeros(rows, PARAM_SLOTS))
    op_ids = torch.randint(len(ops), (rows,), generator=gen)
    values = torch.zeros(rows, PARAM_SLOTS)
    for j, op in enumerate(ops):
        p = draw_op(op, rows, gen, img_size)  # drawn for every row: a fixed stream layout
        sel = op_ids == j
        for s, k in enumerate(OP_KEYS[op]):
            values[sel, s] = p.p[k][sel].float()
    return MixedParams(ops, op_ids.to(torch.uint8), values)


def _unpack(op: str, values: torch.Tensor) -> AugParams:
    p = {}
    for s, k in enumerate(OP_KEYS[op]):
        v = values[:, s]
        if op in ("crop", "cutout"):
            v = v.round().long()
        elif op == "flip":
            v = v > 0.5
        p[k] = v
    return AugParams(op, p)


def apply_mixed(x: torch.Tensor, params: MixedParams) -> torch.Tensor:
    """Apply row ``i``'s own op to sample ``i`` of ``x`` (N, C, H, W); samples grouped by op."""
    if not params.ops:
        return x
    if len(params.op_ids) != len(x):
        raise ValueError(f"{len(params.op_ids)} parameter rows for a batch of {len(x)}")
    out = torch.empty_like(x)
    ids = params.op_ids.to(x.device).long()
    vals = params.values.to(x.device)
    for j, op in enumerate(params.ops):
        rows = (ids == j).nonzero().flatten()
        if len(rows):
            out = out.index_copy(0, rows, apply(x[rows], _unpack(op, vals[rows])))
    return out


def crop_theta(boxes: torch.Tensor) -> torch.Tensor:
    """Affine matrices (N, 2, 3) sampling boxes (N, 4) = (cx, cy, w, h) in [-1, 1] units / fractions.

    ``cx, cy`` are the box centre in normalised coordinates, ``w, h`` its size as
    a fraction of the image side.
    """
    theta = torch.zeros(len(boxes), 2, 3, dtype=boxes.dtype, device=boxes.device)
    theta[:, 0, 0], theta[:, 1, 1] = boxes[:, 2], boxes[:, 3]
    theta[:, 0, 2], theta[:, 1, 2] = boxes[:, 0], boxes[:, 1]
    return theta


def draw_resized_crops(n: int, gen: torch.Generator, scale=(0.08, 1.0),
                       ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Random-resized-crop boxes (n, 4) = (cx, cy, w, h), as torchvision's RandomResizedCrop.

    Area fraction uniform in ``scale``, log-uniform aspect ratio in ``ratio``
    (sides clipped to the image), centre uniform so the box stays inside.
    """
    area = torch.rand(n, generator=gen) * (scale[1] - scale[0]) + scale[0]
    logr = torch.rand(n, generator=gen) * (math.log(ratio[1]) - math.log(ratio[0])) + math.log(ratio[0])
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - h)
    return torch.stack([cx, cy, w, h], 1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: Optional[int] = None) -> torch.Tensor:
    """Crop boxes (N, 4) out of ``x`` (N, C, H, W) and resize to ``size`` (default H); differentiable."""
    n, c, h, _ = x.shape
    size = size or h
    theta = crop_theta(boxes.to(x.device, x.dtype))
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(x: torch.Tensor, gen: torch.Generator, scale=(0.08, 1.0),
                        flip: bool = True) -> torch.Tensor:
    """Batched RandomResizedCrop (+ horizontal flip with p 0.5) of ``x`` (N, C, H, W), same size out."""
    return resized_crop(x, draw_flipped_crops(len(x), gen, scale, flip))


def draw_flipped_crops(n: int, gen: torch.Generator, scale=(0.08, 1.0), flip: bool = True) -> torch.Tensor:
    """The boxes (n, 4) :func:`random_resized_crop` draws: a flipped crop has a negative width."""
    boxes = draw_resized_crops(n, gen, scale)
    if flip:
        f = torch.rand(n, generator=gen) < 0.5
        boxes[:, 2] = torch.where(f, -boxes[:, 2], boxes[:, 2])  # negative width mirrors the crop
    return boxes
