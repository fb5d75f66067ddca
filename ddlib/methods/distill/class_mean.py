"""Per-class mean images: the "average real images" baseline of Wang et al. 2018 (arXiv:1811.10959).

Each class is summarised by the pixel-wise mean of its train-pool images::

    x~_c = (1 / n_c) * sum_{i : y_i = c} x_i          (C, H, W), for every class c

As the reference code (``utils/baselines.py``, ``average_train``,
github.com/SsnL/dataset-distillation), the class mean is *reused*: a set of
``ipc`` images per class holds ``ipc`` copies of it (the paper: the average
image "reused in different GD steps").  We keep the copies at IPC > 1 rather
than, say, the means of ``ipc`` random disjoint groups of the class: those
would be a different, seed-dependent baseline sliding from the class mean
(large groups) to random real images (groups of one), both of which the
comparison already has; "``ipc`` different summaries of the class" is the
k-means baseline (:mod:`ddlib.methods.distill.kmeans`), which at IPC 1 *is*
the class mean.  Deterministic: the seed is not used.

Not a distiller in the optimisation sense: it synthesises images without
learning them.  It is registered with the distillers because it returns
images (and hard labels), not indices into the pool.
"""
from __future__ import annotations

import torch

from ddlib.methods.distill import register


def class_mean_images(train, ipc: int) -> torch.Tensor:
    """``ipc`` copies of each class's mean train-pool image.

    Args:
        train: the split (only ``train_x`` / ``train_y`` are read).
        ipc: images per class.

    Returns:
        (K*ipc, C, H, W) float32 on the pool's device, class-major (rows
        ``[c*ipc, (c+1)*ipc)`` are class ``c``'s mean).
    """
    # the sum in float64: a mean of thousands of images accumulates no rounding order effect
    means = torch.stack([train.train_x[train.class_indices(c)].double().mean(0)
                         for c in range(train.num_classes)]).to(train.train_x.dtype)
    return means.repeat_interleave(ipc, dim=0)


@register("class_mean")
def distill_class_mean(train, ipc: int, *, seed: int, ctx):
    """The per-class mean image, ``ipc`` copies per class (see the module doc for why copies).

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,) class-major, extras ``{}``.
    """
    labels = torch.arange(train.num_classes, device=train.train_x.device).repeat_interleave(ipc)
    return class_mean_images(train, ipc), labels, {}
