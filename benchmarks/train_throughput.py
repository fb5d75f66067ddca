"""Training-throughput benchmark of ddlib's engine against a plain PyTorch loop.

Run from the repository root::

    python benchmarks/train_throughput.py            # full run (~1.5-2 min on 2 CPU cores)
    python benchmarks/train_throughput.py --quick    # smoke run (~20 s)

Measures, in one process on whatever device ``ddlib.run.settings.default_device`` picks
(CUDA when available, else CPU; ``--device`` overrides):

1. ``gemm_gflop_s``   fp32 2048x2048 matrix-product rate (median of repetitions).
2. ``engine_img_s``   images/s of ``ddlib.engine.train.fit`` training ``convnet``
                      (ConvNet-3-128, instance norm) on 28x28x1 data, regime
                      ``hl``, protocol ``sgd_cos_v1`` (batch 256), no augmentation,
                      engine mode ``compiled`` (``ddlib.engine.fastpath``: cache-sized
                      micro-batches + torch.compile; ``compile_s`` is its one-off
                      compilation); ``engine_eager_img_s`` mode ``eager`` (micro-batches
                      only), ``engine_plain_img_s`` mode ``plain`` (whole batch, eager:
                      the engine before ddlib 0.4); ``engine_aug_img_s`` mode ``compiled``
                      with the protocol's DSA augmentation.
3. ``plain_img_s``    the same model and samples trained by a DC/DM-reference-style
                      loop (TensorDataset + DataLoader(shuffle=True), per-batch .to(device)).
4. ``ratio``, ``model_gflop_per_img``, ``fraction_of_gemm`` derived from the above.
5. Peak RSS per timed part, and the environment (device, torch, threads, date, machine).

Timed fits run in interleaved rounds (every mode once per round, order rotated
each round) so that load from other processes hits every mode alike; each
mode's headline is its median over rounds.  The GEMM rate is measured again
after every round and its median over all measurements is the one used.

Writes pretty-printed JSON to ``benchmarks/results/train_throughput.json``
(``train_throughput_quick.json`` with ``--quick``; ``--out`` overrides) and
prints a short summary.  See ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/train_throughput.py`
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from ddlib.core.config import PROTOCOLS  # noqa: E402
from ddlib.engine.fastpath import profile  # noqa: E402
from ddlib.engine.models import create_model  # noqa: E402
from ddlib.engine.regimes import create_regime  # noqa: E402
from ddlib.engine.train import fit  # noqa: E402
from ddlib.run.settings import default_device  # noqa: E402  ($DDLIB_DEVICE, read once)

MODEL, REGIME, PROTOCOL = "convnet", "hl", "sgd_cos_v1"
GEMM_N = 2048
SEED = 0


# --------------------------------------------------------------------------- utilities
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_kib(field: str):
    """A ``Vm*`` field of /proc/self/status in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


class PeakRSS:
    """Resident-set high-water mark of this process over a ``with`` block, in MiB.

    On Linux the kernel's peak (VmHWM) is reset on entry by writing "5" to
    /proc/self/clear_refs, so the peak is that of the block alone; a sampling
    thread (every 20 ms, reading VmRSS or psutil) is the fallback where the reset
    is not allowed.  Off Linux without psutil it falls back to
    ``resource.getrusage`` (the process-lifetime peak; ``method`` says which).
    On CUDA the block's ``torch.cuda.max_memory_allocated`` is recorded too.
    """

    last_method = ""

    def __init__(self, device: torch.device, interval: float = 0.02):
        self.device, self.interval = device, interval
        self.mib = None
        self.method = ""
        self.cuda_mib = None

    def _rss_kib(self):
        kib = _proc_kib("VmRSS")
        if kib is None:
            try:
                import psutil
                kib = psutil.Process().memory_info().rss // 1024
            except Exception:  # noqa: BLE001
                kib = None
        return kib

    def _sample(self):
        while not self._stop.is_set():
            kib = self._rss_kib()
            if kib is not None:
                self._max = max(self._max, kib)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._reset = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._reset = _proc_kib("VmHWM") is not None
        except OSError:
            pass
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._max = self._rss_kib() or 0
        self.start_mib = round(self._max / 1024, 1) if self._max else None
        self._stop = threading.Event()
        self._thread = None
        if not self._reset:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self._reset:
            kib, self.method = _proc_kib("VmHWM"), "VmHWM reset via /proc/self/clear_refs"
        elif self._max:
            kib, self.method = self._max, "RSS sampled every 20 ms"
        else:
            import resource
            ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            kib = ru // 1024 if sys.platform == "darwin" else ru  # bytes on macOS
            self.method = "getrusage ru_maxrss (process lifetime)"
        self.mib = round(kib / 1024, 1)
        PeakRSS.last_method = self.method
        if self.device.type == "cuda":
            self.cuda_mib = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return False


