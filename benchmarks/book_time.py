"""End to end: the whole book from scratch on one profile, per notebook and in total.

Run from the repository root::

    python benchmarks/book_time.py                    # default profile -> benchmarks/results/book_default.json
    python benchmarks/book_time.py --profile smoke    # -> benchmarks/results/book_smoke.json

Executes ``python -m ddlib book --profile P`` in a fresh, empty results store
(a temporary ``$DDLIB_HOME``: teachers, sets and runs are all recomputed) and
records the wall time of the whole command, each notebook's seconds from the
execution-status record the book writes (``book/.execution_status.json``),
where each notebook's time went (``$DDLIB_WORKLOG``, :mod:`ddlib.core.worklog`:
building sets, scoring runs, teachers, student training; the rest of its wall
time is "other": analysis, measurements such as chapter 5's and 8's, tables and
charts), the peak resident memory of the process tree, and the machine.  The
targets (issue 19) are ``default`` <= 30 minutes and ``smoke`` <= 3 minutes on a
2-core CPU.

``--from-status FILE --wall S`` records an execution that already ran (its
status file and measured wall seconds) instead of running the book again.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MIN = {"smoke": 3.0, "default": 30.0, "paper": 20.0}
KINDS = ("build", "scores", "teacher", "train")


def breakdown(status: dict, lines: list, profile: str) -> dict:
    """{notebook: {kind: seconds, "other": seconds}}: each worklog line goes to the notebook whose
    execution window (its end and seconds in ``status``) holds the line's end time."""
    out = {}
    for nb, v in status.items():
        if v.get("profile") != profile or "ended_unix" not in v:
            continue
        end, start = v["ended_unix"], v["ended_unix"] - v["seconds"]
        d = {k: 0.0 for k in KINDS}
        for ln in lines:
            if start <= ln["at"] <= end + 1.0:
                d[ln["kind"]] = d.get(ln["kind"], 0.0) + ln["seconds"]
        d["other"] = v["seconds"] - sum(d.values())
        out[nb] = {k: round(x, 1) for k, x in d.items()}
    return out


def record(status: dict, wall_s: float, profile: str, peak_rss_mib: float = float("nan"), note: str = "",
           lines: tuple = (), seeds=None) -> dict:
    """The JSON record of one execution: per-notebook seconds, totals, ratio to the target."""
    sys.path.insert(0, str(ROOT))
    import torch

    from ddlib import __version__
    from ddlib.run.book import machine

    nbs = {k: round(v["seconds"], 1) for k, v in status.items() if v.get("profile") == profile}
    target = TARGET_MIN.get(profile)
    per_nb = breakdown(status, list(lines), profile)
    totals = {k: round(sum(d.get(k, 0.0) for d in per_nb.values()), 1) for k in KINDS + ("other",)}
    return {
        "benchmark": "book_time", "profile": profile, "seeds": list(seeds or ()), "notebooks_s": nbs,
        "where_the_time_went_s": per_nb, "where_the_time_went_total_s": totals,
        "book_build_s": round(wall_s - sum(nbs.values()), 1),  # jupyter-book's strict build (and start-up)
        "notebooks_total_s": round(sum(nbs.values()), 1), "wall_s": round(wall_s, 1),
        "wall_min": round(wall_s / 60, 2), "target_min": target,
        "ratio": round(wall_s / 60 / target, 3) if target else None,  # < 1: within the target
        "peak_rss_mib": round(peak_rss_mib, 1), "machine": machine(), "device": "cpu" if not
        torch.cuda.is_available() else torch.cuda.get_device_name(0), "torch": torch.__version__,
        "ddlib": __version__, "threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "note": note,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--out", default="")
    ap.add_argument("--from-status", default="", help="an execution-status JSON of a run that already happened")
    ap.add_argument("--wall", type=float, default=0.0, help="with --from-status: its measured wall seconds")
    ap.add_argument("--worklog", default="", help="with --from-status: that run's $DDLIB_WORKLOG file")
    ap.add_argument("--peak-mib", type=float, default=float("nan"), help="with --from-status: its peak RSS (MiB)")
    ap.add_argument("--note", default="")
    a = ap.parse_args(argv)
    out = Path(a.out or ROOT / "benchmarks" / "results" / f"book_{a.profile}.json")
    if a.from_status:
        if a.wall <= 0:
            ap.error("--from-status needs --wall SECONDS (the measured wall time of that run)")
        status, wall, peak = json.loads(Path(a.from_status).read_text()), a.wall, a.peak_mib
        lines = [json.loads(x) for x in Path(a.worklog).read_text().splitlines()] if a.worklog else []
    else:
        with tempfile.TemporaryDirectory(prefix="ddlib-book-") as home:
            log_file = Path(home) / "worklog.jsonl"
            env = {**os.environ, "DDLIB_HOME": home, "DDLIB_WORKLOG": str(log_file)}
            print(f"book_time: executing the {a.profile} book in a fresh store {home}", flush=True)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ddlib", "book", "--profile", a.profile, "--quiet"],
                           cwd=ROOT, env=env, check=True)
            wall = time.perf_counter() - t0
            lines = [json.loads(x) for x in log_file.read_text().splitlines()] if log_file.exists() else []
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        status = json.loads((ROOT / "book" / ".execution_status.json").read_text())
    sys.path.insert(0, str(ROOT))
    from ddlib.core.config import PROFILES
    rec = record(status, wall, a.profile, peak, a.note, lines=lines, seeds=PROFILES.get(a.profile).seeds)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"book_time: {a.profile} book {rec['wall_min']} min (target {rec['target_min']} min) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
