"""DC: Dataset Condensation with Gradient Matching (Zhao, Mopuri & Bilen, ICLR 2021).

The synthetic set ``S`` is learnt so that, along the training trajectory of a
randomly initialised network, the gradients of the classification loss on
``S`` match those on the real data, class by class (the curriculum gradient
matching objective, Eq. 9 of the paper)::

    min_S  E_theta0 [ sum_t sum_c  D( grad L(S_c; theta_t), grad L(R_c; theta_t) ) ]

``D`` is the layer-wise distance of the paper (Eq. 10; the reference code's
"ours" metric), see :func:`gradient_distance`.  One *iteration* draws a fresh
network; ``outer_loop`` times it takes one SGD step on ``S`` (lr 0.1,
momentum 0.5) and, except after the last, trains the network for
``inner_loop`` epochs on the detached ``S`` (plain SGD, lr 0.01, no momentum,
as the reference ``main.py``; batches of ``batch_train``: one step per epoch
when ``K * ipc <= batch_train``).  DC's images start from N(0, 1) noise on
``paper`` (the reference's ``--init noise`` default) and from random real
images on the CPU profiles (profile field ``gradient_matching.dc_init``); DSA's
always from real images (its README's ``--init real``).

Runs long enough to repay compiling (``paper``) compile the synthetic side
(:class:`Compiled`: the synthetic gradients, the matching loss's second-order
backward through them, the inner loop's forward) and, on ``paper``, take the real
gradient in bf16 (the profile's ``real_precision``: within the target's own
sampling noise, tests/test_distill_speed_equivalence.py).

DSA (Zhao & Bilen, ICML 2021) is the same loop with siamese augmentation; it
lives here as :func:`match_gradients` with a non-empty ``strategy`` and is
registered by :mod:`ddlib.methods.distill.dsa`.

Deviation from the reference code (documented, deliberate): before each
outer step a network with batch norm gets its normalisation statistics from a
real batch (16 images per class) and is then frozen to eval mode, as there;
but the statistics are *exactly* that batch's (cumulative average after a
reset) where the reference's single momentum-0.1 forward keeps ~90 % of the
previous running values.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from tqdm import tqdm

from ddlib.core.config import nearest_ipc
from ddlib.core.hparams import HParam
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import generator, stream_seed
from ddlib.engine import augment as aug
from ddlib.engine.fastpath import MICRO_BYTES, Engine, Slicer, compile_failed, per_sample, profile, shared_compile
from ddlib.engine.models import create_model
from ddlib.methods.distill import real_init, register
from ddlib.methods.distill.dm import BATCH_REAL_HP, SYNTH_MODEL_HP

# (outer_loop, inner_loop) of the paper / reference ``get_loops`` at IPC 1, 10, 50; a
# profile divides them by its ``gradient_matching.loop_divisor`` and sets the iterations
# (:class:`ddlib.core.config.GradientMatchingDefaults`, part of the cache keys).
PAPER_LOOPS = {1: (1, 1), 10: (10, 50), 50: (50, 10)}
BN_PER_CLASS = 16     # real images per class that set batch-norm statistics


def gradient_distance(grads_a: Sequence[torch.Tensor], grads_b: Sequence[torch.Tensor],
                      eps: float = 1e-6) -> torch.Tensor:
    """Layer-wise gradient distance of DC (Eq. 10; the reference's ``distance_wb``).

    Every parameter gradient with more than one dimension is reshaped to
    ``(out, -1)``; the distance sums ``1 - cos(a_i, b_i)`` over its ``out`` rows
    and over parameters.  1-D gradients (biases, norm affine) contribute 0.
    ``eps`` is added to the product of the row norms, as in the reference, so
    an all-zero row contributes 1 even when both sides are zero.

    Args:
        grads_a: per-parameter gradients.
        grads_b: gradients of the same shapes, in the same order.

    Returns:
        0-dim tensor, differentiable w.r.t. both arguments.
    """
    if len(grads_a) != len(grads_b):
        raise ValueError(f"{len(grads_a)} vs {len(grads_b)} gradient tensors")
    total = grads_a[0].new_zeros(()) if len(grads_a) else torch.zeros(())
    for a, b in zip(grads_a, grads_b):
        if a.shape != b.shape:
            raise ValueError(f"gradient shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
        if a.dim() < 2:
            continue
        a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        cos = (a2 * b2).sum(-1) / (a2.norm(dim=-1) * b2.norm(dim=-1) + eps)
        total = total + (1 - cos).sum()
    return total


def paper_loops(ipc: int, divisor: int = 1) -> tuple[int, int]:
    """(outer_loop, inner_loop) of the paper for the nearest of IPC 1/10/50, ``// divisor``.

    Nearest by absolute difference, ties to the smaller IPC (2-5 -> 1, 6-30 -> 10,
    31+ -> 50); each count is at least 1 after dividing.
    """
    return tuple(max(1, v // divisor) for v in nearest_ipc(tuple(PAPER_LOOPS.items()), ipc))


def _sample(ix: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` distinct members of ``ix`` (all of them when fewer), drawn with ``g``."""
    return ix[torch.randperm(len(ix), generator=g)[:n]]


def siamese_augment(real: torch.Tensor, syn: torch.Tensor, strategy: str, gen: torch.Generator,
                    img_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DSA's siamese augmentation: one op and one parameter row, applied to both batches.

    The op of ``strategy`` and its parameters are drawn once with ``gen`` and
    every sample of ``real`` and ``syn`` is mapped to that row, so both go
    through the identical (differentiable) transform.  ``strategy`` "" returns
    the batches unchanged and draws nothing.
    """
    if not strategy:
        return real, syn
    draw = aug.draw(strategy, 1, gen, img_size)
    same = [aug.apply(x, draw, torch.zeros(len(x), dtype=torch.long)) for x in (real, syn)]
    return same[0], same[1]


def _class_grads(net: nn.Module, x: torch.Tensor, c: int, params, create_graph: bool):
    y = torch.full((len(x),), c, dtype=torch.long, device=x.device)
    return torch.autograd.grad(F.cross_entropy(net(x), y), params, create_graph=create_graph)


def real_class_grads(net: nn.Module, x: torch.Tensor, c: int, params, fwd: Slicer | None = None):
    """Detached gradient of the mean CE of class ``c`` on ``x`` (the matching target), slice by slice.

    ``sum_j grad (1/n) sum_{b in S_j} l_b`` over ``fwd``'s slices ``S_j`` is the
    gradient of the batch mean (another summation order); no graph is kept.
    """
    if fwd is None:
        return [t.detach() for t in _class_grads(net, x, c, params, False)]
    total = None
    for sl in fwd.slices(net, len(x)):
        y = torch.full((sl.stop - sl.start,), c, dtype=torch.long, device=x.device)
        loss = F.cross_entropy(fwd(net, x[sl]), y, reduction="sum") / len(x)
        g = torch.autograd.grad(loss, params)
        total = list(g) if total is None else [a.add_(b) for a, b in zip(total, g)]
    return total


def _forward_with(twin: nn.Module, params: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return functional_call(twin, params, (x,))


def _class_grads_with(twin: nn.Module, params: Dict[str, torch.Tensor], x: torch.Tensor,
                      y: torch.Tensor) -> Dict[str, torch.Tensor]:
    """grad_params CE(twin_params(x), y) by ``torch.func.grad``: differentiable w.r.t. ``x`` by the outer autograd."""
    return torch.func.grad(lambda p: F.cross_entropy(functional_call(twin, p, (x,)), y))(params)


class Compiled:
    """DC/DSA's synthetic-side passes compiled, for instance-norm (or no-norm) matching networks.

    ``train`` is the inner loop's forward and ``syn_grads`` the synthetic
    gradients of the matching loss, whose backward (the second-order part)
    is compiled with them.  Both run a hook-free *twin* of the network on the
    network's own parameters (``functional_call``): the pass counter's hook
    would split the compiled graph (and ``torch.func.grad`` would then run
    eager), so callers count those passes by hand.  The same mathematics:
    tests/test_distill_speed_equivalence.py holds both to the eager passes.
    """

    def __init__(self, net: nn.Module, engine: Optional[Engine] = None, backend: str = "inductor"):
        self.engine = engine or Engine()  # told when a compilation fails
        self.twin = copy.deepcopy(net)
        for m in self.twin.modules():
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
        self._fwd = shared_compile(_forward_with, net, backend)
        self._grads = shared_compile(_class_grads_with, net, backend)

    def train(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``net(x)`` (gradients reach ``net``'s parameters)."""
        return self._fwd(self.twin, dict(net.named_parameters()), x)

    def syn_grads(self, net: nn.Module, x: torch.Tensor, c: int) -> List[torch.Tensor]:
        """:func:`_class_grads` with ``create_graph``: gradients w.r.t. the parameters, differentiable in ``x``."""
        y = torch.full((len(x),), c, dtype=torch.long, device=x.device)
        params = {n: p.detach() for n, p in net.named_parameters()}
        grads = self._grads(self.twin, params, x, y)
        return [grads[n] for n in params]


def _freeze_batchnorm(net: nn.Module, real: torch.Tensor) -> None:
    """Set every batch norm's statistics to those of ``real``, then put it in eval mode."""
    bns = [mod for mod in net.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch, exactly its statistics
    net.train()
    with torch.no_grad():
        net(real)
    for bn, mom in zip(bns, momenta):
        bn.momentum = mom
        bn.eval()


def _train_net(net, opt, x, y, epochs: int, batch: int, strategy: str, g, g_aug, meter,
               fast: Optional[Compiled] = None) -> None:
    """Inner loop: ``epochs`` epochs of SGD on (x, y), shuffled by ``g``; DSA augments per sample.

    ``fast``: the compiled forward (its passes counted here), or None: ``net``'s own.
    """
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g).to(x.device)
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            xb = aug.augment(x[idx], strategy, g_aug) if strategy else x[idx]
            out = None
            if fast is not None:
                try:
                    out = fast.train(net, xb)
                    meter.forward(len(xb))
                except Exception as e:  # noqa: BLE001 - any compiler failure: this loop eager
                    compile_failed(fast.engine, e, "the inner loop runs eager")
                    fast = None
            if out is None:
                out = net(xb)
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            meter.backward(len(idx))


def match_gradients(train, ipc: int, *, seed: int, ctx, strategy: str = "", iters: int = 0,
                    outer_loop: int = 0, inner_loop: int = 0, lr_img: float = 0.1,
                    lr_net: float = 0.01, batch_real: int = 0, batch_train: int = 256,
                    model: str = "", init: str = "real"):
    """Distil ``ipc`` images per class by gradient matching (DC, or DSA with ``strategy``).

    Args:
        strategy: DSA ops ("" = DC, no augmentation).  With DSA the real batch
            and the synthetic images of a class share one drawn op and one
            parameter row per outer step (siamese), and the inner loop
            augments each synthetic sample independently, as the reference.
        iters: iterations, each with a fresh network; 0 = the profile's
            ``gradient_matching.iters`` (1000 on ``paper``), or when that is 0
            ``max(1, synth_iters // loop_divisor)`` (smoke, default: // 5).
        outer_loop: image updates per network; 0 = the paper's for the
            nearest IPC of 1/10/50 (see :func:`paper_loops`), divided by the
            profile's ``gradient_matching.loop_divisor`` (1 on ``paper``, else 5;
            at least 1).
        inner_loop: network epochs on ``S`` between image updates; 0 = as ``outer_loop``.
        lr_img: SGD learning rate on pixels (momentum 0.5).
        lr_net: SGD learning rate of the inner loop (plain SGD, no momentum).
        batch_real: real images per class per outer step (profile's when 0).
        batch_train: minibatch of the inner loop.
        model: matched architecture (profile's ``synth_model`` when empty).
        init: "real" (random real images) or "noise" (N(0, 1) in normalised units).

    Returns:
        images (K*ipc, C, H, W) initialised by ``init``, hard
        labels (K*ipc,), extras with ``loss_curve`` (per iteration, the loss per
        class and outer step), ``final_loss`` and the loop counts used.
    """
    prof, m = ctx.profile, train.meta
    gm = prof.gradient_matching
    iters = iters or gm.iters or max(1, prof.synth_iters // gm.loop_divisor)
    outer, inner = paper_loops(ipc, gm.loop_divisor)
    outer, inner = outer_loop or outer, inner_loop or inner
    batch_real = batch_real or prof.synth_batch_real
    arch = model or prof.synth_model
    k, device = train.num_classes, train.train_x.device
    strategy = aug.resolve(strategy, m.name)
    g, g_aug = generator(seed, "synth"), generator(seed, "synth-dsa")
    pools, syn, labels = real_init(train, ipc, g)
    if init == "noise":
        syn = torch.randn(syn.shape, generator=g).to(device).requires_grad_(True)
    elif init != "real":
        raise DDLibError(f"init must be 'noise' or 'real', got {init!r}")
    opt_img = torch.optim.SGD([syn], lr=lr_img, momentum=0.5)
    probe = create_model(arch, k, m.in_chans, m.img_size, seed=0)  # sizes the slices (seeded: global RNG untouched)
    sample = tuple(train.train_x.shape[1:])
    fwd = Slicer(probe, sample, device, ctx.engine, 3 * profile(probe, sample)[0] * k * batch_real * outer * iters,
                 4 * MICRO_BYTES,  # 64 ConvNet-128 images: measured faster than 32 for these passes
                 precision=prof.real_precision)
    curve = []
    for it in tqdm(range(iters), desc=f"{'dsa' if strategy else 'dc'} ipc={ipc}", disable=ctx.quiet,
                   leave=False):
        net = create_model(arch, k, m.in_chans, m.img_size, seed=stream_seed(seed, f"dc-net-{it}")).to(device)
        ctx.meter.watch(net)
        params = list(net.parameters())
        fast = _compiled(net, fwd)
        opt_net = torch.optim.SGD(params, lr=lr_net)  # plain SGD, as the reference's inner loop
        total = 0.0
        for step in range(outer):
            bn_batch = torch.cat([_sample(ix, BN_PER_CLASS, g) for ix in pools]).to(device)
            _freeze_batchnorm(net, train.train_x[bn_batch])
            loss = torch.zeros((), device=device)
            for c in range(k):
                real = train.train_x[_sample(pools[c], batch_real, g).to(device)]
                mine = syn[c * ipc:(c + 1) * ipc]
                real, mine = siamese_augment(real, mine, strategy, g_aug, m.img_size)
                g_real = real_class_grads(net, real, c, params, fwd)
                g_syn = None
                if fast is not None:
                    try:
                        g_syn = fast.syn_grads(net, mine, c)
                        ctx.meter.forward(len(mine))
                    except Exception as e:  # noqa: BLE001 - any compiler failure: eager from now on
                        compile_failed(fwd.engine, e, "matching eager")
                        fwd.compiled, fast = False, None
                if g_syn is None:
                    g_syn = _class_grads(net, mine, c, params, True)
                ctx.meter.backward(len(real) + ipc)
                loss = loss + gradient_distance(g_syn, g_real)
            opt_img.zero_grad(set_to_none=True)
            loss.backward(inputs=[syn])
            opt_img.step()
            ctx.meter.backward(len(syn))
            total += float(loss.detach())
            if step < outer - 1:
                _train_net(net, opt_net, syn.detach(), labels, inner, batch_train, strategy, g, g_aug,
                           ctx.meter, fast)
        curve.append(total / (k * outer))
        if ctx.on_iter is not None:
            ctx.on_iter(it + 1, syn.detach())
    extras = {"loss_curve": torch.tensor(curve), "final_loss": curve[-1] if curve else float("nan"),
              "outer_loop": outer, "inner_loop": inner}
    return syn.detach(), labels, extras


def _compiled(net: nn.Module, fwd: Slicer) -> Optional[Compiled]:
    """:class:`Compiled` passes for ``net`` when the run compiles (the real batch's slicer decided: ``paper``,
    engine ``compiled``) and ``net`` has no batch norm (whose frozen statistics the twin would not share)."""
    if not fwd.compiled or not per_sample(net):
        return None
    return Compiled(net, fwd.engine)


#: the hyper-parameters of :func:`match_gradients` but ``strategy`` (dc's; dsa adds ``strategy``)
GM_HPARAMS = (
    HParam("iters", int, 0, "iterations", "outer iterations, each with a fresh network; 0 = the profile's "
           "gradient_matching.iters, or when that is 0 max(1, synth_iters // loop_divisor)",
           "paper on paper (1000); scale-down elsewhere",
           profile=("gradient_matching.iters", "synth_iters", "gradient_matching.loop_divisor"), low=0),
    HParam("outer_loop", int, 0, "image updates per network", "0 = the paper's for the nearest IPC of "
           "1/10/50, divided by the profile's gradient_matching.loop_divisor", "paper on paper; scale-down elsewhere",
           profile=("gradient_matching.loop_divisor",), low=0),
    HParam("inner_loop", int, 0, "epochs on the set", "network epochs between image updates; 0 = as outer_loop",
           "paper on paper; scale-down elsewhere", profile=("gradient_matching.loop_divisor",), low=0),
    HParam("lr_img", float, 0.1, "per SGD step", "SGD learning rate on the pixels (momentum 0.5)",
           "reference code", low=0.0),
    HParam("lr_net", float, 0.01, "per SGD step", "SGD learning rate of the inner loop (no momentum)",
           "reference code", low=0.0),
    BATCH_REAL_HP,
    HParam("batch_train", int, 256, "images", "minibatch of the inner loop", "reference code", low=1),
    SYNTH_MODEL_HP,
)


@register("dc", hparams=GM_HPARAMS + (
    HParam("init", str, "", "", "initial images: 'noise' (N(0, 1)) or 'real'; '' = the profile's "
           "gradient_matching.dc_init", "reference code on paper (noise); scale-down elsewhere (real)",
           profile=("gradient_matching.dc_init",), choices=("", "noise", "real")),))
def distill_dc(train, ipc: int, *, seed: int, ctx, iters: int = 0, outer_loop: int = 0, inner_loop: int = 0,
               lr_img: float = 0.1, lr_net: float = 0.01, batch_real: int = 0, batch_train: int = 256,
               model: str = "", init: str = ""):
    """DC (Zhao, Mopuri & Bilen, ICLR 2021): gradient matching without augmentation.

    Args:
        iters, outer_loop, inner_loop, lr_img, lr_net, batch_real, batch_train, model:
            see :func:`match_gradients`.
        init: initial images ("" = the profile's ``gradient_matching.dc_init``: noise
            on ``paper``, as the reference, real images on the CPU profiles).

    Returns:
        images (K*ipc, C, H, W), hard labels (K*ipc,), extras with the loss curve.
    """
    return match_gradients(train, ipc, seed=seed, ctx=ctx, strategy="", iters=iters, outer_loop=outer_loop,
                           inner_loop=inner_loop, lr_img=lr_img, lr_net=lr_net, batch_real=batch_real,
                           batch_train=batch_train, model=model,
                           init=init or ctx.profile.gradient_matching.dc_init)
