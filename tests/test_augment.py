"""DSA augmentation: siamese parameters, shapes, gradients, known transforms."""
import pytest
import torch

from ddlib.core.registry import DDLibError
from ddlib.engine import augment as aug
from ddlib.engine.augment import AugParams, apply, draw, parse_strategy


def _x(n=6, c=3, s=8, seed=0):
    return torch.randn(n, c, s, s, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("op", aug.OPS)
def test_siamese_same_params_same_transform_across_batch_sizes(op):
    g = torch.Generator().manual_seed(1)
    params = draw(op, 3, g, 8)
    assert params.op == op and params.rows() == 3
    base = _x(3)
    big = base.repeat_interleave(4, 0)  # 12 samples, 4 copies per group
    big_groups = torch.arange(3).repeat_interleave(4)
    small = base[[2, 0, 1]]  # 3 samples in another order
    small_groups = torch.tensor([2, 0, 1])
    out_big = apply(big, params, big_groups)
    out_small = apply(small, params, small_groups)
    for i, grp in enumerate(small_groups.tolist()):
        for j in range(4):
            assert torch.equal(out_big[4 * grp + j], out_small[i]), (op, grp, j)
    # without groups, row i goes to sample i
    assert torch.equal(apply(base, params), out_big[::4])


@pytest.mark.parametrize("op", aug.OPS)
def test_each_op_keeps_shape_and_dtype(op):
    g = torch.Generator().manual_seed(2)
    for shape in [(5, 1, 8, 8), (4, 3, 16, 16), (2, 1, 28, 28)]:
        x = torch.randn(*shape)
        y = apply(x, draw(op, shape[0], g, shape[-1]))
        assert y.shape == x.shape and y.dtype == x.dtype
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("op", aug.OPS)
def test_gradient_flows_to_input(op):
    g = torch.Generator().manual_seed(3)
    x = _x(4).requires_grad_(True)
    w = torch.randn(4, 3, 8, 8, generator=g)
    (apply(x, draw(op, 4, g, 8)) * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_rows_mismatch_without_groups_raises():
    params = draw("rotate", 3, torch.Generator().manual_seed(0), 8)
    with pytest.raises(ValueError):
        apply(_x(5), params)


@pytest.mark.parametrize("strategy", ["bogus", "color_bogus", "flip_Crop"])
def test_unknown_op_raises(strategy):
    with pytest.raises(DDLibError, match="augmentation"):
        parse_strategy(strategy)
    with pytest.raises(DDLibError):
        draw(strategy, 2, torch.Generator().manual_seed(0), 8)


def test_empty_strategy_is_identity():
    x = _x(2)
    assert draw("", 2, torch.Generator(), 8) is None
    assert apply(x, None) is x
    assert parse_strategy("color__crop") == ("color", "crop")


def test_draw_is_seeded():
    a = draw("color_crop_cutout_scale_rotate", 5, torch.Generator().manual_seed(4), 8)
    b = draw("color_crop_cutout_scale_rotate", 5, torch.Generator().manual_seed(4), 8)
    assert a.op == b.op and a.p.keys() == b.p.keys()
    assert all(torch.equal(a.p[k], b.p[k]) for k in a.p)


def test_crop_zero_shift_is_identity():
    x = _x(4, 2, 8)
    p = AugParams("crop", {"tx": torch.zeros(4, dtype=torch.long), "ty": torch.zeros(4, dtype=torch.long)})
    assert torch.equal(apply(x, p), x)


def test_crop_shift_known_answer():
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1
    p = AugParams("crop", {"tx": torch.tensor([1]), "ty": torch.tensor([0])})
    y = apply(x, p)[0, 0]
    assert torch.equal(y[0], torch.zeros(4))  # zero fill
    assert torch.equal(y[1:], x[0, 0, :3])  # rows moved down by one
    p = AugParams("crop", {"tx": torch.tensor([0]), "ty": torch.tensor([-1])})
    y = apply(x, p)[0, 0]
    assert torch.equal(y[:, :3], x[0, 0, :, 1:]) and torch.equal(y[:, 3], torch.zeros(4))


def test_crop_shift_range():
    p = draw("crop", 2000, torch.Generator().manual_seed(0), 32)
    shift = int(32 * aug.CROP_PAD + 0.5)
    for k in ("tx", "ty"):
        assert int(p.p[k].min()) == -shift and int(p.p[k].max()) == shift


def test_flip_param_true_flips():
    x = _x(3)
    p = AugParams("flip", {"f": torch.tensor([True, False, True])})
    y = apply(x, p)
    assert torch.equal(y[0], x[0].flip(-1))
    assert torch.equal(y[1], x[1])
    assert torch.equal(y[2], x[2].flip(-1))
    assert not torch.equal(y[0], x[0])


def test_scale_and_rotate_identity_params():
    x = _x(2)
    one = torch.ones(2)
    assert torch.allclose(apply(x, AugParams("scale", {"sx": one, "sy": one})), x, atol=1e-5)
    assert torch.allclose(apply(x, AugParams("rotate", {"a": torch.zeros(2)})), x, atol=1e-5)


def test_cutout_zeroes_a_square():
    x = torch.ones(1, 2, 8, 8)
    p = AugParams("cutout", {"cx": torch.tensor([4]), "cy": torch.tensor([4])})
    y = apply(x, p)
    size = int(8 * aug.CUTOUT + 0.5)
    assert int((y[0, 0] == 0).sum()) == size * size
    assert torch.equal(y[0, 0], y[0, 1])  # same hole in every channel
    assert bool((y[0, 0, 2:6, 2:6] == 0).all())


def test_color_midpoint_params_known_answer():
    # b = 0.5 -> no brightness shift; s = 0.5 -> saturation x1; c = 0.5 -> contrast x1
    x = _x(2)
    half = torch.full((2,), 0.5)
    y = apply(x, AugParams("color", {"b": half, "s": half, "c": half}))
    assert torch.allclose(y, x, atol=1e-5)
