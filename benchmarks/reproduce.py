"""Reproduce published numbers on this CPU: DM and DSA on full Fashion-MNIST, accuracy along synthesis.

Run from the repository root::

    python benchmarks/reproduce.py                       # the full run: hours (see --minutes)
    python benchmarks/reproduce.py --smoke               # the code path in well under a minute (digits)

What runs is the papers' setting, as the reference ``VICO-UoE/DatasetCondensation``
(``main.py`` for DSA, ``main_DM.py`` for DM) runs it, through ddlib's own
``dm`` / ``dsa`` distillers on the ``paper`` profile:

* data: the full Fashion-MNIST train split (less the ``paper`` profile's 500
  validation images per class), the full test split;
* synthesis: ConvNet-3-128 (instance norm, 28 px padded to 32), 256 real images
  per class, DM lr_img 1 and DSA lr_img 0.1 / lr_net 0.01, DSA's outer / inner
  loops per IPC, the reference's DSA list with flip, images from real ones;
  as many iterations as ``--minutes`` of synthesis allow (the references run
  20,000 DM and 1,000 DSA iterations), capped by ``--iters``;
* checkpoints: the set at 0 iterations (random real images: the baseline), at
  roughly doubling iteration counts, and where synthesis stopped (a run of N
  iterations is exactly the first N of a longer one: same seed, same draws);
* evaluation of every checkpoint: ``--eval-models`` fresh ConvNet-3-128 trained
  ``--eval-epochs`` epochs on the set (the reference's 1,000), SGD lr 0.01,
  momentum 0.9, weight decay 5e-4, x0.1 at half, batches of min(256, |set|) as
  the reference's loader, DSA augmentation of each batch; validation accuracy
  chooses the checkpoint, test accuracy is reported.

Writes ``benchmarks/results/reproduce.json`` (``--out``): one entry per
(method, IPC, checkpoint) with its validation and test accuracies, the
synthesis seconds to reach it and the published number; and per (method, IPC)
the checkpoint chosen on validation with its test accuracy beside the
published one.  ``--smoke`` writes ``reproduce_smoke.json`` (never the full
file).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/reproduce.py`
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ddlib import __version__  # noqa: E402
from ddlib.analysis.reference import published  # noqa: E402
from ddlib.core.config import PROFILES, PROTOCOLS  # noqa: E402
from ddlib.core.cost import Meter  # noqa: E402
from ddlib.core.store import Store  # noqa: E402
from ddlib.engine import augment as aug  # noqa: E402
from ddlib.engine.models import create_model  # noqa: E402
from ddlib.engine.regimes import create_regime  # noqa: E402
from ddlib.engine.train import evaluate, fit  # noqa: E402
from ddlib.methods.context import Context  # noqa: E402
from ddlib.methods.distill import distill  # noqa: E402
from ddlib.run.settings import Settings  # noqa: E402

# the reference's synthesis settings that are not ddlib's defaults on `paper`
METHOD_HP = {"dm": {"lr_img": 1.0}, "dsa": {"lr_img": 0.1, "lr_net": 0.01}}
REFERENCE_ITERS = {"dm": 20000, "dsa": 1000}


class _Stop(Exception):
    """Raised by the checkpoint hook when the synthesis time is spent."""


def checkpoints(cap: int) -> list:
    """0, 1, 2, 5, 10, 20, 50, ... up to ``cap`` (the stop point is added when it is reached)."""
    out, k = [0], 0
    while True:
        v = [1, 2, 5][k % 3] * 10 ** (k // 3)
        if v > cap:
            return out
        out.append(v)
        k += 1


def eval_set(images, labels, split, model: str, epochs: int, n_models: int, seed: int) -> dict:
    """The reference's evaluation of one set: ``n_models`` students, validation and test accuracy each."""
    m = split.meta
    base = PROTOCOLS.get("dsa_step_v2")
    proto = dataclasses.replace(base, batch_size=min(base.batch_size, len(images)))
    strategy = aug.resolve("dsa", m.name)
    val, test = [], []
    for i in range(n_models):
        net = create_model(model, m.num_classes, m.in_chans, m.img_size, seed=seed * 1000 + i).to(images.device)
        fit(net, images, labels, regime=create_regime("hl"), teachers=[], budget=float(epochs),
            pool_size=len(images), protocol=proto, seed=seed * 1000 + i, augment=strategy)
        val.append(float(evaluate(net, split.val_x, split.val_y)))
        test.append(float(evaluate(net, split.test_x, split.test_y)))
    return {"val_acc": val, "test_acc": test}


def published_acc(method: str, dataset: str, ipc: int):
    try:
        rows = published(method=method)
    except Exception:  # noqa: BLE001 -- no published table: no number
        return None
    rows = rows[(rows["dataset"] == dataset) & (rows["ipc"] == ipc)]
    return float(rows["accuracy"].iloc[0]) if len(rows) else None


