"""The distillers' speed-ups compute what the plain per-class loops compute (issue 19).

* DM: the real batch's class means, augmented and embedded in slices (compiled
  or not), against one embedding per class of its own augmented images.
* DC/DSA: the real gradient summed over slices against the one-batch gradient,
  and the matching loss and its gradient w.r.t. the synthetic images.
* SRe2L: recover batches side by side in one forward against each batch
  recovered on its own (same seed: the same draws, the same images).

Tolerance: float32 summation order only; rtol 1e-4 / atol 1e-5 on values of
order 1 (what reordering a few hundred float32 sums moves), looser (1e-3) where
a run of optimisation steps compounds it (SRe2L's images after 5 Adam steps).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ddlib.engine import augment as aug
from ddlib.engine.fastpath import Slicer, batch_independent
from ddlib.engine.models import create_model
from ddlib.methods.distill import sre2l
from ddlib.methods.distill.dc import gradient_distance, real_class_grads
from ddlib.methods.distill.dm import dm_loss, real_class_means

RTOL, ATOL = 1e-4, 1e-5
K, IPC, N_REAL, SIZE = 3, 2, 40, 12


def _net(arch="convnet_d3w16", seed=0):
    return create_model(arch, K, 1, SIZE, seed=seed)


def _slicer(net, mode="eager", micro=8):
    s = Slicer(net, (1, SIZE, SIZE), torch.device("cpu"), mode)
    s.micro = micro  # tiny slices, several per class and some straddling two classes
    return s


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(K * N_REAL, 1, SIZE, SIZE, generator=g)
    real_y = torch.arange(K).repeat_interleave(N_REAL)
    syn = torch.randn(K * IPC, 1, SIZE, SIZE, generator=g).requires_grad_(True)
    return real, real_y, syn, torch.arange(K).repeat_interleave(IPC)


def _dm_per_class(net, real, real_y, syn, syn_y, params):
    """The reference's loop: per class, one op and row for real and synthetic, two embeddings."""
    loss = 0.0
    for c in range(K):
        p = aug._unpack(params.ops[int(params.op_ids[c])], params.values[c:c + 1])  # class c's row
        r = aug.apply(real[real_y == c], p, torch.zeros(N_REAL, dtype=torch.long))
        s = aug.apply(syn[syn_y == c], p, torch.zeros(IPC, dtype=torch.long))
        with torch.no_grad():
            mr = net.embed(r).mean(0)
        loss = loss + ((mr - net.embed(s).mean(0)) ** 2).sum()
    return loss


def test_dm_sliced_real_means_and_loss_match_the_per_class_loop():
    _check_dm("eager")


def test_dm_compiled_slices_match_the_per_class_loop():
    _check_dm("compiled")  # compiles for tens of seconds on 2 busy cores: in conftest's SLOW


def _check_dm(mode):
    net = _net()
    for p in net.parameters():
        p.requires_grad_(False)
    real, real_y, syn, syn_y = _data()
    params = aug.draw_mixed(aug.DSA_FLIP, K, torch.Generator().manual_seed(1), SIZE)
    fwd = _slicer(net, mode)
    assert len(fwd.slices(net, len(real))) == math.ceil(len(real) / 8)
    whole = real_class_means(net, real, real_y, K, params)
    sliced = real_class_means(net, real, real_y, K, params, fwd)
    torch.testing.assert_close(sliced, whole, rtol=RTOL, atol=ATOL)
    got = dm_loss(net, real, real_y, syn, syn_y, K, params, fwd)
    (g_got,) = torch.autograd.grad(got, syn)
    want = _dm_per_class(net, real, real_y, syn, syn_y, params)
    (g_want,) = torch.autograd.grad(want, syn)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(g_got, g_want, rtol=RTOL, atol=ATOL)
    assert float(g_want.abs().max()) > 1e-3  # a gradient that can differ


