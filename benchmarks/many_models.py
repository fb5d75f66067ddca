"""K small trainings together (``ddlib.engine.batched.fit_many``) against one after another (``ddlib.engine.train.fit``).

Run from the repository root::

    python benchmarks/many_models.py            # -> benchmarks/results/many_models.json
    python benchmarks/many_models.py --quick    # -> benchmarks/results/many_models_quick.json

Measures, in one process on the device ``ddlib.run.settings.default_device`` picks:

1. ``gemm_gflop_s``   fp32 2048^2 matrix-product rate (as ``train_throughput.py``).
2. ``norm``           forward+backward time of three implementations of instance norm
                      (``nn.GroupNorm(C, C)``, ``F.instance_norm``, ``F.batch_norm`` on the
                      (1, N*C, H, W) reshape) at the two ConvNet shapes that matter, and
                      their largest output / input-gradient difference from GroupNorm.
3. ``sequential_img_s`` / ``together_img_s``: K students of the ``default`` profile
                      (``convnet_d3w32``, protocol ``sgd_cos_lr05_v1``, regime ``hl``, the
                      protocol's augmentation) on K different 100-image sets, trained one
                      after another and together; ``ratio`` = together / sequential
                      (> 1: together is faster), median over interleaved rounds;
                      ``threads_img_s`` / ``ratio_threads`` the same for K concurrent
                      single-threaded fits (``ddlib.engine.batched.fit_threads``).
   Peak RSS of each part; the environment.
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from train_throughput import Part, bench_gemm, load_avg, machine_info, sync  # noqa: E402

from ddlib.core.config import PROTOCOLS  # noqa: E402
from ddlib.engine.batched import fit_many  # noqa: E402
from ddlib.engine.models import create_model  # noqa: E402
from ddlib.engine.regimes import create_regime  # noqa: E402
from ddlib.engine.train import fit  # noqa: E402
from ddlib.run.settings import default_device  # noqa: E402  ($DDLIB_DEVICE, read once)

MODEL, PROTOCOL, REGIME, POOL = "convnet_d3w32", "sgd_cos_lr05_v1", "hl", 2000


def norm_bench(device, shapes, reps):
    """fwd+bwd ms of GroupNorm(C, C) and two equivalent instance norms; max abs differences."""
    out = {}
    for n, c, h in shapes:
        g = torch.Generator().manual_seed(0)
        x0 = torch.randn(n, c, h, h, generator=g).to(device)
        gn = nn.GroupNorm(c, c).to(device)
        with torch.no_grad():
            gn.weight.uniform_(0.5, 1.5)
            gn.bias.uniform_(-0.5, 0.5)
        w, b = gn.weight, gn.bias
        impls = {
            "group_norm": gn,
            "instance_norm": lambda x: F.instance_norm(x, weight=w, bias=b, eps=gn.eps),
            "batch_norm_reshape": lambda x: F.batch_norm(
                x.reshape(1, -1, *x.shape[2:]), None, None, training=True, eps=gn.eps
            ).reshape(x.shape) * w[:, None, None] + b[:, None, None],
        }
        gy = torch.randn(x0.shape, generator=g).to(device)
        ref = None
        row = {}
        for name, f in impls.items():
            x = x0.clone().requires_grad_()
            y = f(x)
            (dx,) = torch.autograd.grad(y, x, gy)
            if ref is None:
                ref = (y.detach(), dx)
            times = []
            for _ in range(reps):
                x = x0.clone().requires_grad_()
                sync(device)
                t0 = time.perf_counter()
                torch.autograd.grad(f(x), x, gy)
                sync(device)
                times.append(time.perf_counter() - t0)
            row[name] = {"ms_best": round(1e3 * min(times), 2), "ms_median": round(1e3 * statistics.median(times), 2),
                         "max_abs_diff_out": float((y.detach() - ref[0]).abs().max()),
                         "max_abs_diff_grad": float((dx - ref[1]).abs().max())}
        out[f"{n}x{c}x{h}x{h}"] = row
    return out


def make_sets(k, ipc, device):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(10 * ipc, 1, 28, 28, generator=g).to(device), torch.arange(10).repeat(ipc).to(device))
            for _ in range(k)]


def sequential(nets, sets, budget):
    proto = PROTOCOLS.get(PROTOCOL)
    res = [fit(n, x, y, regime=create_regime(REGIME), teachers=[], budget=budget, pool_size=POOL,
               protocol=proto, seed=s) for s, (n, (x, y)) in enumerate(zip(nets, sets))]
    return res


def together(nets, sets, budget):
    return fit_many(nets, [x for x, _ in sets], [y for _, y in sets],
                    regimes=[create_regime(REGIME) for _ in nets], teachers=[], budget=budget,
                    pool_size=POOL, protocol=PROTOCOLS.get(PROTOCOL), seeds=list(range(len(nets))))


def threads(nets, sets, budget):
    """K concurrent single-threaded fits (``ddlib.engine.batched.fit_threads``, the CPU path of ``run_many``)."""
    from ddlib.engine.batched import FitArgs, fit_threads

    proto = PROTOCOLS.get(PROTOCOL)
    return fit_threads([FitArgs(n, x, y, regime=create_regime(REGIME), teachers=[], budget=budget,
                                pool_size=POOL, protocol=proto, seed=s)
                        for s, (n, (x, y)) in enumerate(zip(nets, sets))])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--budget", type=float, default=None, help="epochs of the 2,000-image pool per run")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--note", default="")
    a = ap.parse_args(argv)
    device = default_device(a.device)
    budget = a.budget or (0.2 if a.quick else 1.0)
    rounds = a.rounds or (1 if a.quick else 3)
    t_all = time.perf_counter()
    la0 = load_avg()
    with Part(device) as p:
        gemm = bench_gemm(device, 5 if a.quick else 20)
    gemm.update(p.record())
    with Part(device) as p:
        norm = norm_bench(device, [(128, 32, 28), (256, 128, 14)], 3 if a.quick else 10)
    sets = make_sets(a.k, 10, device)
    inits = [create_model(MODEL, 10, 1, 28, seed=100 + j).to(device) for j in range(a.k)]
    together([copy.deepcopy(n) for n in inits], sets, 0.1)  # warm-up of every path
    threads([copy.deepcopy(n) for n in inits], sets, 0.1)
    sequential([copy.deepcopy(n) for n in inits], sets, 0.1)
    modes = {"sequential": sequential, "together": together, "threads": threads}
    parts = {m: [] for m in modes}
    mem = {m: 0.0 for m in modes}
    losses = {}
    for r in range(rounds):
        order = list(modes)[r % 3:] + list(modes)[:r % 3]
        for mode in order:
            nets = [copy.deepcopy(n) for n in inits]
            with Part(device) as p:
                res = modes[mode](nets, sets, budget)
            samples = sum(x.samples_seen for x in res)
            rec = p.record()
            rec["img_s"] = samples / p.wall
            parts[mode].append(rec)
            mem[mode] = max(mem[mode], rec["peak_rss_mib"] or 0)
            losses[mode] = [round(x.final_loss, 5) for x in res]
    seq = statistics.median(x["img_s"] for x in parts["sequential"])
    tog = statistics.median(x["img_s"] for x in parts["together"])
    thr = statistics.median(x["img_s"] for x in parts["threads"])
    ratios = [t["img_s"] / s["img_s"] for s, t in zip(parts["sequential"], parts["together"])]
    ratios_thr = [t["img_s"] / s["img_s"] for s, t in zip(parts["sequential"], parts["threads"])]
    util = statistics.mean(x["cpu_util"] for v in parts.values() for x in v)
    note = a.note or (f"shared machine: 1-min load average {la0[0] if la0 else '?'} at start "
                      f"(2 cores, ~6 engineers); this process averaged {util:.2f} busy cores; "
                      "numbers are noisy, ratios of interleaved rounds travel better than absolute rates")
    out = {
        "benchmark": "many_models", "quick": a.quick, "k": a.k,
        "gemm_gflop_s": round(gemm["gflop_s"], 2), "gemm": gemm, "norm_fwd_bwd": norm,
        "sequential_img_s": round(seq, 1), "together_img_s": round(tog, 1),
        "ratio": round(statistics.median(ratios), 3), "ratio_rounds": [round(x, 3) for x in ratios],
        "threads_img_s": round(thr, 1), "ratio_threads": round(statistics.median(ratios_thr), 3),
        "ratio_threads_rounds": [round(x, 3) for x in ratios_thr],
        "final_losses": losses, "peak_rss_mib": mem, "parts": parts,
        "setup": {"model": MODEL, "protocol": PROTOCOL, "regime": REGIME, "pool_size": POOL,
                  "budget": budget, "set_size": 100, "augment": PROTOCOLS.get(PROTOCOL).augment},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": machine_info(),
        "load_avg_start": la0, "load_avg_end": load_avg(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "total_wall_s": round(time.perf_counter() - t_all, 1), "note": note,
    }
    path = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / (
        "many_models_quick.json" if a.quick else "many_models.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"GEMM {out['gemm_gflop_s']:.0f} GFLOP/s; K={a.k}: sequential {seq:.0f} img/s, together {tog:.0f} img/s, "
          f"ratio {out['ratio']:.2f} (rounds {out['ratio_rounds']}); concurrent 1-thread fits {thr:.0f} img/s, "
          f"ratio {out['ratio_threads']:.2f} (rounds {out['ratio_threads_rounds']}) -> {path}")
    for shape, row in norm.items():
        print(shape, {k: v["ms_best"] for k, v in row.items()})
    return out


if __name__ == "__main__":
    main()
