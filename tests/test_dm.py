"""Distribution matching: the objective goes down; class means known answer."""
import dataclasses

import pytest
import torch

from ddlib.core.cost import Meter
from ddlib.core.store import Store
from ddlib.engine.models import create_model
from ddlib.methods.context import Context
from ddlib.methods.distill import distill
from ddlib.methods.distill.dm import class_means, dm_loss


def _curve(digits, profile, tmp_path, seed=0, **hp):
    ctx = Context(profile, Store(tmp_path), Meter(), quiet=True)
    return distill("dm", digits, 2, seed=seed, ctx=ctx, **hp).extras["loss_curve"]


@pytest.mark.parametrize("seed", [0, 1])
def test_dm_loss_decreases(digits, smoke_profile, tmp_path, seed):
    # The smoke student (convnet_d3w16, instance norm) ends in a GroupNorm over 2x2 maps on
    # 8x8 digits, which leaves DM an almost flat objective (see the paired test below);
    # its batch-norm twin gives a clear signal in 30 iterations.
    lc = _curve(digits, smoke_profile, tmp_path, seed, iters=30, model="convnet_d3w16_bn")
    assert lc.shape == (30,) and torch.isfinite(lc).all()
    assert lc[-5:].mean() < 0.8 * lc[:5].mean()


def test_dm_beats_no_update_on_the_same_networks(digits, smoke_profile, tmp_path):
    """Paired: the per-iteration nets, real batches and DSA draws do not depend on lr_img,
    so the loss curve with lr_img=0 is the same sequence of problems without learning."""
    for seed in (0, 1):
        learnt = _curve(digits, smoke_profile, tmp_path, seed, iters=30)
        frozen = _curve(digits, smoke_profile, tmp_path, seed, iters=30, lr_img=0.0)
        assert learnt[0] == frozen[0]  # identical first problem, identical start
        assert learnt[-10:].sum() < frozen[-10:].sum()


def test_dm_defaults_come_from_profile(digits, smoke_profile, tmp_path):
    prof = dataclasses.replace(smoke_profile, synth_iters=4)
    lc = _curve(digits, prof, tmp_path)
    assert lc.shape == (4,)


def test_dm_starts_from_real_images_and_keeps_hard_labels(digits, smoke_profile, tmp_path):
    ctx = Context(smoke_profile, Store(tmp_path), Meter(), quiet=True)
    syn = distill("dm", digits, 3, seed=0, ctx=ctx, iters=1, lr_img=0.0)
    assert torch.equal(syn.labels, torch.arange(10).repeat_interleave(3))
    rows = {r.numpy().tobytes(): int(y) for r, y in zip(digits.train_x, digits.train_y)}
    for img, y in zip(syn.images, syn.labels):
        assert rows.get(img.numpy().tobytes()) == int(y)  # a real image of its own class
    assert syn.cost.fwd > 0 and syn.cost.bwd == 30


def test_class_means_known_answer():
    emb = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 2, 3])
    out = class_means(emb, labels, 4)
    expect = torch.tensor([[2.0, 3.0], [0.0, 0.0], [5.0, 6.0], [-1.0, 0.0]])
    assert torch.equal(out, expect)


def test_class_means_is_differentiable():
    emb = torch.randn(6, 3, requires_grad=True)
    class_means(emb, torch.tensor([0, 0, 0, 1, 1, 2]), 3).sum().backward()
    expect = torch.tensor([1 / 3] * 3 + [1 / 2] * 2 + [1.0]).unsqueeze(1).expand(6, 3)
    assert torch.allclose(emb.grad, expect)


def test_dm_loss_zero_when_sets_match():
    net = create_model("convnet_d3w16", 3, 1, 8, seed=0)
    x = torch.randn(6, 1, 8, 8)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    assert dm_loss(net, x, y, x.clone(), y, 3, None).item() == pytest.approx(0.0, abs=1e-10)
    assert dm_loss(net, x, y, torch.randn(6, 1, 8, 8), y, 3, None).item() > 0
