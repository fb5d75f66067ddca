"""ddlib's synthesis loops against reference-style loops, timed interleaved (``distill_speed.py --reference``).

For DM, DC, DSA, MTT and SRe2L at ``paper`` settings (Fashion-MNIST, IPC 10,
ConvNet-3-128 with instance norm; SRe2L's teacher ConvNet-3-128 with batch
norm) this times units of ddlib's distiller (the registered function itself,
called with a few iterations) and the same units of a loop written the way the
public reference code writes it (VICO-UoE/DatasetCondensation ``main.py`` /
``main_DM.py``, GeorgeCazenavette/mtt-distillation ``distill.py``,
VILA-Lab/SRe2L's CIFAR recover script): per-class forward passes of the real
and the synthetic batch, augmentation drawn and applied per call (DSA: one
seeded op and parameter row shared by the real and synthetic images of a
class), plain eager PyTorch.  The loops below are this project's own code
following those structures, with ddlib's augmentation primitives, networks and
hyper-parameters, so both sides compute the same mathematics.

Timed units (one "iteration" in the JSON):

* ``dm``: one iteration: a fresh random network, 256 real images per class, 10
  classes.
* ``dc`` / ``dsa``: two outer steps and the inner loop between them (50 epochs
  on the synthetic set: the paper's IPC-10 ``inner_loop``), one network.  The
  paper's iteration is 10 outer steps and 9 inner loops; a unit keeps the
  proportions of one outer step to one inner loop.
* ``mtt``: one iteration: 30 differentiable student steps on all 100 synthetic
  images (the paper's IPC-10 ``syn_steps``) and the update.  The expert
  trajectories are random vectors in a temporary store (their values do not
  change the work; training 100 real experts takes hours).
* ``sre2l``: one recover step of each of the 10 recover batches (10 images
  each).  The teacher is a randomly initialised ConvNet-3-128-BN with running
  statistics from 512 real images, given as a teacher checkpoint.

Each round also times both under :func:`heap_reuse` (glibc only):
``heap_seconds_per_iter``, ``reference_heap_seconds_per_iter`` and
``ratio_vs_reference_heap``.  A round runs ddlib, reference, ddlib on the heap,
reference on the heap; odd rounds run them in reverse, so a drift of the
machine's speed across a round hits every arm alike over a pair of rounds.
glibc maps every block above 32 MiB afresh and the kernel zeroes its pages on
first touch; the eager reference allocates more such blocks per step than
ddlib's fused steps, so part of ``ratio_vs_reference`` can be that allocator
cost, and the heap ratio shows how much.  ``ratio_vs_reference`` stays the
headline: the reference code runs on glibc's defaults, as does ddlib.

ddlib runs with ``engine="compiled"`` (what ``auto`` picks for a paper-length
run; the short timed calls would otherwise stay eager); its first call per
method is an untimed warm-up that compiles (DC/DSA: one outer step, SRe2L: one
step).

The fp32 GEMM rate (2048 x 2048 products, median of 5, measured before and
after) gives ``gemm_fraction``: the nominal FLOPs of ddlib's unit (forward F
per image from :func:`ddlib.engine.fastpath.profile`; a backward 2F; a
second-order pass (create_graph and the backward through it) 6F) over its
seconds, over the GEMM rate.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import datetime as _dt
import math
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ddlib.core.config import config_hash
from ddlib.core.cost import Cost, Meter
from ddlib.core.store import Store
from ddlib.engine import augment as aug
from ddlib.engine.fastpath import profile
from ddlib.engine.models import create_model
from ddlib.methods.context import Context
from ddlib.methods.distill import DISTILLERS
from ddlib.methods.distill import mtt as mtt_mod

IPC, BATCH_REAL, OUTER, INNER, SYN_STEPS, M_EP = 10, 256, 2, 50, 30, 2


def gemm_rate(n: int = 2048, reps: int = 5) -> float:
    """Median fp32 ``n x n @ n x n`` rate (FLOP/s)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(ts)


# glibc mallopt parameters (malloc.h) and the values its adaptive rule reaches once a 32-MiB block is freed
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
ADAPTED_MMAP_THRESHOLD, GLIBC_MMAP_MAX = 32 << 20, 65536


