"""SRe2L: Squeeze, Recover and Relabel (Yin, Xing & Shen, NeurIPS 2023).

* Squeeze: a batch-norm teacher trained on the real data (``ddlib.engine.teachers``).
* Recover (Eq. 4-6 of the paper): synthetic images start from N(0, 1) noise
  (normalised units) and minimise, with the teacher frozen in eval mode::

      CE(teacher(A(x)), y) + r_bn * sum_l a_l * (||mu_l(A(x)) - mu_l^BN||_2
                                               + ||var_l(A(x)) - var_l^BN||_2)

  over the teacher's BatchNorm layers ``l`` (batch statistics of the layer's
  input against its running statistics), ``a_1 = first_bn_multiplier`` and
  ``a_l = 1`` otherwise.  As the reference ``VILA-Lab/SRe2L`` recover scripts,
  the images are recovered in ``ipc`` independent batches, batch ``j`` holding
  image ``j`` of every class (one per class), so the BN statistics are matched
  by K images at a time, never by the whole set.  Independent, they can run side
  by side: one forward of several batches, statistics and losses per batch
  (:func:`_recover_groups`, on a GPU; :data:`JOINT_IMAGES`;
  tests/test_distill_speed_equivalence.py holds it to the one-batch-at-a-time loop).  Runs long enough
  to repay compiling (``paper``) take the loss as one compiled graph (:func:`compiled_recover_loss`).
  ``A`` is, per step, a random
  shift (``torch.roll``) of up to ``jitter`` pixels in each direction (the
  reference's CIFAR / Tiny-ImageNet script, ``view="jitter"``) or a fresh
  random-resized crop (+ optional flip, its ImageNet script, ``view="crop"``).
  Adam (betas 0.5, 0.9), lr 0.25 with a cosine schedule, pixels clipped to the
  data's valid range after every step.
* Relabel: by the training regime (``sl``, ``slkd``, ``slkd_stored`` — the
  last is the paper's FKD-style per-crop soft labels) with the *same* BN
  teacher, as the paper relabels with its squeezed model: the set records
  ``teacher_arch`` and the runner builds the regime's teachers from it.  With
  the profile's instance-norm teacher as relabeller instead, the recovered
  images (which only the BN teacher was optimised against) drove students to
  a single class: 0.10 under ``sl`` against 0.29 under ``hl`` (smoke profile,
  ipc 10, budget 2, 200 steps), 0.34 with the BN teacher's labels.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ddlib.core.hparams import HParam
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import generator
from ddlib.data import pixel_bounds
from ddlib.engine import augment as aug
from ddlib.engine.fastpath import Engine, compile_failed, compiles, profile, shared_compile
from ddlib.engine.models import MODELS, ConvNet
from ddlib.methods.distill import register
from ddlib.methods.distill.rded import teacher_of


def bn_layers(model: nn.Module) -> List[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def batch_stats(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance (C,), (C,) of a BN input (N, C, H, W)."""
    return x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)


def bn_matching_loss(stats: Sequence[Tuple[torch.Tensor, torch.Tensor]], bns: Sequence[nn.BatchNorm2d],
                     first_bn_multiplier: float = 10.0) -> torch.Tensor:
    """sum_l a_l (||mu_l - running_mean_l||_2 + ||var_l - running_var_l||_2); zero iff all match."""
    total = 0.0
    for i, ((mu, var), bn) in enumerate(zip(stats, bns)):
        a = first_bn_multiplier if i == 0 else 1.0
        total = total + a * (torch.norm(mu - bn.running_mean, 2) + torch.norm(var - bn.running_var, 2))
    return total


def default_bn_arch(arch: str) -> str:
    """``arch`` if it has batch norm, else its ``_bn`` variant, else ``convnet_bn``."""
    if dict(MODELS.get(arch).kwargs).get("norm") == "batch" or arch == "resnet18":
        return arch
    return arch + "_bn" if arch + "_bn" in MODELS.names() else "convnet_bn"


