"""The engine's step plans (ddlib.engine.fastpath): micro-batches and compilation change speed, not results."""
from __future__ import annotations

import copy

import pytest
import torch

import ddlib.engine.fastpath as fp
from ddlib.core.config import PROTOCOLS, RunConfig
from ddlib.core.registry import DDLibError
from ddlib.engine.models import ConvNet, create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.train import fit

CPU = torch.device("cpu")


def test_per_sample_only_without_batch_norm():
    assert fp.per_sample(create_model("convnet_d3w32", 10, 1, 28))
    assert fp.per_sample(create_model("convnet_nn", 10, 1, 28))
    assert not fp.per_sample(create_model("convnet_d3w32_bn", 10, 1, 28))
    assert not fp.per_sample(create_model("resnet18", 10, 3, 32))


def test_profile_known_answer():
    net = ConvNet(1, 10, 8, width=4, depth=1)  # conv 1->4 on 8x8, pool to 4x4, linear 64->10
    net.train()
    seen = []
    net.stem.register_forward_hook(lambda mod, inp, out: seen.append(len(out)))  # as a cost Meter does
    flops, largest = fp.profile(net, (1, 8, 8))
    assert seen == []  # the probe ran on a hook-free copy: no pass is charged to the model
    assert flops == 2 * 1 * 4 * 9 * 64 + 2 * 64 * 10
    assert largest == 4 * 8 * 8 * 4  # the conv / norm output, fp32 bytes
    assert net.training and all(m.training for m in net.modules())  # train mode restored


def test_plan_slices_by_activation_size_on_cpu_only():
    w32 = create_model("convnet_d3w32", 10, 1, 28)  # largest activation 32*28*28*4 = 100,352 B
    mb = fp.MIN_MICRO
    while 2 * mb * 100_352 <= fp.MICRO_BYTES:
        mb *= 2
    assert fp.plan_step(w32, (1, 28, 28), 256, 1000, CPU, "eager") == fp.StepPlan(mb, False)
    assert fp.plan_step(w32, (1, 28, 28), mb, 1000, CPU, "eager") == fp.StepPlan(0, False)  # batch fits
    assert fp.plan_step(w32, (1, 28, 28), 256, 1000, torch.device("cuda"), "eager") == fp.StepPlan()
    bn = create_model("convnet_d3w32_bn", 10, 1, 28)  # whole batches, channels-last on CPU only
    assert fp.plan_step(bn, (1, 28, 28), 256, 1000, CPU, "eager") == fp.StepPlan(0, False, True)
    assert fp.plan_step(bn, (1, 28, 28), 256, 1000, torch.device("cuda"), "eager") == fp.StepPlan()
    assert fp.plan_step(bn, (1, 28, 28), 256, 1000, CPU, "plain") == fp.StepPlan()
    assert fp.StepPlan(0, False, True).describe() == "plain/cl"
    assert fp.plan_step(w32, (1, 28, 28), 256, 1000, CPU, "plain") == fp.StepPlan()
    assert fp.plan_step(w32, (1, 28, 28), 256, 1000, CPU, "compiled") == fp.StepPlan(mb, True)
    assert fp.StepPlan(mb, True).describe() == f"compiled/mb{mb}"
    assert fp.StepPlan().describe() == "plain"


def test_auto_compiles_only_large_sliced_fits():
    w32 = create_model("convnet_d3w32", 10, 1, 28)
    fwd = fp.profile(w32, (1, 28, 28))[0]
    need = fp.COMPILE_MIN_TFLOP * 1e12 / (3 * fwd)  # samples from which compiling pays
    small = fp.plan_step(w32, (1, 28, 28), 256, int(need) - 1, CPU, "auto")
    large = fp.plan_step(w32, (1, 28, 28), 256, int(need) + 1, CPU, "auto")
    assert small.micro_batch and not small.compiled
    assert large.micro_batch and large.compiled
    bn = create_model("convnet_d3w32_bn", 10, 1, 28)
    assert fp.plan_step(bn, (1, 28, 28), 256, 100 * int(need), CPU, "auto") == fp.StepPlan(0, False, True)


def test_unknown_mode_is_one_clear_error(monkeypatch):
    from ddlib.run.settings import Settings

    with pytest.raises(DDLibError, match="valid: auto, plain, eager, compiled"):
        fp.engine_mode("fast")
    with pytest.raises(DDLibError, match="valid: auto, plain, eager, compiled"):
        fp.Engine("fast")
    assert fp.engine_mode() == "auto"
    monkeypatch.setenv("DDLIB_ENGINE", "eager")
    assert fp.engine_mode() == "auto"  # the engine never reads the environment
    assert Settings.from_env().engine == "eager"  # the run layer does
    monkeypatch.setenv("DDLIB_ENGINE", "turbo")
    with pytest.raises(DDLibError, match="unknown engine mode 'turbo'"):
        Settings.from_env()


