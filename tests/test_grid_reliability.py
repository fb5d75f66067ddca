"""Crash safety and bad input: kill -9 mid-grid, corrupt files, unpicklable caches.

Complements tests/test_cli.py (unknown names, IPC > class, budget <= 0).
"""
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ddlib.core.config import RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data.idx import write_idx
from ddlib.methods.build import build_key
from ddlib.run.runner import validate

PREFIX = "ddlib: error:"
GRID = ("profile: smoke\ndataset: digits\nmethods: random\nipcs: [1, 2, 3, 4, 5]\n"
        "regimes: hl\nbudgets: 0.2\nseeds: [0, 1]\n")
DETERMINISTIC = ("key", "accuracy", "val_accuracy", "steps")


def _snapshot(root: Path):
    """Rows plus every artifact file's bytes: 'nothing stored changed' compares these."""
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "artifacts").rglob("*"))
             if p.is_file()} if (root / "artifacts").exists() else {}
    return Store(root).rows(), files


@pytest.fixture
def cli(tmp_path, child_env, repo_root, ddlib_cli):
    env = child_env(DDLIB_HOME=tmp_path / "home", DDLIB_DATA=tmp_path / "data")

    def call(*args):
        return ddlib_cli(args, env, repo_root)

    call.env, call.home = env, tmp_path / "home"
    return call


def _one_error(proc, needle):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(PREFIX) and sum(x.startswith(PREFIX) for x in lines) == 1, proc.stderr
    assert needle in lines[-1] and "Traceback" not in proc.stderr


def test_sigkill_mid_grid_then_restart_finishes_exactly_the_missing_runs(cli, tmp_path, repo_root):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    rng = random.Random(0)  # seeded kill delays, never the clock's
    counts = []
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "-m", "ddlib", "grid", str(grid), "--quiet"], env=cli.env,
                             cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 3.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        rows = Store(cli.home).rows()  # the store opens and holds whole rows only
        assert all(r["accuracy"] is not None for r in rows)
        for f in (cli.home / "artifacts").rglob("*.pt"):  # every artifact in place is whole
            if not f.name.startswith(".tmp-"):  # a killed write's temp file is never loaded
                torch.load(f, weights_only=True)
        counts.append(len(rows))
    print("rows after each kill:", counts)
    proc = cli("grid", str(grid), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"{10 - counts[-1]} done, {counts[-1]} skipped" in proc.stdout
    rows = Store(cli.home).rows()
    assert len(rows) == 10 and len({r["key"] for r in rows}) == 10
    ref = tmp_path / "ref"
    env = dict(cli.env, DDLIB_HOME=str(ref))
    assert subprocess.run([sys.executable, "-m", "ddlib", "grid", str(grid), "--quiet"], env=env,
                          cwd=repo_root, capture_output=True).returncode == 0
    pick = lambda rs: sorted(tuple(r[c] for c in DETERMINISTIC) for r in rs)  # noqa: E731
    assert pick(rows) == pick(Store(ref).rows())


def test_grid_file_typo_names_key_and_valid_ones(cli, tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("profile: smoke\nbudgetz: 1\n")
    proc = cli("grid", str(grid))
    _one_error(proc, "'budgetz'")
    assert "valid keys: dataset, methods, ipcs, regimes, budgets, seeds, profile, model, hparams" in proc.stderr


def test_missing_grid_file(cli, tmp_path):
    _one_error(cli("grid", str(tmp_path / "nope.yaml")), "not found")


def test_truncated_fashion_mnist_idx(cli, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    write_idx(data / "train-images-idx3-ubyte", rng.integers(0, 255, (50, 28, 28), dtype=np.uint8))
    write_idx(data / "train-labels-idx1-ubyte", (np.arange(50) % 10).astype(np.uint8))
    write_idx(data / "t10k-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28), dtype=np.uint8))
    write_idx(data / "t10k-labels-idx1-ubyte", (np.arange(20) % 10).astype(np.uint8))
    f = data / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:5000])
    before = _snapshot(cli.home) if cli.home.exists() else None
    proc = cli("run", "--dataset", "fashion_mnist", "--method", "random", "--ipc", "1", "--budget", "1",
               "--profile", "smoke", "--quiet")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(PREFIX), proc.stderr
    assert "Traceback" not in proc.stderr
    if before is not None:
        assert _snapshot(cli.home) == before


def test_corrupt_cache_file_is_an_error_and_left_alone(cli):
    cfg = RunConfig("digits", "random", 1, "hl", 0.2, 0, "smoke")
    path = Store(cli.home).artifact_path("condensed", build_key(validate(cfg)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a torch file")
    before = _snapshot(cli.home)
    proc = cli("run", "--dataset", "digits", "--method", "random", "--ipc", "1", "--budget", "0.2",
               "--profile", "smoke", "--quiet")
    _one_error(proc, "corrupt cache file")
    assert _snapshot(cli.home) == before


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file
        return (Path.touch, (self.marker,))


def test_pickled_object_in_cache_is_refused(home, tmp_path):
    marker = tmp_path / "pwned"
    path = home.artifact_path("condensed", "evil")
    path.parent.mkdir(parents=True)
    torch.save({"images": _Evil(marker)}, path)
    with pytest.raises(DDLibError, match="corrupt cache file"):
        home.load_artifact("condensed", "evil")
    assert not marker.exists()
