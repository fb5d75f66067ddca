"""DM: Dataset Condensation with Distribution Matching (Zhao & Bilen, WACV 2023).

Each iteration samples a fresh randomly initialised ConvNet ``psi`` (never
trained) and minimises, over the synthetic images ``S`` (Eq. 4 of the paper)::

    sum_c || mean_{x in R_c} psi(A(x, w_c)) - mean_{s in S_c} psi(A(s, w_c)) ||^2

with the same DSA op and parameters ``w_c`` applied to the real batch ``R_c``
and the synthetic images ``S_c`` of class ``c`` (siamese augmentation; every
sample of the class shares the one draw, as the reference's seeded
``DiffAugment``).  As the reference ``main_DM.py``, each class draws its own op
and parameters every iteration.  Synthetic images start from random real
images and are updated by SGD (lr 1.0, momentum 0.5, as the reference code).
All classes go through the network in one batch: with the instance-norm
ConvNet (no batch statistics) that is the reference's per-class loop.  The
real batch (no gradient) runs in cache-sized slices, compiled on long runs
(:class:`ddlib.engine.fastpath.Slicer`): the same class sums in another order;
tests/test_distill_speed_equivalence.py holds it to the per-class loop.  On
``paper`` the real batch runs in bf16 (the profile's ``real_precision``): class
means within 5e-3 relative of float32, a deviation the book states.
"""
from __future__ import annotations

import torch
from tqdm import tqdm

from ddlib.core.hparams import HParam
from ddlib.core.seeding import generator, stream_seed
from ddlib.engine import augment as aug
from ddlib.engine.fastpath import NO_GRAD_MICRO_BYTES, Slicer, profile
from ddlib.engine.models import create_model
from ddlib.methods.distill import real_init, register

DSA_STRATEGY = aug.AUTO  # "dsa": the reference's list for the dataset (flip except on digits)
#: ``strategy``: shared by the distillers that augment with DSA (dm, dsa, mtt, cim)
STRATEGY_HP = HParam("strategy", str, DSA_STRATEGY, "", "DSA ops, '_'-separated ('' = none; 'dsa' = the "
                     "reference's list for the dataset: with flip, without on digits)",
                     "reference code (DSA's lists: flip for Fashion-MNIST / CIFAR, none for digits)")
#: ``model``: the network a distiller embeds or matches with
SYNTH_MODEL_HP = HParam("model", str, "", "", "network the distiller uses; '' = the profile's synth_model",
                        "ddlib", profile=("synth_model",))
#: ``batch_real``: real images per class per iteration
BATCH_REAL_HP = HParam("batch_real", int, 0, "images per class", "real images per class per iteration; "
                       "0 = the profile's synth_batch_real", "reference code on paper (256); scale-down elsewhere",
                       profile=("synth_batch_real",), low=0)