def _fit(digits, net, regime, engine, teachers=(), budget=0.5, seed=0):
    x, y = digits.train_x[:120], digits.train_y[:120]
    return fit(net, x, y, regime=create_regime(regime), teachers=list(teachers), budget=budget,
               pool_size=len(digits.train_y), protocol=PROTOCOLS.get("sgd_cos_b64_lr1_v1"), seed=seed,
               engine=engine)


@pytest.mark.parametrize("regime", ["hl", "sl", "slkd", "slkd_stored"])
def test_micro_batches_match_the_whole_batch(digits, monkeypatch, regime):
    """Slices of 32 of every 64-sample batch give the whole batch's gradient (up to rounding)."""
    m = digits.meta
    monkeypatch.setattr(fp, "MICRO_BYTES", 32 * 16 * m.img_size ** 2 * 4)  # w16: slices of 32
    teacher = create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=7).eval()
    a = create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=3)
    b = copy.deepcopy(a)
    r1 = _fit(digits, a, regime, "plain", [teacher])
    r2 = _fit(digits, b, regime, "eager", [teacher])
    assert (r1.engine, r2.engine) == ("plain", "eager/mb32")
    assert (r1.steps, r1.samples_seen) == (r2.steps, r2.samples_seen) and r1.steps > 5
    assert r2.final_loss == pytest.approx(r1.final_loss, rel=1e-4, abs=1e-5)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=n)
    assert not torch.equal(a.classifier.weight, create_model(
        "convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=3).classifier.weight)  # it trained


def test_micro_batched_fit_is_deterministic(digits, monkeypatch):
    m = digits.meta
    monkeypatch.setattr(fp, "MICRO_BYTES", 32 * 16 * m.img_size ** 2 * 4)
    nets = [create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=1) for _ in range(2)]
    res = [_fit(digits, n, "hl", "eager", seed=5) for n in nets]
    assert res[0].final_loss == res[1].final_loss
    assert all(torch.equal(p, q) for p, q in zip(nets[0].parameters(), nets[1].parameters()))


def test_compiled_fit_matches_eager(digits, monkeypatch):
    m = digits.meta
    monkeypatch.setattr(fp, "MICRO_BYTES", 32 * 16 * m.img_size ** 2 * 4)
    a = create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=2)
    b = copy.deepcopy(a)
    r1 = _fit(digits, a, "hl", "eager", budget=0.3)
    r2 = _fit(digits, b, "hl", "compiled", budget=0.3)
    assert r2.engine == "compiled/mb32"
    assert r2.final_loss == pytest.approx(r1.final_loss, rel=1e-4, abs=1e-5)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=n)


def test_failed_compilation_falls_back_to_eager(digits, monkeypatch):
    m = digits.meta
    monkeypatch.setattr(fp, "MICRO_BYTES", 32 * 16 * m.img_size ** 2 * 4)

    def broken(model):
        def call(x):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    a = create_model("convnet_d3w16", m.num_classes, m.in_chans, m.img_size, seed=2)
    b = copy.deepcopy(a)
    r1 = _fit(digits, a, "hl", "eager", budget=0.3)
    engine = fp.Engine("compiled")
    r2 = _fit(digits, b, "hl", engine, budget=0.3)
    assert r2.engine == "eager/mb32"  # what really ran
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert engine.compile_failed  # later plans with this engine do not try again
    assert not fp.plan_step(a, (1, 8, 8), 64, 10, CPU, engine).compiled
    assert fp.plan_step(a, (1, 8, 8), 64, 10, CPU, "compiled").compiled  # a fresh engine does


def test_run_rows_record_the_engine(home):
    from ddlib.run.runner import run

    row, hit = run(RunConfig("digits", "random", 1, "hl", 0.2, 0, profile="smoke"), home, quiet=True)
    assert not hit and row["engine"] == "plain"  # the smoke student's 64-image batch is one slice
    assert home.frame()["engine"].tolist() == ["plain"]


