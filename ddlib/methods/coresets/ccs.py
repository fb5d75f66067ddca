"""Coverage-centric coreset selection (CCS; Zheng et al., *Coverage-centric Coreset
Selection for High Pruning Rates*, ICLR 2023, Alg. 1), per class.

For the ``n`` samples of a class and a budget of ``k = ipc``:

1. *Hard cutoff*: drop the ``floor(beta * n)`` hardest samples (highest score;
   likely mislabeled or atypical), never so many that fewer than ``k`` remain.
2. *Strata*: split the range of the remaining scores into ``strata`` equal-width
   bins (default 50, the paper's choice).
3. *Budget allocation*: visit the non-empty strata in increasing order of size;
   with ``b`` budget and ``r`` strata left, stratum ``B`` receives
   ``m_B = min(|B|, floor(b / r))`` samples drawn uniformly at random (seeded).
   Each stratum receives no more than the average left, so small strata are
   taken whole and the rest flows to the large ones; the budget is always spent
   exactly (``b - m_B <= sum of the remaining strata`` is an invariant).

Cutoff rate ``beta`` (hp): the paper tunes it per pruning rate -- 0 to 10 % for
low and moderate rates, about 30 % at 90 % pruning on CIFAR-10 (their released
scripts' ``mis_ratio``).  Without an hp the rule here is piecewise linear in
the class's pruning rate ``p = 1 - ipc / n``: ``beta = 0.1`` for ``p <= 0.7``,
rising linearly to ``0.3`` at ``p = 0.9`` and constant beyond
(:func:`default_beta`).  Condensation budgets (ipc 1-50 of thousands) are all
at ``p > 0.9``, so the default there is 0.3.

Scores (hp ``score``): ``"el2n"`` (default) or ``"forgetting"``, higher = harder,
from :mod:`ddlib.methods.coresets.scores` (cached, charged to the build); plus the
score hp ``epochs``, ``n_models``, ``score_seed``.
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

CCS_HPARAMS = (
    HParam("score", str, "el2n", "", "difficulty score the strata are drawn on", "paper (EL2N, forgetting, AUM)",
           choices=KINDS),
    HParam("beta", float, None, "fraction", "hard-cutoff rate; unset = default_beta of the class's pruning "
           "rate (0.3 at condensation budgets)", "paper (tuned per pruning rate; piecewise-linear rule: ddlib)",
           low=0.0, high=1.0, high_open=True),
    HParam("strata", int, 50, "bins", "equal-width score strata", "paper", low=1),
) + score_hparams(KINDS)


def default_beta(pruning_rate: float) -> float:
    """Hard-cutoff rate for a pruning rate in [0, 1]: 0.1 up to 0.7, linear to 0.3 at 0.9, then 0.3."""
    p = min(max(float(pruning_rate), 0.0), 1.0)
    if p <= 0.7:
        return 0.1
    if p >= 0.9:
        return 0.3
    return 0.1 + (p - 0.7) / 0.2 * 0.2


def stratify(scores: torch.Tensor, strata: int) -> torch.Tensor:
    """Equal-width bin (0 .. strata-1) of each score over [min, max]; one bin if all are equal."""
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        return torch.zeros(len(scores), dtype=torch.long)
    b = torch.floor((scores.double() - lo) / ((hi - lo) / strata)).long()
    return b.clamp_(0, strata - 1)


def ccs_select(scores: torch.Tensor, k: int, beta: float, strata: int,
               gen: torch.Generator) -> torch.Tensor:
    """CCS on one class: hard cutoff ``beta``, ``strata`` bins, smallest-stratum-first allocation.

    Args:
        scores: (n,) difficulty, higher = harder.
        k: samples to keep, 1 <= k <= n.
        beta: fraction of the hardest samples dropped first (capped so that
            ``k`` remain); ties at the cutoff broken by ``gen``.
        strata: number of equal-width score bins.
        gen: seeded generator for tie-breaking and the draws within strata.

    Returns:
        (k,) int64 distinct indices into ``scores``.
    """
    n = len(scores)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if not 0.0 <= beta < 1.0 or strata < 1:
        raise ValueError(f"need 0 <= beta < 1 and strata >= 1, got beta={beta}, strata={strata}")
    n_cut = min(int(math.floor(beta * n)), n - k)
    perm = torch.randperm(n, generator=gen)
    hard_first = perm[torch.sort(scores.float()[perm], descending=True, stable=True).indices]
    keep = hard_first[n_cut:]
    bins = stratify(scores.float()[keep], strata)
    groups = [keep[bins == b] for b in range(strata)]
    groups = sorted((g for g in groups if len(g)), key=len)  # stable: ties by score order
    budget, picks = k, []
    for r, g in zip(range(len(groups), 0, -1), groups):
        m = min(len(g), budget // r)
        if m:
            picks.append(g[torch.randperm(len(g), generator=gen)[:m]])
        budget -= m
    out = torch.cat(picks) if picks else torch.empty(0, dtype=torch.long)
    assert len(out) == k and budget == 0, "CCS allocation must spend the budget exactly"
    return out


@register("ccs", hparams=CCS_HPARAMS)
def select_ccs(train, ipc: int, *, seed: int, ctx, score: str = "el2n",
               beta: Optional[float] = None, strata: int = 50, epochs: Optional[int] = None,
               n_models: Optional[int] = None, score_seed: Optional[int] = None):
    """CCS per class (Zheng et al. 2023, Alg. 1) on EL2N or forgetting scores.

    Args:
        score: "el2n" (default) or "forgetting".
        beta: hard-cutoff rate; default :func:`default_beta` of the class's pruning rate.
        strata: number of equal-width score strata (default 50).
        epochs, n_models, score_seed: the score hp (:func:`scores.score_hparams`).

    Returns:
        ((K * ipc,) int64 indices grouped by class, (N,) scores).
    """
    hp = dict(epochs=epochs, n_models=n_models, score_seed=score_seed)
    if score not in KINDS:
        raise DDLibError(f"ccs: unknown score {score!r}; choose one of: {', '.join(KINDS)}")
    if beta is not None and not 0.0 <= float(beta) < 1.0:
        raise DDLibError(f"ccs: beta must be in [0, 1), got {beta!r}")
    if int(strata) < 1:
        raise DDLibError(f"ccs: strata must be >= 1, got {strata!r}")
    scores, _ = selector_scores(score, train, ctx, seed, hp)
    g = generator(seed, "select")
    picks = []
    for c in range(train.num_classes):
        idx = train.class_indices(c).cpu()
        b = float(beta) if beta is not None else default_beta(1.0 - ipc / len(idx))
        picks.append(idx[ccs_select(scores[idx], ipc, b, int(strata), g)])
    return torch.cat(picks), scores
