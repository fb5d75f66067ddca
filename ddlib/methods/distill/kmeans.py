"""k-means centres: the k-means baseline of Wang et al. 2018 (arXiv:1811.10959).

Per class ``c``, ``k = ipc`` clusters of the class's train-pool images (their
pixels, flattened to vectors of C*H*W), and the cluster centres are the
images.  Lloyd's k-means minimises the within-cluster sum of squares::

    min_{mu_1..mu_k}  sum_{i : y_i = c}  min_j || x_i - mu_j ||^2

and at its fixed point every centre is the mean of the images assigned to it,
``mu_j = mean{x_i : argmin_l ||x_i - mu_l|| = j}``.  As the reference code
(``utils/baselines.py``, ``kmeans_train``, github.com/SsnL/dataset-distillation):
one k-means++ start, Lloyd's iterations until no image changes cluster, and
``k = 1`` is the class mean (:mod:`ddlib.methods.distill.class_mean`: the unique
minimiser of the sum of squares).  We run scikit-learn's ``KMeans``
(``tol=0``: it stops when the assignment no longer changes, the reference's
criterion; at most :data:`MAX_ITER` iterations where the reference has no cap)
seeded from the run's ``kmeans-<class>`` stream (:mod:`ddlib.core.seeding`),
then recompute each centre in float64 as the mean of its final cluster so that
the stored images are exactly the cluster means.

Not a distiller in the optimisation sense: it synthesises images without
learning them.  It is registered with the distillers because it returns
images (and hard labels), not indices into the pool.
"""
from __future__ import annotations

import torch

from ddlib.core.hparams import HParam
from ddlib.core.seeding import stream_seed
from ddlib.methods.distill import register
from ddlib.methods.distill.class_mean import class_mean_images

MAX_ITER = 300   # scikit-learn's default cap; the reference iterates until nothing changes


def kmeans_centres(train, ipc: int, *, seed: int, n_init: int = 1) -> torch.Tensor:
    """The ``ipc`` k-means centres of each class's train-pool images.

    Args:
        train: the split (only ``train_x`` / ``train_y`` are read).
        ipc: k, clusters (images) per class.
        seed: the run's seed; class ``c`` clusters with ``random_state`` from stream ``kmeans-<c>``.
        n_init: k-means++ starts, the best (lowest sum of squares) kept; 1 as the reference.

    Returns:
        (K*ipc, C, H, W) float32 on the pool's device, class-major (rows
        ``[c*ipc, (c+1)*ipc)`` are class ``c``'s centres, in scikit-learn's cluster order).
    """
    if ipc == 1:
        return class_mean_images(train, 1)
    shape = train.train_x.shape[1:]
    out = []
    for c in range(train.num_classes):
        x = train.train_x[train.class_indices(c)].detach().cpu().double().flatten(1)   # (n_c, C*H*W)
        from sklearn.cluster import KMeans  # here, not at import: sklearn costs every notebook ~0.5 s to load

        km = KMeans(n_clusters=ipc, init="k-means++", n_init=n_init, max_iter=MAX_ITER, tol=0.0,
                    algorithm="lloyd", random_state=stream_seed(seed, f"kmeans-{c}") % 2 ** 32).fit(x.numpy())
        assign = torch.from_numpy(km.labels_).long()
        centres = torch.from_numpy(km.cluster_centers_).double()
        for j in range(ipc):  # exactly the mean of the final cluster (an empty one keeps its centre)
            if bool((assign == j).any()):
                centres[j] = x[assign == j].mean(0)
        out.append(centres)
    return torch.cat(out).to(train.train_x.dtype).view(-1, *shape).to(train.train_x.device)


@register("kmeans", hparams=(
    HParam("n_init", int, 1, "starts", "k-means++ starts per class; the lowest sum of squares is kept",
           "reference code (one k-means++ start)", low=1),))
def distill_kmeans(train, ipc: int, *, seed: int, ctx, n_init: int = 1):
    """The per-class k-means centres (k = ``ipc``) of the train pool's pixels.

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,) class-major, extras ``{}``.
    """
    labels = torch.arange(train.num_classes, device=train.train_x.device).repeat_interleave(ipc)
    return kmeans_centres(train, ipc, seed=seed, n_init=n_init), labels, {}
