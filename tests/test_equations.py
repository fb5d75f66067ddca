"""The methods' mathematics, re-derived from the papers' equations on tiny fixed inputs.

Each test computes one quantity twice: through ddlib, and through an
independent derivation written here from the paper's equation (explicit
loops, closed-form gradients of a softmax regression, hand-computed
statistics), never through the ddlib function under test.  They must agree
to float tolerance.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddlib.methods.coresets.scores import el2n, forgetting_counts
from ddlib.methods.distill.dc import gradient_distance
from ddlib.methods.distill.dd import unroll
from ddlib.methods.distill.dm import dm_loss
from ddlib.methods.distill.mtt import flat_params, student_step, trajectory_loss, unflatten
from ddlib.methods.distill.sre2l import batch_stats, bn_matching_loss

K, D = 3, 5  # classes, input features of the toy softmax regressions


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g, dtype=torch.float64)
    y = torch.arange(n) % K
    return x, y


def _linear(seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(D, K).double()


def _softmax_regression_grad(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """d/dW, d/db of mean CE(x W^T + b, y), from (softmax - onehot): the closed form."""
    n = len(x)
    gw = torch.zeros_like(w)
    gb = torch.zeros_like(b)
    for i in range(n):
        z = [float(sum(w[c, j] * x[i, j] for j in range(x.shape[1])) + b[c]) for c in range(w.shape[0])]
        mx = max(z)
        e = [math.exp(v - mx) for v in z]
        p = [v / sum(e) for v in e]
        for c in range(w.shape[0]):
            r = p[c] - (1.0 if c == int(y[i]) else 0.0)
            gb[c] += r / n
            for j in range(x.shape[1]):
                gw[c, j] += r * float(x[i, j]) / n
    return gw, gb


class _Embed(nn.Module):
    """A fixed feature map psi (tanh of a linear layer) with DM's ``embed`` interface."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.lin = nn.Linear(D, 4).double()

    def embed(self, x):
        return torch.tanh(self.lin(x.flatten(1)))


def test_dm_loss_is_eq4_sum_of_squared_class_mean_distances():
    """DM (Zhao & Bilen 2023, Eq. 4): sum_c || mean psi(R_c) - mean psi(S_c) ||^2."""
    net = _Embed()
    real, ry = _data(12, 0)
    syn, sy = _data(6, 1)
    got = float(dm_loss(net, real, ry, syn, sy, K, None).detach())
    want = 0.0
    with torch.no_grad():
        for c in range(K):
            er = [net.embed(real[i:i + 1])[0] for i in range(len(ry)) if ry[i] == c]
            es = [net.embed(syn[i:i + 1])[0] for i in range(len(sy)) if sy[i] == c]
            mr = [sum(float(e[d]) for e in er) / len(er) for d in range(4)]
            ms = [sum(float(e[d]) for e in es) / len(es) for d in range(4)]
            want += sum((a - b) ** 2 for a, b in zip(mr, ms))
    assert math.isclose(got, want, rel_tol=1e-10)


def test_dc_distance_is_eq10_layerwise_one_minus_cosine_of_output_rows():
    """DC (Zhao et al. 2021, Eq. 10): sum over layers and output nodes of 1 - cos(A_i, B_i); biases out."""
    g = torch.Generator().manual_seed(4)
    a = [torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64),
         torch.randn(4, 6, generator=g, dtype=torch.float64)]
    b = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in a]
    want = 0.0
    for ta, tb in zip(a, b):
        if ta.dim() == 1:
            continue  # the paper's distance is over weight matrices; biases do not enter
        ra, rb = ta.reshape(ta.shape[0], -1).tolist(), tb.reshape(tb.shape[0], -1).tolist()
        for u, v in zip(ra, rb):
            dot = sum(p * q for p, q in zip(u, v))
            nu, nv = math.sqrt(sum(p * p for p in u)), math.sqrt(sum(q * q for q in v))
            want += 1 - dot / (nu * nv + 1e-6)
    assert math.isclose(float(gradient_distance(a, b)), want, rel_tol=1e-10)


def test_mtt_loss_is_eq2_normalised_distance_after_n_student_steps():
    """MTT (Cazenavette et al. 2022, Eq. 2): ||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2,
    theta_N from N SGD steps of size alpha on the synthetic batches."""
    net = _linear(5)
    start = flat_params(net).double()
    target = start + 0.3 * torch.ones_like(start)
    xs, ys = _data(6, 6)
    alpha, batches = 0.2, [slice(0, 3), slice(3, 6), slice(0, 3)]
    theta = start.clone().requires_grad_(True)
    for sl in batches:
        theta = student_step(net, theta, xs[sl], ys[sl], alpha)
    got = float(trajectory_loss(theta, start, target))
    w, b = net.weight.detach().clone(), net.bias.detach().clone()
    for sl in batches:
        gw, gb = _softmax_regression_grad(w, b, xs[sl], ys[sl])
        w, b = w - alpha * gw, b - alpha * gb
    end = torch.cat([w.reshape(-1), b])  # nn.Linear's parameter order: weight, bias
    want = float(((end - target) ** 2).sum() / ((start - target) ** 2).sum())
    assert math.isclose(got, want, rel_tol=1e-9)
    assert unflatten(net, start)["weight"].shape == (K, D)


