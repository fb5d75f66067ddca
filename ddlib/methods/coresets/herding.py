"""Herding (Welling, ICML 2009) per class in the teacher's embedding space.

Greedy moment matching: with mean embedding ``mu`` of a class and ``S_i`` the
sum of the ``i`` embeddings chosen so far, step ``i`` picks the unchosen ``x``
minimising ``||(i + 1) * mu - S_i - x||`` (arg-min; some public code has
arg-max, which picks outliers).  The running mean of the chosen points
converges to ``mu`` at rate O(1/i).
"""
from __future__ import annotations

import torch

from ddlib.methods.coresets import class_features, register


def herd(features: torch.Tensor, k: int) -> torch.Tensor:
    """Herding order on ``features`` (N, D): the first ``k`` picks, (k,) int64 into N."""
    mu = features.mean(0)
    chosen = torch.zeros(len(features), dtype=torch.bool, device=features.device)
    total = torch.zeros_like(mu)
    order = []
    for i in range(k):
        dist = ((i + 1) * mu - total - features).norm(dim=1)
        dist[chosen] = float("inf")
        j = int(dist.argmin())
        order.append(j)
        chosen[j] = True
        total = total + features[j]
    return torch.tensor(order, dtype=torch.long)


@register("herding")
def select_herding(train, ipc: int, *, seed: int, ctx) -> torch.Tensor:
    """Herding in the penultimate features of the (cached) teacher; deterministic.

    ``seed`` is unused: herding has no randomness beyond the teacher, which is
    shared by all runs of a study.
    """
    picks = [idx[herd(feats, ipc).to(idx.device)].cpu() for _, idx, feats in class_features(train, ctx)]
    return torch.cat(picks)