class Part:
    """Times a block: wall seconds, process CPU seconds (cpu_util = cpu / wall) and peak memory."""

    def __init__(self, device: torch.device):
        self.device = device
        self.mem = PeakRSS(device)

    def __enter__(self):
        self.mem.__enter__()
        sync(self.device)
        self.cpu0, self.t0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.cpu0
        self.mem.__exit__(*exc)
        return False

    def record(self) -> dict:
        d = {"wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3), "cpu_util": round(self.cpu / max(self.wall, 1e-9), 2),
             "peak_rss_mib": self.mem.mib, "rss_start_mib": self.mem.start_mib}
        if self.mem.cuda_mib is not None:
            d["peak_cuda_alloc_mib"] = self.mem.cuda_mib
        return d


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:  # platform.processor() is empty on most Linux builds
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    return {"processor": cpu, "arch": platform.machine(), "cpu_count": os.cpu_count(),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def load_avg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


# --------------------------------------------------------------------------- 1. GEMM
def bench_gemm(device: torch.device, reps: int, warmup: int = 3) -> dict:
    g = torch.Generator(device="cpu").manual_seed(SEED)
    a = torch.randn(GEMM_N, GEMM_N, generator=g).to(device)
    b = torch.randn(GEMM_N, GEMM_N, generator=g).to(device)
    for _ in range(warmup):
        a @ b
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"n": GEMM_N, "reps": reps, "median_s": med, "min_s": min(times),
            "gflop_s": 2 * GEMM_N ** 3 / med / 1e9, "gflop_s_best": 2 * GEMM_N ** 3 / min(times) / 1e9}


# --------------------------------------------------------------------------- 2. engine
def engine_fit(x, y, num_classes, samples, augment, engine, seed=SEED) -> dict:
    """One ``ddlib.engine.train.fit`` (engine mode ``engine``) of a fresh ``convnet`` seeing exactly ``samples`` images."""
    proto = PROTOCOLS.get(PROTOCOL)
    model = create_model(MODEL, num_classes, x.shape[1], x.shape[-1], seed=seed).to(x.device)
    # pool_size = samples, budget = 1 full "epoch": the run sees exactly `samples` images.
    res = fit(model, x, y, regime=create_regime(REGIME), teachers=[], budget=1.0,
              pool_size=samples, protocol=proto, seed=seed, augment=augment, engine=engine)
    return {"samples": res.samples_seen, "steps": res.steps, "seconds": res.seconds,
            "img_s": res.samples_seen / res.seconds, "final_loss": res.final_loss, "plan": res.engine,
            "augment": proto.augment if augment is None else augment}


