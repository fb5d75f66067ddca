"""Gradient matching (DC) and its siamese-augmented variant (DSA).

The layer-wise distance against hand-computed values, DSA's shared transform,
and on digits (smoke sizes): the objective goes down, the run is reproducible,
the images move away from their real initialisation, and passes are counted.
"""
import dataclasses

import pytest
import torch

from ddlib.core.cost import Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.engine import augment as aug
from ddlib.methods.context import Context
from ddlib.methods.distill import distill
from ddlib.methods.distill.dc import gradient_distance, paper_loops, siamese_augment


def _run(name, digits, profile, tmp_path, ipc=2, seed=0, **hp):
    ctx = Context(profile, Store(tmp_path), Meter(), quiet=True)
    return distill(name, digits, ipc, seed=seed, ctx=ctx, **hp)


def _grads(seed):
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3, 3, 3), (4,), (5, 4), (5,)]  # conv weight, bias, linear weight, bias
    return [torch.randn(s, generator=g) for s in shapes]


# --- gradient_distance -------------------------------------------------------------------

def test_distance_known_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert gradient_distance([a], [b]).item() == pytest.approx(2.0)  # two orthogonal rows: 1 + 1
    c = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    d = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # row 0 parallel (0), row 1 at 45 degrees (1 - 1/sqrt 2)
    assert gradient_distance([c], [d]).item() == pytest.approx(1 - 2 ** -0.5, abs=1e-5)
    # a conv-shaped (out, in, kh, kw) tensor is compared per output channel
    assert gradient_distance([a.view(2, 1, 1, 2)], [(-a).view(2, 1, 1, 2)]).item() == pytest.approx(4.0)


def test_distance_zero_for_identical_and_symmetric_and_positive():
    a, b = _grads(0), _grads(1)
    assert gradient_distance(a, [t.clone() for t in a]).item() == pytest.approx(0.0, abs=1e-5)
    assert gradient_distance(a, b).item() == gradient_distance(b, a).item()
    assert gradient_distance(a, b).item() > 0.5


def test_distance_ignores_one_dimensional_tensors():
    a, b = _grads(0), _grads(1)
    mixed = [b[0], a[1] * 0 + 7.0, b[2], -a[3]]  # same matrices as b, other biases
    assert gradient_distance(a, mixed).item() == gradient_distance(a, b).item()
    assert gradient_distance([a[1]], [b[1]]).item() == 0.0


def test_distance_is_differentiable_and_checks_shapes():
    a = [t.requires_grad_(True) for t in _grads(0)]
    gradient_distance(a, _grads(1)).backward()
    assert a[0].grad is not None and a[0].grad.abs().sum() > 0
    with pytest.raises(ValueError):
        gradient_distance(_grads(0), _grads(1)[:2])


def test_paper_loops_nearest_ipc_and_cpu_divisor():
    assert paper_loops(1) == (1, 1) and paper_loops(10) == (10, 50) and paper_loops(50) == (50, 10)
    assert paper_loops(2) == (1, 1) and paper_loops(6) == (10, 50) and paper_loops(30) == (10, 50)
    assert paper_loops(31) == (50, 10)
    assert paper_loops(1, 5) == (1, 1) and paper_loops(10, 5) == (2, 10) and paper_loops(50, 5) == (10, 2)


# --- DSA's siamese augmentation ------------------------------------------------------------

@pytest.mark.parametrize("op", aug.DSA_FLIP.split("_"))
def test_siamese_augment_applies_one_transform_to_both_batches(op):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 8, 8)
    others = torch.randn(4, 1, 8, 8)
    moved = False
    for _ in range(10):  # several draws: each one is shared, and some are not the identity
        real, syn = siamese_augment(torch.cat([x, x, others]), x.expand(3, -1, -1, -1), op, g, 8)
        assert torch.equal(real[0], syn[0]) and torch.equal(real[1], syn[2])
        moved |= not torch.allclose(syn[0], x[0])
    assert moved


def test_siamese_augment_is_differentiable_and_off_without_strategy():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    r = torch.randn(3, 1, 8, 8)
    assert siamese_augment(r, x, "", torch.Generator(), 8)[1] is x
    _, syn = siamese_augment(r, x, "rotate", torch.Generator().manual_seed(0), 8)
    syn.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert aug.parse_strategy(aug.DSA_NO_FLIP) == ("color", "crop", "cutout", "scale", "rotate")
    # the reference's lists per dataset: flip on clothing / CIFAR, never on digits
    assert aug.resolve("dsa", "fashion_mnist") == aug.DSA_FLIP == aug.resolve("dsa", "cifar10")
    assert aug.resolve("dsa", "mnist") == aug.DSA_NO_FLIP == aug.resolve("dsa", "digits")
    assert aug.resolve("crop", "fashion_mnist") == "crop"
    with pytest.raises(DDLibError, match="resolved per dataset"):
        aug.draw("dsa", 2, torch.Generator(), 8)


