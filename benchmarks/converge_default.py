"""How long must the `default` student train on the full pool to converge?  Budgets chosen on validation.

Issue 19 asks that the `default` budget axis (a) give the student at least 100 SGD
steps at its smallest budget and (b) bring the full-pool student within 2 points of
its converged accuracy at its largest.  This script trains the `default` profile's
student (its protocol, its data) on the whole class-balanced train pool (``random`` at
the pool's full IPC: the book's full-data reference) at a doubling series of budgets,
seeds 0-2, and writes ``benchmarks/results/default_convergence.json``:

* per budget: SGD steps, mean validation and test accuracy (%) over seeds, seconds per run;
* ``converged_val``: the mean validation accuracy at the largest budget run (the
  plateau, as the series shows);
* ``smallest_budget``: the least budget with >= 100 SGD steps;
* ``largest_budget``: the least budget of the series whose mean **validation**
  accuracy is within ``--within`` (2) points of ``converged_val`` (test accuracy is
  recorded, never used to choose).

    PYTHONPATH=. .venv/bin/python benchmarks/converge_default.py [--budgets 4 8 16 32 64 128] [--store DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from ddlib import __version__
from ddlib.core.config import PROFILES, PROTOCOLS, RunConfig
from ddlib.core.store import Store
from ddlib.engine.train import budget_samples
from ddlib.run.runner import run
from ddlib.run.study import full_pool_ipc

OUT = Path(__file__).parent / "results" / "default_convergence.json"
MIN_STEPS = 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[4, 8, 16, 32, 64, 128])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--within", type=float, default=2.0, help="points below the converged validation accuracy")
    ap.add_argument("--store", default="/tmp/ddlib-converge-default")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    prof = PROFILES.get("default")
    proto = PROTOCOLS.get(prof.protocol)
    ipc = full_pool_ipc("default")
    pool = ipc * 10
    store = Store(Path(a.store))
    rows = []
    for budget in sorted(a.budgets):
        val, test, secs = [], [], []
        for seed in a.seeds:
            cfg = RunConfig(dataset=prof.dataset, method="random", ipc=ipc, regime="hl", budget=budget,
                            seed=seed, profile="default")
            t0 = time.perf_counter()
            row, hit = run(cfg, store, quiet=True)
            val.append(round(100 * row["val_accuracy"], 2))  # stored as fractions; points here
            test.append(round(100 * row["accuracy"], 2))
            secs.append(None if hit else round(time.perf_counter() - t0, 1))
        steps = math.ceil(budget_samples(budget, pool) / proto.batch_size)
        rows.append({"budget": budget, "steps": steps, "val_mean": round(sum(val) / len(val), 2),
                     "test_mean": round(sum(test) / len(test), 2), "val": val, "test": test, "seconds": secs})
        print(f"budget {budget:g} ({steps} steps): val {rows[-1]['val_mean']:.2f}  test {rows[-1]['test_mean']:.2f}"
              f"  seconds {secs}", flush=True)
    converged = rows[-1]["val_mean"]
    largest = next(r["budget"] for r in rows if r["val_mean"] >= converged - a.within)
    smallest = MIN_STEPS * proto.batch_size / pool
    out = {"benchmark": "converge_default", "profile": "default", "dataset": prof.dataset, "pool": pool,
           "model": prof.model, "protocol": prof.protocol, "batch_size": proto.batch_size,
           "seeds": a.seeds, "rows": rows, "converged_val": converged,
           "converged_at_budget": rows[-1]["budget"], "within_points": a.within,
           "largest_budget": largest, "smallest_budget": smallest, "min_steps": MIN_STEPS,
           "chosen_on": "validation", "ddlib": __version__,
           "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"converged val {converged:.2f} at budget {rows[-1]['budget']:g}; largest budget within {a.within:g} "
          f"points: {largest:g}; smallest with >= {MIN_STEPS} steps: {smallest:g} -> {a.out}")


if __name__ == "__main__":
    main()