def glibc():
    """The process's glibc, or None (another C library: the heap-reuse timing is then skipped)."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        lib.gnu_get_libc_version  # noqa: B018 - AttributeError: not glibc
    except (OSError, AttributeError):
        return None
    lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return lib


@contextmanager
def heap_reuse(lib):
    """Within: glibc serves every block from the heap and keeps freed ones for reuse.

    By default glibc maps every block above its mmap threshold (which adapts up to
    32 MiB, never past it) afresh and unmaps it on free, so a `paper`-scale step,
    whose activations are 52-134 MiB, has the kernel zero fresh pages for them every
    time.  This scope (``M_MMAP_MAX`` 0, no trimming) times a loop without that
    cost; on leaving, glibc's adapted defaults are set back.
    """
    lib.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)
    lib.mallopt(M_MMAP_MAX, 0)
    try:
        yield
    finally:
        lib.mallopt(M_MMAP_MAX, GLIBC_MMAP_MAX)
        lib.mallopt(M_MMAP_THRESHOLD, ADAPTED_MMAP_THRESHOLD)
        lib.mallopt(M_TRIM_THRESHOLD, 2 * ADAPTED_MMAP_THRESHOLD)
        lib.malloc_trim(0)


# ---------------------------------------------------------------- reference-style loops

def _class_pools(split):
    return [split.class_indices(c).cpu() for c in range(split.num_classes)]


def _get_images(split, pool, n):  # the reference's get_images: a fresh permutation of the class per call
    return split.train_x[pool[torch.randperm(len(pool))[:n]]]


def _siamese_pair(real, syn, strategy, g, size):
    """DSA's seeded call, twice: one op and one parameter row for both batches (``strategy`` '' = none)."""
    if not strategy:
        return real, syn
    p = aug.draw(strategy, 1, g, size)
    return aug.apply(real, p, torch.zeros(len(real), dtype=torch.long)), aug.apply(syn, p, torch.zeros(len(syn),
                                                                                                        dtype=torch.long))