# --------------------------------------------------------------------------- 3. plain loop
def plain_fit(x_cpu, y_cpu, num_classes, samples, device, seed=SEED) -> dict:
    """DC/DM-reference-style loop: DataLoader over CPU tensors, batches moved per step.

    Same model, optimiser hyperparameters and sample count as the engine; no
    augmentation, no schedule (constant lr; a schedule costs nothing measurable).
    """
    proto = PROTOCOLS.get(PROTOCOL)
    torch.manual_seed(seed)  # DataLoader's shuffle draws from the global RNG
    net = create_model(MODEL, num_classes, x_cpu.shape[1], x_cpu.shape[-1], seed=seed).to(device)
    ds = torch.utils.data.TensorDataset(x_cpu, y_cpu)
    loader = torch.utils.data.DataLoader(ds, batch_size=proto.batch_size, shuffle=True, num_workers=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss().to(device)
    net.train()
    seen, steps, loss_avg = 0, 0, float("nan")
    t0 = time.perf_counter()
    while seen < samples:
        for img, lab in loader:
            left = samples - seen
            if left <= 0:
                break
            if len(img) > left:
                img, lab = img[:left], lab[:left]
            img, lab = img.to(device), lab.to(device)
            out = net(img)
            loss = criterion(out, lab)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_avg = loss.item()  # the reference code accumulates loss.item() every step
            seen += len(img)
            steps += 1
    sync(device)
    sec = time.perf_counter() - t0
    return {"samples": seen, "steps": steps, "seconds": sec, "img_s": seen / sec,
            "final_loss": loss_avg}


# --------------------------------------------------------------------------- data
def load_data():
    """Fashion-MNIST's default-profile train pool (CPU), else random tensors of its shape."""
    try:
        from ddlib.run.settings import load_data as load  # $DDLIB_DATA
        s = load("fashion_mnist", "default")
        return s.train_x, s.train_y, s.num_classes, "fashion_mnist (ddlib default profile train pool)"
    except Exception as e:  # noqa: BLE001 - any failure -> synthetic data of the same shape
        g = torch.Generator().manual_seed(SEED)
        x = torch.randn(3000, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (3000,), generator=g)
        return x, y, 10, f"random tensors (3000, 1, 28, 28); fashion_mnist unavailable: {e}"


# --------------------------------------------------------------------------- main
# mode -> (ddlib engine mode, augmentation: "" none, None the protocol's); "plain" is the reference loop
MODES = {"engine": ("compiled", ""), "engine_eager": ("eager", ""), "engine_plain": ("plain", ""),
         "plain": (None, None), "engine_aug": ("compiled", None)}


def run_mode(mode, samples, x_cpu, y_cpu, x_dev, y_dev, k, device) -> dict:
    engine, augment = MODES[mode]
    with Part(device) as p:
        if mode == "plain":
            r = plain_fit(x_cpu, y_cpu, k, samples, device)
        else:
            r = engine_fit(x_dev, y_dev, k, samples, augment=augment, engine=engine)
    return {**r, **p.record()}


def summarise(rounds: list) -> dict:
    """One mode's rounds -> median img/s (headline), best, totals, peak memory."""
    img = [r["img_s"] for r in rounds]
    cpu = sum(r["cpu_s"] for r in rounds)
    d = {"img_s": statistics.median(img), "img_s_best": max(img), "img_s_rounds": [round(v, 1) for v in img],
         "samples": sum(r["samples"] for r in rounds), "seconds": sum(r["seconds"] for r in rounds),
         "steps_per_round": rounds[0]["steps"], "cpu_s": round(cpu, 3),
         "cpu_util": round(cpu / max(sum(r["wall_s"] for r in rounds), 1e-9), 2),
         "peak_rss_mib": max(r["peak_rss_mib"] for r in rounds),
         "rss_start_mib": min(r["rss_start_mib"] or 0 for r in rounds),
         "final_loss_rounds": [round(r["final_loss"], 4) for r in rounds]}
    d["img_per_cpu_s"] = round(d["samples"] / max(cpu, 1e-9), 1)
    for key in ("augment", "plan"):
        if key in rounds[0]:
            d[key] = rounds[0][key]
    if "peak_cuda_alloc_mib" in rounds[0]:
        d["peak_cuda_alloc_mib"] = max(r["peak_cuda_alloc_mib"] for r in rounds)
    return d


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one short round (~3 s per fit) for a smoke run")
    ap.add_argument("--device", default=None, help="torch device (default: CUDA if available, else CPU)")
    ap.add_argument("--target-seconds", type=float, default=None,
                    help="wall time aimed at per timed fit (default 10, 3 with --quick)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds of one fit per mode (default 3, 1 with --quick)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/train_throughput[_quick].json)")
    ap.add_argument("--note", default=None, help="free text stored as 'note' (default: derived from CPU use and load)")
    args = ap.parse_args(argv)

    target = args.target_seconds or (3.0 if args.quick else 10.0)
    n_rounds = max(1, args.rounds or (1 if args.quick else 3))
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        "train_throughput_quick.json" if args.quick else "train_throughput.json")
    device = default_device(args.device)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    threads = torch.get_num_threads()
    ncpu = os.cpu_count() or 1
    load_start = load_avg()
    t_start = time.perf_counter()
    parts = {}

    print(f"device={dev_name} torch={torch.__version__} threads={threads} "
          f"target={target:g} s/fit x {n_rounds} round(s)", flush=True)

    # 1. GEMM
    with Part(device) as p:
        gemm = bench_gemm(device, reps=5 if args.quick else 20)
    parts["gemm"] = {**gemm, **p.record()}
    print(f"  gemm {GEMM_N}^2 fp32: {gemm['gflop_s']:.1f} GFLOP/s (median of {gemm['reps']})", flush=True)

    # data
    x_cpu, y_cpu, k, data_desc = load_data()
    x_dev, y_dev = x_cpu.to(device), y_cpu.to(device)
    bs = PROTOCOLS.get(PROTOCOL).batch_size

    # 4. FLOPs (forward of conv/linear layers, analytic: ddlib.engine.fastpath.profile);
    # forward+backward ~ 3x forward
    fmodel = create_model(MODEL, k, x_cpu.shape[1], x_cpu.shape[-1], seed=SEED)
    fwd = profile(fmodel, tuple(x_cpu.shape[1:]))[0]
    del fmodel
    model_gflop = 3 * fwd / 1e9

    # Warm-up: the first compiled fit compiles (timed alone: compile_s), then every
    # mode once (kernels warm), then a short calibration fit that sizes the timed fits.
    with Part(device) as p:
        first = engine_fit(x_dev, y_dev, k, 2 * bs, augment="", engine="compiled")
        again = engine_fit(x_dev, y_dev, k, 2 * bs, augment="", engine="compiled")
    compile_s = max(0.0, first["seconds"] - again["seconds"])
    parts["compile"] = {**p.record(), "first_fit_s": round(first["seconds"], 3),
                        "second_fit_s": round(again["seconds"], 3), "compile_s": round(compile_s, 2)}
    print(f"  compile: first compiled fit {first['seconds']:.1f} s, the next {again['seconds']:.1f} s", flush=True)
    with Part(device) as p:
        for mode, (engine, augment) in MODES.items():
            if mode == "plain":
                plain_fit(x_cpu, y_cpu, k, 2 * bs, device)
            else:
                engine_fit(x_dev, y_dev, k, 2 * bs, augment=augment, engine=engine)
        calib = engine_fit(x_dev, y_dev, k, 3 * bs, augment="", engine="eager")
    parts["warmup"] = {**p.record(), "calibration_img_s": calib["img_s"]}
    steps = max(2 if args.quick else 4, round(calib["img_s"] * target / bs))
    samples = steps * bs
    print(f"  warm-up done; calibration {calib['img_s']:.0f} img/s -> {samples} samples per timed fit",
          flush=True)

    # 2./3. Interleaved rounds: each round times one fit of every mode (order rotated
    # per round), so a burst of load from another process hits all modes alike; the
    # headline is the median over rounds and `ratio` the median of per-round ratios.
    rounds = {m: [] for m in MODES}
    names = list(MODES)
    gemm_rates = [gemm["gflop_s"]]
    for r in range(n_rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for mode in order:
            res_m = run_mode(mode, samples, x_cpu, y_cpu, x_dev, y_dev, k, device)
            rounds[mode].append(res_m)
            print(f"  round {r + 1}/{n_rounds} {mode:<12s} {res_m['img_s']:8.1f} img/s "
                  f"({res_m['seconds']:.1f} s, {res_m['cpu_util']:.2f} cores busy)", flush=True)
        gemm_rates.append(bench_gemm(device, reps=5 if args.quick else 20)["gflop_s"])
    gemm_rate = statistics.median(gemm_rates)
    for mode in MODES:
        parts[mode] = summarise(rounds[mode])
    mem_method = PeakRSS.last_method
    per_round = lambda a, b: statistics.median(  # noqa: E731
        x["img_s"] / y["img_s"] for x, y in zip(rounds[a], rounds[b]))
    eng, plain, eng_aug = (parts[m]["img_s"] for m in ("engine", "plain", "engine_aug"))

    load_end = load_avg()
    util = statistics.mean(parts[m]["cpu_util"] for m in MODES)
    busy = max((load_start or [0])[0], (load_end or [0])[0])
    spread = max((max(parts[m]["img_s_rounds"]) / min(parts[m]["img_s_rounds"]) for m in MODES))
    if args.note is not None:
        note = args.note
    elif device.type == "cpu" and (util < 0.8 * min(threads, ncpu) or busy > threads + 0.5):
        note = (f"Timings taken while the machine was shared (another process was running): this process "
                f"averaged {util:.2f} busy cores of the {min(threads, ncpu)} its {threads} threads could use, "
                f"1-min load average up to {busy:.1f} on {ncpu} cores, and a mode's rounds differed by up to "
                f"{spread:.2f}x. Absolute img/s and GFLOP/s are pessimistic and noisy; the ratios "
                f"(medians of per-round ratios) and img_per_cpu_s are less affected.")
    else:
        note = (f"No sign of other load: this process averaged {util:.2f} busy cores during the timed fits; "
                f"a mode's rounds differed by up to {spread:.2f}x.")

    res = {
        "benchmark": "train_throughput",
        "quick": bool(args.quick),
        "gemm_gflop_s": round(gemm_rate, 2),
        "gemm_gflop_s_rounds": [round(g, 1) for g in gemm_rates],
        "gemm_gflop_s_best": round(gemm["gflop_s_best"], 2),
        "engine_img_s": round(eng, 1),
        "engine_eager_img_s": round(parts["engine_eager"]["img_s"], 1),
        "engine_plain_img_s": round(parts["engine_plain"]["img_s"], 1),
        "engine_aug_img_s": round(eng_aug, 1),
        "plain_img_s": round(plain, 1),
        "engine_plan": parts["engine"]["plan"],
        "compile_s": round(compile_s, 2),
        "ratio": round(per_round("engine", "plain"), 3),
        "ratio_eager": round(per_round("engine_eager", "plain"), 3),
        "ratio_engine_plain": round(per_round("engine_plain", "plain"), 3),
        "ratio_cpu_time": round(parts["engine"]["img_per_cpu_s"] / parts["plain"]["img_per_cpu_s"], 3),
        "aug_slowdown": round(per_round("engine", "engine_aug"), 3),
        "model_gflop_per_img": round(model_gflop, 5),
        "model_forward_mflop_per_img": round(fwd / 1e6, 3),
        "fraction_of_gemm": round(model_gflop * eng / gemm_rate, 4),
        "fraction_of_gemm_eager": round(model_gflop * parts["engine_eager"]["img_s"] / gemm_rate, 4),
        "peak_rss_mib": {m: parts[m]["peak_rss_mib"] for m in ("gemm", *MODES)},
        "peak_rss_method": mem_method,
        "samples_per_fit": samples,
        "rounds": n_rounds,
        "cpu_util_mean": round(util, 2),
        "setup": {"model": MODEL, "regime": REGIME, "protocol": PROTOCOL, "batch_size": bs,
                  "augment": parts["engine_aug"]["augment"], "data": data_desc,
                  "data_shape": list(x_cpu.shape), "seed": SEED, "target_seconds_per_fit": target},
        "parts": parts,
        "device": dev_name,
        "torch": torch.__version__,
        "threads": threads,
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine_info(),
        "load_avg_start": load_start,
        "load_avg_end": load_end,
        "total_wall_s": round(time.perf_counter() - t_start, 1),
        "note": note,
    }
    if device.type == "cuda":
        res["peak_cuda_alloc_mib"] = {m: parts[m].get("peak_cuda_alloc_mib") for m in ("gemm", *MODES)}

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")

    rss = res["peak_rss_mib"]
    print(f"\nConvNet-3-128 (instance norm), 28x28x1, batch {bs}, {samples} samples/fit, "
          f"{n_rounds} round(s), {dev_name}, {threads} threads:")
    print(f"  GEMM fp32 {GEMM_N}^2     {res['gemm_gflop_s']:10.1f} GFLOP/s")
    print(f"  engine compiled      {res['engine_img_s']:10.1f} img/s   peak RSS {rss['engine']} MiB "
          f"({res['engine_plan']}; compiling took {res['compile_s']:.1f} s once)")
    print(f"  engine eager         {res['engine_eager_img_s']:10.1f} img/s   peak RSS {rss['engine_eager']} MiB")
    print(f"  engine plain         {res['engine_plain_img_s']:10.1f} img/s   peak RSS {rss['engine_plain']} MiB")
    print(f"  engine compiled+DSA  {res['engine_aug_img_s']:10.1f} img/s   peak RSS {rss['engine_aug']} MiB")
    print(f"  plain PyTorch loop   {res['plain_img_s']:10.1f} img/s   peak RSS {rss['plain']} MiB")
    print(f"  ratio engine/plain   {res['ratio']:10.3f}   (CPU-time based {res['ratio_cpu_time']:.3f})")
    print(f"  model fwd+bwd        {res['model_gflop_per_img']:10.4f} GFLOP/img")
    print(f"  fraction of GEMM     {res['fraction_of_gemm']:10.3f}")
    print(f"  note: {note}")
    shown = out.relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out
    print(f"wrote {shown} ({res['total_wall_s']} s)")
    return res


if __name__ == "__main__":
    main()
