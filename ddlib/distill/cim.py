"""CIM: condensing datasets directly with minimal information loss (2026).

No public reference code was found; this follows the method's description:

1. Anchors: per class, the ``4 * ipc`` real images (of ``n_real`` drawn) with
   the lowest teacher cross-entropy on their class, downsampled to ``H / 2``
   and tiled 2 x 2 into ``ipc`` mosaics (as RDED's patches,
   :func:`ddlib.distill.rded.tile`).
2. Information recovery: an additive residual ``R`` (init zero, so step 0 is
   the anchor mosaic) is optimised with AdamW so that every synthetic patch,
   resized back to full resolution, has the teacher's penultimate features
   (``embed``) of its own anchor::

       L(R) = mean_j || f(A(up(P_j(M + R)))) - f(A(a_j)) ||_1

   with ``P_j`` the j-th patch, ``a_j`` its anchor at full resolution, ``A`` the
   same DSA op and parameters for both (siamese, Zhao & Bilen 2021).  This
   puts back what the 2x downsampling lost, as seen by the teacher.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import augment as aug
from ..registry import DDLibError
from ..seeding import generator
from . import register
from .dm import DSA_STRATEGY
from .rded import class_real, downsample, patch_size, tile, true_class_ce, untile

FACTOR = 2


def alignment_loss(teacher, residual: torch.Tensor, mosaics: torch.Tensor, anchors: torch.Tensor,
                   params) -> torch.Tensor:
    """Paired L1 between teacher features of synthetic patches and their anchors.

    Args:
        residual, mosaics: (M, C, H, W); the synthetic set is ``mosaics + residual``.
        anchors: (4M, C, H, W) full-resolution anchors, row ``4i + j`` = patch j of mosaic i.
        params: DSA parameters with one row per anchor (or None), applied to both sides.
    """
    size = anchors.shape[-1]
    patches = untile(mosaics + residual, FACTOR)
    up = F.interpolate(patches, size=(size, size), mode="bilinear", align_corners=False)
    with torch.no_grad():
        target = teacher.embed(aug.apply(anchors, params))
    return (teacher.embed(aug.apply(up, params)) - target).abs().mean()


@register("cim")
def distill_cim(train, ipc: int, *, seed: int, ctx, iters: int = 0, lr: float = 0.01,
                weight_decay: float = 0.01, n_real: int = 300, strategy: str = DSA_STRATEGY):
    """Anchor mosaics plus a feature-aligned residual.

    Args:
        iters: AdamW steps on the residual (profile's ``synth_iters`` capped at 200 when 0).
        lr, weight_decay: AdamW settings on the residual (normalised pixel units).
        n_real: real images scored per class for the anchors (0 = all).
        strategy: DSA ops shared by patches and anchors each step ("" = none).

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,), extras with the loss
        curve and the anchor mosaics ``anchor_mosaic`` (step 0 of the set).
    """
    m = train.meta
    size = patch_size(m.img_size, FACTOR)
    iters = iters or min(ctx.profile.synth_iters, 200)
    teacher = ctx.teacher(train)
    for p in teacher.parameters():
        p.requires_grad_(False)
    k, device = train.num_classes, train.train_x.device
    g = generator(seed, "cim")
    anchors = []
    for c in range(k):
        idx = class_real(train, c, n_real, g).to(device)
        if len(idx) < 4 * ipc:
            raise DDLibError(f"cim: class {c} has {len(idx)} real images scored, needs 4*ipc = {4 * ipc}")
        ce = true_class_ce(teacher, train.train_x[idx], torch.full((len(idx),), c, device=device))
        anchors.append(train.train_x[idx[torch.argsort(ce.cpu(), stable=True)[:4 * ipc].to(device)]])
    anchors = torch.cat(anchors)
    mosaics = tile(downsample(anchors, size), FACTOR)
    residual = torch.zeros_like(mosaics, requires_grad=True)
    opt = torch.optim.AdamW([residual], lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in tqdm(range(iters), desc=f"cim ipc={ipc}", disable=ctx.quiet, leave=False):
        params = aug.draw(strategy, len(anchors), g, m.img_size) if strategy else None
        loss = alignment_loss(teacher, residual, mosaics, anchors, params)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ctx.meter.backward(len(anchors))
        losses.append(float(loss.detach()))
    labels = torch.arange(k, device=device).repeat_interleave(ipc)
    return (mosaics + residual).detach(), labels, {
        "loss_curve": torch.tensor(losses), "final_loss": losses[-1] if losses else float("nan"),
        "anchor_mosaic": mosaics.cpu()}
