"""Generated from the registries: every coreset selector and distiller obeys one contract.

Each registered method, on digits (smoke sizes) at ipc 2: K*ipc items, class
balanced, reproducible for a seed, with a measured cost; an IPC larger than the
smallest class is a DDLibError raised before any work.
"""
import inspect

import pytest
import torch

from ddlib.core.cost import Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.methods.context import Context
from ddlib.methods.coresets import CORESETS, select
from ddlib.methods.distill import DISTILLERS, distill

IPC = 2


def _fast_hp(name):
    """``iters=3`` for the distillers that iterate (optimisation-free ones take no ``iters``)."""
    return {"iters": 3} if "iters" in inspect.signature(DISTILLERS.get(name)).parameters else {}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One fresh store per module so a teacher (herding) is trained once, not per test."""
    return Store(tmp_path_factory.mktemp("ddlib_home"))


def _ctx(profile, store):
    # budget-aware selectors (cad_prune) need the run's budget, as the runner sets it
    return Context(profile, store, Meter(), quiet=True, budget=2.0)


def _labels(y):
    return y.argmax(1) if y.dim() == 2 else y


@pytest.mark.parametrize("name", CORESETS.names())
def test_coreset_contract(name, digits, fast_teacher_profile, store):
    k, n = digits.num_classes, len(digits.train_y)
    sel = select(name, digits, IPC, seed=0, ctx=_ctx(fast_teacher_profile, store))
    idx = sel.indices
    assert idx.dtype == torch.long and idx.dim() == 1
    assert len(idx) == k * IPC
    assert len(set(idx.tolist())) == len(idx), "indices not unique"
    assert int(idx.min()) >= 0 and int(idx.max()) < n
    counts = torch.bincount(digits.train_y[idx], minlength=k)
    assert counts.tolist() == [IPC] * k
    assert sel.scores is None or sel.scores.shape[0] == n
    assert sel.cost.seconds > 0
    again = select(name, digits, IPC, seed=0, ctx=_ctx(fast_teacher_profile, store))
    assert torch.equal(again.indices, idx)


@pytest.mark.parametrize("name", DISTILLERS.names())
def test_distiller_contract(name, digits, fast_teacher_profile, store):
    k, m = digits.num_classes, digits.meta
    syn = distill(name, digits, IPC, seed=0, ctx=_ctx(fast_teacher_profile, store), **_fast_hp(name))
    assert syn.images.shape == (k * IPC, m.in_chans, m.img_size, m.img_size)
    assert syn.images.dtype == torch.float32
    assert torch.isfinite(syn.images).all()
    assert not syn.images.requires_grad
    assert syn.labels.shape[0] == k * IPC
    if syn.labels.dim() == 2:
        assert syn.labels.shape[1] == k
    assert torch.bincount(_labels(syn.labels), minlength=k).tolist() == [IPC] * k
    assert syn.cost.seconds > 0
    again = distill(name, digits, IPC, seed=0, ctx=_ctx(fast_teacher_profile, store), **_fast_hp(name))
    assert torch.equal(again.images, syn.images)
    assert torch.equal(again.labels, syn.labels)


@pytest.mark.parametrize("family,name", [("coreset", n) for n in CORESETS.names()]
                         + [("distill", n) for n in DISTILLERS.names()])
def test_ipc_larger_than_smallest_class_raises(family, name, digits, fast_teacher_profile, tmp_path):
    smallest = int(torch.bincount(digits.train_y).min())
    store = Store(tmp_path)
    fn = select if family == "coreset" else distill
    hp = _fast_hp(name) if family == "distill" else {}
    with pytest.raises(DDLibError, match=f"ipc {smallest + 1}"):
        fn(name, digits, smallest + 1, seed=0, ctx=_ctx(fast_teacher_profile, store), **hp)
    # raised before any work: no teacher was trained into the store
    assert list(store.artifact_keys("teachers")) == []
    # the smallest class itself is allowed (checked cheaply for the seeded baseline)
    if name == "random":
        sel = select(name, digits, smallest, seed=0, ctx=_ctx(fast_teacher_profile, store))
        assert len(sel.indices) == smallest * digits.num_classes


def test_unknown_method_names_the_choices(digits, smoke_profile, tmp_path):
    with pytest.raises(DDLibError, match="random"):
        select("randm", digits, 1, seed=0, ctx=_ctx(smoke_profile, Store(tmp_path)))
    with pytest.raises(DDLibError, match="dm"):
        distill("dn", digits, 1, seed=0, ctx=_ctx(smoke_profile, Store(tmp_path)))


def test_random_depends_on_seed(digits, smoke_profile, tmp_path):
    store = Store(tmp_path)
    a = select("random", digits, IPC, seed=0, ctx=_ctx(smoke_profile, store)).indices
    b = select("random", digits, IPC, seed=1, ctx=_ctx(smoke_profile, store)).indices
    assert not torch.equal(a, b)
