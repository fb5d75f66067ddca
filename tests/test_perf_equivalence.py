"""Equivalence of the fast paths: instance norm, and K models trained together (ddlib.engine.batched)."""
from __future__ import annotations

import copy

import pytest
import torch

from ddlib.core.config import PROTOCOLS
from ddlib.engine.batched import can_batch, fit_many
from ddlib.engine.models import create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.train import fit


def _rounding_bound(protocol, steps: int, batch: int, img_size: int) -> float:
    """Largest parameter difference two summation orders may cause in a short fit.

    Two engines that add the same products in another order (grouped vs
    single convolutions, another intra-op thread count) round differently.
    The longest sums of a step are a convolution's weight gradient: batch x H
    x W = n products, each rounding within n * eps * sum|terms| (float32
    error analysis).  With terms <= 1 (parameters ~1, gradients smaller), one
    SGD step of lr moves a parameter differently by about lr * n * eps, and
    ``steps`` steps by E = steps * lr * n * eps, to first order.  The
    training dynamics then amplify differences (momentum; a ReLU or a
    near-tie that flips), which only measurement can size:

    measured (2026-11-30, digits/smoke, 9 steps of 20 images, E = 1.4e-4):
    fit_many against fit, 30 runs per regime: max 1.3e-4 = 0.96 E (hl; the
    tail is heavy: 4 of 30 hl runs above 1e-5, the median 6.8e-7), sl and
    slkd max 8e-7; fit at 2, 3, 4, 8, 16 intra-op threads against 1, 29
    seeds: max 5.9e-6 = 0.04 E; a fresh clone on another machine once saw
    1.9e-5 = 0.14 E.  The tolerance is 4 E (5.5e-4): a safety factor of 4
    over the worst run seen, and still below what a real difference of paths
    does: skipping one step moves the weights by >= 1.5e-3, a 1 % change of
    step 1's gradient by >= 4.4e-3.  (Smaller late-run changes hide under any
    tolerance: the cosine schedule's last steps barely move the weights.)
    """
    n = min(protocol.batch_size, batch) * img_size ** 2
    return 4 * steps * protocol.lr * n * torch.finfo(torch.float32).eps


def _sets(digits, seeds, n=20):
    """A small labelled subset per seed (different images per run, as different condensed sets)."""
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(100 + s)
        idx = torch.randperm(len(digits.train_y), generator=g)[:n]
        out.append((digits.train_x[idx].clone(), digits.train_y[idx].clone()))
    return out


@pytest.mark.parametrize("regime", ["hl", "sl", "slkd"])
def test_fit_many_matches_fit(digits, regime):
    m = digits.meta
    proto = PROTOCOLS.get("sgd_cos_b64_lr1_v1")
    teacher = create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=7).eval()
    seeds = [0, 1, 2]
    sets = _sets(digits, seeds)
    alone = [create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=10 + s)
             for s in seeds]
    together = [copy.deepcopy(x) for x in alone]
    kw = dict(teachers=[teacher], budget=0.4, pool_size=len(digits.train_y), protocol=proto)
    res1 = [fit(net, x, y, regime=create_regime(regime), seed=s, **kw)
            for net, (x, y), s in zip(alone, sets, seeds)]
    res2 = fit_many(together, [x for x, _ in sets], [y for _, y in sets],
                    regimes=[create_regime(regime) for _ in seeds], seeds=seeds, **kw)
    assert res1[0].steps > 3  # several steps, with momentum and the lr schedule in play
    # grouped convolutions add in another order than single ones (see _rounding_bound)
    tol = _rounding_bound(proto, res1[0].steps, len(sets[0][0]), m.img_size)
    for a, b, r1, r2 in zip(alone, together, res1, res2):
        assert (r1.steps, r1.samples_seen) == (r2.steps, r2.samples_seen)
        # measured over 30 runs per regime: at most 3.3e-5 relative (3.1e-5 absolute)
        assert r1.final_loss == pytest.approx(r2.final_loss, rel=1e-3, abs=1e-4)
        for (n, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(q, p, rtol=0, atol=tol, msg=n)
    # the runs really differ from each other (seeds and sets are not ignored)
    assert not torch.allclose(together[0].classifier.weight, together[1].classifier.weight)


def test_can_batch_rejects_buffers_and_mixed(digits):
    m = digits.meta
    a = create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=0)
    assert can_batch([a, copy.deepcopy(a)])
    assert not can_batch([a, create_model("convnet_d3w32", m.num_classes, m.in_chans, m.img_size)])
    assert not can_batch([create_model("convnet_d3w16_bn", m.num_classes, m.in_chans, m.img_size)] * 2)