def bn_teacher(train, ctx, teacher_arch: str) -> Tuple[nn.Module, str]:
    """(BN teacher, its architecture): ``teacher_arch``, else the profile teacher's BN variant."""
    arch = teacher_arch or default_bn_arch(ctx.profile.teacher_model)
    if dict(MODELS.get(arch).kwargs).get("norm") != "batch" and arch != "resnet18":
        raise DDLibError(f"sre2l needs a batch-norm teacher; {arch!r} has no BatchNorm layer "
                         f"(use teacher_arch=convnet_bn or a *_bn ConvNet)")
    return teacher_of(train, ctx, arch)


#: images per joint forward of :func:`_recover_groups` (whole recover batches, at least one), per device
#: type.  On a CPU one batch per forward, as the reference recovers: side by side (256 images) ran at
#: 0.65-0.73x the reference's separate batches, one at a time at 1.02-1.04x (quiet 2-core CPU, `paper`
#: Fashion-MNIST IPC 10, benchmarks/distill_speed.py --reference; both eager: with the compiled loss, one
#: at a time ran at 1.99x).  On a GPU, where ten 28-px images
#: leave the device idle, batches recover side by side (not measured here: no GPU was lent).
JOINT_IMAGES = {"cpu": 1, "cuda": 256}


def grouped_stats(x: torch.Tensor, groups: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-group :func:`batch_stats`: mean and biased variance (G, C) of a BN input (G*n, C, H, W)."""
    xg = x.reshape(groups, -1, *x.shape[1:])
    return xg.mean(dim=(1, 3, 4)), xg.var(dim=(1, 3, 4), unbiased=False)


def grouped_bn_loss(stats, bns, first_bn_multiplier: float = 10.0) -> torch.Tensor:
    """:func:`bn_matching_loss` of each group (G,), from per-group statistics (G, C) per layer."""
    total = 0.0
    for i, ((mu, var), bn) in enumerate(zip(stats, bns)):
        a = first_bn_multiplier if i == 0 else 1.0
        total = total + a * ((mu - bn.running_mean).norm(dim=1) + (var - bn.running_var).norm(dim=1))
    return total


def recover_loss(teacher: nn.Module, view: torch.Tensor, y: torch.Tensor, n_groups: int, r_bn: float,
                 first_bn: float) -> torch.Tensor:
    """The recover loss (G,) of ``n_groups`` batches of a ConvNet teacher, its layers run one by one.

    What :func:`_recover_groups` computes from the BN hooks (cross-entropy per
    batch + ``r_bn`` x :func:`grouped_bn_loss`), written as one function of the
    view so that ``torch.compile`` sees the forward, the statistics and the
    loss as one graph (a hook would split it).  ConvNet only
    (``features`` then ``classifier``; :func:`layer_by_layer`).
    """
    h, stats, bns = view, [], []
    for mod in teacher.features:
        if isinstance(mod, nn.BatchNorm2d):
            stats.append(grouped_stats(h, n_groups))
            bns.append(mod)
        h = mod(h)
    ce = F.cross_entropy(teacher.classifier(h.flatten(1)), y, reduction="none").view(n_groups, -1).mean(1)
    return ce + r_bn * grouped_bn_loss(stats, bns, first_bn)


def layer_by_layer(teacher: nn.Module) -> bool:
    """Whether :func:`recover_loss` can run ``teacher``: a ConvNet (``features`` then ``classifier``)."""
    return isinstance(teacher, ConvNet)


def compiled_recover_loss(teacher: nn.Module):
    """:func:`recover_loss` under ``torch.compile`` (one graph per architecture; the teacher is an argument).

    On a CPU a recover step is ten 28-px images through ConvNet-3-128-BN: per-op
    overhead, not arithmetic, dominates, and one compiled graph for the forward,
    the statistics and the loss (and one for their backward) removes most of it.
    """
    return shared_compile(recover_loss, teacher)


def _draw_batch(k: int, m, g, iters: int, mode: str, jitter: int, crop_scale_min: float, flip: bool):
    """One recover batch's random numbers, in the order its own loop draws them: init, then a view per step."""
    x = torch.randn(k, m.in_chans, m.img_size, m.img_size, generator=g)
    if mode == "jitter":
        views = [tuple(int(v) for v in torch.randint(0, jitter + 1, (2,), generator=g)) for _ in range(iters)]
    else:
        views = [aug.draw_flipped_crops(k, g, (crop_scale_min, 1.0), flip) for _ in range(iters)]
    return x, views


def _recover_groups(teacher, bns, stats, k: int, n_groups: int, m, device, g, iters: int, lr: float, r_bn: float,
                    first_bn: float, mode: str, jitter: int, crop_scale_min: float, flip: bool, bounds, ctx,
                    desc: str, fast=None, engine: Optional[Engine] = None):
    """``n_groups`` recover batches of K images (one per class) at once: (G*K, C, H, W) and (G, iters) losses.

    Each batch is its own problem, as in the reference's one-batch-at-a-time
    loop: the teacher is in eval mode (a sample's output depends on it alone),
    the BN statistics and the cross-entropy are taken per batch, and the loss
    minimised is the sum of the batches' losses, so batch ``j``'s images get
    exactly the gradient of batch ``j``'s loss; Adam acts element by element.
    Only the work is shared: one forward and backward of G*K images per step.
    ``fast``: the compiled loss (:func:`compiled_recover_loss`), or None: the
    teacher's forward with ``stats`` filled by its BN hooks; ``engine`` is told
    when ``fast`` fails to compile (the loss then runs eager).
    """
    lo, hi = bounds
    draws = [_draw_batch(k, m, g, iters, mode, jitter, crop_scale_min, flip) for _ in range(n_groups)]
    x = torch.cat([d[0] for d in draws]).to(device).requires_grad_(True)
    y = torch.arange(k, device=device).repeat(n_groups)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.5, 0.9), eps=1e-8)
    curve = []
    for it in tqdm(range(iters), desc=desc, disable=ctx.quiet, leave=False):
        for grp in opt.param_groups:
            grp["lr"] = 0.5 * lr * (1 + math.cos(math.pi * it / iters))
        if mode == "jitter":
            view = torch.cat([torch.roll(x[j * k:(j + 1) * k], shifts=draws[j][1][it], dims=(2, 3))
                              for j in range(n_groups)])
        else:
            view = aug.resized_crop(x, torch.cat([d[1][it] for d in draws]))
        if fast is not None:
            try:
                loss = fast(teacher, view, y, n_groups, r_bn, first_bn)
            except Exception as e:  # noqa: BLE001 - any compiler failure: the same loss, eager
                compile_failed(engine, e, "recovering eager")
                fast = recover_loss
                loss = fast(teacher, view, y, n_groups, r_bn, first_bn)
            ctx.meter.forward(len(view))  # the hook that counts eager passes is not called by the layer loop
        else:
            stats.clear()
            ce = F.cross_entropy(teacher(view), y, reduction="none").view(n_groups, k).mean(1)
            loss = ce + r_bn * grouped_bn_loss([grouped_stats(t, n_groups) for t in stats], bns, first_bn)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        ctx.meter.backward(len(x))
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
        curve.append(loss.detach())
    return x.detach(), torch.stack(curve, 1) if curve else torch.zeros(n_groups, 0)