@pytest.mark.parametrize("arch", ["convnet_d3w16", "convnet_d3w16_bn"])
def test_dc_sliced_real_gradient_and_matching_loss_match_one_batch(arch):
    net = _net(arch)
    if arch.endswith("_bn"):
        assert not batch_independent(net)  # training-mode batch norm: never sliced
        assert len(_slicer(net).slices(net, 40)) == 1
        net.eval()  # DC's frozen batch norm: sliced
    params = list(net.parameters())
    real, real_y, syn, syn_y = _data(1)
    fwd = _slicer(net)
    loss_fast, loss_plain = 0.0, 0.0
    for c in range(K):
        r, s = real[real_y == c], syn[syn_y == c]
        fast = real_class_grads(net, r, c, params, fwd)
        plain = [t.detach() for t in torch.autograd.grad(F.cross_entropy(net(r), torch.full((N_REAL,), c)), params)]
        for a, b in zip(fast, plain):
            if a.dim() > 1:  # conv biases before a norm have a ~0 gradient: only noise to compare
                torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
        g_syn = torch.autograd.grad(F.cross_entropy(net(s), torch.full((IPC,), c)), params, create_graph=True)
        loss_fast = loss_fast + gradient_distance(g_syn, fast)
        loss_plain = loss_plain + gradient_distance(g_syn, plain)
    (gf,) = torch.autograd.grad(loss_fast, syn, retain_graph=True)
    (gp,) = torch.autograd.grad(loss_plain, syn)
    torch.testing.assert_close(loss_fast, loss_plain, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(gf, gp, rtol=1e-3, atol=1e-6)
    assert float(gp.abs().max()) > 1e-6


def _plain_recover(teacher, bns, k, m, g, iters, lr, r_bn, first_bn, jitter, bounds):
    """One batch on its own, written as the reference's loop (and ddlib before the side-by-side recovery)."""
    lo, hi = bounds
    stats = []
    hooks = [bn.register_forward_hook(lambda _m, inp, _o: stats.append(sre2l.batch_stats(inp[0]))) for bn in bns]
    x = torch.randn(k, m.in_chans, m.img_size, m.img_size, generator=g).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.5, 0.9), eps=1e-8)
    curve = []
    for it in range(iters):
        for grp in opt.param_groups:
            grp["lr"] = 0.5 * lr * (1 + math.cos(math.pi * it / iters))
        stats.clear()
        dx, dy = (int(v) for v in torch.randint(0, jitter + 1, (2,), generator=g))
        loss = F.cross_entropy(teacher(torch.roll(x, shifts=(dx, dy), dims=(2, 3))), torch.arange(k)) \
            + r_bn * sre2l.bn_matching_loss(stats, bns, first_bn)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
        curve.append(float(loss.detach()))
    for h in hooks:
        h.remove()
    return x.detach(), curve


def test_sre2l_side_by_side_recovery_matches_one_batch_at_a_time():
    teacher = _net("convnet_d3w16_bn", seed=3)
    with torch.no_grad():  # running statistics that are not the defaults
        teacher.train()(torch.randn(64, 1, SIZE, SIZE) * 2 + 0.5)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    bns = sre2l.bn_layers(teacher)
    m = SimpleNamespace(in_chans=1, img_size=SIZE)
    bounds = (torch.tensor(-1.5), torch.tensor(2.0))
    ctx = SimpleNamespace(quiet=True, meter=SimpleNamespace(backward=lambda n: None))
    groups, iters = 3, 5
    stats = []
    hooks = [bn.register_forward_hook(lambda _m, inp, _o: stats.append(inp[0])) for bn in bns]
    got, curves = sre2l._recover_groups(teacher, bns, stats, K, groups, m, "cpu", torch.Generator().manual_seed(7),
                                        iters, 0.25, 0.01, 10.0, "jitter", 2, 0.5, False, bounds, ctx, "")
    for h in hooks:
        h.remove()
    g = torch.Generator().manual_seed(7)
    for j in range(groups):
        want, curve = _plain_recover(teacher, bns, K, m, g, iters, 0.25, 0.01, 10.0, 2, bounds)
        torch.testing.assert_close(got[j * K:(j + 1) * K], want, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(curves[j], torch.tensor(curve), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got[:K], got[K:2 * K])  # each batch its own problem