def run_one(method: str, ipc: int, split, prof, args, store) -> list:
    """Synthesis with checkpoints, then the evaluation of each: a list of result dicts."""
    cap = min(args.iters or REFERENCE_ITERS[method], REFERENCE_ITERS[method])
    marks = set(checkpoints(cap)) | {cap}
    snaps, t0, state = {}, time.perf_counter(), {"seconds": {}}

    def on_iter(done, images):
        state["last"] = (done, images.clone())
        if done in marks:
            snaps[done] = images.clone()
            state["seconds"][done] = time.perf_counter() - t0
        if time.perf_counter() - t0 > args.minutes * 60:
            raise _Stop

    ctx = Context(prof, store, Meter(), quiet=not args.verbose, on_iter=on_iter, seed=args.seed)
    hp = dict(METHOD_HP[method], iters=cap, model=args.model, batch_real=args.batch_real)
    try:
        syn = distill(method, split.without_test(), ipc, seed=args.seed, ctx=ctx, **hp)
        labels = syn.labels.to(split.train_x.device)
    except _Stop:
        labels = torch.arange(split.num_classes, device=split.train_x.device).repeat_interleave(ipc)
    if "last" in state:  # where synthesis stopped
        done, images = state["last"]
        snaps.setdefault(done, images)
        state["seconds"].setdefault(done, time.perf_counter() - t0)
    # iteration 0: the real images every run starts from (the distillers' own first draw)
    snaps[0] = _initial(split.without_test(), ipc, args.seed)
    state["seconds"][0] = 0.0
    out = []
    for it in sorted(snaps):
        t = time.perf_counter()
        r = eval_set(snaps[it].to(split.train_x.device), labels, split, args.model, args.eval_epochs,
                     args.eval_models, args.seed)
        out.append({"method": method, "ipc": ipc, "iters": it, "synth_seconds": round(state["seconds"][it], 1),
                    "eval_seconds": round(time.perf_counter() - t, 1), **r,
                    "val_mean": 100 * sum(r["val_acc"]) / len(r["val_acc"]),
                    "test_mean": 100 * sum(r["test_acc"]) / len(r["test_acc"]),
                    "published": published_acc(method, split.meta.name, ipc)})
        print(f"{method} ipc={ipc} iters={it}: val {out[-1]['val_mean']:.1f} test {out[-1]['test_mean']:.1f} "
              f"(published {out[-1]['published']})", flush=True)
    return out


def _initial(split, ipc: int, seed: int) -> torch.Tensor:
    """The synthetic images at iteration 0: ``real_init``'s draw with the run's ``synth`` stream."""
    from ddlib.core.seeding import generator
    from ddlib.methods.distill import real_init

    _, images, _ = real_init(split, ipc, generator(seed, "synth"))
    return images.detach()


def chosen(rows: list) -> list:
    """Per (method, IPC): the checkpoint with the best mean validation accuracy, its test accuracy."""
    out = []
    for key in sorted({(r["method"], r["ipc"]) for r in rows}):
        group = [r for r in rows if (r["method"], r["ipc"]) == key]
        best = max(group, key=lambda r: (r["val_mean"], -r["iters"]))
        base = next(r for r in group if r["iters"] == 0)
        pub = best["published"]
        out.append({"method": key[0], "ipc": key[1], "iters_chosen_on_val": best["iters"],
                    "test_mean": round(best["test_mean"], 2), "random_real_test_mean": round(base["test_mean"], 2),
                    "published": pub, "gap_to_published": None if pub is None else round(best["test_mean"] - pub, 2)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["dm", "dsa"], choices=sorted(METHOD_HP))
    p.add_argument("--ipcs", nargs="+", type=int, default=[1, 10])
    p.add_argument("--minutes", type=float, default=30.0, help="synthesis minutes per (method, IPC)")
    p.add_argument("--iters", type=int, default=0, help="iteration cap (0 = the reference's: DM 20000, DSA 1000)")
    p.add_argument("--eval-epochs", type=int, default=1000, help="epochs on the set per student (reference 1000)")
    p.add_argument("--eval-models", type=int, default=2, help="students per checkpoint (reference 20 DSA / 5 DM)")
    p.add_argument("--model", default="convnet", help="synthesis and evaluation network (ConvNet-3-128)")
    p.add_argument("--batch-real", type=int, default=256, help="real images per class per iteration")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny run on digits: exercises the code path in seconds")
    p.add_argument("--out", default=None)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    profile = "paper"
    if args.smoke:  # 8-px digits, two iterations, a few epochs, narrow nets: the code path only
        profile, args.dataset, args.iters, args.minutes = "smoke", "digits", 2, 1.0
        args.eval_epochs, args.eval_models, args.model, args.batch_real = 10, 1, "convnet_d3w16", 16
    out = Path(args.out or ROOT / "benchmarks" / "results" / ("reproduce_smoke.json" if args.smoke
                                                              else "reproduce.json"))
    settings = Settings.from_env()
    prof = PROFILES.get(profile)
    from ddlib.data import load

    split = load(args.dataset, prof, "cpu", data_dir=settings.data)
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ddlib-reproduce-") as tmp:
        store = Store(Path(tmp))
        for method in args.methods:
            for ipc in args.ipcs:
                rows += run_one(method, ipc, split, prof, args, store)
    result = {
        "benchmark": "reproduce", "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "ddlib_version": __version__, "device": "cpu", "threads": torch.get_num_threads(),
        "command": "python benchmarks/reproduce.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "dataset": args.dataset, "train_pool": int(len(split.train_y)), "test_images": int(len(split.test_y)),
        "model": args.model, "eval_epochs": args.eval_epochs, "eval_models": args.eval_models,
        "minutes_per_run": args.minutes, "wall_minutes": round((time.perf_counter() - t0) / 60, 1),
        "curves": rows, "chosen": chosen(rows)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    for c in result["chosen"]:
        print(c)
    return 0 if all(math.isfinite(r["test_mean"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
