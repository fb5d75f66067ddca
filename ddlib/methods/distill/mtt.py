"""MTT: Dataset Distillation by Matching Training Trajectories (Cazenavette et al., CVPR 2022).

Experts: ``n_experts`` networks trained on the real train pool with hard
labels (SGD lr 0.01, no momentum, batch 256, DSA augmentation per sample, as
the reference ``buffer.py``), their flat parameter vector saved at every
epoch.  They are trained once and cached as artifact kind ``"experts"``;
their recorded training cost is charged to every build that uses them.

Distillation (Sec. 3, Eq. 2): each iteration picks an expert and a start epoch
``t < max_start_epoch``, initialises a student at ``theta*_t`` and takes
``syn_steps`` differentiable SGD steps on synthetic minibatches with the
learnable learning rate ``alpha``::

    theta_{n+1} = theta_n - alpha * grad l(A(S_batch); theta_n)

then minimises the normalised parameter distance

    L = ||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2

over the images ``S`` (SGD, momentum 0.5) and ``alpha`` (SGD, momentum 0.5).
The student runs through ``torch.func.functional_call`` on views of one flat
parameter vector, so the whole unroll is one autograd graph.  Runs long enough
to repay compiling (``paper``; engine ``compiled``) take their student steps
through :func:`compiled_student_step`, which computes the same steps.

Deviation (documented): ``alpha`` is clamped to at least ``MIN_LR`` after each
update so the learnt evaluation learning rate stays positive; the reference
leaves it free.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from tqdm import tqdm

from ddlib import __version__
from ddlib.core.config import config_hash, nearest_ipc
from ddlib.core.cost import Cost, Meter
from ddlib.core.hparams import HParam
from ddlib.core.seeding import generator, stream_seed
from ddlib.engine import augment as aug
from ddlib.engine.fastpath import Engine, compile_failed, compiles, profile, shared_compile
from ddlib.engine.models import create_model
from ddlib.methods.distill import real_init, register
from ddlib.methods.distill.dm import STRATEGY_HP, SYNTH_MODEL_HP

log = logging.getLogger("ddlib")

DSA_STRATEGY = aug.AUTO  # "dsa": the reference's list for the dataset (flip except on digits)
EXPERT_SEED_BASE = 2000  # experts are shared by every run seed, like the teachers
MIN_LR = 1e-6
UNROLL_OPTIONS = {"layout_optimization": False}  # inductor options of the compiled student step
# Every default that differs between profiles (iterations, experts, lr_img, the
# per-IPC unroll table) is the profile's ``mtt`` (:class:`ddlib.core.config.MTTDefaults`),
# so it is part of the cache keys.


def flat_params(net: nn.Module) -> torch.Tensor:
    """All parameters of ``net`` concatenated into one detached (P,) vector."""
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def unflatten(net: nn.Module, flat: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Views of ``flat`` (P,) shaped like ``net``'s named parameters (differentiable)."""
    names, shapes = zip(*[(n, p.shape) for n, p in net.named_parameters()])
    parts = torch.split(flat, [s.numel() for s in shapes])
    return {n: t.view(s) for n, t, s in zip(names, parts, shapes)}


def student_step(net: nn.Module, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, lr,
                 create_graph: bool = True) -> torch.Tensor:
    """One differentiable SGD step of the student: ``theta - lr * grad CE(net_theta(x), y)`` ((P,) -> (P,))."""
    ce = F.cross_entropy(functional_call(net, unflatten(net, theta), (x,)), y)
    grad = torch.autograd.grad(ce, theta, create_graph=create_graph)[0]
    return theta - lr * grad


