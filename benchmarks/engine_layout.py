"""Memory layout and slice size: the engine choices behind the default book's 2026-12-01 speed-ups.

Run from the repository root::

    python benchmarks/engine_layout.py            # -> benchmarks/results/engine_layout.json, ~3 min

Each comparison is timed in interleaved rounds in one process (these machines are
noisy: compare ratios, not seconds), on the `default` profile's data (Fashion-MNIST,
28 px) and the machine's intra-op threads:

* ``eval``: :func:`ddlib.engine.train.evaluate` of 2,000 test images in 1,024-image
  batches against :func:`ddlib.engine.fastpath.eval_batch`'s cache-sized slices,
  per network (same accuracy: asserted).
* ``channels_last``: one eager SGD step (batch 128, cross-entropy) with contiguous weights
  against channels-last weights, per network, with one intra-op thread (as a grid's
  concurrent fits run) and with the machine's; the engine trains batch-norm networks
  channels-last on CPU (:func:`ddlib.engine.fastpath.wants_channels_last`).
* ``teacher``: a `default` teacher's fit (ConvNet-3-32, its protocol, ``--teacher-epochs``
  epochs of the 2,000-image pool) eager against compiled after one warm-up each
  (:func:`ddlib.engine.teachers.teacher_engine`), and the batch-norm teacher
  (channels-last) eager against compiled.
* ``cim_step``: CIM's alignment loss and gradient on 400 patches, whole batch
  against :func:`ddlib.methods.distill.cim.alignment_backward`'s slices.
* ``dm_real``: DM's real half (per-class mean embeddings of 640 augmented images) in
  the compiled no-grad slice size against an eager slicer's cache-sized slices.

``ratio`` = old seconds / new seconds (> 1: the engine's choice is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "engine_layout.json"


def _timed(fn, rounds: int) -> list:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _pair(old, new, rounds: int) -> dict:
    """Interleave ``old`` and ``new`` (each called once untimed first); medians and their ratio."""
    old(), new()
    a, b = [], []
    for _ in range(rounds):
        a += _timed(old, 1)
        b += _timed(new, 1)
    ma, mb = statistics.median(a), statistics.median(b)
    return {"old_s": round(ma, 4), "new_s": round(mb, 4), "ratio": round(ma / mb, 3)}


def bench_eval(split, archs, rounds):
    import torch

    from ddlib.engine.fastpath import EVAL_BATCH, eval_batch
    from ddlib.engine.models import create_model
    from ddlib.engine.train import evaluate

    m, out = split.meta, {}
    x, y = split.test_x, split.test_y
    for arch in archs:
        net = create_model(arch, m.num_classes, m.in_chans, m.img_size, seed=1)
        if arch.endswith("_bn") or not arch.startswith("convnet"):
            net = net.to(memory_format=torch.channels_last)  # as a batch-norm network leaves the engine
        assert evaluate(net, x, y, batch=EVAL_BATCH) == evaluate(net, x, y)
        r = _pair(lambda: evaluate(net, x, y, batch=EVAL_BATCH), lambda: evaluate(net, x, y), rounds)
        out[arch] = {**r, "batch": eval_batch(net, tuple(x.shape[1:]), x.device), "images": len(x)}
    return out


def bench_channels_last(archs, rounds, steps=6):
    import torch
    import torch.nn.functional as F

    from ddlib.engine.models import create_model

    out = {}
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g)
    for arch in archs:
        nets = {}
        for cl in (False, True):
            net = create_model(arch, 10, 1, 28, seed=1).train()
            if cl:
                net = net.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

            def run(net=net, opt=opt):
                for _ in range(steps):
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(net(x), y).backward()
                    opt.step()
            nets[cl] = run
        r = _pair(nets[False], nets[True], rounds)
        out[arch] = {**{k: (round(v / steps, 4) if k.endswith("_s") else v) for k, v in r.items()},
                     "unit": "seconds per step"}
    return out


def channels_last_by_threads(archs, rounds) -> dict:
    """:func:`bench_channels_last` with one intra-op thread (as a grid's concurrent fits run,
    :func:`ddlib.engine.batched.fit_threads`) and with the machine's (as a teacher trains)."""
    import torch

    full = torch.get_num_threads()
    out = {}
    for n in sorted({1, full}):
        torch.set_num_threads(n)
        try:
            out[f"threads_{n}"] = bench_channels_last(archs, rounds)
        finally:
            torch.set_num_threads(full)
    return out


