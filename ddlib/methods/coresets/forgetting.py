"""Forgetting-score pruning (Toneva et al., ICLR 2019).

Keeps, per class, the ``ipc`` examples with the most forgetting events
(Sec. 2: a correct -> incorrect transition between consecutive presentations;
never-learned examples count as the most forgotten).  Counts come from
:mod:`ddlib.methods.coresets.scores` (per-presentation records over a full run of
``teacher_epochs``, summed over ``n_models`` seeds), cached and charged to the
build.  Forgetting counts are small integers with many ties (most examples are
never forgotten); ties are broken by a seeded random permutation.

Hyperparameters: ``epochs``, ``n_models``, ``score_seed`` (see :func:`scores.get_scores`).
"""
from __future__ import annotations

from typing import Optional

from ddlib.core.seeding import generator
from ddlib.methods.coresets import register
from ddlib.methods.coresets.scores import score_hparams, selector_scores, top_per_class


@register("forgetting", hparams=score_hparams(("forgetting",)))
def select_forgetting(train, ipc: int, *, seed: int, ctx, epochs: Optional[int] = None,
                      n_models: Optional[int] = None, score_seed: Optional[int] = None):
    """The ``ipc`` most-forgotten samples of each class, ties in seeded random order.

    Returns:
        ((K * ipc,) int64 indices grouped by class, (N,) forgetting counts as float32).
    """
    hp = dict(epochs=epochs, n_models=n_models, score_seed=score_seed)
    scores, _ = selector_scores("forgetting", train, ctx, seed, hp)
    return top_per_class(train, scores, ipc, largest=True, gen=generator(seed, "select")), scores
