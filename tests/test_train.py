"""The training engine: compute-budget arithmetic, schedules, determinism."""
import math

import pytest
import torch

from ddlib.core.config import PROTOCOLS, Protocol
from ddlib.core.seeding import generator
from ddlib.engine.models import create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.train import Batches, batch_sizes, budget_samples, evaluate, fit, lr_at


@pytest.mark.parametrize("budget,pool,expected", [
    (1.0, 1287, 1287), (2.0, 1287, 2574), (10.0, 1287, 12870), (0.1, 30, 3),
    (0.26, 100, 26), (1 / 3, 1000, 333), (2 / 3, 1000, 667), (3.7, 1, 4),
])
def test_budget_samples(budget, pool, expected):
    assert budget_samples(budget, pool) == expected
    assert isinstance(budget_samples(budget, pool), int)


def _check_batch_sizes(samples, bs):
    sizes = batch_sizes(samples, bs)
    assert sum(sizes) == samples, (samples, bs, sizes)
    assert all(s >= 1 for s in sizes), (samples, bs, sizes)
    if len(sizes) > 1 and bs > 1:
        assert sizes[-1] != 1, (samples, bs, sizes)
    # every step but the last is a full batch; the last holds at most one extra sample
    assert all(s == bs for s in sizes[:-1]), (samples, bs, sizes)
    if sizes:
        assert sizes[-1] <= bs + 1, (samples, bs, sizes)
    # as few steps as possible without a singleton tail
    full, rest = divmod(samples, bs)
    if bs == 1:
        expect_steps = samples
    else:
        expect_steps = full + (1 if rest and not (rest == 1 and full) else 0)
    assert len(sizes) == expect_steps, (samples, bs, sizes)


@pytest.mark.parametrize("bs", [1, 2, 3, 7, 64, 128, 256])
def test_batch_sizes_sum_and_no_singleton_tail(bs):
    for samples in list(range(0, 600)) + [1287, 2574, 12870, 12929]:
        _check_batch_sizes(samples, bs)


def test_batch_sizes_known_values():
    assert batch_sizes(0, 64) == []
    assert batch_sizes(1, 64) == [1]  # nothing to merge with
    assert batch_sizes(64, 64) == [64]
    assert batch_sizes(65, 64) == [65]
    assert batch_sizes(66, 64) == [64, 2]
    assert batch_sizes(129, 64) == [64, 65]
    assert batch_sizes(1287, 64) == [64] * 20 + [7]


def test_batches_are_epoch_permutations():
    b = Batches(10, generator(0, "order"))
    drawn = torch.cat([b.next(3) for _ in range(10)])  # 30 samples = 3 epochs
    for e in range(3):
        assert sorted(drawn[10 * e:10 * (e + 1)].tolist()) == list(range(10))


def test_lr_at_cosine_known_values():
    p = Protocol("t", lr=0.2, schedule="cosine")
    assert lr_at(p, 0, 100) == pytest.approx(0.2)
    assert lr_at(p, 50, 100) == pytest.approx(0.1)
    assert lr_at(p, 25, 100) == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)))
    assert lr_at(p, 75, 100) == pytest.approx(0.1 * (1 - math.cos(math.pi / 4)))
    assert lr_at(p, 100, 100) == pytest.approx(0.0, abs=1e-12)
    lrs = [lr_at(p, s, 37) for s in range(37)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))  # strictly decreasing
    assert lrs[-1] > 0  # the last step still learns


def test_lr_at_step_known_values():
    p = Protocol("t", lr=0.01, schedule="step")
    assert [lr_at(p, s, 10) for s in range(10)] == pytest.approx([0.01] * 5 + [0.001] * 5)
    assert [lr_at(p, s, 7) for s in range(7)] == pytest.approx([0.01] * 3 + [0.001] * 4)


def test_lr_at_unknown_schedule():
    with pytest.raises(ValueError):
        lr_at(Protocol("t", schedule="linear"), 0, 10)


# ---------------------------------------------------------------- fit ----

def _subset(digits, per_class=5):
    idx = torch.cat([digits.class_indices(c)[:per_class] for c in range(digits.num_classes)])
    return digits.train_x[idx], digits.train_y[idx]


