"""The test split is only ever reported: garbage in it changes no condensed set, score or teacher.

Every registered method is built twice, on digits with its real test split and
on a copy whose test images are NaN and whose test labels are shuffled, each
time in a fresh store (so the teacher it may use is trained again); the sets,
scores and teachers must be identical.  Choosing a winner on validation is
tested in tests/test_compare.py.
"""
import inspect

import pytest
import torch

from ddlib.core.cost import Meter
from ddlib.core.store import Store
from ddlib.data import Split
from ddlib.engine.teachers import get_teacher
from ddlib.methods.context import Context
from ddlib.methods.coresets import CORESETS, select
from ddlib.methods.distill import DISTILLERS, distill

IPC = 2


def _garbage(split: Split) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(split.train_x, split.train_y, split.val_x, split.val_y, torch.full_like(split.test_x, float("nan")),
                 split.test_y[torch.randperm(len(split.test_y), generator=g)], split.meta)


def _ctx(profile, tmp_path, tag):
    return Context(profile, Store(tmp_path / tag), Meter(), quiet=True, budget=2.0)


@pytest.mark.parametrize("name", CORESETS.names())
def test_coreset_ignores_the_test_split(name, digits, fast_teacher_profile, tmp_path):
    a = select(name, digits, IPC, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path, "real"))
    b = select(name, _garbage(digits), IPC, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path, "garbage"))
    assert torch.equal(a.indices, b.indices)
    assert (a.scores is None) == (b.scores is None)
    assert a.scores is None or torch.equal(a.scores, b.scores)


@pytest.mark.parametrize("name", DISTILLERS.names())
def test_distiller_ignores_the_test_split(name, digits, fast_teacher_profile, tmp_path):
    hp = {"iters": 3} if "iters" in inspect.signature(DISTILLERS.get(name)).parameters else {}
    a = distill(name, digits, IPC, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path, "real"), **hp)
    b = distill(name, _garbage(digits), IPC, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path, "garbage"), **hp)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_teachers_and_builders_are_handed_no_test_split(digits, fast_teacher_profile, tmp_path):
    a, _ = get_teacher(digits, fast_teacher_profile, Store(tmp_path / "a"), seed=3)
    b, _ = get_teacher(_garbage(digits), fast_teacher_profile, Store(tmp_path / "b"), seed=3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    stripped = digits.without_test()
    assert len(stripped.test_x) == 0 and len(stripped.test_y) == 0 and torch.equal(stripped.val_x, digits.val_x)


def test_each_run_seed_has_its_own_teacher(digits, fast_teacher_profile, tmp_path):
    store = Store(tmp_path)
    t0, _ = get_teacher(digits, fast_teacher_profile, store, seed=0)
    t1, _ = get_teacher(digits, fast_teacher_profile, store, seed=1)
    again, _ = get_teacher(digits, fast_teacher_profile, store, seed=0)
    w = lambda m: next(m.parameters())  # noqa: E731
    assert not torch.equal(w(t0), w(t1)) and torch.equal(w(t0), w(again))
    assert len(list((tmp_path / "artifacts" / "teachers").glob("*.pt"))) == 2
