"""CIM: condensing datasets directly with minimal information loss (Shang, Sun et al., ECCV 2026).

Reference code: ``LINs-lab/CIM`` (``condense/condense.py``, ``argument.py``,
its CIFAR scripts); written here from the paper and that code:

1. Anchors: per class, the ``f^2 * ipc`` real images (of ``n_real`` drawn, the
   reference's ``mipc`` 300) with the lowest teacher cross-entropy on their
   class, downsampled to ``H / f`` and tiled ``f x f`` into ``ipc`` mosaics
   (as RDED's patches, :func:`ddlib.methods.distill.rded.tile`); ``f`` is 2, the
   reference's default on every dataset (its CIFAR scripts leave it at 2).
2. Information recovery: an additive residual ``R`` (init zero, so step 0 is
   the anchor mosaic) is optimised with AdamW (lr 0.01, weight decay 0.01, 200
   steps: the reference's) so that every synthetic patch, resized back to full
   resolution, has the teacher's features of its own anchor::

       L(R) = mean_j || f(A(up(P_j(M + R)))) - f(A(a_j)) ||_1

   with ``P_j`` the j-th patch, ``a_j`` its anchor at full resolution, ``A`` the
   same DSA op and parameters for both (siamese).  The reference sums the
   per-sample mean over a class's batch (its ``l1_mean``), a constant factor
   that Adam's normalised step does not see.  The set is clipped to the
   data's valid pixel range after every step.
3. Evaluation: the set is stored as mosaics (K * ipc images, the storage
   budget) and, as the reference's evaluator (``crop_method="factor"``, IDC's
   multi-formation), a student trains on the decoded patches, each upsampled
   to full size (``extras["decode_factor"]``, applied by the runner;
   :func:`ddlib.methods.distill.rded.decode_mosaics`).
4. Labels: from the teacher, through the training regime (``slkd`` online,
   ``slkd_stored`` replayed, ``sl`` once per image).

Deviations: the features are the teacher's penultimate ones (``embed``), where
the reference takes an intermediate block (``--depth``); the DSA ops default
to the reference's ``crop_cutout_flip`` without ``flip`` on digits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ddlib.core.hparams import HParam
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import generator
from ddlib.data import pixel_bounds
from ddlib.data.zca import base_name
from ddlib.engine import augment as aug
from ddlib.engine.fastpath import eval_batch
from ddlib.methods.distill import register
from ddlib.methods.distill.rded import (
    class_real,
    downsample,
    patch_size,
    teacher_of,
    tile,
    true_class_ce,
    untile,
)

CIM_STRATEGY = aug.AUTO  # the reference's "crop_cutout_flip" ("crop_cutout" on digits)


def alignment_loss(teacher, residual: torch.Tensor, mosaics: torch.Tensor, anchors: torch.Tensor,
                   params, factor: int = 2) -> torch.Tensor:
    """Paired L1 between teacher features of synthetic patches and their anchors.

    Args:
        residual, mosaics: (M, C, H, W); the synthetic set is ``mosaics + residual``.
        anchors: (f*f*M, C, H, W) full-resolution anchors, row ``f*f*i + j`` = patch j of mosaic i.
        params: DSA parameters with one row per anchor (or None), applied to both sides.
        factor: patches per side ``f``.
    """
    size = anchors.shape[-1]
    patches = untile(mosaics + residual, factor)
    up = F.interpolate(patches, size=(size, size), mode="bilinear", align_corners=False)
    with torch.no_grad():
        target = teacher.embed(aug.apply(anchors, params))
    return (teacher.embed(aug.apply(up, params)) - target).abs().mean()


def alignment_backward(teacher, residual: torch.Tensor, mosaics: torch.Tensor, anchors: torch.Tensor,
                       params, factor: int = 2) -> float:
    """:func:`alignment_loss`'s value, its gradient accumulated into ``residual.grad``.

    The same mean, summed over cache-sized slices of the patches
    (:func:`ddlib.engine.fastpath.eval_batch`: 400 ConvNet-3-32 features of 28-px
    images in one batch spill the CPU cache; 64-image slices take the step 1.2-1.5x
    faster, benchmarks/results/engine_layout.json): each slice's teacher passes run alone, their gradients meet at the
    augmented patches, and one backward from there reaches the residual.  Equal to
    ``alignment_loss(...).backward()`` up to float rounding (tests/test_teacher_distill.py).
    """
    size = anchors.shape[-1]
    up = F.interpolate(untile(mosaics + residual, factor), size=(size, size), mode="bilinear",
                       align_corners=False)
    views = aug.apply(up, params)
    leaf = views.detach().requires_grad_(True)
    with torch.no_grad():
        targets = aug.apply(anchors, params)
    step = eval_batch(teacher, tuple(anchors.shape[1:]), anchors.device)
    total, count = 0.0, None
    for s in range(0, len(leaf), step):
        with torch.no_grad():
            target = teacher.embed(targets[s:s + step])
        count = count or target.shape[1] * len(leaf)  # every element of the whole batch's mean
        part = (teacher.embed(leaf[s:s + step]) - target).abs().sum() / count
        part.backward()
        total += float(part.detach())
    views.backward(leaf.grad)
    return total


def lowest_ce_anchors(train, teacher, k: int, count: int, n_real: int, gen: torch.Generator) -> torch.Tensor:
    """Per class the ``count`` of ``n_real`` drawn real images with the lowest teacher CE, (k*count, C, H, W)."""
    device = train.train_x.device
    anchors = []
    for c in range(k):
        idx = class_real(train, c, n_real, gen).to(device)
        if len(idx) < count:
            raise DDLibError(f"cim: class {c} has {len(idx)} real images scored, needs {count}")
        ce = true_class_ce(teacher, train.train_x[idx], torch.full((len(idx),), c, device=device))
        anchors.append(train.train_x[idx[torch.argsort(ce.cpu(), stable=True)[:count].to(device)]])
    return torch.cat(anchors)


@register("cim", hparams=(
    HParam("iters", int, 0, "iterations", "AdamW steps on the residual; 0 = min(synth_iters, 200)",
           "reference code on paper (200); scale-down elsewhere", profile=("synth_iters",), low=0),
    HParam("lr", float, 0.01, "per AdamW step", "AdamW learning rate on the residual (normalised pixels)",
           "reference code", low=0.0),
    HParam("weight_decay", float, 0.01, "per AdamW step", "AdamW weight decay on the residual",
           "reference code (PyTorch's AdamW default)", low=0.0),
    HParam("n_real", int, 300, "images per class", "real images scored per class for the anchors (0 = all)",
           "reference code (RDED's mipc)", low=0),
    HParam("strategy", str, CIM_STRATEGY, "", "DSA ops, '_'-separated ('' = none; 'dsa' = the reference's "
           "crop_cutout_flip, without flip on digits)", "reference code"),
    HParam("factor", int, 2, "patches per side", "patches per side of a mosaic (1 = whole images: "
           "the anchors unchanged, a coreset)", "reference code", low=1),
    HParam("teacher_arch", str, "", "", "the teacher; '' = the profile's teacher_model", "ddlib",
           profile=("teacher_model",))))
def distill_cim(train, ipc: int, *, seed: int, ctx, iters: int = 0, lr: float = 0.01,
                weight_decay: float = 0.01, n_real: int = 300, strategy: str = CIM_STRATEGY,
                factor: int = 2, teacher_arch: str = ""):
    """Anchor mosaics plus a feature-aligned residual.

    Args:
        iters: AdamW steps on the residual (profile's ``synth_iters`` capped at 200 when 0).
        lr, weight_decay: AdamW settings on the residual (normalised pixel units).
        n_real: real images scored per class for the anchors (0 = all).
        strategy: DSA ops shared by patches and anchors each step ("" = none; "dsa" =
            the reference's ``crop_cutout_flip``, without flip on digits).
        factor: patches per side of a mosaic (2, the reference's).
        teacher_arch: the teacher ("" = the profile's teacher).

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,), extras with the loss
        curve, the anchor mosaics ``anchor_mosaic`` (step 0 of the set), the
        ``factor`` and ``decode_factor`` (the runner trains on the decoded patches),
        the steps run ``iters`` and ``teacher_arch``.
    """
    m = train.meta
    if strategy == aug.AUTO:
        strategy = "crop_cutout" if base_name(m.name) in aug.DIGIT_DATASETS else "crop_cutout_flip"
    size = patch_size(m.img_size, factor)
    iters = iters or min(ctx.profile.synth_iters, 200)
    if factor == 1:
        iters = 0  # nothing was downsampled: zero loss and gradient at R = 0
    teacher, arch = teacher_of(train, ctx, teacher_arch)
    k, device = train.num_classes, train.train_x.device
    g = generator(seed, "cim")
    anchors = lowest_ce_anchors(train, teacher, k, factor * factor * ipc, n_real, g)
    mosaics = tile(downsample(anchors, size), factor)
    lo, hi = pixel_bounds(m, device)
    residual = torch.zeros_like(mosaics, requires_grad=True)
    opt = torch.optim.AdamW([residual], lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in tqdm(range(iters), desc=f"cim ipc={ipc}", disable=ctx.quiet, leave=False):
        params = aug.draw(strategy, len(anchors), g, m.img_size) if strategy else None
        opt.zero_grad(set_to_none=True)
        loss = alignment_backward(teacher, residual, mosaics, anchors, params, factor)
        opt.step()
        ctx.meter.backward(len(anchors))
        with torch.no_grad():  # keep mosaics + residual inside the valid pixel range
            residual.copy_(torch.maximum(torch.minimum(mosaics + residual, hi), lo) - mosaics)
        losses.append(loss)
    labels = torch.arange(k, device=device).repeat_interleave(ipc)
    return (mosaics + residual).detach(), labels, {
        "loss_curve": torch.tensor(losses), "final_loss": losses[-1] if losses else 0.0,
        "anchor_mosaic": mosaics.cpu(), "factor": factor, "decode_factor": factor, "iters": iters,
        "teacher_arch": arch}
