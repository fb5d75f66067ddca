"""``make test`` from a clean clone: set-up and the whole pytest suite, timed (issue 19, item 4).

Run from the repository root::

    python benchmarks/suite_time.py        # -> benchmarks/results/suite_time.json

Clones the committed ``HEAD`` into a temporary folder (what CI does), runs the
README's set-up (``make setup``: its own ``.venv``) and then the suite as
``make test`` runs it (``python -m pytest tests -q``) without ``$DDLIB_HOME``, and
records the set-up and pytest seconds, the pass counts, each test module's
seconds and the slowest tests (from pytest's JUnit report), and the fp32 GEMM
rate before and after: this machine's speed varies by a quarter between hours,
so two records compare only beside their GEMM rates.  The target is the suite
in at most 10 minutes on a 2-core CPU.
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
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 600.0  # the suite's pytest seconds (issue 19: `make test` in at most 10 minutes)
SLOWEST = 15


def junit_times(report: Path) -> dict:
    """Counts, per-module seconds and the slowest tests of a pytest JUnit report.

    A module-scoped fixture's set-up is part of its first test's time in the report."""
    root = ET.parse(report).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    modules, tests = defaultdict(float), []
    for case in suite.iter("testcase"):
        secs = float(case.get("time", 0.0))
        module = case.get("classname", "").rsplit(".", 1)[-1] + ".py"
        modules[module] += secs
        tests.append((secs, f"{module}::{case.get('name')}"))
    tests.sort(reverse=True)
    return {
        "tests": int(suite.get("tests")), "failures": int(suite.get("failures")),
        "errors": int(suite.get("errors")), "skipped": int(suite.get("skipped")),
        "modules_s": {m: round(s, 1) for m, s in sorted(modules.items(), key=lambda kv: -kv[1])},
        "slowest_s": {name: round(s, 1) for s, name in tests[:SLOWEST]},
    }


def gemm(python: str, cwd: Path) -> float:
    """fp32 GEMM GFLOP/s of this machine now (``distill_reference.gemm_rate``), in ``python``."""
    code = ("import sys; sys.path.insert(0, 'benchmarks'); from distill_reference import gemm_rate; "
            "print(gemm_rate() / 1e9)")
    out = subprocess.run([python, "-c", code], cwd=cwd, env={**os.environ, "PYTHONPATH": str(cwd)},
                         capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "suite_time.json"))
    ap.add_argument("--note", default="")
    a = ap.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "DDLIB_HOME"}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="ddlib-suite-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        print(f"suite_time: {commit} cloned to {clone}; make setup ...", flush=True)
        t0 = time.perf_counter()
        setup = subprocess.run(["make", "setup"], cwd=clone, env=env, capture_output=True, text=True)
        setup_s = time.perf_counter() - t0
        if setup.returncode != 0:
            print(setup.stdout[-3000:] + setup.stderr[-3000:], file=sys.stderr)
            return 1
        python = str(clone / ".venv" / "bin" / "python")
        before = gemm(python, clone)
        report = Path(tmp) / "suite.xml"
        print(f"suite_time: pytest tests (fp32 GEMM {before} GFLOP/s) ...", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([python, "-m", "pytest", "tests", "-q", f"--junitxml={report}"], cwd=clone,
                            env=env, stdout=subprocess.DEVNULL).returncode
        pytest_s = time.perf_counter() - t0
        after = gemm(python, clone)
        counts = junit_times(report)
    rec = {
        "benchmark": "suite_time", "commit": commit, "pytest_rc": rc, "setup_s": round(setup_s, 1),
        "pytest_s": round(pytest_s, 1), "target_s": TARGET_S, "ratio": round(pytest_s / TARGET_S, 3),
        "make_test_s": round(setup_s + pytest_s, 1), "gemm_gflop_s": [before, after], **counts,
        "cpus": os.cpu_count(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "note": a.note,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"suite_time: pytest {rec['pytest_s']} s (target {TARGET_S:.0f} s), set-up {rec['setup_s']} s -> {out}")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
