"""CAD-Prune: compute-aware difficulty pruning (*Rethinking Dataset Distillation:
Hard Truths about Soft Labels*, CVPR 2026).

The paper's exact formula is not public; this is a reconstruction from its
principle.  Sorscher et al. (*Beyond neural scaling laws*, NeurIPS 2022) show
that the best examples to keep depend on how much can be learnt from the kept
set: easy, prototypical ones when data (or compute) is scarce, hard ones when
it is abundant; Goyal et al. (*Scaling Laws for Data Filtering*, CVPR 2024)
that data curation cannot be compute-agnostic.  So the difficulty of the kept
examples moves with the training budget.

Rule.  Let ``B`` be the training budget in full-pool epochs (``ctx.budget``; the
runner sets it because the selector is marked ``uses_budget``, and puts it in
the cache key).  The student then gives each condensed sample

    e = B * |pool| / (K * ipc)                        passes ("epochs over the set").

The target difficulty quantile is

    t(e) = clip(t_min + (t_max - t_min) * log(1 + e / e0) / log(1 + e_max / e0), t_min, t_max)

with defaults ``t_min = 0.1``, ``t_max = 0.9``, ``e0 = 10``, ``e_max = 10000``:
monotone increasing, ``t_min`` with no passes, ``t_max`` from ``e_max`` passes
on, logarithmic in between (diminishing returns of repeated passes).  Per class,
difficulty scores (EL2N by default, higher = harder) become mid-rank quantiles
``q`` in [0, 1]; the selector keeps the ``ipc`` samples whose ``q`` is nearest
to ``t`` (ties broken by a seeded permutation).  With hp ``width`` it instead
draws ``ipc`` uniformly (seeded) from the band ``|q - t| <= width / 2``, and
falls back to the nearest ``ipc`` when the band holds fewer.

Hyperparameters: ``score`` ("el2n" | "forgetting"), ``t_min``, ``t_max``, ``e0``,
``e_max``, ``width``, and the score hp ``epochs``, ``n_models``, ``score_seed``.

Called outside the runner (``ctx.budget`` is None), the selector needs hp
``budget``; without either it raises DDLibError.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ddlib.core.hparams import HParam
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import generator
from ddlib.methods.coresets import register
from ddlib.methods.coresets.scores import KINDS, score_hparams, selector_scores

KNOBS = {"t_min": 0.1, "t_max": 0.9, "e0": 10.0, "e_max": 10000.0}
#: the knobs of :func:`cad_target` and the budget, shared with the ``ca2d`` distiller
KNOB_HPARAMS = (
    HParam("t_min", float, KNOBS["t_min"], "quantile", "target difficulty quantile with no passes",
           "ddlib (reconstruction; the paper's rule is not public)", low=0.0, high=1.0),
    HParam("t_max", float, KNOBS["t_max"], "quantile", "target difficulty quantile from e_max passes on",
           "ddlib (reconstruction; the paper's rule is not public)", low=0.0, high=1.0),
    HParam("e0", float, KNOBS["e0"], "passes per sample", "scale of the logarithmic rise of the target (> 0)",
           "ddlib (reconstruction; the paper's rule is not public)", low=0.0),
    HParam("e_max", float, KNOBS["e_max"], "passes per sample", "passes from which the target is t_max (> 0)",
           "ddlib (reconstruction; the paper's rule is not public)", low=0.0),
    HParam("budget", float, None, "full-pool epochs", "the training budget, for direct calls only "
           "(the runner passes the run's; a different value is an error)", "ddlib", low=0.0),
)


def cad_target(budget_epochs_per_sample: float, *, t_min: float = 0.1, t_max: float = 0.9,
               e0: float = 10.0, e_max: float = 10000.0) -> float:
    """Target difficulty quantile for ``e`` passes per condensed sample (module rule).

    Returns:
        ``clip(t_min + (t_max - t_min) * log(1 + e/e0) / log(1 + e_max/e0), t_min, t_max)``;
        non-decreasing in ``e``.
    """
    e = max(float(budget_epochs_per_sample), 0.0)
    if not (0.0 <= t_min <= t_max <= 1.0 and e0 > 0 and e_max > 0):
        raise ValueError(f"need 0 <= t_min <= t_max <= 1, e0 > 0, e_max > 0; got "
                         f"{t_min}, {t_max}, {e0}, {e_max}")
    t = t_min + (t_max - t_min) * math.log1p(e / e0) / math.log1p(e_max / e0)
    return min(max(t, t_min), t_max)


def passes_per_sample(budget: float, pool_size: int, num_classes: int, ipc: int) -> float:
    """``e = budget * pool_size / (K * ipc)``: passes over each condensed sample at ``budget``."""
    return float(budget) * pool_size / (num_classes * ipc)


def difficulty_quantiles(scores: torch.Tensor) -> torch.Tensor:
    """Mid-rank quantiles in [0, 1] of ``scores`` (n,): 0 = easiest, 1 = hardest, ties share one."""
    n = len(scores)
    if n == 1:
        return torch.full((1,), 0.5)
    s = scores.double()
    srt = torch.sort(s).values
    lo = torch.searchsorted(srt, s, right=False)
    hi = torch.searchsorted(srt, s, right=True)
    return ((lo + hi - 1).double() / 2 / (n - 1)).float()


def cad_select(quantiles: torch.Tensor, k: int, target: float, gen: torch.Generator,
               width: Optional[float] = None) -> torch.Tensor:
    """The ``k`` samples of one class nearest to difficulty quantile ``target``.

    Args:
        quantiles: (n,) difficulty quantiles in [0, 1].
        k: samples to keep, 1 <= k <= n.
        target: quantile to centre on.
        gen: seeded generator (tie-breaking, band draws).
        width: if given, draw ``k`` uniformly from ``|q - target| <= width / 2``
            when that band holds at least ``k`` samples.

    Returns:
        (k,) int64 distinct indices into ``quantiles``.
    """
    n = len(quantiles)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    perm = torch.randperm(n, generator=gen)
    dist = (quantiles.double()[perm] - float(target)).abs()
    if width is not None:
        band = perm[dist <= float(width) / 2 + 1e-12]  # already in random order
        if len(band) >= k:
            return band[:k]
    return perm[torch.sort(dist, stable=True).indices[:k]]


@register("cad_prune", hparams=(
    HParam("score", str, "el2n", "", "difficulty score whose per-class quantiles are targeted", "ddlib",
           choices=KINDS),
    HParam("width", float, None, "quantile", "draw uniformly from the band |q - t| <= width / 2 "
           "instead of the nearest; unset = nearest", "ddlib", low=0.0, high=1.0),
) + KNOB_HPARAMS + score_hparams(KINDS))
def select_cad_prune(train, ipc: int, *, seed: int, ctx, score: str = "el2n",
                     width: Optional[float] = None, budget: Optional[float] = None,
                     t_min: float = KNOBS["t_min"], t_max: float = KNOBS["t_max"], e0: float = KNOBS["e0"],
                     e_max: float = KNOBS["e_max"], epochs: Optional[int] = None,
                     n_models: Optional[int] = None, score_seed: Optional[int] = None):
    """Per class, the ``ipc`` samples nearest the budget's target difficulty quantile.

    Args:
        score: difficulty score, "el2n" (default) or "forgetting".
        width: optional band width in quantile units (see :func:`cad_select`).
        budget: full-pool epochs, only used when ``ctx.budget`` is None.
        t_min, t_max, e0, e_max: the knobs of :func:`cad_target`.
        epochs, n_models, score_seed: the score hp (:func:`scores.score_hparams`).

    Returns:
        ((K * ipc,) int64 indices grouped by class, (N,) scores).
    """
    if score not in KINDS:
        raise DDLibError(f"cad_prune: unknown score {score!r}; choose one of: {', '.join(KINDS)}")
    if ctx.budget is not None and budget is not None and float(budget) != float(ctx.budget):
        raise DDLibError(f"cad_prune: hp budget={budget!r} contradicts the run's budget {ctx.budget!r}")
    b = ctx.budget if ctx.budget is not None else budget
    if b is None:
        raise DDLibError("cad_prune needs the training budget (the runner sets it; "
                         "direct calls pass hp budget=...)")
    if not float(b) > 0:
        raise DDLibError(f"cad_prune: budget must be > 0, got {b!r}")
    knobs = {"t_min": float(t_min), "t_max": float(t_max), "e0": float(e0), "e_max": float(e_max)}
    hp = dict(epochs=epochs, n_models=n_models, score_seed=score_seed)
    e = passes_per_sample(b, len(train.train_y), train.num_classes, ipc)
    try:
        t = cad_target(e, **knobs)
    except ValueError as err:
        raise DDLibError(f"cad_prune: {err}") from None
    scores, _ = selector_scores(score, train, ctx, seed, hp)
    g = generator(seed, "select")
    picks = []
    for c in range(train.num_classes):
        idx = train.class_indices(c).cpu()
        picks.append(idx[cad_select(difficulty_quantiles(scores[idx]), ipc, t, g, width)])
    return torch.cat(picks), scores


select_cad_prune.uses_budget = True