@register("sre2l", hparams=(
    HParam("iters", int, 0, "steps", "recover steps per batch (one image per class); 0 = min(synth_iters, 1000)",
           "reference code on paper (1000, its CIFAR script); scale-down elsewhere", profile=("synth_iters",), low=0),
    HParam("lr", float, 0.25, "per Adam step", "Adam learning rate on the pixels (cosine to 0)", "reference code",
           low=0.0),
    HParam("r_bn", float, 0.01, "weight", "weight of the BN-statistics matching term", "reference code", low=0.0),
    HParam("first_bn_multiplier", float, 10.0, "weight", "extra weight of the first BN layer", "reference code",
           low=0.0),
    HParam("view", str, "jitter", "", "per-step view: 'jitter' (random shift, the reference's CIFAR script) or "
           "'crop' (random-resized crop, its ImageNet script)", "reference code (CIFAR script)",
           choices=("jitter", "crop")),
    HParam("jitter", int, 4, "pixels", "largest shift of view='jitter'", "reference code (CIFAR script)", low=0),
    HParam("crop_scale_min", float, 0.5, "area fraction", "smallest area of view='crop''s random-resized crop",
           "scale-down (the reference's 0.08 is for 224 px ImageNet)", low=0.0, high=1.0),
    HParam("flip", bool, False, "", "random horizontal flips with view='crop' (off for digits)", "ddlib"),
    HParam("teacher_arch", str, "", "", "BN teacher; '' = the profile teacher's BN variant", "ddlib",
           profile=("teacher_model",))))
