"""How a held-out teacher sees each stored condensed set (H6's patch difficulty, C2's relabelling).

The network is one the sets were *not* built with (the run layer's
:func:`ddlib.run.measure.reference_teacher` with a seed no run uses): SRe2L's
recover step maximises its own teacher's confidence, so measuring with that
teacher would call every recovered image easy.  Per set:

* ``loss``: mean cross-entropy of the teacher on the set's images against their
  intended class (the arg-max of a soft label) — the set's difficulty;
* ``agreement``: fraction of images the teacher assigns to the intended class;
* ``entropy``: mean entropy (nats) of the teacher's predictive distribution.
"""
from __future__ import annotations

from typing import Iterable, Union

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from ddlib.analysis.quality_study import Entry, _entries
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.methods.build import method_family

HELD_OUT_TEACHER_SEED = 1000   # no chapter grid uses this run seed
COLUMNS = ["method", "family", "ipc", "seed", "build_key", "loss", "agreement", "entropy", "n"]


@torch.no_grad()
def view(teacher: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 512) -> dict:
    """Teacher's mean loss, agreement and entropy on images (N, C, H, W) with labels (N,) or (N, K)."""
    y = labels.argmax(1) if labels.dim() == 2 else labels.long()
    was_training, dev = teacher.training, next(teacher.parameters()).device
    teacher.eval()
    try:
        logits = torch.cat([teacher(images[i:i + batch].to(dev)).float().cpu()
                            for i in range(0, len(images), batch)])
    finally:
        teacher.train(was_training)
    logp = F.log_softmax(logits, 1)
    return {"loss": float(F.nll_loss(logp, y.cpu()).item()),
            "agreement": float((logits.argmax(1) == y.cpu()).float().mean().item()),
            "entropy": float(-(logp.exp() * logp).sum(1).mean().item()), "n": int(len(images))}


def teacher_view_table(store: Store, teacher: nn.Module,
                       keys_or_rows: Union[pd.DataFrame, Iterable[Entry]]) -> pd.DataFrame:
    """One row per stored condensed set of ``keys_or_rows`` (:data:`COLUMNS`)."""
    out = []
    for key, info in _entries(keys_or_rows):
        art = store.load_artifact("condensed", key)
        if art is None:
            raise DDLibError(f"no stored condensed set {key} ({info['method'] or 'unknown method'}); "
                             "run the study first")
        fam = method_family(info["method"]) if info["method"] else None
        out.append({"method": info["method"], "family": fam, "ipc": info["ipc"], "seed": info["seed"],
                    "build_key": key, **view(teacher, art["images"], art["labels"])})
    return pd.DataFrame(out, columns=COLUMNS)
