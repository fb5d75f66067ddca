"""MTT: cached expert trajectories, the Eq. 2 loss, learning, determinism, learnt lr."""
import pytest
import torch

import ddlib.methods.distill.mtt as mtt
from ddlib.core.config import RunConfig
from ddlib.core.cost import Meter
from ddlib.core.store import Store
from ddlib.engine.models import create_model
from ddlib.methods.context import Context
from ddlib.methods.distill import distill
from ddlib.run.runner import run

TINY = dict(iters=3, n_experts=1, expert_epochs_total=2, expert_epochs=1, max_start_epoch=1,
            syn_steps=3)


def _distill(digits, profile, store, seed=0, ipc=2, **hp):
    ctx = Context(profile, store, Meter(), quiet=True)
    return distill("mtt", digits, ipc, seed=seed, ctx=ctx, **{**TINY, **hp})


def test_trajectory_loss_known_answer_and_zero_at_target():
    start = torch.tensor([0.0, 0.0, 0.0])
    target = torch.tensor([3.0, 4.0, 0.0])  # ||start - target||^2 = 25
    end = torch.tensor([3.0, 4.0, 1.0])     # ||end - target||^2 = 1
    assert mtt.trajectory_loss(end, start, target).item() == pytest.approx(1 / 25)
    assert mtt.trajectory_loss(target.clone(), start, target).item() == 0.0
    assert mtt.trajectory_loss(start, start, target).item() == pytest.approx(1.0)  # no movement


def test_unflatten_round_trips_the_parameters():
    net = create_model("convnet_d3w16", 10, 1, 8, seed=0)
    flat = mtt.flat_params(net)
    views = mtt.unflatten(net, flat)
    assert flat.shape == (sum(p.numel() for p in net.parameters()),)
    for name, p in net.named_parameters():
        assert torch.equal(views[name], p)


def test_experts_are_cached_and_charged_to_every_build(digits, smoke_profile, tmp_path, monkeypatch):
    calls = []
    real_train = mtt.train_expert
    monkeypatch.setattr(mtt, "train_expert", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    store = Store(tmp_path)
    first = _distill(digits, smoke_profile, store, n_experts=2)
    assert len(calls) == 2
    keys = list(store.artifact_keys("experts"))
    assert len(keys) == 1
    traj = store.load_artifact("experts", keys[0])
    assert traj["trajectories"].shape[:2] == (2, 3)  # 2 experts, init + 2 epochs
    second = _distill(digits, smoke_profile, store, n_experts=2, seed=1)
    assert len(calls) == 2  # reused, not retrained
    assert torch.equal(store.load_artifact("experts", keys[0])["trajectories"], traj["trajectories"])
    expert_cost = traj["cost"]
    # experts saw 2 x 2 epochs of the pool, recorded once and charged to both builds
    assert expert_cost["bwd"] == 2 * 2 * len(digits.train_y)
    for s in (first, second):
        assert s.cost.bwd >= expert_cost["bwd"] and s.cost.fwd >= expert_cost["fwd"]
        assert s.cost.seconds >= expert_cost["seconds"]
    assert first.cost.bwd == second.cost.bwd  # same counts on a miss and on a hit


def test_matching_loss_decreases(digits, smoke_profile, tmp_path):
    s = _distill(digits, smoke_profile, Store(tmp_path), iters=12, n_experts=2, expert_epochs_total=3,
                 expert_epochs=1, max_start_epoch=2, syn_steps=6)
    lc = s.extras["loss_curve"]
    assert lc.shape == (12,) and torch.isfinite(lc).all()
    assert lc[-4:].mean() < 0.8 * lc[:4].mean()  # measured 0.63 (seed 0) and 0.57 (seed 1)
    assert s.extras["final_loss"] == pytest.approx(float(lc[-1]))
    assert s.extras["syn_lr"] > 0 and s.extras["syn_lr"] != 0.01  # learnt, not the init


def test_same_seed_same_output_other_seed_differs(digits, smoke_profile, tmp_path):
    store = Store(tmp_path)
    a, b = _distill(digits, smoke_profile, store), _distill(digits, smoke_profile, store)
    c = _distill(digits, smoke_profile, store, seed=1)
    assert torch.equal(a.images, b.images) and a.extras["syn_lr"] == b.extras["syn_lr"]
    assert torch.equal(a.labels, torch.arange(10).repeat_interleave(2))
    assert not torch.equal(a.images, c.images)


def test_rejects_a_match_longer_than_the_experts(digits, smoke_profile, tmp_path):
    with pytest.raises(ValueError, match="exceeds"):
        _distill(digits, smoke_profile, Store(tmp_path), expert_epochs=3)


def test_runner_trains_with_the_learnt_lr(digits, home):
    cfg = RunConfig("digits", "mtt", 1, "hl", 0.2, 0, "smoke", hparams=tuple(TINY.items()),
                    eval_lr="learned")
    row, reused = run(cfg, home)
    assert not reused
    art = home.load_artifact("condensed", __import__("ddlib.methods.build").methods.build.build_key(cfg.resolved()))
    assert row["eval_lr"] == "learned"
    assert row["lr"] == pytest.approx(art["extras"]["syn_lr"]) and row["lr"] != 0.01
    assert home.frame()["lr"].tolist() == [row["lr"]]


def test_compiled_student_step_is_the_eager_step(backend="aot_eager"):
    """The compiled unroll (func.grad inside torch.compile) equals the eager one in float64: the end point
    and its gradients w.r.t. the images and the learnt step size, through three second-order steps.

    ``aot_eager`` traces and differentiates the graph as inductor does (the part that could change the
    mathematics) without generating code: seconds instead of a cold inductor compile; inductor's own
    float64 result was checked equal (1e-15) when this was written, and its float32 run is timed in
    benchmarks/distill_speed.py --reference."""
    from ddlib.methods.distill.mtt import compiled_student_step, flat_params, student_step, trajectory_loss

    net = create_model("convnet_d3w16", 3, 1, 12, seed=0).double()
    for p in net.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    syn0 = torch.randn(6, 1, 12, 12, generator=g, dtype=torch.float64)
    y = torch.arange(3).repeat_interleave(2)
    start = flat_params(net)
    target = start + 0.05 * torch.randn(start.shape, generator=g, dtype=torch.float64)
    fast = compiled_student_step(net, backend=backend)
    out = {}
    for name, step in (("eager", lambda th, x, lr: student_step(net, th, x, y, lr)),
                       ("compiled", lambda th, x, lr: fast(net, th, x, y, lr))):
        syn = syn0.clone().requires_grad_(True)
        lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
        theta = start.clone().requires_grad_(True)
        for _ in range(3):
            theta = step(theta, syn * 1.0, lr)
        loss = trajectory_loss(theta, start, target)
        out[name] = (loss.detach(), *torch.autograd.grad(loss, [syn, lr]))
    for a, b in zip(out["eager"], out["compiled"]):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)
    assert float(out["eager"][1].abs().max()) > 1e-6  # a second-order gradient that can differ
