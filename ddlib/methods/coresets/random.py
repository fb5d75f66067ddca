"""Uniform random selection per class, seeded (the baseline every paper reports)."""
from __future__ import annotations

import torch

from ddlib.core.seeding import generator
from ddlib.methods.coresets import register


@register("random")
def select_random(train, ipc: int, *, seed: int, ctx) -> torch.Tensor:
    """``ipc`` indices per class drawn uniformly without replacement.

    Returns:
        (K * ipc,) int64 indices, grouped by class in class order.
    """
    g = generator(seed, "select")
    picks = []
    for c in range(train.num_classes):
        idx = train.class_indices(c).cpu()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:ipc]])
    return torch.cat(picks)
