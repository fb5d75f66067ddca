"""The baselines of the same size of Wang et al. 2018: per-class means and per-class k-means centres.

Both builders against their definitions on tiny sets whose answer is known by
hand, their shapes and determinism on digits, and DD with the baselines'
images frozen (``images="kmeans" | "mean"``, ``lr_img=0``: chapter 6's way).
That they never read the test split is tests/test_test_split.py (every
registered distiller).
"""
import pytest
import torch

from ddlib.core.cost import Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data import DatasetMeta, Split
from ddlib.methods.context import Context
from ddlib.methods.distill import distill
from ddlib.methods.distill.class_mean import class_mean_images
from ddlib.methods.distill.kmeans import kmeans_centres


def _ctx(profile, tmp_path):
    return Context(profile, Store(tmp_path), Meter(), quiet=True)


def _split(x, y, k):
    """A split of 1x1x2 "images" ``x`` (N, 2) with labels ``y``; an empty val and test split."""
    meta = DatasetMeta("toy", k, 1, 1, tuple(map(str, range(k))), (0.0,), (1.0,))
    tx = torch.tensor(x, dtype=torch.float32).view(-1, 1, 1, 2)
    e = tx[:0]
    return Split(tx, torch.tensor(y), e, torch.tensor(y)[:0], e, torch.tensor(y)[:0], meta)


# two classes; class 0 has two far-apart groups (three points near (0, 0), two near (10, 10)),
# class 1 three points near (-5, 5)
TOY_X = [[0, 0], [1, 0], [0, 2], [10, 10], [12, 10], [-5, 5], [-4, 5], [-6, 8], [0, 1]]
TOY_Y = [0, 0, 0, 0, 0, 1, 1, 1, 0]


def test_class_mean_is_the_pixel_mean_of_the_class_repeated():
    s = _split(TOY_X, TOY_Y, 2)
    m = class_mean_images(s, 3).view(6, 2)
    c0 = torch.tensor([0 + 1 + 0 + 10 + 12 + 0, 0 + 0 + 2 + 10 + 10 + 1]) / 6
    c1 = torch.tensor([-15.0, 18.0]) / 3
    assert torch.allclose(m[:3], c0.expand(3, 2)) and torch.allclose(m[3:], c1.expand(3, 2))


def test_kmeans_centres_are_the_means_of_their_clusters():
    s = _split(TOY_X, TOY_Y, 2)
    cen = kmeans_centres(s, 2, seed=0).view(2, 2, 2)  # (class, centre, pixel)
    # class 0: the two groups, whatever the order scikit-learn gives them
    got = sorted(map(tuple, cen[0].tolist()))
    assert got == pytest.approx(sorted([(1 / 4, 3 / 4), (11.0, 10.0)]))
    # the fixed point, for every class: each centre is the mean of the class's pool images nearest to it
    for c in range(2):
        x = s.train_x[s.class_indices(c)].flatten(1)
        near = torch.cdist(x, cen[c]).argmin(1)
        for j in range(2):
            assert torch.allclose(cen[c, j], x[near == j].mean(0))
    # k = 1 is the class mean, exactly
    assert torch.equal(kmeans_centres(s, 1, seed=3), class_mean_images(s, 1))


@pytest.mark.parametrize("name", ["kmeans", "class_mean"])
def test_baseline_shapes_labels_and_determinism(name, digits, fast_teacher_profile, tmp_path):
    k = digits.num_classes
    a = distill(name, digits, 3, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path / "a"))
    b = distill(name, digits, 3, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path / "b"))
    assert a.images.shape == (3 * k,) + tuple(digits.train_x.shape[1:]) and a.images.dtype == torch.float32
    assert torch.equal(a.labels, torch.arange(k).repeat_interleave(3))
    assert torch.equal(a.images, b.images)
    c = distill(name, digits, 3, seed=1, ctx=_ctx(fast_teacher_profile, tmp_path / "c"))
    # k-means starts from the seed's k-means++ draw; the class mean has no randomness
    assert torch.equal(a.images, c.images) == (name == "class_mean")


def test_kmeans_centres_lie_in_their_class(digits):
    """Every centre is a mean of its own class's images: nearer to that class's mean than to any other's
    on digits' well-separated classes (a label mix-up would put it elsewhere)."""
    cen = kmeans_centres(digits, 2, seed=0).flatten(1)
    means = class_mean_images(digits, 1).flatten(1)
    assert torch.equal(torch.cdist(cen, means).argmin(1), torch.arange(digits.num_classes).repeat_interleave(2))


def test_kmeans_rejects_a_bad_n_init(digits, fast_teacher_profile, tmp_path):
    with pytest.raises(DDLibError, match="n_init"):
        distill("kmeans", digits, 2, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), n_init=0)


@pytest.mark.parametrize("images,build", [("kmeans", lambda s, ipc: kmeans_centres(s, ipc, seed=0)),
                                          ("mean", lambda s, ipc: class_mean_images(s, ipc))])
def test_dd_with_frozen_baseline_images_learns_only_the_step_sizes(images, build, digits, fast_teacher_profile,
                                                                     tmp_path):
    """Chapter 6's baselines: the images stay the baseline's (put step-major), the step sizes move."""
    ipc, steps = 2, 2
    syn = distill("dd", digits, ipc, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), iters=3, steps=steps,
                  images=images, lr_img=0.0)
    base = build(digits, ipc)  # class-major (k, ipc)
    k = digits.num_classes
    step_major = base.view(k, steps, ipc // steps, *base.shape[1:]).transpose(0, 1).reshape(base.shape)
    assert torch.equal(syn.images, step_major)
    assert torch.equal(syn.labels, torch.arange(k).repeat(steps))
    lrs = syn.extras["lrs"]
    assert syn.extras["images"] == images
    assert not torch.allclose(lrs, torch.full_like(lrs, fast_teacher_profile.dd.lr_init))
