"""k-center greedy (Sener & Savarese, *Active Learning for Convolutional Neural
Networks: A Core-Set Approach*, ICLR 2018, Alg. 1) per class.

In the penultimate features of the (cached) teacher: start from one seeded
random point of the class, then repeatedly add
``argmax_i min_{j in S} ||x_i - x_j||_2`` -- the point farthest from the
selected set.  The greedy covering radius is at most twice the optimal one
(Gonzalez 1985), for any first point.
"""
from __future__ import annotations

import torch

from ddlib.core.seeding import generator
from ddlib.methods.coresets import class_features, register


def kcenter_greedy(features: torch.Tensor, k: int, first: int) -> torch.Tensor:
    """Greedy k-center picks on ``features`` (N, D) starting at index ``first``.

    Args:
        features: (N, D) points (Euclidean distance).
        k: number of centres, 1 <= k <= N.
        first: index of the first centre.

    Returns:
        (k,) int64 distinct indices into N, in pick order (``first`` first).
    """
    n = len(features)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    f = features.float()
    mind = (f - f[first]).norm(dim=1)
    mind[first] = -1.0  # chosen points are never picked again (ties at distance 0 included)
    order = [int(first)]
    for _ in range(k - 1):
        j = int(mind.argmax())
        order.append(j)
        mind = torch.minimum(mind, (f - f[j]).norm(dim=1))
        mind[torch.tensor(order)] = -1.0
    return torch.tensor(order, dtype=torch.long)


@register("kcenter")
def select_kcenter(train, ipc: int, *, seed: int, ctx) -> torch.Tensor:
    """k-center greedy in the teacher's penultimate features, first point seeded per class.

    Returns:
        (K * ipc,) int64 indices grouped by class in class order.
    """
    g = generator(seed, "select")
    picks = []
    for _, idx, feats in class_features(train, ctx):
        first = int(torch.randint(len(idx), (1,), generator=g))
        picks.append(idx[kcenter_greedy(feats.cpu(), ipc, first).to(idx.device)].cpu())
    return torch.cat(picks)
