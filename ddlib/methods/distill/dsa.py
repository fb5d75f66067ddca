"""DSA: Dataset Condensation with Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021).

DC's gradient matching (:mod:`ddlib.methods.distill.dc`) with the matching loss taken
on augmented views (Eq. 4 of the DSA paper)::

    min_S  D( grad L(A(S_c, w); theta_t), grad L(A(R_c, w); theta_t) )

where the *same* transformation ``w`` (one DSA op, one parameter row drawn
per class and outer step) is applied to the real batch ``R_c`` and to the
synthetic images ``S_c`` (siamese augmentation), and gradients flow through
the differentiable ``A`` into ``S``.  The network's inner-loop training on
``S`` also uses DSA, with independent per-sample parameters, as the
reference code.  The images start from random real images (the DSA README's
``--init real``).  Everything else (loops, learning rates, distance) is DC's,
from the one shared loop :func:`~ddlib.methods.distill.dc.match_gradients`.
"""
from __future__ import annotations

from ddlib.methods.distill import register
from ddlib.methods.distill.dc import GM_HPARAMS, match_gradients
from ddlib.methods.distill.dm import DSA_STRATEGY, STRATEGY_HP


@register("dsa", hparams=(STRATEGY_HP,) + GM_HPARAMS)
def distill_dsa(train, ipc: int, *, seed: int, ctx, strategy: str = DSA_STRATEGY, iters: int = 0,
                outer_loop: int = 0, inner_loop: int = 0, lr_img: float = 0.1, lr_net: float = 0.01,
                batch_real: int = 0, batch_train: int = 256, model: str = ""):
    """Distil ``ipc`` images per class by gradient matching on siamese-augmented views.

    Args:
        strategy: DSA ops, "_"-separated; default "dsa": the reference's list for
            the dataset (with flip on Fashion-MNIST and CIFAR, without on digits).
        iters, outer_loop, inner_loop, lr_img, lr_net, batch_real, batch_train, model:
            DC's hyperparameters, see :func:`~ddlib.methods.distill.dc.match_gradients`.

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,), extras with the loss curve.
    """
    return match_gradients(train, ipc, seed=seed, ctx=ctx, strategy=strategy, iters=iters,
                           outer_loop=outer_loop, inner_loop=inner_loop, lr_img=lr_img, lr_net=lr_net,
                           batch_real=batch_real, batch_train=batch_train, model=model)
