"""Label regimes: who calls the teacher, on what, how often; the KD loss."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ddlib.core.config import PROTOCOLS
from ddlib.engine.models import create_model
from ddlib.engine.regimes import REGIMES, HardLabels, create_regime, kd_loss, teacher_probs
from ddlib.engine.train import budget_samples, fit


class Counting(nn.Module):
    """Wraps a network; records every batch it is called on."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.calls = 0
        self.samples = 0
        self.inputs = []

    def forward(self, x):
        self.calls += 1
        self.samples += int(x.shape[0])
        self.inputs.append(x.detach().clone())
        return self.net(x)


def _teacher(seed):
    t = Counting(create_model("convnet_d3w16", 10, 1, 8, seed=seed)).eval()
    for p in t.parameters():
        p.requires_grad_(False)
    return t


def _set(digits, per_class=3):
    idx = torch.cat([digits.class_indices(c)[:per_class] for c in range(digits.num_classes)])
    return digits.train_x[idx], digits.train_y[idx]


def _run(digits, smoke_profile, regime, teachers, budget, augment=None):
    x, y = _set(digits)
    student = Counting(create_model(smoke_profile.model, 10, 1, 8, seed=0))
    res = fit(student, x, y, regime=create_regime(regime), teachers=teachers, budget=budget,
              pool_size=len(digits.train_y), protocol=PROTOCOLS.get(smoke_profile.protocol),
              seed=0, augment=augment)
    return x, student, res


def test_registered_regimes():
    assert set(REGIMES.names()) == {"hl", "sl", "slkd", "mt", "slkd_stored"}


@pytest.mark.parametrize("budget", [0.1, 0.5])
def test_sl_calls_teacher_once_on_stored_images(digits, smoke_profile, budget):
    t = _teacher(1)
    x, student, res = _run(digits, smoke_profile, "sl", [t], budget)
    assert res.samples_seen == budget_samples(budget, len(digits.train_y))
    assert t.calls == 1
    assert t.samples == len(x)  # independent of the budget
    assert torch.equal(t.inputs[0], x)  # the un-augmented stored images
    assert student.samples == res.samples_seen


@pytest.mark.parametrize("budget", [0.1, 0.5])
def test_slkd_teacher_sees_every_training_view(digits, smoke_profile, budget):
    t = _teacher(1)
    x, student, res = _run(digits, smoke_profile, "slkd", [t], budget)
    assert t.samples == res.samples_seen + 0  # nothing extra in prepare
    assert t.calls == res.steps
    # exactly the (augmented) views the student was trained on, in order
    assert len(t.inputs) == len(student.inputs)
    for a, b in zip(t.inputs, student.inputs):
        assert torch.equal(a, b)
    # and they are augmented views, not only stored images
    stored = {r.numpy().tobytes() for r in x}
    views = torch.cat(t.inputs)
    assert sum(v.numpy().tobytes() not in stored for v in views) > 0


def test_mt_calls_every_teacher(digits, smoke_profile):
    t1, t2 = _teacher(1), _teacher(2)
    _, student, res = _run(digits, smoke_profile, "mt", [t1, t2], 0.2)
    for t in (t1, t2):
        assert t.samples == res.samples_seen
        assert t.calls == res.steps
    assert create_regime("mt").n_teachers(smoke_profile) == smoke_profile.n_teachers
    assert create_regime("slkd").n_teachers(smoke_profile) == 1
    assert create_regime("sl").n_teachers(smoke_profile) == 1
    assert create_regime("hl").n_teachers(smoke_profile) == 0


def test_hl_never_needs_a_teacher(digits, smoke_profile):
    _, student, res = _run(digits, smoke_profile, "hl", [], 0.2)
    assert student.samples == res.samples_seen


def test_teacher_probs_averages_ensemble():
    x = torch.randn(5, 1, 8, 8)
    a = create_model("convnet_d3w16", 10, 1, 8, seed=1).eval()
    b = create_model("convnet_d3w16", 10, 1, 8, seed=2).eval()
    p = teacher_probs([a, b], x, 2.0, batch=2)
    with torch.no_grad():
        expect = (F.softmax(a(x) / 2, 1) + F.softmax(b(x) / 2, 1)) / 2
    assert torch.allclose(p, expect, atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(5), atol=1e-6)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_kd_loss_zero_iff_logits_match(T):
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 10, generator=g) * 3
    probs = F.softmax(t / T, dim=1)
    assert kd_loss(t, probs, T).item() == pytest.approx(0.0, abs=1e-5)
    # a constant shift of the logits is the same distribution
    assert kd_loss(t + 5.0, probs, T).item() == pytest.approx(0.0, abs=1e-5)
    s = torch.randn(8, 10, generator=g) * 3
    assert kd_loss(s, probs, T).item() > 1e-3


def test_kd_loss_known_value():
    T = 2.0
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    q = F.softmax(s / T, dim=1)
    kl = (p * (p.log() - q.log())).sum(1).mean()  # batch mean
    assert kd_loss(s, p, T).item() == pytest.approx(float(kl * T * T), rel=1e-5)


def test_hl_with_soft_labels_uses_argmax():
    g = torch.Generator().manual_seed(0)
    soft = F.softmax(torch.randn(6, 4, generator=g) * 3, 1)
    logits = torch.randn(3, 4, generator=g)
    idx = torch.tensor([4, 0, 2])
    r = HardLabels()
    r.prepare(torch.zeros(6, 1, 2, 2), soft, [], 4.0)
    expect = F.cross_entropy(logits, soft.argmax(1)[idx])
    assert torch.allclose(r.loss(logits, None, idx), expect)
    hard = torch.tensor([3, 2, 1, 0, 1, 2])
    r.prepare(torch.zeros(6, 1, 2, 2), hard, [], 4.0)
    assert torch.allclose(r.loss(logits, None, idx), F.cross_entropy(logits, hard[idx]))


def test_stored_views_belong_to_the_set_not_its_cache_key(digits):
    """slkd_stored's views are drawn from a stream seeded by the set's pixels: the same set under
    a new cache key (a new library version) gets the same views, another set other views."""
    from ddlib.engine.regimes import FitPlan

    m = digits.meta
    teacher = create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=1).eval()

    def views(lo, key):
        x, y = digits.train_x[lo:lo + 20], digits.train_y[lo:lo + 20]
        reg = create_regime("slkd_stored")
        reg.prepare(x, y, [teacher], 1.0, plan=FitPlan(40, "color_crop", 8, (None, key)))
        return reg.op_ids, reg.values

    a, b, c = views(0, "set-key-v1"), views(0, "set-key-v2"), views(20, "set-key-v1")
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[1], c[1])