def ref_dm(split, syn, opt, arch, strategy, g, it):
    k, size = split.num_classes, split.meta.img_size
    net = create_model(arch, k, split.meta.in_chans, size, seed=1000 + it)
    for p in net.parameters():
        p.requires_grad_(False)
    net.train()
    loss = torch.zeros(())
    for c, pool in enumerate(_class_pools(split)):
        real, mine = _siamese_pair(_get_images(split, pool, BATCH_REAL), syn[c * IPC:(c + 1) * IPC], strategy, g,
                                   size)
        out_real = net.embed(real).detach()
        out_syn = net.embed(mine)
        loss = loss + ((out_real.mean(0) - out_syn.mean(0)) ** 2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()


def _match(gs, gr):  # the reference's distance_wb summed over layers (1-D gradients skipped)
    total = 0.0
    for a, b in zip(gs, gr):
        if a.dim() < 2:
            continue
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        total = total + (1 - (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)).sum()
    return total


def ref_dc(split, syn, opt_img, arch, strategy, g, it):
    k, size = split.num_classes, split.meta.img_size
    net = create_model(arch, k, split.meta.in_chans, size, seed=2000 + it)
    net.train()
    params = list(net.parameters())
    opt_net = torch.optim.SGD(params, lr=0.01)
    labels = torch.arange(k).repeat_interleave(IPC)
    pools = _class_pools(split)
    for ol in range(OUTER):
        loss = torch.zeros(())
        for c in range(k):
            real, mine = _siamese_pair(_get_images(split, pools[c], BATCH_REAL), syn[c * IPC:(c + 1) * IPC],
                                       strategy, g, size)
            y_real = torch.full((len(real),), c)
            gw_real = [t.detach() for t in torch.autograd.grad(F.cross_entropy(net(real), y_real), params)]
            gw_syn = torch.autograd.grad(F.cross_entropy(net(mine), labels[c * IPC:(c + 1) * IPC]), params,
                                         create_graph=True)
            loss = loss + _match(gw_syn, gw_real)
        opt_img.zero_grad()
        loss.backward()
        opt_img.step()
        if ol == OUTER - 1:
            break
        data = torch.utils.data.TensorDataset(syn.detach().clone(), labels.clone())
        loader = torch.utils.data.DataLoader(data, batch_size=256, shuffle=True, num_workers=0)
        for _ in range(INNER):
            for xb, yb in loader:
                if strategy:
                    xb = aug.augment(xb, strategy, g)
                out = F.cross_entropy(net(xb), yb)
                opt_net.zero_grad()
                out.backward()
                opt_net.step()


def ref_mtt(split, syn, opts, arch, strategy, g, it, traj, syn_lr):
    k, size = split.num_classes, split.meta.img_size
    net = create_model(arch, k, split.meta.in_chans, size, seed=3000)
    names, shapes = zip(*[(n, p.shape) for n, p in net.named_parameters()])
    labels = torch.arange(k).repeat_interleave(IPC)
    start, target = traj[0], traj[M_EP]
    student = [start.clone().requires_grad_(True)]
    chunks = []
    for _ in range(SYN_STEPS):
        if not chunks:
            chunks = list(torch.split(torch.randperm(len(syn)), len(syn)))
        idx = chunks.pop()
        x = aug.augment(syn[idx], strategy, g)
        views = {n: t.view(s) for n, t, s in zip(names, torch.split(student[-1], [s.numel() for s in shapes]),
                                                   shapes)}
        ce = F.cross_entropy(functional_call(net, views, (x,)), labels[idx])
        grad = torch.autograd.grad(ce, student[-1], create_graph=True)[0]
        student.append(student[-1] - syn_lr * grad)
    n = start.numel()
    loss = (F.mse_loss(student[-1], target, reduction="sum") / n) / (F.mse_loss(start, target, reduction="sum") / n)
    for o in opts:
        o.zero_grad()
    loss.backward()
    for o in opts:
        o.step()


def ref_sre2l(split, teacher, iters, g, lr=0.25, r_bn=0.01, first_bn=10.0, jitter=4):
    k, m = split.num_classes, split.meta
    bns = [mod for mod in teacher.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    feats = {}

    def hook(mod, inp, _out):  # the reference's BNFeatureHook
        nch = inp[0].shape[1]
        mean = inp[0].mean([0, 2, 3])
        var = inp[0].permute(1, 0, 2, 3).contiguous().reshape([nch, -1]).var(1, unbiased=False)
        feats[mod] = torch.norm(mod.running_var.data - var, 2) + torch.norm(mod.running_mean.data - mean, 2)

    hooks = [bn.register_forward_hook(hook) for bn in bns]
    try:
        for _j in range(IPC):
            x = torch.randn(k, m.in_chans, m.img_size, m.img_size, generator=g).requires_grad_(True)
            y = torch.arange(k)
            opt = torch.optim.Adam([x], lr=lr, betas=(0.5, 0.9), eps=1e-8)
            for i in range(iters):
                for grp in opt.param_groups:
                    grp["lr"] = 0.5 * lr * (1 + math.cos(math.pi * i / iters))
                dx, dy = (int(v) for v in torch.randint(0, jitter + 1, (2,), generator=g))
                view = torch.roll(x, shifts=(dx, dy), dims=(2, 3))
                opt.zero_grad()
                out = teacher(view)
                rescale = [first_bn] + [1.0] * (len(bns) - 1)
                loss = F.cross_entropy(out, y) + r_bn * sum(feats[bn] * a for bn, a in zip(bns, rescale))
                loss.backward()
                opt.step()
                with torch.no_grad():
                    x.clamp_((0 - m.mean[0]) / m.std[0], (1 - m.mean[0]) / m.std[0])
    finally:
        for h in hooks:
            h.remove()


# ---------------------------------------------------------------- ddlib side and the timing

def _fake_experts(split, store, arch, strategy):
    cfg = mtt_mod.expert_config(split, arch, 1, 3, 0.01, 256, strategy)
    net = create_model(arch, split.num_classes, split.meta.in_chans, split.meta.img_size, seed=0)
    p0 = mtt_mod.flat_params(net)
    steps = torch.randn(3, p0.numel(), generator=torch.Generator().manual_seed(0)) * 1e-3
    traj = torch.cat([p0[None], p0[None] + steps.cumsum(0)])
    store.save_artifact("experts", config_hash(cfg), {"trajectories": traj[None], "cost": Cost(device="cpu").as_dict(),
                                                      "config": cfg})
    return traj


def _bn_teacher(split, path: Path):
    t = create_model("convnet_bn", split.num_classes, split.meta.in_chans, split.meta.img_size, seed=0)
    for bn in [mod for mod in t.modules() if isinstance(mod, torch.nn.BatchNorm2d)]:
        bn.momentum = None
    with torch.no_grad():
        t.train()(split.train_x[torch.randperm(len(split.train_x), generator=torch.Generator().manual_seed(0))[:512]])
    for bn in [mod for mod in t.modules() if isinstance(mod, torch.nn.BatchNorm2d)]:
        bn.momentum = 0.1
    torch.save(t.state_dict(), path)
    for p in t.parameters():
        p.requires_grad_(False)
    return t.eval()


def run(split, prof, rounds: int = 2, methods=("dm", "dc", "dsa", "mtt", "sre2l"), log=print,
        on_result=None) -> dict:
    """Interleaved timing of ddlib and the reference-style loop, per method; the JSON's ``methods`` part."""
    arch, k, size = prof.synth_model, split.num_classes, split.meta.img_size
    strategy = aug.resolve(aug.AUTO, split.meta.name)
    sample = tuple(split.train_x.shape[1:])
    f_syn = profile(create_model(arch, k, split.meta.in_chans, size, seed=0), sample)[0]
    f_bn = profile(create_model("convnet_bn", k, split.meta.in_chans, size, seed=0), sample)[0]
    n_syn = k * IPC
    flops = {"dm": f_syn * (k * BATCH_REAL + 3 * n_syn),
             "dc": OUTER * (3 * f_syn * k * BATCH_REAL + 6 * f_syn * n_syn) + (OUTER - 1) * INNER * 3 * f_syn * n_syn,
             "mtt": SYN_STEPS * 6 * f_syn * n_syn, "sre2l": 3 * f_bn * n_syn}
    flops["dsa"] = flops["dc"]
    out, libc = {}, glibc()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        traj = _fake_experts(split, store, arch, strategy)
        teacher = _bn_teacher(split, Path(tmp) / "teacher.pt")
        ctx = Context(prof, store, Meter(), quiet=True, engine="compiled",
                      teacher_checkpoint=str(Path(tmp) / "teacher.pt"))
        g = torch.Generator().manual_seed(0)
        syn = split.train_x[torch.randperm(len(split.train_x), generator=g)[:n_syn]].clone().requires_grad_(True)
        syn_lr = torch.tensor(0.001, requires_grad=True)
        calls = {
            "dm": (lambda: DISTILLERS.get("dm")(split, IPC, seed=0, ctx=ctx, iters=1),
                   lambda it: ref_dm(split, syn, torch.optim.SGD([syn], lr=1.0, momentum=0.5), arch, strategy, g, it)),
            "dc": (lambda: DISTILLERS.get("dc")(split, IPC, seed=0, ctx=ctx, iters=1, outer_loop=OUTER,
                                                 inner_loop=INNER),
                   lambda it: ref_dc(split, syn, torch.optim.SGD([syn], lr=0.1, momentum=0.5), arch, "", g, it)),
            "dsa": (lambda: DISTILLERS.get("dsa")(split, IPC, seed=0, ctx=ctx, iters=1, outer_loop=OUTER,
                                                   inner_loop=INNER),
                    lambda it: ref_dc(split, syn, torch.optim.SGD([syn], lr=0.1, momentum=0.5), arch, strategy, g, it)),
            "mtt": (lambda: DISTILLERS.get("mtt")(split, IPC, seed=0, ctx=ctx, iters=1, n_experts=1,
                                                   expert_epochs_total=3, syn_steps=SYN_STEPS, expert_epochs=M_EP),
                    lambda it: ref_mtt(split, syn, [torch.optim.SGD([syn], lr=100.0, momentum=0.5),
                                                    torch.optim.SGD([syn_lr], lr=1e-5, momentum=0.5)],
                                       arch, strategy, g, it, traj, syn_lr)),
            "sre2l": (lambda: DISTILLERS.get("sre2l")(split, IPC, seed=0, ctx=ctx, iters=SRE2L_STEPS),
                      lambda it: ref_sre2l(split, teacher, SRE2L_STEPS, g)),
        }
        warm = {"dc": lambda: DISTILLERS.get("dc")(split, IPC, seed=0, ctx=ctx, iters=1, outer_loop=1),
                "dsa": lambda: DISTILLERS.get("dsa")(split, IPC, seed=0, ctx=ctx, iters=1, outer_loop=1),
                "sre2l": lambda: DISTILLERS.get("sre2l")(split, IPC, seed=0, ctx=ctx, iters=1)}
        for name in methods:
            mine, ref = calls[name]
            units = SRE2L_STEPS if name == "sre2l" else 1

            def ours(fn=mine):
                with Meter(split.train_x.device) as meter:
                    meter.charge = lambda cost: None
                    ctx.meter = meter
                    fn()

            load0 = os.getloadavg()
            ours(warm.get(name, mine))  # untimed warm-up: compiles ddlib's slices (one outer step for DC/DSA)
            t_d, t_r, t_dh, t_rh = [], [], [], []

            def on_heap(fn):
                with heap_reuse(libc):
                    fn()

            for r in range(rounds):
                timed = [(ours, t_d), (lambda: ref(r + 1), t_r)]
                if libc is not None:
                    timed += [(lambda: on_heap(ours), t_dh), (lambda: on_heap(lambda: ref(r + 1)), t_rh)]
                # odd rounds in reverse (ABBA): a drift of the machine's speed across a round (one of a
                # few minutes was seen here) then hits every arm alike over each pair of rounds
                for fn, acc in (timed[::-1] if r % 2 else timed):
                    t0 = time.perf_counter()
                    fn()
                    acc.append((time.perf_counter() - t0) / units)
            s_d, s_r = sum(t_d) / len(t_d), sum(t_r) / len(t_r)
            s_dh, s_rh = (sum(t) / len(t) if t else None for t in (t_dh, t_rh))
            out[name] = {"seconds_per_iter": round(s_d, 4), "reference_seconds_per_iter": round(s_r, 4),
                         "ratio_vs_reference": round(s_r / s_d, 3),
                         "heap_seconds_per_iter": s_dh and round(s_dh, 4),
                         "reference_heap_seconds_per_iter": s_rh and round(s_rh, 4),
                         "ratio_vs_reference_heap": s_dh and round(s_rh / s_dh, 3), "rounds": rounds,
                         "seconds_per_iter_rounds": [round(t, 4) for t in t_d],
                         "reference_seconds_per_iter_rounds": [round(t, 4) for t in t_r],
                         "heap_seconds_per_iter_rounds": [round(t, 4) for t in t_dh],
                         "reference_heap_seconds_per_iter_rounds": [round(t, 4) for t in t_rh],
                         "nominal_gflop_per_iter": round(flops[name] / 1e9, 2),
                         "gflop_s": round(flops[name] / s_d / 1e9, 2),
                         "load_avg_start": [round(v, 2) for v in load0],
                         "load_avg_end": [round(v, 2) for v in os.getloadavg()],
                         "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            if on_result is not None:
                on_result(name, out[name])
            log(f"{name:6s} ddlib {s_d:8.3f} s/iter  reference {s_r:8.3f} s/iter  ratio {s_r / s_d:5.2f}"
                + (f"  heap reuse: ddlib {s_dh:8.3f} reference {s_rh:8.3f} ratio {s_rh / s_dh:5.2f}" if s_dh else ""))
    return out


SRE2L_STEPS = 5  # recover steps per timed call (each of the 10 batches)
DEFAULT_METHODS = ("dm", "dc", "dsa", "mtt", "sre2l")
