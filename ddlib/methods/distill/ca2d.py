"""CA2D: compute-aware patch distillation (*Rethinking Dataset Distillation:
Hard Truths about Soft Labels*, CVPR 2026).

RDED-style patch synthesis (see :mod:`ddlib.methods.distill.rded`) whose patch
difficulty follows the training budget by CAD-Prune's rule instead of always
taking the easiest crops: with ``e = B * |pool| / (K * ipc)`` passes per stored
image at budget ``B``, the target difficulty quantile is
``t = cad_target(e)`` (:func:`ddlib.methods.coresets.cad_prune.cad_target`), and per
class the kept crops are those whose teacher-CE quantile is nearest ``t`` (one
per source image first).  A small budget gives easy, prototypical patches; a
large one harder, more informative ones.  As for CAD-Prune, the paper's exact
rule is not public: this is the same reconstruction applied to patches.
"""
from __future__ import annotations

from typing import Optional

from ddlib.core.registry import DDLibError
from ddlib.methods.coresets.cad_prune import (
    KNOB_HPARAMS,
    KNOBS,
    cad_target,
    passes_per_sample,
)
from ddlib.methods.distill import register
from ddlib.methods.distill.rded import RDED_HPARAMS, patch_synthesis


def budget_target(ctx, budget: Optional[float], pool: int, k: int, ipc: int, **knobs) -> float:
    """CAD-Prune's target quantile for the run's budget (``ctx.budget``, else hp ``budget``)."""
    if ctx.budget is not None and budget is not None and float(budget) != float(ctx.budget):
        raise DDLibError(f"ca2d: hp budget={budget!r} contradicts the run's budget {ctx.budget!r}")
    b = ctx.budget if ctx.budget is not None else budget
    if b is None:
        raise DDLibError("ca2d needs the training budget (the runner sets it; direct calls pass hp budget=...)")
    if not float(b) > 0:
        raise DDLibError(f"ca2d: budget must be > 0, got {b!r}")
    try:
        return cad_target(passes_per_sample(b, pool, k, ipc), **knobs)
    except ValueError as err:
        raise DDLibError(f"ca2d: {err}") from None


@register("ca2d", hparams=RDED_HPARAMS + KNOB_HPARAMS)
def distill_ca2d(train, ipc: int, *, seed: int, ctx, factor: int = 0, n_real: int = 300,
                 n_crops: int = 5, crop_scale_min: float = -1.0, crop_scale_max: float = 1.0,
                 budget: Optional[float] = None, teacher_arch: str = "", t_min: float = KNOBS["t_min"],
                 t_max: float = KNOBS["t_max"], e0: float = KNOBS["e0"], e_max: float = KNOBS["e_max"]):
    """Budget-aware RDED patches.

    Args:
        factor, n_real, n_crops, crop_scale_min, crop_scale_max, teacher_arch: as ``rded``.
        budget: full-pool epochs, only used when ``ctx.budget`` is None.
        t_min, t_max, e0, e_max: the knobs of ``cad_target``.

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,), extras with the target
        quantile ``target`` and the picked patches' teacher CE ``patch_loss``.
    """
    t = budget_target(ctx, budget, len(train.train_y), train.num_classes, ipc, t_min=float(t_min),
                      t_max=float(t_max), e0=float(e0), e_max=float(e_max))
    images, labels, loss, info = patch_synthesis(
        train, ipc, seed=seed, ctx=ctx, factor=factor, n_real=n_real, n_crops=n_crops,
        crop_scale=(crop_scale_min, crop_scale_max), target=t, stream="ca2d", teacher_arch=teacher_arch)
    return images, labels, {"target": t, "patch_loss": loss.cpu(), "mean_patch_loss": float(loss.mean()), **info}


distill_ca2d.uses_budget = True