def _ce_at(theta: torch.Tensor, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(functional_call(net, unflatten(net, theta), (x,)), y)


def _functional_step(net: nn.Module, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, lr) -> torch.Tensor:
    """:func:`student_step` written with ``torch.func.grad``: the same value, differentiable by the outer autograd."""
    return theta - lr * torch.func.grad(_ce_at)(theta, net, x, y)


def compiled_student_step(net: nn.Module, backend: str = "inductor"):
    """:func:`student_step` compiled: ``step(net, theta, x, y, lr) -> theta'``, differentiable w.r.t. all of them.

    The inner gradient is ``torch.func.grad``, so the compiled graph holds the
    forward *and* its backward, and the outer loss's backward through it (the
    unroll's second-order part) is compiled too: eager PyTorch runs that part as
    dozens of unfused, memory-bound elementwise passes (instance norm's double
    backward; most of an MTT iteration on a CPU).  The same mathematics: equal to
    the eager step in float64 (tests/test_mtt.py), float32 rounding otherwise.

    Inductor's layout optimisation (convolutions channels-last) is off for this graph:
    the unroll's instance-norm passes then reduce over contiguous maps, 1.08-1.13x per
    `paper` step on a CPU (measured in one process against the default).
    """
    return shared_compile(_functional_step, net, backend, options=UNROLL_OPTIONS)


def trajectory_loss(student_end: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ||student_end - target||^2 / ||start - target||^2 (all (P,) vectors)."""
    return ((student_end - target) ** 2).sum() / ((start - target) ** 2).sum()


def expert_config(train, arch: str, n_experts: int, epochs: int, lr: float, batch: int,
                  strategy: str) -> dict:
    return {"dataset": train.meta.name, "pool": len(train.train_y), "data": train.meta.fingerprint,
            "arch": arch, "epochs": epochs, "lr": lr, "batch": batch, "strategy": strategy,
            "n_experts": n_experts, "seed_base": EXPERT_SEED_BASE, "version": __version__}


def train_expert(train, cfg: dict, member: int, meter: Meter) -> torch.Tensor:
    """Train one expert; returns its trajectory (epochs + 1, P), row 0 = the init."""
    m, device = train.meta, train.train_x.device
    seed = cfg["seed_base"] + member
    net = create_model(cfg["arch"], m.num_classes, m.in_chans, m.img_size, seed=seed).to(device)
    meter.watch(net)
    opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], momentum=0.0)
    g, g_aug = generator(seed, "expert-order"), generator(seed, "expert-augment")
    traj = [flat_params(net).cpu()]
    n = len(train.train_y)
    net.train()
    for _ in range(cfg["epochs"]):
        order = torch.randperm(n, generator=g).to(device)
        for s in range(0, n, cfg["batch"]):
            idx = order[s:s + cfg["batch"]]
            x = train.train_x[idx]
            if cfg["strategy"]:
                x = aug.augment(x, cfg["strategy"], g_aug)
            loss = F.cross_entropy(net(x), train.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            meter.backward(len(idx))
        traj.append(flat_params(net).cpu())
    return torch.stack(traj)


def get_experts(train, store, cfg: dict, quiet: bool = True) -> Tuple[torch.Tensor, Cost]:
    """Expert trajectories (n_experts, epochs + 1, P) on CPU and their training cost (cached)."""
    key = config_hash(cfg)
    art = store.load_artifact("experts", key)
    if art is None:
        log.info("training %d %s experts for %d epochs -> %s", cfg["n_experts"], cfg["arch"],
                 cfg["epochs"], store.artifact_path("experts", key))
        with Meter(train.train_x.device) as meter:
            trajs = [train_expert(train, cfg, i, meter)
                     for i in tqdm(range(cfg["n_experts"]), desc="mtt experts", disable=quiet, leave=False)]
        art = {"trajectories": torch.stack(trajs), "cost": meter.cost.as_dict(), "config": cfg}
        store.save_artifact("experts", key, art)
    return art["trajectories"], Cost(**art["cost"])


def defaults(prof, ipc: int) -> dict:
    """MTT's defaults on profile ``prof`` at ``ipc`` (from ``prof.mtt``), as one flat mapping.

    Keys: iters, n_experts, expert_epochs_total, lr_img and the nearest IPC's
    syn_steps, expert_epochs, max_start_epoch, lr_lr, lr_teacher.
    """
    d = prof.mtt
    row = nearest_ipc(d.unroll, ipc)
    return {"iters": d.iters or max(2, prof.synth_iters // d.iters_divisor), "n_experts": d.n_experts,
            "expert_epochs_total": d.expert_epochs_total, "lr_img": d.lr_img,
            "syn_steps": row.syn_steps, "expert_epochs": row.expert_epochs,
            "max_start_epoch": row.max_start_epoch, "lr_lr": row.lr_lr, "lr_teacher": row.lr_teacher}


_defaults = defaults  # the name ddlib.analysis.dcs imports

def _chunks(n: int, batch: int, g: torch.Generator) -> List[torch.Tensor]:
    return list(torch.split(torch.randperm(n, generator=g), batch))


_PAPER = "reference code on paper (the authors' CIFAR-10 settings, via DC-BENCH); scale-down elsewhere"


@register("mtt", hparams=(
    HParam("iters", int, 0, "iterations", "distillation iterations; 0 = the profile's mtt.iters, or when that "
           "is 0 max(2, synth_iters // mtt.iters_divisor)", "reference code on paper (5000); scale-down elsewhere",
           profile=("mtt.iters", "synth_iters", "mtt.iters_divisor"), low=0),
    HParam("n_experts", int, 0, "trajectories", "expert trajectories; 0 = the profile's mtt.n_experts",
           "reference code on paper (100); scale-down elsewhere", profile=("mtt.n_experts",), low=0),
    HParam("expert_epochs_total", int, 0, "epochs", "epochs each expert trains; 0 = the profile's "
           "mtt.expert_epochs_total", "reference code on paper (50); scale-down elsewhere",
           profile=("mtt.expert_epochs_total",), low=0),
    HParam("expert_lr", float, 0.01, "per SGD step", "the experts' SGD learning rate (no momentum)",
           "reference code", low=0.0),
    HParam("expert_batch", int, 256, "images", "the experts' minibatch", "reference code", low=1),
    HParam("syn_steps", int, 0, "student steps", "N, student steps per iteration; 0 = the profile's "
           "mtt.unroll row of the nearest IPC", _PAPER, profile=("mtt.unroll.syn_steps",), low=0),
    HParam("expert_epochs", int, 0, "epochs", "M, expert epochs the N steps must match; 0 = the profile's row",
           _PAPER, profile=("mtt.unroll.expert_epochs",), low=0),
    HParam("max_start_epoch", int, 0, "epochs", "T+, start epochs are drawn from [0, T+); 0 = the profile's row",
           _PAPER, profile=("mtt.unroll.max_start_epoch",), low=0),
    HParam("batch_syn", int, 0, "images", "synthetic minibatch per student step; 0 = all K*ipc images",
           "reference code", low=0),
    HParam("lr_img", float, 0.0, "per SGD step", "SGD learning rate on the pixels; 0 = the profile's mtt.lr_img",
           "ddlib (100 on every profile: the reference's CIFAR values 100-1000 assume ZCA; 1000 diverges "
           "on normalised grey images)",
           profile=("mtt.lr_img",), low=0.0),
    HParam("lr_lr", float, 0.0, "per SGD step", "SGD learning rate on the learnt step size; 0 = the profile's row",
           _PAPER, profile=("mtt.unroll.lr_lr",), low=0.0),
    HParam("lr_teacher", float, 0.0, "per SGD step", "initial learnt step size alpha; 0 = the profile's row",
           _PAPER, profile=("mtt.unroll.lr_teacher",), low=0.0),
    SYNTH_MODEL_HP, STRATEGY_HP))
def distill_mtt(train, ipc: int, *, seed: int, ctx, iters: int = 0, n_experts: int = 0,
                expert_epochs_total: int = 0, expert_lr: float = 0.01, expert_batch: int = 256,
                syn_steps: int = 0, expert_epochs: int = 0, max_start_epoch: int = 0,
                batch_syn: int = 0, lr_img: float = 0.0, lr_lr: float = 0.0,
                lr_teacher: float = 0.0, model: str = "", strategy: str = DSA_STRATEGY):
    """Distil ``ipc`` images per class (and a learning rate) by trajectory matching.

    Args:
        iters: distillation iterations (0 = the profile's ``mtt.iters``: 5000 on ``paper``,
            else ``max(2, synth_iters // 5)``).
        n_experts, expert_epochs_total: expert count and training epochs (0 = the profile's
            ``mtt``: 100 x 50 on ``paper``, 2 x 4 elsewhere).
        expert_lr, expert_batch: the experts' SGD (no momentum) learning rate and batch.
        syn_steps: student steps N per iteration; expert_epochs: M; max_start_epoch: T+
            (0 = the row of the profile's ``mtt.unroll`` for the nearest IPC: the paper's
            CIFAR-10 values on ``paper``, else 5, 1, 3).
        batch_syn: synthetic minibatch per student step (0 = all K*ipc images).
        lr_img: SGD learning rate on pixels (0 = the profile's ``mtt.lr_img``: 100 on
            every profile); lr_lr: on the learning rate (0 = the profile's row).
        lr_teacher: initial learnable learning rate alpha (0 = the profile's row).
        model: student / expert architecture (profile's ``synth_model`` when empty).
        strategy: DSA ops used by the experts and the student steps ("" = none).

    Returns:
        images (K*ipc, C, H, W) initialised from real images, hard labels (K*ipc,),
        extras: ``syn_lr`` (float), ``loss_curve`` (iters,), ``final_loss`` and the counts used.
    """
    prof, m = ctx.profile, train.meta
    d = defaults(prof, ipc)
    iters, n_experts = iters or d["iters"], n_experts or d["n_experts"]
    epochs_total = expert_epochs_total or d["expert_epochs_total"]
    syn_steps, m_ep = syn_steps or d["syn_steps"], expert_epochs or d["expert_epochs"]
    max_start = max_start_epoch or d["max_start_epoch"]
    max_start = min(max_start, epochs_total - m_ep + 1)
    if max_start < 1:
        raise ValueError(f"expert_epochs {m_ep} exceeds the experts' {epochs_total} epochs")
    lr_lr, lr_img = lr_lr or d["lr_lr"], lr_img or d["lr_img"]
    lr_teacher = lr_teacher or d["lr_teacher"]
    strategy = aug.resolve(strategy, train.meta.name)
    arch = model or prof.synth_model
    k, device = train.num_classes, train.train_x.device

    cfg = expert_config(train, arch, n_experts, epochs_total, expert_lr, expert_batch, strategy)
    with ctx.meter.upstream():
        trajs, expert_cost = get_experts(train, ctx.store, cfg, ctx.quiet)
    ctx.meter.charge(expert_cost)

    g, g_aug = generator(seed, "synth"), generator(seed, "synth-dsa")
    _, syn, labels = real_init(train, ipc, g)
    batch_syn = batch_syn or len(syn)
    syn_lr = torch.tensor(float(lr_teacher), device=device, requires_grad=True)
    opt_img = torch.optim.SGD([syn], lr=lr_img, momentum=0.5)
    opt_lr = torch.optim.SGD([syn_lr], lr=lr_lr, momentum=0.5)
    net = create_model(arch, k, m.in_chans, m.img_size, seed=stream_seed(seed, "mtt-net")).to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    net.train()
    # forwards are counted by hand (below), not by Meter.watch's hook: inside the compiled step a
    # hook would break the graph, and torch.func.grad would then run the whole step eager
    engine = Engine.of(ctx.engine)
    work = 6 * profile(net, tuple(syn.shape[1:]))[0] * batch_syn * syn_steps * iters  # unroll + its backward
    fast = compiled_student_step(net) if compiles(engine, work) else None

    def step(theta, x, y):
        nonlocal fast
        if fast is not None:
            try:
                return fast(net, theta, x, y, syn_lr)
            except Exception as e:  # noqa: BLE001 - any compiler failure: unroll eager instead
                compile_failed(engine, e, "unrolling eager")
                fast = None
        return student_step(net, theta, x, y, syn_lr)

    losses = []
    for _ in tqdm(range(iters), desc=f"mtt ipc={ipc}", disable=ctx.quiet, leave=False):
        e = int(torch.randint(n_experts, (1,), generator=g))
        t = int(torch.randint(max_start, (1,), generator=g))
        start, target = trajs[e, t].to(device), trajs[e, t + m_ep].to(device)
        theta = start.clone().requires_grad_(True)
        chunks: List[torch.Tensor] = []
        for _step in range(syn_steps):
            if not chunks:
                chunks = _chunks(len(syn), batch_syn, g)
            idx = chunks.pop().to(device)
            x = aug.augment(syn[idx], strategy, g_aug) if strategy else syn[idx]
            theta = step(theta, x, labels[idx])
            ctx.meter.forward(len(idx))
            ctx.meter.backward(len(idx))
        loss = trajectory_loss(theta, start, target)
        opt_img.zero_grad(set_to_none=True)
        opt_lr.zero_grad(set_to_none=True)
        loss.backward(inputs=[syn, syn_lr])
        opt_img.step()
        opt_lr.step()
        with torch.no_grad():
            syn_lr.clamp_(min=MIN_LR)
        ctx.meter.backward(syn_steps * batch_syn)
        losses.append(float(loss.detach()))
    extras = {"syn_lr": float(syn_lr.detach()), "loss_curve": torch.tensor(losses),
              "final_loss": losses[-1] if losses else float("nan"), "iters": iters,
              "n_experts": n_experts, "expert_epochs_total": epochs_total, "syn_steps": syn_steps,
              "expert_epochs": m_ep, "max_start_epoch": max_start, "batch_syn": batch_syn,
              "lr_img": lr_img, "lr_lr": lr_lr}
    return syn.detach(), labels, extras