def test_cli_rejects_a_bad_engine_before_building(home, monkeypatch, capsys):
    from ddlib.run.cli import main

    monkeypatch.setenv("DDLIB_ENGINE", "turbo")
    rc = main(["run", "--dataset", "digits", "--method", "random", "--ipc", "1", "--budget", "0.2",
               "--profile", "smoke", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1] == "ddlib: error: unknown engine mode 'turbo'; valid: auto, plain, eager, compiled"
    assert not any(home.root.rglob("*.pt")) and home.frame().empty  # nothing was built or stored


def test_evaluation_slices_by_the_cache_rule_on_cpu_only():
    from ddlib.engine.train import evaluate

    w32 = create_model("convnet_d3w32", 10, 1, 28)  # largest activation 32*28*28*4 = 100,352 B
    mb = fp.MIN_MICRO
    while 2 * mb * 100_352 <= fp.MICRO_BYTES and 2 * mb <= fp.EVAL_BATCH:
        mb *= 2
    assert fp.eval_batch(w32, (1, 28, 28), CPU) == mb < fp.EVAL_BATCH
    assert fp.eval_batch(w32, (1, 28, 28), torch.device("cuda")) == fp.EVAL_BATCH
    tiny = create_model("convnet_d3w16", 10, 1, 8)  # 16*8*8*4 B: capped at EVAL_BATCH
    assert fp.eval_batch(tiny, (1, 8, 8), CPU) == fp.EVAL_BATCH
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 1, 28, 28, generator=g), torch.randint(0, 10, (300,), generator=g)
    bn = create_model("convnet_d3w32_bn", 10, 1, 28, seed=1)  # eval-mode batch norm: per sample too
    for net in (w32, bn):
        with torch.no_grad():
            whole = int((net.eval()(x).argmax(1) == y).sum()) / len(y)
        assert evaluate(net, x, y) == whole
        assert evaluate(net, x, y) == evaluate(net, x, y, batch=1024)


def test_a_studys_teachers_share_a_compiled_engine_when_their_work_repays_it(digits):
    from ddlib.core.config import PROFILES
    from ddlib.engine.teachers import teacher_engine

    m = digits.meta
    default = PROFILES.get("default")
    t = create_model(default.teacher_model, 10, 1, 28)
    fake = type("S", (), {"train_x": torch.zeros(2000, 1, 28, 28), "train_y": torch.zeros(2000)})()
    one = 3 * fp.profile(t, (1, 28, 28))[0] * default.teacher_epochs * 2000
    assert one < fp.COMPILE_MIN_TFLOP * 1e12 <= one * len(default.seeds) * default.n_teachers
    eng = teacher_engine(t, fake, default, "auto")
    assert isinstance(eng, fp.Engine) and eng.mode == "compiled"
    assert teacher_engine(t, fake, default, "eager") == "eager"  # only `auto` decides
    bn = create_model("convnet_d3w32_bn", 10, 1, 28)  # chapter 7's SRe2L teachers: channels-last, eager
    assert teacher_engine(bn, fake, default, "auto") == "auto"
    assert fp.plan_step(bn, (1, 28, 28), 128, 60_000, CPU, "auto") == fp.StepPlan(0, False, True)
    smoke = PROFILES.get("smoke")
    st = create_model(smoke.teacher_model, m.num_classes, m.in_chans, m.img_size)
    assert teacher_engine(st, digits, smoke, "auto") == "auto"  # the smoke teachers: too little work


def test_channels_last_fit_of_a_batch_norm_net_matches_the_contiguous_one(digits):
    """A batch-norm network trained channels-last (``eager`` on CPU) equals the contiguous ``plain`` fit up to rounding."""
    m = digits.meta
    a = create_model("convnet_d3w16_bn", m.num_classes, m.in_chans, m.img_size, seed=2)
    b = copy.deepcopy(a)
    r1 = _fit(digits, a, "hl", "plain", budget=0.3)
    r2 = _fit(digits, b, "hl", "eager", budget=0.3)
    assert (r1.engine, r2.engine) == ("plain", "plain/cl")
    last = [mod for mod in b.modules() if isinstance(mod, torch.nn.Conv2d)][-1].weight  # (16, 16, 3, 3)
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
    assert r2.final_loss == pytest.approx(r1.final_loss, rel=1e-4, abs=1e-5)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(q.float(), p.float(), rtol=1e-4, atol=1e-5, msg=n)


def test_eager_slicers_keep_the_cache_sized_slice_compiled_ones_take_the_no_grad_size():
    w32 = create_model("convnet_d3w32", 10, 1, 28)  # 100,352 B per image
    eager = fp.Slicer(w32, (1, 28, 28), CPU, "eager", micro_bytes=fp.NO_GRAD_MICRO_BYTES)
    compiled = fp.Slicer(w32, (1, 28, 28), CPU, "compiled", micro_bytes=fp.NO_GRAD_MICRO_BYTES)
    assert eager.micro == fp.eval_batch(w32, (1, 28, 28), CPU) == 64 and not eager.compiled
    assert compiled.compiled and compiled.micro == 512  # 2 * 512 * 100,352 B > 64 MiB
    assert fp.Slicer(w32, (1, 28, 28), CPU, "plain").micro == 0
