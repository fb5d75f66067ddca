"""The distillers' objectives as scores of any condensed set (used by the DCS chapter).

Each distiller optimises its own objective; this module evaluates that
objective, at a fixed point instead of optimising it, on *any* condensed set
(random real subsets, coresets, distilled sets).  The run layer
(:func:`ddlib.run.measure.score_sets`) scores stored sets with it and the
analysis layer (:mod:`ddlib.analysis.dcs`) correlates the scores with accuracy.

Every objective has one signature::

    objective(train: Split, images (M, C, H, W), labels (M,) or (M, K), *, seed: int,
              ctx: Context, arch: str = "", cache: ReferenceCache = None, **hp) -> float
    (lower = closer to the real data)

and is the distiller's own loss, evaluated at a fixed point instead of
optimised: the same seed gives every set the same random networks, real
statistics, expert segments and augmentations, so two sets differ only by
their images.  The real-data side of an objective (class means, class
gradients, experts, the BN teacher) depends on the seed, not on the set: pass
one :class:`ReferenceCache` to score many sets and it is computed once.
Soft labels are reduced to their arg-max class (every objective below is
defined on class-conditional sets).

* ``dm``  Zhao & Bilen (WACV 2023) Eq. 4: squared distance of per-class mean
  embeddings under ``n_nets`` random networks (siamese DSA per class), the
  real means taken over the whole train pool; summed over classes, averaged
  over networks.
* ``dc``  Zhao, Mopuri & Bilen (ICLR 2021) Eq. 10: layer-wise gradient
  distance per class between the set and the whole class pool, at the
  initialisation of ``n_nets`` random networks (DC's curriculum also visits
  states trained on the set itself; those depend on the set, so only the
  initialisations are a common yardstick); mean over classes and networks.
* ``mtt`` Cazenavette et al. (CVPR 2022) Eq. 2: from expert checkpoint
  ``theta*_t``, ``syn_steps`` SGD steps on the (augmented) set with step
  size alpha, then ``||theta_N - theta*_{t+M}||^2 / ||theta*_t -
  theta*_{t+M}||^2``; mean over up to ``max_pairs`` (expert, start) pairs,
  at the best alpha of a small grid (MTT learns alpha with the images).
  ``arch`` picks the experts' architecture (trained once, cached like MTT's).
* ``sre2l`` Yin, Xing & Shen (NeurIPS 2023) Eq. 5: the BN-statistics term,
  the set's per-layer batch statistics against the BN teacher's running ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ddlib.core.config import config_hash
from ddlib.core.cost import Meter
from ddlib.core.registry import Registry
from ddlib.core.seeding import generator, stream_seed
from ddlib.engine import augment as aug
from ddlib.engine.models import MODELS, create_model
from ddlib.methods.context import Context
from ddlib.methods.distill.dc import BN_PER_CLASS, _class_grads, _freeze_batchnorm, gradient_distance
from ddlib.methods.distill.dm import DSA_STRATEGY, class_means
from ddlib.methods.distill.mtt import _defaults as mtt_defaults
from ddlib.methods.distill.mtt import expert_config, get_experts, trajectory_loss, unflatten
from ddlib.methods.distill.sre2l import batch_stats, bn_layers, bn_matching_loss, bn_teacher, default_bn_arch

OBJECTIVES = Registry("DCS objective")
register = OBJECTIVES.register

DM_NETS = 8       # random networks averaged by the DM objective
DC_NETS = 4       # random initialisations averaged by the DC objective
MTT_MAX_PAIRS = 2  # (expert, start epoch) segments averaged by the MTT objective
MTT_LR_FACTORS = (0.25, 0.5, 1.0)  # step sizes tried, x the experts' lr (MTT's alpha starts there)
EXPERT_LR, EXPERT_BATCH = 0.01, 256  # the MTT distiller's expert defaults (its lr_teacher too)


@dataclass
class ReferenceCache:
    """Real-data quantities shared by every set scored with the same seed (class means,
    class gradients, experts, the BN teacher), built on first use.

    The caller owns it: one per scoring pass (:func:`ddlib.run.measure.score_sets`), so
    nothing outlives the sets it served.  At most ``max_entries`` are held; when full it
    starts over (the entries are cheap to rebuild next to scoring a set).
    """

    max_entries: int = 64
    entries: Dict[tuple, object] = field(default_factory=dict)

    def get(self, key: tuple, build: Callable[[], object]):
        """The entry of ``key``, built by ``build()`` if absent."""
        if key not in self.entries:
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
            self.entries[key] = build()
        return self.entries[key]


def _cache(cache: Optional[ReferenceCache]) -> ReferenceCache:
    """``cache``, or a one-call cache when the caller keeps none."""
    return cache if cache is not None else ReferenceCache()


def _data_key(train) -> tuple:
    return (train.meta.name, train.meta.fingerprint, len(train.train_y), str(train.train_x.device))


def hard_labels(labels: torch.Tensor) -> torch.Tensor:
    """(M,) class indices of hard (M,) or soft (M, K) labels (arg-max)."""
    return labels.argmax(1) if labels.dim() == 2 else labels.long()


def _net(arch: str, train, seed: int) -> torch.nn.Module:
    m = train.meta
    net = create_model(arch, m.num_classes, m.in_chans, m.img_size, seed=seed).to(train.train_x.device)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@register("dm")
def dm_objective(train, images, labels, *, seed: int, ctx: Context, arch: str = "",
                 cache: Optional[ReferenceCache] = None, n_nets: int = DM_NETS,
                 strategy: str = DSA_STRATEGY) -> float:
    """DM's Eq. 4 with the whole pool as the real side (see the module docstring).

    Args:
        train: the split whose train pool is the real data.
        images: (M, C, H, W) normalised set; labels: (M,) or (M, K).
        seed: fixes the random networks and the per-class DSA parameters.
        ctx: build context (its profile's ``synth_model`` when ``arch`` is empty).
        n_nets: random networks averaged.
        strategy: DSA ops ("dsa" = the reference's list for the dataset); one op and one
            parameter row per class, shared by both sides (as the ``dm`` distiller).

    Returns:
        mean over networks of sum_c ||mean psi(A(R_c)) - mean psi(A(S_c))||^2.
    """
    arch = arch or ctx.profile.synth_model
    strategy = aug.resolve(strategy, train.meta.name)
    k, device = train.num_classes, train.train_x.device
    y = hard_labels(labels).to(device)

    def draws():
        out = []
        for i in range(n_nets):
            g = generator(seed, f"dcs-dm-aug-{i}")
            net = _net(arch, train, stream_seed(seed, f"dcs-dm-net-{i}")).train()
            params = aug.draw_mixed(strategy, k, g, train.meta.img_size)
            with torch.no_grad():
                real = class_means(net.embed(aug.apply_mixed(train.train_x, params.take(train.train_y))),
                                   train.train_y, k)
            out.append((net, params, real))
        return out

    total = 0.0
    for net, params, real in _cache(cache).get(("dm", _data_key(train), arch, seed, n_nets, strategy), draws):
        with torch.no_grad():
            syn = class_means(net.embed(aug.apply_mixed(images.to(device), params.take(y))), y, k)
        total += float(((real - syn) ** 2).sum())
    return total / n_nets


def _frozen_class_grads(net, x: torch.Tensor, c: int) -> List[torch.Tensor]:
    """DC's per-class CE gradient (:func:`ddlib.methods.distill.dc._class_grads`) of a frozen network."""
    params = list(net.parameters())
    with torch.enable_grad():
        for p in params:
            p.requires_grad_(True)
        grads = _class_grads(net, x, c, params, False)
        for p in params:
            p.requires_grad_(False)
    return [g.detach() for g in grads]


@register("dc")
def dc_objective(train, images, labels, *, seed: int, ctx: Context, arch: str = "",
                 cache: Optional[ReferenceCache] = None, n_nets: int = DC_NETS) -> float:
    """DC's layer-wise gradient distance (Eq. 10) between the set and the real pool, per class.

    Batch-norm networks get their statistics from ``BN_PER_CLASS`` real images
    per class and are frozen, as DC does before every outer step.

    Returns:
        mean over ``n_nets`` initialisations and the K classes of
        D(grad CE(S_c), grad CE(R_c)), R_c the whole class pool.
    """
    arch = arch or ctx.profile.synth_model
    k, device = train.num_classes, train.train_x.device
    y = hard_labels(labels).to(device)
    x = images.to(device)

    def draws():
        out = []
        for i in range(n_nets):
            net = _net(arch, train, stream_seed(seed, f"dcs-dc-net-{i}"))
            g = generator(seed, f"dcs-dc-bn-{i}")
            pools = [train.class_indices(c).cpu() for c in range(k)]
            bn = torch.cat([ix[torch.randperm(len(ix), generator=g)[:BN_PER_CLASS]] for ix in pools])
            _freeze_batchnorm(net, train.train_x[bn.to(device)])
            net.eval()  # instance norm has no state: eval == train; batch norm now frozen
            real = [_frozen_class_grads(net, train.train_x[train.train_y == c], c) for c in range(k)]
            out.append((net, real))
        return out

    total = 0.0
    for net, real in _cache(cache).get(("dc", _data_key(train), arch, seed, n_nets), draws):
        for c in range(k):
            mine = x[y == c]
            if len(mine):
                total += float(gradient_distance(_frozen_class_grads(net, mine, c), real[c]))
    return total / (n_nets * k)


@register("mtt")
def mtt_objective(train, images, labels, *, seed: int, ctx: Context, arch: str = "",
                  cache: Optional[ReferenceCache] = None, lrs: Sequence[float] = (),
                  max_pairs: int = MTT_MAX_PAIRS,
                  strategy: str = DSA_STRATEGY) -> float:
    """MTT's normalised trajectory distance (Eq. 2) of the set, from cached expert trajectories.

    The experts are those the ``mtt`` distiller trains for the profile (same
    count, epochs, lr, batch and augmentation) with architecture ``arch``.
    From each of up to ``max_pairs`` (expert, start epoch) segments, drawn with
    ``seed``, the set takes ``syn_steps`` full-set SGD steps (augmented per step
    from ``seed``).  MTT learns one step size alpha with its images; a set
    that was not distilled has none, so every set gets the best alpha of the
    grid ``lrs`` (default: the experts' lr times :data:`MTT_LR_FACTORS`).

    Returns:
        min over alpha of the mean over segments of
        ||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2.
    """
    prof = ctx.profile
    arch = arch or prof.synth_model
    strategy = aug.resolve(strategy, train.meta.name)
    d = mtt_defaults(prof, len(images) // max(1, train.num_classes))
    m_ep = d["expert_epochs"]
    max_start = min(d["max_start_epoch"], d["expert_epochs_total"] - m_ep + 1)
    cfg = expert_config(train, arch, d["n_experts"], d["expert_epochs_total"], EXPERT_LR, EXPERT_BATCH, strategy)
    cache = _cache(cache)
    trajs = cache.get(("mtt", config_hash(cfg), str(ctx.store.root)),
                      lambda: get_experts(train, ctx.store, cfg, ctx.quiet)[0])
    pairs = [(e, t) for e in range(d["n_experts"]) for t in range(max_start)]
    order = torch.randperm(len(pairs), generator=generator(seed, "dcs-mtt-pairs"))[:max_pairs].tolist()
    device = train.train_x.device
    net = cache.get(("mtt-net", arch, _data_key(train)), lambda: _net(arch, train, 0).train())
    x, y = images.to(device), hard_labels(labels).to(device)
    lrs = list(lrs or [EXPERT_LR * f for f in MTT_LR_FACTORS])

    def grad_at(theta: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            return torch.autograd.grad(F.cross_entropy(functional_call(net, unflatten(net, th), (xb,)), y), th)[0]

    totals = [0.0] * len(lrs)
    for j in order:
        e, t = pairs[j]
        start, target = trajs[e, t].to(device), trajs[e, t + m_ep].to(device)
        g_aug = generator(seed, f"dcs-mtt-aug-{e}-{t}")
        thetas = [start] * len(lrs)
        for s in range(d["syn_steps"]):
            # every alpha sees the same views; the first step is taken from the same start by all of them
            xb = aug.augment(x, strategy, g_aug) if strategy else x
            grads = [grad_at(start, xb)] * len(lrs) if s == 0 else [grad_at(th, xb) for th in thetas]
            thetas = [(th - lr * gr).detach() for th, lr, gr in zip(thetas, lrs, grads)]
        for i, th in enumerate(thetas):
            totals[i] += float(trajectory_loss(th, start, target))
    return min([float("inf")] + [total / len(order) for total in totals])  # a NaN alpha is never the best


@register("sre2l")
def sre2l_objective(train, images, labels, *, seed: int, ctx: Context, arch: str = "",
                    cache: Optional[ReferenceCache] = None, first_bn_multiplier: float = 10.0) -> float:
    """SRe2L's BN-statistics term (Eq. 5): the set's batch statistics against the teacher's.

    ``arch``: the BN teacher ("" = the profile teacher's BN variant, as the
    ``sre2l`` distiller); ``seed`` is unused (no randomness: no crop is drawn).

    Returns:
        sum_l a_l (||mu_l(S) - mu_l^BN||_2 + ||var_l(S) - var_l^BN||_2).
    """
    teacher = _cache(cache).get(
        ("sre2l", _data_key(train), ctx.profile, arch, str(ctx.store.root), ctx.seed),
        lambda: bn_teacher(train, Context(ctx.profile, ctx.store, Meter(), True, seed=ctx.seed), arch)[0])
    bns = bn_layers(teacher)
    stats: List = []
    hooks = [bn.register_forward_hook(lambda _m, inp, _o: stats.append(batch_stats(inp[0]))) for bn in bns]
    try:
        with torch.no_grad():
            teacher(images.to(train.train_x.device))
    finally:
        for h in hooks:
            h.remove()
    return float(bn_matching_loss(stats, bns, first_bn_multiplier))


@dataclass(frozen=True)
class Probe:
    """One objective with one architecture, written ``"name"`` or ``"name:arch"``."""

    objective: str
    arch: str = ""

    @classmethod
    def parse(cls, text: str) -> "Probe":
        name, _, arch = text.partition(":")
        OBJECTIVES.get(name)
        if arch:
            MODELS.get(arch)
        return cls(name, arch)

    def label(self, profile) -> str:
        """"dm (convnet_d3w32)": the objective and the architecture it runs with."""
        if self.arch:
            arch = self.arch
        elif self.objective == "sre2l":
            arch = default_bn_arch(profile.teacher_model)
        else:
            arch = profile.synth_model
        return f"{self.objective} ({arch})"

    def __call__(self, train, images, labels, *, seed: int, ctx: Context,
                 cache: Optional[ReferenceCache] = None) -> float:
        return float(OBJECTIVES.get(self.objective)(train, images, labels, seed=seed, ctx=ctx, arch=self.arch,
                                                    cache=cache))