def test_dd_unroll_is_algorithm1_gd_steps_with_learnt_rates():
    """DD (Wang et al. 2018, Alg. 1): theta_{t+1} = theta_t - eta_t grad l(x~_{t mod S}; theta_t)."""
    net = _linear(7)
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}
    xs, ys = _data(6, 8)  # 2 steps of 3 images, step-major
    lrs = torch.tensor([0.3, 0.1, 0.2, 0.05], dtype=torch.float64)  # S = 2 steps x E = 2 epochs
    got = unroll(net, theta, {}, xs, ys, lrs, steps=2, create_graph=False)
    w, b = net.weight.detach().clone(), net.bias.detach().clone()
    for t in range(len(lrs)):
        sl = slice(0, 3) if t % 2 == 0 else slice(3, 6)
        gw, gb = _softmax_regression_grad(w, b, xs[sl], ys[sl])
        w, b = w - float(lrs[t]) * gw, b - float(lrs[t]) * gb
    assert torch.allclose(got["weight"], w, atol=1e-12) and torch.allclose(got["bias"], b, atol=1e-12)


def test_sre2l_bn_loss_is_eq_sum_of_l2_norms_of_statistic_gaps():
    """SRe2L (Yin et al. 2023, Eq. 5-6): sum_l a_l (||mu_l(x) - mu_l^BN||_2 + ||var_l(x) - var_l^BN||_2),
    biased batch variance, a_1 = first_bn_multiplier."""
    torch.manual_seed(9)
    conv1, bn1, conv2, bn2 = nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Conv2d(2, 3, 3, padding=1), \
        nn.BatchNorm2d(3)
    for bn in (bn1, bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    net = nn.Sequential(conv1, bn1, nn.ReLU(), conv2, bn2).eval()
    x = torch.randn(4, 1, 5, 5)
    stats = []
    hooks = [bn.register_forward_hook(lambda _m, inp, _o: stats.append(batch_stats(inp[0]))) for bn in (bn1, bn2)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    got = float(bn_matching_loss(stats, [bn1, bn2], first_bn_multiplier=10.0))
    with torch.no_grad():
        inputs = [conv1(x), conv2(F.relu(bn1(conv1(x))))]
    want = 0.0
    for a, inp, bn in zip((10.0, 1.0), inputs, (bn1, bn2)):
        n = inp.shape[0] * inp.shape[2] * inp.shape[3]
        mu = [float(inp[:, c].sum()) / n for c in range(inp.shape[1])]
        var = [float(((inp[:, c] - mu[c]) ** 2).sum()) / n for c in range(inp.shape[1])]
        dm = math.sqrt(sum((m - float(r)) ** 2 for m, r in zip(mu, bn.running_mean)))
        dv = math.sqrt(sum((v - float(r)) ** 2 for v, r in zip(var, bn.running_var)))
        want += a * (dm + dv)
    assert math.isclose(got, want, rel_tol=1e-5)


def test_el2n_is_the_l2_norm_of_softmax_minus_onehot():
    """EL2N (Paul et al. 2021, Sec. 2): || softmax(f(x)) - onehot(y) ||_2 per example."""
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 2, 1])
    got = el2n(logits, y).tolist()
    for row, label, g in zip(logits.tolist(), y.tolist(), got):
        e = [math.exp(v) for v in row]
        p = [v / sum(e) for v in e]
        want = math.sqrt(sum((pc - (1.0 if c == label else 0.0)) ** 2 for c, pc in enumerate(p)))
        assert math.isclose(g, want, rel_tol=1e-6)  # ddlib scores in float32


def test_forgetting_count_is_correct_to_incorrect_transitions():
    """Toneva et al. 2019, Sec. 2: a forgetting event is acc_i^t > acc_i^{t+1}; never learned = infinite (T)."""
    history = torch.tensor([[1, 0, 0, 1],
                            [0, 0, 1, 1],
                            [1, 0, 0, 1],
                            [0, 0, 1, 0],
                            [1, 0, 1, 1]], dtype=torch.bool)
    got = forgetting_counts(history).tolist()
    rows = history.tolist()
    for i in range(history.shape[1]):
        col = [r[i] for r in rows]
        events = sum(1 for t in range(len(col) - 1) if col[t] and not col[t + 1])
        want = events if any(col) else len(col)
        assert got[i] == want
    assert got == [2, 5, 1, 1]