def distill_sre2l(train, ipc: int, *, seed: int, ctx, iters: int = 0, lr: float = 0.25,
                  r_bn: float = 0.01, first_bn_multiplier: float = 10.0, view: str = "jitter", jitter: int = 4,
                  crop_scale_min: float = 0.5, flip: bool = False, teacher_arch: str = ""):
    """Recover ``ipc`` images per class from the BN teacher's statistics.

    Args:
        iters: recover steps per batch (profile's ``synth_iters`` capped at 1000 when 0,
            the reference CIFAR script's 1000).
        lr: Adam learning rate (cosine to 0).
        r_bn: weight of the BN-matching term.
        first_bn_multiplier: extra weight of the first BN layer (reference: 10).
        view: "jitter" (random roll of up to ``jitter`` px) or "crop" (random-resized crop).
        jitter: largest shift in pixels (reference: 4 at 32 px).
        crop_scale_min: smallest area fraction of the per-step random-resized crop
            (reference 0.08 on 224 px ImageNet; larger for 8-32 px images).
        flip: random horizontal flips with ``view="crop"`` (off for digits / MNIST-like data).
        teacher_arch: BN teacher architecture ("" = the profile teacher's BN variant).

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,), extras with the loss
        curve, the steps run and the teacher's architecture ``teacher_arch``
        (the runner relabels the set with it).
    """
    prof, m = ctx.profile, train.meta
    iters = iters or min(prof.synth_iters, 1000)
    teacher, arch = bn_teacher(train, ctx, teacher_arch)
    bns = bn_layers(teacher)
    k, device = train.num_classes, train.train_x.device
    g = generator(seed, "sre2l")
    y = torch.arange(k, device=device).repeat_interleave(ipc)
    lo, hi = pixel_bounds(m, device)
    stats: List = []
    per_call = max(1, JOINT_IMAGES.get(device.type, 1) // k)  # whole recover batches per joint forward
    engine = Engine.of(ctx.engine)
    work = 3 * profile(teacher, tuple(train.train_x.shape[1:]))[0] * k * ipc * iters  # forward + backward
    fast = compiled_recover_loss(teacher) if layer_by_layer(teacher) and compiles(engine, work) else None
    # eager, the BN inputs come from hooks; compiled, recover_loss takes them itself (a hook would split its graph)
    hooks = [] if fast is not None else [bn.register_forward_hook(lambda _m, inp, _o: stats.append(inp[0]))
                                         for bn in bns]
    curves, batches = [], []
    try:
        for j0 in range(0, ipc, per_call):  # batch j: image j of every class, its own problem
            n = min(per_call, ipc - j0)
            xs, curve = _recover_groups(teacher, bns, stats, k, n, m, device, g, iters, lr, r_bn,
                                        first_bn_multiplier, view, jitter, crop_scale_min, flip, (lo, hi), ctx,
                                        f"sre2l ipc={ipc} #{j0}-{j0 + n - 1}", fast, engine)
            batches += list(xs.view(n, k, *xs.shape[1:]))
            curves.append(curve)
    finally:
        for h in hooks:
            h.remove()
    losses = torch.cat(curves).flatten().tolist()  # batch-major: batch 0's curve, then batch 1's, ...
    x = torch.stack(batches, 1).reshape(k * ipc, *batches[0].shape[1:])  # class-major: row c*ipc + j
    return x.detach(), y, {"loss_curve": torch.tensor(losses), "final_loss": losses[-1] if losses else float("nan"),
                           "teacher_arch": arch, "iters": iters}