@pytest.mark.parametrize("cpu_threads", [True, False])
def test_study_batched_seeds_same_rows(tmp_path, monkeypatch, cpu_threads):
    import ddlib.run.many
    from ddlib.core.store import Store
    from ddlib.run.study import Study

    monkeypatch.setattr(ddlib.run.many, "CPU_THREADS", cpu_threads)  # False: fit_many on CPU too

    # few steps: at the smoke lr (0.1) rounding differences (grouped vs single convolutions)
    # grow over a run, as they do between two thread counts of the plain engine
    s = Study.from_params("smoke", methods=["random"], ipcs=[10], regimes=["hl"], budgets=[0.4],
                          seeds=[0, 1, 2])
    one = s.run(Store(tmp_path / "one"), quiet=True, batch_seeds=False).sort_values("seed")
    pooled, real = [], ddlib.run.many._fit_and_score
    monkeypatch.setattr(ddlib.run.many, "_fit_and_score", lambda job: pooled.append(job[0].r.seed) or real(job))
    many = s.run(Store(tmp_path / "many"), quiet=True, batch_seeds=True).sort_values("seed")
    # the batched path really ran: fit_many's one group carries the group's time / 3 on every row;
    # the CPU threads' pool trained every run
    assert many["train_seconds"].nunique() == 1 if not cpu_threads else sorted(pooled) == [0, 1, 2]
    assert one["train_seconds"].nunique() == 3
    assert list(one["key"]) == list(many["key"])
    for col in ("steps", "samples_seen", "label_bytes"):
        assert list(one[col]) == list(many[col])
    # weights within _rounding_bound can still flip a prediction that sits on a tie:
    # 3e-3 allows one of the 360 test images per run, no more
    assert one["accuracy"].tolist() == pytest.approx(many["accuracy"].tolist(), abs=3e-3)
    assert one["accuracy"].nunique() > 1  # seeds give different students


def test_fit_threads_matches_fit(digits):
    from ddlib.engine.batched import FitArgs, fit_threads

    m = digits.meta
    proto = PROTOCOLS.get("sgd_cos_b64_lr1_v1")
    sets = _sets(digits, [0, 1, 2])
    alone = [create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=s) for s in range(3)]
    conc = [copy.deepcopy(x) for x in alone]
    kw = dict(teachers=[], budget=0.4, pool_size=len(digits.train_y), protocol=proto)
    # the reference at one intra-op thread, as each fit_threads run: the same
    # additions in the same order, so the weights must be equal bit for bit (no
    # tolerance to guess; measured equal over 29 seeds).  At torch's default
    # thread count they would differ by rounding only (see _rounding_bound).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res1 = [fit(n, x, y, regime=create_regime("hl"), seed=s, **kw)
                for s, (n, (x, y)) in enumerate(zip(alone, sets))]
    finally:
        torch.set_num_threads(threads)
    calls = [FitArgs(n, x, y, regime=create_regime("hl"), seed=s, **kw)
             for s, (n, (x, y)) in enumerate(zip(conc, sets))]
    res2 = fit_threads(calls, workers=2)
    assert torch.get_num_threads() == threads  # restored
    assert [r.steps for r in res1] == [r.steps for r in res2]
    assert [r.final_loss for r in res1] == [r.final_loss for r in res2]
    for a, b in zip(alone, conc):
        for (n, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.equal(q, p), f"{n}: max difference {(q - p).abs().max().item():.3g}"


def test_study_threads_mix_regimes_and_budgets(tmp_path, monkeypatch):
    """On CPU any missing runs train side by side (regimes and budgets mixed in one pool); rows equal
    one-by-one runs."""
    import ddlib.run.many
    from ddlib.core.store import Store
    from ddlib.run.study import Study

    s = Study.from_params("smoke", methods=["random"], ipcs=[10], regimes=["hl", "sl"], budgets=[0.2, 0.4, 0.3],
                          seeds=[0])
    one = s.run(Store(tmp_path / "one"), quiet=True, batch_seeds=False).sort_values("key")
    store = Store(tmp_path / "many")
    # five of the six runs in one pool (an odd count: the last trains alone, still on one thread);
    # s.run the sixth one by one
    assert ddlib.run.many.run_many(s.configs()[:5], store) == 5
    many = s.run(store, quiet=True, batch_seeds=True).sort_values("key")
    assert list(one["key"]) == list(many["key"])
    for col in ("steps", "samples_seen", "label_bytes"):
        assert list(one[col]) == list(many[col])
    assert one["accuracy"].tolist() == pytest.approx(many["accuracy"].tolist(), abs=3e-3)  # one flip of 360


def test_a_run_does_not_depend_on_the_runs_pending_beside_it(tmp_path):
    """On CPU a run trains on one intra-op thread whatever else run_many has pending (an odd one out
    included), so the same config gives the same row in any grid."""
    import ddlib.run.many
    from ddlib.core.store import Store
    from ddlib.run.study import Study

    # 2 epochs: long enough for a second intra-op thread's rounding to move an accuracy (0.2 does not)
    cfgs = Study.from_params("smoke", methods=["random"], ipcs=[10], regimes=["hl"], budgets=[2.0],
                             seeds=[0, 1, 2]).configs()
    three, two = Store(tmp_path / "three"), Store(tmp_path / "two")
    assert ddlib.run.many.run_many(cfgs, three) == 3      # seed 2 is the odd one out
    assert ddlib.run.many.run_many(cfgs[1:], two) == 2    # seed 2 beside seed 1
    for c in cfgs[1:]:
        a, b = three.get(c.key()), two.get(c.key())
        assert (a["accuracy"], a["val_accuracy"]) == (b["accuracy"], b["val_accuracy"])
