"""Cost accounting: forward / backward counts, upstream charges, Cost addition."""
import dataclasses
import time

import torch

from ddlib.core.cost import Cost, Meter
from ddlib.core.store import Store
from ddlib.engine.models import create_model
from ddlib.methods.context import Context
from ddlib.methods.coresets import select


def test_meter_counts_forward_and_embed_through_stem():
    model = create_model("convnet_d3w16", 10, 1, 8, seed=0)
    with torch.no_grad():
        with Meter() as meter:
            assert meter.watch(model) is model
            model(torch.randn(5, 1, 8, 8))
            model.embed(torch.randn(3, 1, 8, 8))
            model(torch.randn(2, 1, 8, 8))
        model(torch.randn(7, 1, 8, 8))  # after the meter closed: not counted
    assert meter.cost.fwd == 10
    assert meter.cost.bwd == 0
    assert meter.cost.seconds > 0 and meter.cost.device == "cpu"


def test_meter_counts_several_models_and_backward():
    a = create_model("convnet_d3w16", 10, 1, 8, seed=0)
    b = create_model("convnet_d3w16_bn", 10, 1, 8, seed=1)
    with Meter() as meter:
        meter.watch(a)
        meter.watch(b)
        loss = a(torch.randn(4, 1, 8, 8)).sum() + b(torch.randn(6, 1, 8, 8)).sum()
        loss.backward()
        meter.backward(10)
        meter.backward(3)
    assert meter.cost.fwd == 10
    assert meter.cost.bwd == 13


def test_charge_adds_upstream_cost():
    up = Cost(seconds=100.0, peak_mem_mb=50.0, fwd=1000, bwd=900, label_bytes=8)
    model = create_model("convnet_d3w16", 10, 1, 8, seed=0)
    with Meter() as meter:
        meter.watch(model)
        meter.charge(up)
        meter.charge(Cost(fwd=1))
        with torch.no_grad():
            model(torch.randn(3, 1, 8, 8))
        meter.backward(2)
    c = meter.cost
    assert c.fwd == 1000 + 1 + 3
    assert c.bwd == 900 + 2
    assert c.label_bytes == 8
    assert 100.0 < c.seconds < 100.0 + 60
    assert c.peak_mem_mb >= 50.0


def test_cost_addition():
    a = Cost(seconds=1.5, peak_mem_mb=10.0, fwd=3, bwd=2, label_bytes=100, device="cuda")
    b = Cost(seconds=2.0, peak_mem_mb=7.0, fwd=5, bwd=1, label_bytes=4, device="cpu")
    s = a + b
    assert s == Cost(3.5, 10.0, 8, 3, 104, "cuda")
    assert (b + a).peak_mem_mb == 10.0 and (b + a).seconds == 3.5
    assert a + Cost() == Cost(1.5, 10.0, 3, 2, 100, "cuda")
    assert s.as_dict() == {"seconds": 3.5, "peak_mem_mb": 10.0, "fwd": 8, "bwd": 3,
                           "label_bytes": 104, "device": "cuda"}
    assert Cost(**s.as_dict()) == s


def test_build_cost_counts_a_teacher_trained_inside_it_once(digits, smoke_profile, tmp_path):
    """A herding build that has to train its teacher first must not report more seconds
    than the whole build took: the teacher's training time is inside the build's own wall
    clock *and* charged again as the teacher's cost."""
    profile = dataclasses.replace(smoke_profile, teacher_epochs=4)  # ~1/10 of smoke's teacher
    store = Store(tmp_path)
    t0 = time.perf_counter()
    sel = select("herding", digits, 1, seed=0, ctx=Context(profile, store, Meter(), quiet=True))
    wall = time.perf_counter() - t0
    assert list(store.artifact_keys("teachers")), "the teacher should have been trained here"
    teacher = store.load_artifact("teachers", list(store.artifact_keys("teachers"))[0])
    assert 0 < teacher["cost"]["seconds"] < wall
    assert sel.cost.seconds <= wall * 1.05 + 0.01, (sel.cost.seconds, wall, teacher["cost"]["seconds"])
    # the same build with the cached teacher is charged the same teacher cost
    again = select("herding", digits, 1, seed=0, ctx=Context(profile, store, Meter(), quiet=True))
    assert again.cost.fwd == sel.cost.fwd and again.cost.bwd == sel.cost.bwd
    # ... and it is charged the teacher's recorded seconds (not timed: the machine may be busy)
    assert again.cost.seconds >= teacher["cost"]["seconds"]
