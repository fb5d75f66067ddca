"""EL2N pruning (Paul et al., *Deep Learning on a Data Diet*, NeurIPS 2021).

Scores (Sec. 2, ``E_w ||softmax(f_w(x)) - onehot(y)||_2`` over ``n_models``
early-trained networks) come from :mod:`ddlib.methods.coresets.scores`, cached and
charged to every build that uses them.  Two class-balanced selectors:

* ``el2n_hard`` keeps the highest scores of each class (the paper's rule:
  prune the easiest, keep the hard, informative examples);
* ``el2n_easy`` keeps the lowest (the regime of Sorscher et al. 2022 when data
  is scarce, and the natural control for ``el2n_hard``).

Hyperparameters: ``epochs``, ``n_models``, ``score_seed`` (see :func:`scores.get_scores`).
"""
from __future__ import annotations

from typing import Optional

from ddlib.core.seeding import generator
from ddlib.methods.coresets import register
from ddlib.methods.coresets.scores import score_hparams, selector_scores, top_per_class

EL2N_HPARAMS = score_hparams(("el2n",))


def _select(train, ipc: int, seed: int, ctx, hp: dict, largest: bool):
    scores, _ = selector_scores("el2n", train, ctx, seed, hp)
    return top_per_class(train, scores, ipc, largest=largest, gen=generator(seed, "select")), scores


@register("el2n_hard", hparams=EL2N_HPARAMS)
def select_el2n_hard(train, ipc: int, *, seed: int, ctx, epochs: Optional[int] = None,
                     n_models: Optional[int] = None, score_seed: Optional[int] = None):
    """The ``ipc`` highest-EL2N samples of each class (Paul et al. 2021, Sec. 2 / Fig. 1).

    Returns:
        ((K * ipc,) int64 indices grouped by class, (N,) EL2N scores).
    """
    hp = dict(epochs=epochs, n_models=n_models, score_seed=score_seed)
    return _select(train, ipc, seed, ctx, hp, largest=True)


@register("el2n_easy", hparams=EL2N_HPARAMS)
def select_el2n_easy(train, ipc: int, *, seed: int, ctx, epochs: Optional[int] = None,
                     n_models: Optional[int] = None, score_seed: Optional[int] = None):
    """The ``ipc`` lowest-EL2N samples of each class (the easy end, cf. Sorscher et al. 2022).

    Returns:
        ((K * ipc,) int64 indices grouped by class, (N,) EL2N scores).
    """
    hp = dict(epochs=epochs, n_models=n_models, score_seed=score_seed)
    return _select(train, ipc, seed, ctx, hp, largest=False)
