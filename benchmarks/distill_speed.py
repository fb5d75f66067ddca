"""Distillation speed: seconds per iteration and peak memory of every registered distiller.

Run from the repository root::

    python benchmarks/distill_speed.py                      # all distillers, 3 timed iterations each
    python benchmarks/distill_speed.py --methods dm mtt --iters 5

Each method distils the ``default`` profile's Fashion-MNIST pool (200 images
per class) at IPC 10 with its profile defaults except ``iters``, in a fresh
Python process (so the peak memory, the resident-set growth the Meter samples,
is its own).  A first, untimed child with ``iters=1`` builds whatever the
method caches upstream (MTT's expert trajectories) into a temporary store; the
timed child then runs ``--iters`` iterations under a :class:`ddlib.core.cost.Meter`
whose upstream charges are dropped, so ``seconds_per_iter`` (wall),
``cpu_seconds_per_iter`` (this process's CPU time: less sensitive to other
load on a shared machine) and ``peak_mem_mb`` are the distiller's own loop.  What one "iteration" is differs by method (DC/DSA: one network with
its outer/inner loops; DM: one random network; MTT: one unrolled student
segment; DD: one outer step); see each module's docstring.

``--reference`` instead times ddlib's DM, DC, DSA, MTT and SRe2L at ``paper``
settings against loops written the way the reference code writes them,
interleaved in one process (:mod:`distill_reference`), and writes
``benchmarks/results/distill_speed_reference.json``: per method
``seconds_per_iter``, ``reference_seconds_per_iter``, ``ratio_vs_reference``
(reference / ddlib: above 1, ddlib is faster), the same three with glibc's heap
reuse (``heap_seconds_per_iter``, ``reference_heap_seconds_per_iter``,
``ratio_vs_reference_heap``) and ``gemm_fraction``.

Writes ``benchmarks/results/distill_speed.json``: per method
``{seconds_per_iter, cpu_seconds_per_iter, iters, peak_mem_mb, fwd, bwd}``, plus ``device``, ``torch``,
``threads``, ``ipc``, ``profile``, ``date`` and the 1-min load averages.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/distill_speed.py`
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ddlib.core.config import PROFILES  # noqa: E402
from ddlib.core.cost import Meter  # noqa: E402
from ddlib.core.store import Store  # noqa: E402
from ddlib.data import Split  # noqa: E402
from ddlib.methods.context import Context  # noqa: E402
from ddlib.methods.distill import DISTILLERS  # noqa: E402
from ddlib.run.settings import default_device  # noqa: E402  ($DDLIB_DEVICE, read once)
from ddlib.run.settings import load_data as load  # noqa: E402  ($DDLIB_DATA)


def time_method(name: str, split, prof, store: Store, ipc: int, iters: int) -> dict:
    """``iters`` iterations of ``name`` in this process; upstream charges dropped."""
    fn = DISTILLERS.get(name)
    ctx = Context(prof, store, Meter(), quiet=True)
    with Meter(split.train_x.device) as meter:
        meter.charge = lambda cost: None  # the distiller's own loop only
        ctx.meter = meter
        t0, c0 = time.perf_counter(), time.process_time()
        fn(split, ipc, seed=0, ctx=ctx, iters=iters)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds_per_iter": round(wall / iters, 4), "cpu_seconds_per_iter": round(cpu / iters, 4),
            "iters": iters, "peak_mem_mb": round(meter.cost.peak_mem_mb, 1), "fwd": meter.cost.fwd,
            "bwd": meter.cost.bwd}


def in_child(name: str, args, store_dir: str, iters: int) -> dict:
    """Run one method in a fresh interpreter (so peak memory is its own); its result dict."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--iters", str(iters),
           "--ipc", str(args.ipc), "--profile", args.profile, "--store", store_dir]
    if args.device:
        cmd += ["--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reference_mode(args) -> dict:
    """``--reference``: ddlib against the reference-style loops, interleaved (see :mod:`distill_reference`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import distill_reference as dr

    prof = PROFILES.get("paper")
    t0 = time.perf_counter()
    split = load(prof.dataset, prof, torch.device("cpu"))
    if args.pool:  # a class-balanced random subset of the pool: the per-class real batch is unchanged
        g = torch.Generator().manual_seed(0)
        keep = torch.cat([ix[torch.randperm(len(ix), generator=g)[:args.pool]]
                          for ix in (split.class_indices(c).cpu() for c in range(split.num_classes))])
        split = Split(split.train_x[keep], split.train_y[keep], split.val_x, split.val_y, split.test_x[:0],
                      split.test_y[:0], split.meta)
    load_s = time.perf_counter() - t0
    dest = Path(args.out or ROOT / "benchmarks" / "results" / "distill_speed_reference.json")
    # methods run now replace theirs in an existing file; the others' entries (with their dates) are kept
    old = json.loads(dest.read_text())["methods"] if dest.exists() else {}
    load_start = os.getloadavg()
    gemm_before = dr.gemm_rate()

    ran = []

    def save(name, r, gemm=gemm_before):  # per method: its fraction of the GEMM rate measured in its run
        r["gemm_gflop_s"] = round(gemm / 1e9, 1)
        r["gemm_fraction"] = round(r["gflop_s"] * 1e9 / gemm, 4)
        old[name] = r
        ran.append(name)
        write(gemm)

    def write(gemm, after=None):
        out = {"methods": dict(old), "profile": "paper", "dataset": prof.dataset, "ipc": dr.IPC,
               "pool": len(split.train_y), "batch_real": dr.BATCH_REAL, "model": prof.synth_model,
               "engine": "compiled", "gemm_gflop_s": round(gemm / 1e9, 1),
               "gemm_gflop_s_before_after": [round(gemm_before / 1e9, 1), after and round(after / 1e9, 1)],
               "load_data_s": round(load_s, 1), "device": "cpu", "torch": torch.__version__,
               "threads": torch.get_num_threads(), "cpu": _cpu_name(),
               "load_avg_start": [round(v, 2) for v in load_start],
               "load_avg_end": [round(v, 2) for v in os.getloadavg()],
               "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2) + "\n")
        tmp.replace(dest)  # written after every method: an interrupted run keeps what it measured
        return out

    dr.run(split, prof, rounds=args.rounds, methods=tuple(args.methods or dr.DEFAULT_METHODS),
           log=lambda s: print(s, flush=True), on_result=save)
    gemm_after = dr.gemm_rate()
    gemm = max(gemm_before, gemm_after)
    for name in ran:  # the higher of the two GEMM measurements: the machine's rate in this run
        old[name]["gemm_gflop_s"] = round(gemm / 1e9, 1)
        old[name]["gemm_fraction"] = round(old[name]["gflop_s"] * 1e9 / gemm, 4)
    out = write(gemm, gemm_after)
    print(f"-> {dest}")
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="*", default=None, help="distillers (default: all registered)")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per method")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None, help="result file (default results/distill_speed.json, "
                    "with --reference results/distill_speed_reference.json)")
    ap.add_argument("--reference", action="store_true", help="ddlib against reference-style loops at paper "
                    "settings (dm dc dsa mtt sre2l), interleaved")
    ap.add_argument("--rounds", type=int, default=2, help="--reference: timed (ddlib, reference) pairs per method")
    ap.add_argument("--pool", type=int, default=0, help="--reference: images per class kept of the pool (0 = all)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)    # child mode: one method
    ap.add_argument("--store", default=None, help=argparse.SUPPRESS)  # child mode: cache folder
    args = ap.parse_args(argv)
    if args.reference:
        return reference_mode(args)
    args.out = args.out or str(ROOT / "benchmarks" / "results" / "distill_speed.json")
    prof = PROFILES.get(args.profile)
    dev = default_device(args.device)
    if args.one:
        split = load(prof.dataset, prof, dev)
        print(json.dumps(time_method(args.one, split, prof, Store(Path(args.store)), args.ipc, args.iters)))
        return {}
    split = load(prof.dataset, prof, dev)
    methods = args.methods or list(DISTILLERS.names())
    load_start = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in methods:
            in_child(name, args, tmp, 1)  # warm-up: builds upstream caches (MTT's experts)
            results[name] = in_child(name, args, tmp, args.iters)
            print(f"{name:6s} {results[name]['seconds_per_iter']:9.3f} s/iter "
                  f"({results[name]['cpu_seconds_per_iter']:.3f} CPU s)  "
                  f"{results[name]['peak_mem_mb']:8.1f} MiB peak  ({args.iters} iters)", flush=True)
    out = {"methods": results, "ipc": args.ipc, "profile": args.profile, "dataset": prof.dataset,
           "pool": len(split.train_y),
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "load_avg_start": load_start, "load_avg_end": os.getloadavg()[0],
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{'method':8s}{'s/iter':>10s}{'CPU s/iter':>12s}{'peak MiB':>10s}")
    for name, r in results.items():
        print(f"{name:8s}{r['seconds_per_iter']:10.3f}{r['cpu_seconds_per_iter']:12.3f}{r['peak_mem_mb']:10.1f}")
    print(f"-> {args.out}")
    return out


if __name__ == "__main__":
    main()
