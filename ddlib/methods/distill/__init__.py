"""Dataset distillation: plug-ins that synthesise images and labels.

Every distiller has one signature::

    @register("name", hparams=(HParam("iters", int, 0, ...), ...))
    def distill_name(train: Split, ipc: int, *, seed: int, ctx: Context, iters: int = 0)
        -> (images (K*ipc, C, H, W), labels (K*ipc,) or (K*ipc, K), extras dict)

The family function :func:`distill` validates the IPC, opens the cost meter
and packs the result into a :class:`SyntheticSet`.  The declared hyper-parameters
(:class:`ddlib.core.hparams.HParam`) are the builder's keyword arguments, one for one
(tests/test_hparams.py holds them to its signature).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Dict

import torch

from ddlib.core.cost import Cost, Meter
from ddlib.core.hparams import check
from ddlib.core.registry import Registry
from ddlib.data import Split
from ddlib.methods.context import Context, check_ipc

DISTILLERS = Registry("distiller")
register = DISTILLERS.register


@dataclass(frozen=True)
class SyntheticSet:
    """images: (M, C, H, W) float32 (normalised like the data); labels: (M,) or (M, K)."""

    images: torch.Tensor
    labels: torch.Tensor
    extras: Dict[str, Any] = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)


def real_init(train: Split, ipc: int, gen: torch.Generator):
    """Synthetic images initialised from ``ipc`` random real images per class.

    Returns:
        (pools, images, labels): per-class pool indices (list of (n_c,) CPU
        int64), images (K*ipc, C, H, W) copied from the pool with
        ``requires_grad``, hard labels (K*ipc,) grouped by class.
    """
    device = train.train_x.device
    pools = [train.class_indices(c).cpu() for c in range(train.num_classes)]
    start = torch.cat([ix[torch.randperm(len(ix), generator=gen)[:ipc]] for ix in pools])
    images = train.train_x[start.to(device)].clone().requires_grad_(True)
    labels = torch.arange(train.num_classes, device=device).repeat_interleave(ipc)
    return pools, images, labels


def distill(name: str, train: Split, ipc: int, *, seed: int, ctx: Context, **hp) -> SyntheticSet:
    """Run distiller ``name`` for ``ipc`` images per class; cost measured around it."""
    fn = DISTILLERS.get(name)
    check(name, DISTILLERS.hparams(name), hp)  # a typo is one DDLibError naming the valid keys, never a TypeError
    check_ipc(train, ipc)
    with Meter(train.train_x.device) as meter:
        ctx.meter = meter
        images, labels, extras = fn(train, ipc, seed=seed, ctx=ctx, **hp)
    return SyntheticSet(images.detach().cpu(), labels.detach().cpu(), extras, meter.cost)


# every module of this package is a plug-in file that registers itself on import
for _m in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_m}")
