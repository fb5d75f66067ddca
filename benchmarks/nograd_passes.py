"""Passes without gradient in the default book: SL+KD teacher labels and evaluation, compiled.

Run from the repository root::

    python benchmarks/nograd_passes.py            # -> benchmarks/results/nograd_passes.json, ~3 min

Each comparison is timed in interleaved rounds in one process (compare ratios, not
seconds), on the `default` profile's data and networks (Fashion-MNIST, 28 px,
ConvNet-3-32 with instance norm), after one untimed call of each side (the compiled
side's compilation is paid there, once per process, as in a book chapter):

* ``kd_fit``: a `default` student's SL+KD and multi-teacher fit (100 steps of 128 views of
  100 images, one intra-op thread as a grid's concurrent fits run, the compiled step the
  book's grids share) with the teachers' passes eager (before) against
  :class:`ddlib.engine.inference.Forward` on the step's slices (now); the teachers are
  fresh networks of the profile's teacher architecture (their values do not change the work).
* ``evaluation``: a stored run's evaluation (2,000 test and 1,000 validation images)
  eager with the machine's threads after the chunk (before) against compiled passes
  on one thread per run, two runs side by side (now: :func:`ddlib.run.many.run_many`);
  seconds per run.

``ratio`` = before seconds / now seconds (> 1: faster now).
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

OUT = ROOT / "benchmarks" / "results" / "nograd_passes.json"


def _pair(before, now, rounds: int, per: int = 1) -> dict:
    """Interleave ``before`` and ``now`` (each called once untimed first); medians (s / per) and their ratio."""
    before(), now()
    a, b = [], []
    for _ in range(rounds):
        for fn, acc in ((before, a), (now, b)):
            t = time.perf_counter()
            fn()
            acc.append((time.perf_counter() - t) / per)
    ma, mb = statistics.median(a), statistics.median(b)
    return {"before_s": round(ma, 4), "now_s": round(mb, 4), "ratio": round(ma / mb, 3)}


def bench_kd(split, prof, rounds):
    import torch

    from ddlib.core.config import PROTOCOLS
    from ddlib.engine import augment as aug
    from ddlib.engine import train as tr
    from ddlib.engine.fastpath import Engine
    from ddlib.engine.models import create_model
    from ddlib.engine.regimes import create_regime

    m, proto = split.meta, PROTOCOLS.get(prof.protocol)
    teachers = [create_model(prof.teacher_model, m.num_classes, m.in_chans, m.img_size, seed=s).eval()
                for s in (11, 12)]
    for t in teachers:
        for p in t.parameters():
            p.requires_grad_(False)
    engine = Engine("compiled")  # what group_engine gives a default grid
    real = tr.Forward

    def fit(regime, compiled_teachers):
        tr.Forward = real if compiled_teachers else (lambda rows, eng: None)
        try:
            net = create_model(prof.model, m.num_classes, m.in_chans, m.img_size, seed=0)
            return tr.fit(net, split.train_x[:100], split.train_y[:100], regime=create_regime(regime),
                          teachers=teachers[:prof.n_teachers if regime == "mt" else 1], budget=prof.budgets[0],
                          pool_size=len(split.train_y), protocol=proto, seed=0,
                          augment=aug.resolve(proto.augment, m.name), engine=engine)
        finally:
            tr.Forward = real

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {regime: _pair(lambda r=regime: fit(r, False), lambda r=regime: fit(r, True), rounds)
                for regime in ("slkd", "mt")}
    finally:
        torch.set_num_threads(threads)


def bench_eval(split, prof, rounds, runs=4):
    from ddlib.engine.batched import map_threads
    from ddlib.engine.fastpath import Engine
    from ddlib.engine.models import create_model
    from ddlib.engine.train import eval_forward, evaluate

    m = split.meta
    nets = [create_model(prof.model, m.num_classes, m.in_chans, m.img_size, seed=s) for s in range(runs)]
    fwd = eval_forward(nets[0], split.test_x, Engine("compiled"))

    def both(net, forward=None):
        return (evaluate(net, split.test_x, split.test_y, forward=forward),
                evaluate(net, split.val_x, split.val_y, forward=forward))

    before = lambda: [both(n) for n in nets]  # noqa: E731
    now = lambda: map_threads(lambda n: both(n, fwd), nets)  # noqa: E731
    assert before() == now()
    return {**_pair(before, now, rounds, per=runs), "runs": runs, "images": len(split.test_x) + len(split.val_x),
            "slice": fwd.rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    from ddlib.core.config import PROFILES
    from ddlib.data import load

    prof = PROFILES.get("default")
    split = load(prof.dataset, "default")
    load0 = os.getloadavg()
    rec = {
        "benchmark": "nograd_passes", "profile": "default", "rounds": a.rounds,
        "kd_fit": bench_kd(split, prof, a.rounds),
        "evaluation": bench_eval(split, prof, a.rounds),
        **provenance(load0),
    }
    Path(a.out).write_text(json.dumps(rec, indent=2) + "\n")
    print(json.dumps({k: rec[k] for k in ("kd_fit", "evaluation")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
