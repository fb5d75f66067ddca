"""Do distillation objectives predict generalization?  (*Hard truths about soft labels*, CVPR 2026.)

Each distiller optimises its own objective; if that objective measured what
makes a condensed set good, a set with a lower objective value would train a
better student.  This module evaluates every distiller family's objective on
*any* condensed set (random real subsets, coresets, distilled sets of one
IPC) and correlates it with the set's stored test accuracy.

Every objective has one signature::

    objective(train: Split, images (M, C, H, W), labels (M,) or (M, K), *, seed: int,
              ctx: Context, arch: str = "", **hp) -> float   (lower = closer to the real data)

and is the distiller's own loss, evaluated at a fixed point instead of
optimised: the same seed gives every set the same random networks, real
statistics, expert segments and augmentations, so two sets differ only by
their images.  Soft labels are reduced to their arg-max class (every objective
below is defined on class-conditional sets).

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

import json
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call

from ddlib import __version__
from ddlib.engine import augment as aug
from ddlib.core.config import PROFILES, RunConfig, config_hash
from ddlib.methods.context import Context
from ddlib.core.cost import Meter
from ddlib.methods.distill.dc import BN_PER_CLASS, _freeze_batchnorm, gradient_distance
from ddlib.methods.distill.dm import DSA_STRATEGY, class_means
from ddlib.methods.distill.mtt import _defaults as mtt_defaults
from ddlib.methods.distill.mtt import expert_config, get_experts, trajectory_loss, unflatten
from ddlib.methods.distill.sre2l import batch_stats, bn_layers, bn_matching_loss, bn_teacher
from ddlib.analysis.stats import spearman_ci
from ddlib.engine.models import create_model
from ddlib.core.registry import DDLibError, Registry
from ddlib.core.seeding import generator, stream_seed

OBJECTIVES = Registry("DCS objective")
register = OBJECTIVES.register

DM_NETS = 8       # random networks averaged by the DM objective
DC_NETS = 4       # random initialisations averaged by the DC objective
MTT_MAX_PAIRS = 2  # (expert, start epoch) segments averaged by the MTT objective
MTT_LR_FACTORS = (0.25, 0.5, 1.0)  # step sizes tried, x the experts' lr (MTT's alpha starts there)
EXPERT_LR, EXPERT_BATCH = 0.01, 256  # the MTT distiller's expert defaults (its lr_teacher too)

# Real-data quantities shared by every set scored with the same seed (class
# means, class gradients, experts, the BN teacher): computed once per process.
_REFERENCE: Dict[tuple, object] = {}
_REFERENCE_MAX = 64


def _reference(key: tuple, build: Callable[[], object]):
    if key not in _REFERENCE:
        if len(_REFERENCE) >= _REFERENCE_MAX:
            _REFERENCE.clear()
        _REFERENCE[key] = build()
    return _REFERENCE[key]


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
                 n_nets: int = DM_NETS, strategy: str = DSA_STRATEGY) -> float:
    """DM's Eq. 4 with the whole pool as the real side (see the module docstring).

    Args:
        train: the split whose train pool is the real data.
        images: (M, C, H, W) normalised set; labels: (M,) or (M, K).
        seed: fixes the random networks and the per-class DSA parameters.
        ctx: build context (its profile's ``synth_model`` when ``arch`` is empty).
        n_nets: random networks averaged.
        strategy: DSA ops; one op and one parameter row per class, shared by both sides.

    Returns:
        mean over networks of sum_c ||mean psi(A(R_c)) - mean psi(A(S_c))||^2.
    """
    arch = arch or ctx.profile.synth_model
    k, device = train.num_classes, train.train_x.device
    y = hard_labels(labels).to(device)

    def draws():
        out = []
        for i in range(n_nets):
            g = generator(seed, f"dcs-dm-aug-{i}")
            net = _net(arch, train, stream_seed(seed, f"dcs-dm-net-{i}")).train()
            params = aug.draw(strategy, k, g, train.meta.img_size)
            with torch.no_grad():
                real = class_means(net.embed(aug.apply(train.train_x, params, train.train_y)), train.train_y, k)
            out.append((net, params, real))
        return out

    total = 0.0
    for net, params, real in _reference(("dm", _data_key(train), arch, seed, n_nets, strategy), draws):
        with torch.no_grad():
            syn = class_means(net.embed(aug.apply(images.to(device), params, y)), y, k)
        total += float(((real - syn) ** 2).sum())
    return total / n_nets


def _class_grads(net, x: torch.Tensor, c: int) -> List[torch.Tensor]:
    params = list(net.parameters())
    with torch.enable_grad():
        for p in params:
            p.requires_grad_(True)
        y = torch.full((len(x),), c, dtype=torch.long, device=x.device)
        grads = torch.autograd.grad(F.cross_entropy(net(x), y), params)
        for p in params:
            p.requires_grad_(False)
    return [g.detach() for g in grads]


@register("dc")
def dc_objective(train, images, labels, *, seed: int, ctx: Context, arch: str = "",
                 n_nets: int = DC_NETS) -> float:
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
            real = [_class_grads(net, train.train_x[train.train_y == c], c) for c in range(k)]
            out.append((net, real))
        return out

    total = 0.0
    for net, real in _reference(("dc", _data_key(train), arch, seed, n_nets), draws):
        for c in range(k):
            mine = x[y == c]
            if len(mine):
                total += float(gradient_distance(_class_grads(net, mine, c), real[c]))
    return total / (n_nets * k)


@register("mtt")
def mtt_objective(train, images, labels, *, seed: int, ctx: Context, arch: str = "",
                  lrs: Sequence[float] = (), max_pairs: int = MTT_MAX_PAIRS,
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
    d = mtt_defaults(prof, len(images) // max(1, train.num_classes))
    m_ep = d["expert_epochs"]
    max_start = min(d["max_start_epoch"], d["expert_epochs_total"] - m_ep + 1)
    cfg = expert_config(train, arch, d["n_experts"], d["expert_epochs_total"], EXPERT_LR, EXPERT_BATCH, strategy)
    trajs = _reference(("mtt", config_hash(cfg), str(ctx.store.root)), lambda: get_experts(train, ctx.store, cfg, ctx.quiet)[0])
    pairs = [(e, t) for e in range(d["n_experts"]) for t in range(max_start)]
    order = torch.randperm(len(pairs), generator=generator(seed, "dcs-mtt-pairs"))[:max_pairs].tolist()
    device = train.train_x.device
    net = _reference(("mtt-net", arch, _data_key(train)), lambda: _net(arch, train, 0).train())
    x, y = images.to(device), hard_labels(labels).to(device)
    best = float("inf")
    for lr in (lrs or [EXPERT_LR * f for f in MTT_LR_FACTORS]):
        total = 0.0
        for j in order:
            e, t = pairs[j]
            start, target = trajs[e, t].to(device), trajs[e, t + m_ep].to(device)
            g_aug = generator(seed, f"dcs-mtt-aug-{e}-{t}")
            theta = start.clone()
            for _ in range(d["syn_steps"]):
                xb = aug.augment(x, strategy, g_aug) if strategy else x
                with torch.enable_grad():
                    th = theta.requires_grad_(True)
                    ce = F.cross_entropy(functional_call(net, unflatten(net, th), (xb,)), y)
                    grad = torch.autograd.grad(ce, th)[0]
                theta = (theta - lr * grad).detach()
            total += float(trajectory_loss(theta, start, target))
        best = min(best, total / len(order))
    return best


@register("sre2l")
def sre2l_objective(train, images, labels, *, seed: int, ctx: Context, arch: str = "",
                    first_bn_multiplier: float = 10.0) -> float:
    """SRe2L's BN-statistics term (Eq. 5): the set's batch statistics against the teacher's.

    ``arch``: the BN teacher ("" = the profile teacher's BN variant, as the
    ``sre2l`` distiller); ``seed`` is unused (no randomness: no crop is drawn).

    Returns:
        sum_l a_l (||mu_l(S) - mu_l^BN||_2 + ||var_l(S) - var_l^BN||_2).
    """
    teacher = _reference(("sre2l", _data_key(train), ctx.profile, arch, str(ctx.store.root)),
                         lambda: bn_teacher(train, Context(ctx.profile, ctx.store, Meter(), True), arch)[0])
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
            from ddlib.engine.models import MODELS

            MODELS.get(arch)
        return cls(name, arch)

    def label(self, profile) -> str:
        """"dm (convnet_d3w32)": the objective and the architecture it runs with."""
        if self.arch:
            arch = self.arch
        elif self.objective == "sre2l":
            from ddlib.methods.distill.sre2l import default_bn_arch

            arch = default_bn_arch(profile.teacher_model)
        else:
            arch = profile.synth_model
        return f"{self.objective} ({arch})"

    def __call__(self, train, images, labels, *, seed: int, ctx: Context) -> float:
        return float(OBJECTIVES.get(self.objective)(train, images, labels, seed=seed, ctx=ctx, arch=self.arch))


def set_kind(method: str, family: str) -> str:
    """"random subset", "coreset" or "distilled" (the scatter chart's colours)."""
    return "random subset" if method == "random" else "coreset" if family == "coreset" else "distilled"


def score_sets(frame: pd.DataFrame, probes: Sequence[str], *, eval_seed: int = 0, store=None,
               device=None) -> pd.DataFrame:
    """Every probe's value on the stored condensed set of every row of ``frame``.

    Values are cached in the store (artifact kind ``"dcs"``, keyed by the probe,
    the set's build key, the seed and the library version).

    Args:
        frame: study rows (one per set; e.g. the hl rows at one budget).
        probes: ``"name"`` / ``"name:arch"`` strings (see :class:`Probe`).

    Returns:
        one row per (probe, set): probe, method, kind, ipc, seed, accuracy (%), value.
    """
    from ddlib.run.runner import validate
    from ddlib.methods.build import build_key
    from ddlib.run.settings import Settings, default_device, load_data

    settings = Settings.from_env()  # the notebook boundary
    store = store or settings.store()
    dev = default_device(device, settings)
    rows = []
    parsed = [Probe.parse(p) for p in probes]
    for profile, part in frame.groupby("profile"):
        prof = PROFILES.get(profile)
        ctx = Context(prof, store, Meter(), True, engine=settings.engine)
        for dataset, sub in part.groupby("dataset"):
            train = load_data(dataset, prof, dev, settings)
            for _, r in sub.sort_values(["ipc", "method", "seed"]).iterrows():
                cfg = json.loads(r["config_json"]) if isinstance(r["config_json"], str) else r["config_json"]
                rc = validate(RunConfig(**{**cfg, "hparams": tuple(sorted(cfg["hparams"].items()))}))
                bkey = build_key(rc)
                art = store.load_artifact("condensed", bkey)
                if art is None:
                    raise DDLibError(f"no stored {r['method']} set for row {r['key']}; run its study first")
                for p in parsed:
                    vkey = config_hash({"probe": [p.objective, p.arch], "set": bkey, "seed": int(eval_seed),
                                        "version": __version__})
                    hit = store.load_artifact("dcs", vkey)
                    if hit is None:
                        v = p(train, art["images"], art["labels"], seed=eval_seed, ctx=ctx)
                        store.save_artifact("dcs", vkey, {"value": v})
                    else:
                        v = float(hit["value"])
                    rows.append({"probe": p.label(prof), "method": r["method"],
                                 "kind": set_kind(r["method"], r["family"]), "ipc": int(r["ipc"]),
                                 "seed": int(r["seed"]), "accuracy": 100 * float(r["accuracy"]), "value": v})
    return pd.DataFrame(rows, columns=["probe", "method", "kind", "ipc", "seed", "accuracy", "value"])


def correlations(scores: pd.DataFrame, *, n_boot: int = 2000) -> pd.DataFrame:
    """Spearman rho [95% bootstrap CI] of objective value against accuracy, per probe and IPC.

    A *lower* objective should mean a *better* set, so a predictive objective
    has rho < 0; ``predicts`` is True when the whole interval lies below 0.

    Returns:
        columns probe, ipc, rho, ci_low, ci_high, sets, predicts.
    """
    rows = []
    for (probe, ipc), g in scores.groupby(["probe", "ipc"], sort=True):
        rho, lo, hi = spearman_ci(g["value"].to_numpy(), g["accuracy"].to_numpy(), n_boot=n_boot)
        rows.append({"probe": probe, "ipc": int(ipc), "rho": rho, "ci_low": lo, "ci_high": hi,
                     "sets": len(g), "predicts": bool(hi < 0)})
    return pd.DataFrame(rows, columns=["probe", "ipc", "rho", "ci_low", "ci_high", "sets", "predicts"])


def correlation_table(corr: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per probe, one "rho [low, high]" column per IPC."""
    c = corr.copy()
    c["cell"] = [f"{r:+.2f} [{lo:+.2f}, {hi:+.2f}]" for r, lo, hi in zip(c["rho"], c["ci_low"], c["ci_high"])]
    wide = c.pivot_table(index="probe", columns="ipc", values="cell", aggfunc="first")
    wide.columns = [f"IPC {i}" for i in wide.columns]
    wide.index.name = "objective (architecture)"
    return wide


def sentences(corr: pd.DataFrame) -> str:
    """One Markdown bullet per probe: does its objective predict accuracy, per IPC?"""
    lines = []
    for probe, g in corr.groupby("probe", sort=True):
        parts = []
        for _, r in g.sort_values("ipc").iterrows():
            verb = "predicts" if r["predicts"] else "does not predict"
            parts.append(f"{verb} accuracy at IPC {r['ipc']} "
                         f"(rho = {r['rho']:+.2f}, 95% CI [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], "
                         f"{r['sets']} sets)")
        lines.append(f"* **{probe}** " + "; ".join(parts) + ".")
    return "\n".join(lines)


def scatter_chart(scores: pd.DataFrame, *, width: int = 200, height: int = 130):
    """Objective value (x, own scale per panel) against test accuracy; panels: IPC (columns) x probe (rows)."""
    import altair as alt

    base = alt.Chart(scores).mark_point(filled=True, opacity=1, size=40).encode(
        x=alt.X("value:Q", title="objective value (lower = closer to the real data)",
                scale=alt.Scale(zero=False)),
        y=alt.Y("accuracy:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
        color=alt.Color("kind:N", title="set"),
        shape=alt.Shape("kind:N", title="set"),
        tooltip=["probe", "method", "ipc", "seed", alt.Tooltip("accuracy:Q", format=".1f"),
                 alt.Tooltip("value:Q", format=".4g")])
    return base.properties(width=width, height=height).facet(
        row=alt.Row("probe:N", title="objective (architecture)"),
        column=alt.Column("ipc:O", title="IPC")).resolve_scale(x="independent", y="independent")


@dataclass(frozen=True)
class DCSStudy:
    """The sets scored by the chapter: chapter 3's grid under hl at one budget, plus random subsets.

    Attributes:
        sets: the chapter-3 study (hl, its first budget) and the extra random-subset study.
        probes: ``"name"`` / ``"name:arch"`` objective strings.
        eval_seed: the seed every objective is evaluated with.
    """

    sets: Tuple
    probes: Tuple[str, ...]
    eval_seed: int = 0

    @classmethod
    def from_params(cls, profile: str = "default", dataset: str = "", objectives: Sequence[str] = (),
                    extra_seeds: Sequence[int] = (), eval_seed: int = 0) -> "DCSStudy":
        """Chapter 3's sets (``distilled_vs_coresets`` grid) and the ``dcs`` grid's random subsets."""
        from ddlib.chapters.grids import chapter_grid
        from ddlib.run.study import Study

        budgets = chapter_grid("distilled_vs_coresets", profile).get("budgets") or PROFILES.get(profile).budgets
        main = Study.from_params(profile=profile, dataset=dataset, chapter="distilled_vs_coresets",
                                 regimes=["hl"], budgets=budgets[:1])
        g = chapter_grid("dcs", profile)
        extra = Study.from_params(profile=profile, dataset=main.dataset, methods=g["methods"], ipcs=main.ipcs,
                                  regimes=["hl"], budgets=main.budgets, seeds=extra_seeds or g["seeds"])
        probes = tuple(objectives or g["objectives"])
        for p in probes:
            Probe.parse(p)
        return cls((main, extra), probes, int(eval_seed))

    def describe(self) -> pd.DataFrame:
        main, extra = self.sets
        d = {"profile": main.profile, "dataset": main.dataset, "regime": "hl", "budget": main.budgets[0],
             "ipcs": ", ".join(map(str, main.ipcs)), "chapter-3 methods": ", ".join(main.methods),
             "chapter-3 seeds": ", ".join(map(str, main.seeds)),
             "extra random-subset seeds": ", ".join(map(str, extra.seeds)),
             "objectives": ", ".join(Probe.parse(p).label(PROFILES.get(main.profile)) for p in self.probes),
             "evaluation seed": self.eval_seed}
        return pd.DataFrame({"value": [str(v) for v in d.values()]}, index=list(d))

    def run(self, store=None, *, quiet: bool = True) -> pd.DataFrame:
        """Run (or reuse) every set's training run; the rows, one per set."""
        from ddlib.run.study import run_all

        return run_all(self.sets, store, quiet=quiet).drop_duplicates("key").reset_index(drop=True)

    def score(self, frame: pd.DataFrame, store=None) -> pd.DataFrame:
        """:func:`score_sets` of ``frame`` with this study's probes and seed."""
        return score_sets(frame, self.probes, eval_seed=self.eval_seed, store=store)