def bench_teacher(split, epochs, rounds):
    from ddlib.core.config import PROFILES, PROTOCOLS
    from ddlib.engine import augment as aug
    from ddlib.engine.fastpath import Engine
    from ddlib.engine.models import create_model
    from ddlib.engine.regimes import create_regime
    from ddlib.engine.train import fit

    prof, m = PROFILES.get("default"), split.meta
    proto = PROTOCOLS.get(prof.teacher_protocol)
    out = {}
    for arch in (prof.teacher_model, "convnet_d3w32_bn"):
        engines = {"eager": Engine("auto"), "compiled": Engine("compiled")}  # auto: a lone teacher's own plan

        def run(mode, arch=arch):
            net = create_model(arch, m.num_classes, m.in_chans, m.img_size, seed=1)
            return fit(net, split.train_x, split.train_y, regime=create_regime("hl"), teachers=[], budget=epochs,
                       pool_size=len(split.train_y), protocol=proto, seed=3,
                       augment=aug.resolve(proto.augment, m.name), engine=engines[mode]).engine
        labels = {mode: run(mode) for mode in engines}  # warm-up: the compilation is paid here
        r = _pair(lambda: run("eager"), lambda: run("compiled"), rounds)
        out[arch] = {**r, "old": labels["eager"], "new": labels["compiled"], "epochs": epochs}
    return out


def bench_cim(rounds):
    import torch

    from ddlib.engine import augment as aug
    from ddlib.engine.models import create_model
    from ddlib.methods.distill.cim import alignment_backward, alignment_loss
    from ddlib.methods.distill.rded import tile

    g = torch.Generator().manual_seed(0)
    teacher = create_model("convnet_d3w32", 10, 1, 28, seed=3).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    anchors = torch.randn(400, 1, 28, 28, generator=g)
    mosaics = tile(torch.nn.functional.avg_pool2d(anchors, 2), 2)
    params = aug.draw("crop_cutout_flip", len(anchors), g, 28)
    residual = torch.zeros_like(mosaics, requires_grad=True)

    def whole():
        residual.grad = None
        alignment_loss(teacher, residual, mosaics, anchors, params, 2).backward()

    def sliced():
        residual.grad = None
        alignment_backward(teacher, residual, mosaics, anchors, params, 2)
    return {"convnet_d3w32": {**_pair(whole, sliced, rounds), "patches": len(anchors)}}


def bench_dm_real(split, rounds):
    """DM's real half on `default` (640 augmented images of 10 classes, ConvNet-3-32, eager): slices of the
    compiled no-grad size (what every slicer used before) against the eager slicer's cache-sized ones."""
    import torch

    from ddlib.core.config import PROFILES
    from ddlib.engine import augment as aug
    from ddlib.engine.fastpath import NO_GRAD_MICRO_BYTES, Slicer
    from ddlib.engine.models import create_model
    from ddlib.methods.distill.dm import real_class_means

    prof, m = PROFILES.get("default"), split.meta
    net = create_model(prof.synth_model, m.num_classes, m.in_chans, m.img_size, seed=1).train()
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([torch.nonzero(split.train_y == c).view(-1)[:prof.synth_batch_real] for c in range(10)])
    real, real_y = split.train_x[idx], split.train_y[idx]
    params = aug.draw_mixed(aug.resolve("dsa", m.name), 10, g, m.img_size)
    shape = tuple(real.shape[1:])
    new = Slicer(net, shape, real.device, "eager", micro_bytes=NO_GRAD_MICRO_BYTES)
    old = Slicer(net, shape, real.device, "compiled", micro_bytes=NO_GRAD_MICRO_BYTES)
    old.compiled = False  # the compiled slice size, run eager: the slicer before 2026-12-01
    a = real_class_means(net, real, real_y, 10, params, old)
    b = real_class_means(net, real, real_y, 10, params, new)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    r = _pair(lambda: real_class_means(net, real, real_y, 10, params, old),
              lambda: real_class_means(net, real, real_y, 10, params, new), rounds)
    return {prof.synth_model: {**r, "old_slice": old.micro, "new_slice": new.micro, "images": len(real)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--teacher-epochs", type=float, default=6.0)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    from ddlib.data import load

    split = load("fashion_mnist", "default")
    load0 = os.getloadavg()
    nets = ["convnet_d3w32", "convnet_d3w32_bn", "mobilenetv3_small_100"]
    rec = {
        "benchmark": "engine_layout", "profile": "default", "rounds": a.rounds,
        "eval": bench_eval(split, nets, a.rounds),
        "channels_last": channels_last_by_threads(nets + ["efficientnet_b0", "resnet18", "vgg11_bn"], a.rounds),
        "teacher": bench_teacher(split, a.teacher_epochs, a.rounds),
        "cim_step": bench_cim(a.rounds),
        "dm_real": bench_dm_real(split, a.rounds),
        **provenance(load0),
    }
    Path(a.out).write_text(json.dumps(rec, indent=2) + "\n")
    print(json.dumps({k: v for k, v in rec.items() if k in ("eval", "channels_last", "teacher", "cim_step", "dm_real")},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
