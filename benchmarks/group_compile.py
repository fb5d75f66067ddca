"""A grid's students trained side by side, eager against one shared compiled engine (``run_many``).

Run from the repository root::

    python benchmarks/group_compile.py      # -> benchmarks/results/group_compile.json

The `default` profile's student (``convnet_d3w32``, its protocol, hard labels, random
IPC-10 sets, the smallest book budget: 100 SGD steps) trained through
:func:`ddlib.run.many.run_many` in fresh stores, as a book chapter trains its runs:
``--chunks`` calls of :data:`RUNS_PER_CHUNK` concurrent single-threaded fits each, once with
``DDLIB_ENGINE=eager`` and once with ``compiled`` (what ``auto`` picks for a whole chapter's
grid, :func:`ddlib.engine.fastpath.group_engine`; one call this small stays under its
threshold), one after the other in one process.  Records seconds per run of every chunk (the first compiled chunk pays
the compilation), the steady-state ratio eager / compiled (> 1: compiled is faster),
the compilation's cost, the largest test-accuracy difference between the two
engines' rows of the same seed, and the environment.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "group_compile.json"
RUNS_PER_CHUNK = 8  # runs per run_many call (until 0.8.0 the size of run_many's own chunks)


def chunk_times(engine: str, seeds, budget: float) -> tuple:
    """Seconds per run of each chunk of one ``run_many`` call (as a chapter makes it) under ``engine``
    (from the store's work log), and the rows' accuracies and engines by seed."""
    import ddlib.run.many as many
    from ddlib.core.config import RunConfig
    from ddlib.run.settings import Settings

    with tempfile.TemporaryDirectory(prefix=f"ddlib-gc-{engine}-") as home:
        log = Path(home) / "work.jsonl"
        settings = Settings.from_env({**os.environ, "DDLIB_HOME": home, "DDLIB_ENGINE": engine,
                                      "DDLIB_WORKLOG": str(log)})
        store = settings.store()
        cfgs = [RunConfig("fashion_mnist", "random", 10, "hl", budget, s, "default") for s in seeds]
        for i in range(0, len(cfgs), RUNS_PER_CHUNK):
            many.run_many(cfgs[i:i + RUNS_PER_CHUNK], store, settings=settings)
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        out = [round(x["seconds"] / x["runs"], 3) for x in lines if x["kind"] == "train"]
        acc = {c.seed: (float(store.get(c.key())["accuracy"]), store.get(c.key())["engine"]) for c in cfgs}
    return out, acc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=3)
    ap.add_argument("--budget", type=float, default=6.4)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    import torch

    from ddlib import __version__
    from ddlib.run.book import machine

    seeds = list(range(a.chunks * RUNS_PER_CHUNK))
    load0 = os.getloadavg()
    eager, acc_e = chunk_times("eager", seeds, a.budget)
    comp, acc_c = chunk_times("compiled", seeds, a.budget)
    steady = statistics.median(eager[1:] or eager) / statistics.median(comp[1:] or comp)
    rec = {
        "benchmark": "group_compile", "profile": "default", "model": "convnet_d3w32", "budget": a.budget,
        "runs_per_chunk": RUNS_PER_CHUNK, "chunks": a.chunks,
        "eager_s_per_run": eager, "compiled_s_per_run": comp,
        "ratio": round(steady, 3),  # eager / compiled after the first chunk: > 1 compiled is faster
        "compile_overhead_s": round((comp[0] - statistics.median(comp[1:] or comp)) * RUNS_PER_CHUNK, 1),
        "engines": sorted({e for _, e in acc_c.values()} | {e for _, e in acc_e.values()}),
        "max_abs_accuracy_diff": round(max(abs(acc_e[s][0] - acc_c[s][0]) for s in seeds), 4),
        "mean_accuracy_eager": round(statistics.mean(v[0] for v in acc_e.values()), 4),
        "mean_accuracy_compiled": round(statistics.mean(v[0] for v in acc_c.values()), 4),
        "load_avg_start": [round(x, 2) for x in load0], "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(), "device": "cpu", "torch": torch.__version__, "ddlib": __version__,
        "threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rec, indent=2) + "\n")
    print(f"group_compile: eager {eager} s/run, compiled {comp} s/run, ratio {rec['ratio']} -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