# --- the distillers on digits ------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_dc_loss_decreases(digits, smoke_profile, tmp_path, seed):
    # The smoke synth_model (convnet_d3w16_bn).  Its instance-norm twin ends in a GroupNorm
    # over 2x2 maps on 8x8 digits; there gradient matching with lr_img 0.1 raises the loss.
    lc = _run("dc", digits, smoke_profile, tmp_path, seed=seed, iters=30).extras["loss_curve"]
    assert lc.shape == (30,) and torch.isfinite(lc).all()
    assert lc[-5:].mean() < 0.95 * lc[:5].mean()


@pytest.mark.parametrize("name", ["dc", "dsa"])
def test_matching_beats_no_update_on_the_same_networks(digits, smoke_profile, tmp_path, name):
    """Paired: nets, real batches and DSA draws do not depend on lr_img (lr_img=0: no learning)."""
    learnt = _run(name, digits, smoke_profile, tmp_path, iters=20).extras["loss_curve"]
    frozen = _run(name, digits, smoke_profile, tmp_path, iters=20, lr_img=0.0).extras["loss_curve"]
    assert learnt[0] == frozen[0]
    assert learnt[-10:].sum() < frozen[-10:].sum()


@pytest.mark.parametrize("name", ["dc", "dsa"])
def test_deterministic_and_seed_dependent(digits, smoke_profile, tmp_path, name):
    a = _run(name, digits, smoke_profile, tmp_path, ipc=10, iters=2)
    b = _run(name, digits, smoke_profile, tmp_path, ipc=10, iters=2)
    c = _run(name, digits, smoke_profile, tmp_path, ipc=10, seed=1, iters=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.extras["loss_curve"], b.extras["loss_curve"])
    assert not torch.equal(a.images, c.images)
    assert (a.extras["outer_loop"], a.extras["inner_loop"]) == (2, 10)  # smoke: paper's (10, 50) // 5


def _real_rows(digits):
    return {r.numpy().tobytes(): int(y) for r, y in zip(digits.train_x, digits.train_y)}


@pytest.mark.parametrize("name", ["dc", "dsa"])
def test_images_start_real_and_move_away(digits, smoke_profile, tmp_path, name):
    rows = _real_rows(digits)
    still = _run(name, digits, smoke_profile, tmp_path, ipc=3, iters=2, lr_img=0.0)
    assert torch.equal(still.labels, torch.arange(10).repeat_interleave(3))
    for img, y in zip(still.images, still.labels):
        assert rows.get(img.numpy().tobytes()) == int(y)  # a real image of its own class
    moved = _run(name, digits, smoke_profile, tmp_path, ipc=3, iters=3)
    assert torch.equal(moved.labels, still.labels)
    diff = (moved.images - still.images).flatten(1).norm(dim=1)
    assert (diff > 1e-3).all()  # same seed: same start, every image updated
    assert not any(img.numpy().tobytes() in rows for img in moved.images)


def test_cost_counts_passes(digits, smoke_profile, tmp_path):
    # ipc 2 -> loops (1, 1): one image update per net and no inner loop.  Per iteration:
    # 16/class real images set the batch-norm statistics (forward only), then per class
    # 32 real + 2 synthetic forwards and backwards, and 20 synthetic second-order backwards.
    syn = _run("dc", digits, smoke_profile, tmp_path, iters=2)
    assert syn.cost.fwd == 2 * (10 * 16 + 10 * (32 + 2))
    assert syn.cost.bwd == 2 * (10 * (32 + 2) + 20)
    assert syn.cost.seconds > 0


def test_defaults_come_from_profile(digits, smoke_profile, tmp_path):
    prof = dataclasses.replace(smoke_profile, synth_iters=10)
    assert _run("dc", digits, prof, tmp_path).extras["loss_curve"].shape == (2,)  # 10 // 5
    prof = dataclasses.replace(smoke_profile, synth_iters=3)
    assert _run("dsa", digits, prof, tmp_path).extras["loss_curve"].shape == (1,)  # at least 1


def test_dc_rejects_a_strategy_and_unknown_hp(digits, smoke_profile, tmp_path):
    with pytest.raises(DDLibError, match="unknown hyper-parameter.*strategy"):
        _run("dc", digits, smoke_profile, tmp_path, iters=1, strategy="crop")
    with pytest.raises(DDLibError, match="unknown hyper-parameter.*lr"):
        _run("dsa", digits, smoke_profile, tmp_path, iters=1, lr=0.1)
