"""Coreset selection: plug-ins that return indices into the train pool.

Every selector has one signature::

    @register("name", hparams=(HParam("k", int, 0, ...), ...))
    def select_name(train: Split, ipc: int, *, seed: int, ctx: Context, k: int = 0) -> Tensor | (Tensor, Tensor)

returning the chosen indices (and optionally per-sample scores).  The family
function :func:`select` validates the IPC, opens the cost meter and packs the
result into a :class:`Selection`.  The declared hyper-parameters
(:class:`ddlib.core.hparams.HParam`) are the builder's keyword arguments, one for one
(tests/test_hparams.py holds them to its signature).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Optional

import torch

from ddlib.core.cost import Cost, Meter
from ddlib.core.hparams import check
from ddlib.core.registry import Registry
from ddlib.data import Split
from ddlib.engine.fastpath import eval_batch
from ddlib.methods.context import Context, check_ipc

CORESETS = Registry("coreset method")
register = CORESETS.register


@dataclass(frozen=True)
class Selection:
    """indices: (M,) int64 into the train pool; scores: (N,) per-sample or None."""

    indices: torch.Tensor
    scores: Optional[torch.Tensor]
    cost: Cost


def class_features(train: Split, ctx: Context, batch: Optional[int] = None):
    """Yield (class c, its pool indices (n_c,), teacher penultimate features (n_c, D) float32).

    The teacher is the context's (trained or loaded once, cost charged to the build);
    ``batch`` images per forward (default :func:`ddlib.engine.fastpath.eval_batch`).
    """
    teacher = ctx.teacher(train)
    batch = batch or eval_batch(teacher, tuple(train.train_x.shape[1:]), train.train_x.device)
    with torch.no_grad():
        for c in range(train.num_classes):
            idx = train.class_indices(c)
            feats = torch.cat([teacher.embed(train.train_x[idx[i:i + batch]])
                               for i in range(0, len(idx), batch)])
            yield c, idx, feats.float()


def select(name: str, train: Split, ipc: int, *, seed: int, ctx: Context, **hp) -> Selection:
    """Run selector ``name`` for ``ipc`` samples per class; cost measured around it."""
    fn = CORESETS.get(name)
    check(name, CORESETS.hparams(name), hp)  # a typo is one DDLibError naming the valid keys, never a TypeError
    check_ipc(train, ipc)
    with Meter(train.train_x.device) as meter:
        ctx.meter = meter
        out = fn(train, ipc, seed=seed, ctx=ctx, **hp)
    idx, scores = out if isinstance(out, tuple) else (out, None)
    return Selection(idx.cpu().long(), None if scores is None else scores.cpu(), meter.cost)


# every module of this package is a plug-in file that registers itself on import
for _m in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_m}")