def _fit(digits, smoke_profile, *, init_seed=0, seed=0, budget=0.2, augment=None, x=None, y=None):
    if x is None:
        x, y = _subset(digits)
    m = digits.meta
    model = create_model(smoke_profile.model, m.num_classes, m.in_chans, m.img_size, seed=init_seed)
    res = fit(model, x, y, regime=create_regime("hl"), teachers=[], budget=budget,
              pool_size=len(digits.train_y), protocol=PROTOCOLS.get(smoke_profile.protocol),
              seed=seed, augment=augment)
    return model, res


@pytest.mark.parametrize("budget", [0.05, 0.2, 1.0])
def test_fit_sees_exactly_the_budget(digits, smoke_profile, budget):
    model, res = _fit(digits, smoke_profile, budget=budget)
    pool = len(digits.train_y)
    expected = budget_samples(budget, pool)
    assert res.samples_seen == expected
    assert res.steps == len(batch_sizes(expected, PROTOCOLS.get(smoke_profile.protocol).batch_size))
    assert res.seconds > 0 and math.isfinite(res.final_loss)


def test_fit_budget_is_independent_of_set_size(digits, smoke_profile):
    """Equal compute: a 1-image-per-class set and a 5-per-class set see the same samples."""
    _, small = _fit(digits, smoke_profile, x=_subset(digits, 1)[0], y=_subset(digits, 1)[1])
    _, big = _fit(digits, smoke_profile)
    assert small.samples_seen == big.samples_seen == budget_samples(0.2, len(digits.train_y))
    assert small.steps == big.steps


def test_fit_counts_student_forwards(digits, smoke_profile):
    """The student forwards exactly samples_seen samples (counted by a hook)."""
    x, y = _subset(digits)
    m = digits.meta
    model = create_model(smoke_profile.model, m.num_classes, m.in_chans, m.img_size, seed=0)
    seen = []
    model.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].shape[0]))
    res = fit(model, x, y, regime=create_regime("hl"), teachers=[], budget=0.3,
              pool_size=len(digits.train_y), protocol=PROTOCOLS.get(smoke_profile.protocol), seed=0)
    assert sum(seen) == res.samples_seen == budget_samples(0.3, len(digits.train_y))
    assert len(seen) == res.steps


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_fit_is_deterministic(digits, smoke_profile):
    a, ra = _fit(digits, smoke_profile, seed=3)
    b, rb = _fit(digits, smoke_profile, seed=3)
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert ra.final_loss == rb.final_loss


def test_fit_seed_changes_the_weights(digits, smoke_profile):
    """Same init, different run seed (data order + augmentation) -> different weights."""
    a, _ = _fit(digits, smoke_profile, init_seed=0, seed=0)
    b, _ = _fit(digits, smoke_profile, init_seed=0, seed=1)
    init = create_model(smoke_profile.model, 10, 1, 8, seed=0)
    wa, wb, w0 = _state(a), _state(b), _state(init)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], w0[k]) for k in wa)  # training moved the weights


def test_fit_without_augmentation_is_seed_dependent_only_through_order(digits, smoke_profile):
    a, _ = _fit(digits, smoke_profile, seed=0, augment="")
    b, _ = _fit(digits, smoke_profile, seed=0, augment="")
    c, _ = _fit(digits, smoke_profile, seed=5, augment="")
    sa, sb, sc = _state(a), _state(b), _state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_create_model_seed_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_model("convnet_d3w16", 10, 1, 8, seed=7)
    assert torch.equal(torch.rand(3), expected)
    a = _state(create_model("convnet_d3w16", 10, 1, 8, seed=7))
    b = _state(create_model("convnet_d3w16", 10, 1, 8, seed=7))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_known_answer():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 3).float()

    x = torch.tensor([0., 1., 2., 1.]).view(4, 1, 1, 1)
    y = torch.tensor([0, 1, 0, 1])
    assert evaluate(Fixed(), x, y) == pytest.approx(0.75)
    assert evaluate(Fixed(), x, y, batch=1) == pytest.approx(0.75)
