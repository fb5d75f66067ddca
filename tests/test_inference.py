"""Passes without gradient (ddlib.engine.inference): compiled where the fit is, the same function as eager."""
from __future__ import annotations

import copy

import pytest
import torch

import ddlib.engine.fastpath as fp
import ddlib.engine.inference as inf
from ddlib.core.config import PROTOCOLS
from ddlib.engine.batched import map_threads
from ddlib.engine.models import create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.train import eval_forward, evaluate, fit


def _net(digits, seed):
    m = digits.meta
    return create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=seed).eval()


def test_forward_compiles_its_rows_only_and_matches_eager(digits):
    net, x = _net(digits, 7), digits.train_x[:40]
    fwd = inf.Forward(32, fp.Engine("compiled"))
    with torch.no_grad():
        torch.testing.assert_close(fwd(net, x[:32]), net(x[:32]), rtol=1e-5, atol=1e-5)
        assert torch.equal(fwd(net, x[:7]), net(x[:7]))  # another size: eager
        assert torch.equal(inf.EAGER(net, x[:32]), net(x[:32]))
    assert fwd.compiled and not inf.EAGER.compiled


def test_a_failed_compilation_runs_eager_and_tells_the_engine(digits, monkeypatch):
    def broken(arch, method, precision="float32"):
        def call(model, x):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(inf, "_compiled_call", broken)
    net, x, engine = _net(digits, 7), digits.train_x[:32], fp.Engine("compiled")
    fwd = inf.Forward(32, engine)
    with torch.no_grad():
        assert torch.equal(fwd(net, x), net(x))
    assert engine.compile_failed and not fwd.compiled
    assert not inf.Forward(32, engine).compiled  # later passes sharing the engine stay eager


def _fit(digits, net, regime, engine, teachers):
    x, y = digits.train_x[:120], digits.train_y[:120]
    reg = create_regime(regime)
    res = fit(net, x, y, regime=reg, teachers=list(teachers), budget=0.3, pool_size=len(digits.train_y),
              protocol=PROTOCOLS.get("sgd_cos_b64_lr1_v1"), seed=0, engine=engine)
    return res, reg


@pytest.mark.parametrize("regime", ["slkd", "mt"])
def test_online_teachers_run_compiled_where_the_step_is_and_train_the_same_student(digits, monkeypatch, regime):
    m = digits.meta
    monkeypatch.setattr(fp, "MICRO_BYTES", 32 * 16 * m.img_size ** 2 * 4)  # w16: slices of 32
    teachers = [_net(digits, 7), _net(digits, 8)]
    a = create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=2)
    b = copy.deepcopy(a)
    r1, g1 = _fit(digits, a, regime, "eager", teachers)
    r2, g2 = _fit(digits, b, regime, "compiled", teachers)
    assert g1.plan.teacher_forward is None
    assert g2.plan.teacher_forward.compiled and g2.plan.teacher_forward.rows == 32
    assert r2.final_loss == pytest.approx(r1.final_loss, rel=1e-4, abs=1e-5)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=n)


def test_evaluation_is_compiled_only_under_a_compiled_engine_and_counts_the_same(digits):
    net = _net(digits, 3)
    x, y = digits.val_x, digits.val_y
    assert eval_forward(net, x, None) is inf.EAGER
    assert eval_forward(net, x, fp.Engine("auto")) is inf.EAGER
    fwd = eval_forward(net, x, fp.Engine("compiled"))
    assert fwd.compiled and fwd.rows == fp.eval_batch(net, tuple(x.shape[1:]), x.device)
    with torch.no_grad():
        logits = torch.cat([net(x[i:i + fwd.rows]) for i in range(0, len(x), fwd.rows)])
    top2 = logits.topk(2, 1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 1e-4  # no near-tie a rounding could flip
    assert evaluate(net, x, y, forward=fwd) == evaluate(net, x, y)


def test_map_threads_keeps_order_and_restores_the_thread_count():
    before = torch.get_num_threads()
    seen = []
    out = map_threads(lambda i: (seen.append(torch.get_num_threads()), i * i)[1], list(range(6)), workers=2)
    assert out == [i * i for i in range(6)] and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_stream_threads_yields_every_item_once_on_one_thread_each():
    """Every item on one intra-op thread, an odd one out too (a run must not depend on what is pending
    beside it); the thread count is restored."""
    from ddlib.engine.batched import stream_threads
    threads = torch.get_num_threads()
    seen = []
    out = list(stream_threads(lambda i: (seen.append(torch.get_num_threads()), i * i)[1], list(range(5)),
                              workers=2))
    assert sorted(out) == [(i, i * i) for i in range(5)]
    assert seen == [1] * 5 and torch.get_num_threads() == threads


def test_stream_threads_keeps_what_ended_before_a_failure():
    """A running item still ends and is yielded after another raised; then the exception is raised."""
    import threading

    from ddlib.engine.batched import stream_threads
    threads = torch.get_num_threads()
    started, failed, got = threading.Event(), threading.Event(), []

    def fn(i):
        if i == 1:
            started.set()
            assert failed.wait(10)  # item 0 fails while item 1 runs; item 1 still ends and is kept
            return "one"
        assert started.wait(10)
        failed.set()
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        for i, r in stream_threads(fn, [0, 1], workers=2):
            got.append((i, r))
    assert got == [(1, "one")]
    assert torch.get_num_threads() == threads