def class_means(emb: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-class mean of ``emb`` (N, D) -> (k, D); labels (N,) in [0, k)."""
    sums = torch.zeros(k, emb.shape[1], device=emb.device, dtype=emb.dtype).index_add_(0, labels, emb)
    counts = torch.bincount(labels, minlength=k).clamp_min(1).to(emb.dtype)
    return sums / counts[:, None]


def _siamese(x: torch.Tensor, params, y: torch.Tensor) -> torch.Tensor:
    """Sample i gets row ``y[i]`` of ``params`` (AugParams: one op; MixedParams: one op per row)."""
    if isinstance(params, aug.MixedParams):
        return aug.apply_mixed(x, params.take(y))
    return aug.apply(x, params, y)


def real_class_means(net, real: torch.Tensor, real_y: torch.Tensor, k: int, params,
                     fwd: Slicer | None = None) -> torch.Tensor:
    """Per-class mean embedding (k, D) of the augmented real batch, without gradient.

    With ``fwd`` the batch is augmented and embedded slice by slice and the
    embeddings summed per class as they come (nothing of size N x D is kept).
    """
    with torch.no_grad():
        if fwd is None:
            return class_means(net.embed(_siamese(real, params, real_y)), real_y, k)
        sums = None
        for sl in fwd.slices(net, len(real)):
            e = fwd(net, _siamese(real[sl], params, real_y[sl]), "embed")
            sums = (e.new_zeros(k, e.shape[1]) if sums is None else sums).index_add_(0, real_y[sl], e)
        counts = torch.bincount(real_y, minlength=k).clamp_min(1).to(sums.dtype)
        return sums / counts[:, None]


def dm_loss(net, real, real_y, syn, syn_y, k: int, params, fwd: Slicer | None = None) -> torch.Tensor:
    """Eq. 4: summed squared distance between per-class mean embeddings.

    ``params``: k rows (one per class), applied to the real and the synthetic
    samples of that class alike; None = no augmentation.  ``fwd``: how the
    real batch runs (:func:`real_class_means`); None = one batch.
    """
    mr = real_class_means(net, real, real_y, k, params, fwd)
    ms = class_means(net.embed(_siamese(syn, params, syn_y)), syn_y, k)
    return ((mr - ms) ** 2).sum()


@register("dm", hparams=(
    HParam("iters", int, 0, "iterations", "outer iterations, each with a fresh random network; "
           "0 = the profile's synth_iters", "paper on paper (20000); scale-down elsewhere",
           profile=("synth_iters",), low=0),
    HParam("lr_img", float, 1.0, "per SGD step", "SGD learning rate on the pixels (momentum 0.5)",
           "reference code", low=0.0),
    BATCH_REAL_HP, SYNTH_MODEL_HP, STRATEGY_HP))
def distill_dm(train, ipc: int, *, seed: int, ctx, iters: int = 0, lr_img: float = 1.0,
               batch_real: int = 0, model: str = "", strategy: str = DSA_STRATEGY):
    """Distil ``ipc`` images per class by distribution matching.

    Args:
        iters: outer iterations (profile's ``synth_iters`` when 0).
        lr_img: SGD learning rate on pixels (normalised units).
        batch_real: real images per class per iteration (profile's when 0).
        model: embedding architecture (profile's ``synth_model`` when empty).
        strategy: DSA ops applied siamese-style to real and synthetic batches
            ("dsa" = the reference's list for the dataset).

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,), extras with the loss curve.
    """
    prof, m = ctx.profile, train.meta
    iters = iters or prof.synth_iters
    batch_real = batch_real or prof.synth_batch_real
    arch = model or prof.synth_model
    k, device = train.num_classes, train.train_x.device
    strategy = aug.resolve(strategy, m.name)
    g = generator(seed, "synth")
    by_class, syn, syn_y = real_init(train, ipc, g)
    opt = torch.optim.SGD([syn], lr=lr_img, momentum=0.5)
    probe = create_model(arch, k, m.in_chans, m.img_size, seed=0)  # sizes the slices (seeded: global RNG untouched)
    sample = tuple(train.train_x.shape[1:])
    fwd = Slicer(probe, sample, device, ctx.engine, profile(probe, sample)[0] * k * batch_real * iters,
                 NO_GRAD_MICRO_BYTES, precision=prof.real_precision)
    losses = []
    for it in tqdm(range(iters), desc=f"dm ipc={ipc}", disable=ctx.quiet, leave=False):
        net = create_model(arch, k, m.in_chans, m.img_size, seed=stream_seed(seed, f"dm-net-{it}")).to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        net.train()
        ctx.meter.watch(net)
        real_idx = torch.cat([ix[torch.randint(len(ix), (batch_real,), generator=g)] for ix in by_class])
        real, real_y = train.train_x[real_idx.to(device)], train.train_y[real_idx.to(device)]
        params = aug.draw_mixed(strategy, k, g, m.img_size)  # one op and parameter row per class
        loss = dm_loss(net, real, real_y, syn, syn_y, k, params, fwd)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ctx.meter.backward(len(syn))
        losses.append(float(loss.detach()))
        if ctx.on_iter is not None:
            ctx.on_iter(it + 1, syn.detach())
    return syn.detach(), syn_y, {"loss_curve": torch.tensor(losses), "final_loss": losses[-1] if losses else float("nan")}
