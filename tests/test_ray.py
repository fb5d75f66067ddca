"""The Ray backend of the grid (ddlib.run.grid_ray) on a local two-CPU Ray instance."""
import subprocess
import sys

import pytest

from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.methods.build import build_key
from ddlib.run.grid import configs, run_grid
from ddlib.run.grid_ray import RayOptions, plan
from ddlib.run.runner import validate

DETERMINISTIC = ("key", "accuracy", "val_accuracy", "steps", "samples_seen")
# ipc 500 passes validation but digits' classes hold ~125 training images: the run fails
SPEC = {"profile": "smoke", "dataset": "digits", "methods": "random", "ipcs": [2, 500],
        "regimes": "hl", "budgets": 0.3, "seeds": [0, 1]}


def _cols(rows):
    return sorted(tuple(r[c] for c in DETERMINISTIC) for r in rows)


def test_plan_builds_teachers_and_each_set_once():
    cfgs = configs({"profile": "smoke", "dataset": "digits", "methods": ["random", "herding"],
                    "ipcs": 1, "regimes": ["hl", "mt"], "budgets": [1, 2], "seeds": 0})
    steps = plan(cfgs)
    assert [s.cfg for s in steps] == cfgs
    leaders = [i for i, s in enumerate(steps) if s.after_run is None]
    assert len(leaders) == 2  # one condensed set per method
    for i, s in enumerate(steps):
        lead = i if s.after_run is None else s.after_run
        assert steps[lead].after_run is None
        assert build_key(validate(s.cfg)) == build_key(validate(steps[lead].cfg))
        # leaders wait for the teachers (mt needs the profile's 2), followers for their leader
        assert s.teachers == (("digits", "smoke", s.cfg.seed, 2, "") if s.after_run is None else None)
    hl_only = plan(configs({**SPEC, "ipcs": 2}))
    assert all(s.teachers is None for s in hl_only)  # no regime needs a teacher: no teacher task


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_grid_equals_local_grid_and_records_failures(ray_local, tmp_path, monkeypatch,
                                                         child_env, repo_root):
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path / "data"))
    local = Store(tmp_path / "local")
    s_local = run_grid(SPEC, local, workers=1, quiet=True)
    assert (s_local.done, len(s_local.failed)) == (2, 2)

    remote = Store(tmp_path / "ray")
    s = run_grid(SPEC, remote, ray="auto", quiet=True)  # Ray is initialised: the grid uses it
    assert (s.done, s.skipped) == (2, 0)
    assert sorted(s.failed) == sorted(s_local.failed)  # same keys, same one-line errors
    assert all("ipc 500 is larger than class" in err for _, err in s.failed)
    rows = remote.rows()
    assert len(rows) == 2 and len({r["key"] for r in rows}) == 2  # one row per good point
    assert _cols(rows) == _cols(local.rows())
    assert sorted(f["key"] for f in remote.failures()) == sorted(k for k, _ in s.failed)
    assert len(list(remote.artifact_keys("condensed"))) == 2  # sets built by the tasks, shared cache

    # the CLI, as a second driver connected to the same cluster by address: all stored, nothing runs
    address = ray_local.get_runtime_context().gcs_address
    grid = tmp_path / "grid.yaml"
    grid.write_text("profile: smoke\ndataset: digits\nmethods: random\nipcs: [2, 3]\nregimes: hl\n"
                    "budgets: 0.3\nseeds: 0\n")
    env = child_env(DDLIB_HOME=tmp_path / "ray", DDLIB_DATA=tmp_path / "data")
    p = subprocess.run([sys.executable, "-m", "ddlib", "grid", str(grid), "--ray", address, "--quiet"],
                       env=env, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "grid: 1 done, 1 skipped, 0 failed" in p.stdout
    assert len(Store(tmp_path / "ray").rows()) == 3


def test_request_larger_than_any_node_is_refused(ray_local, home):
    with pytest.raises(DDLibError, match="each Ray task asks for 100000 GiB memory but the largest node has"):
        run_grid({**SPEC, "ipcs": 2}, home, ray=RayOptions(memory_gb=100000), quiet=True)
    assert home.rows() == [] and home.failures() == []


def test_unreachable_cluster_is_one_error_line(tmp_path, child_env, repo_root):
    pytest.importorskip("ray")
    grid = tmp_path / "grid.yaml"
    grid.write_text("profile: smoke\ndataset: digits\nmethods: random\nipcs: 1\nregimes: hl\n"
                    "budgets: 0.3\nseeds: 0\n")
    env = child_env(DDLIB_HOME=tmp_path / "home", RAY_ADDRESS="")
    p = subprocess.run([sys.executable, "-m", "ddlib", "grid", str(grid), "--ray", "127.0.0.1:1"],
                       env=env, cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, (p.stdout, p.stderr)
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ddlib: error: cannot reach a Ray cluster at '127.0.0.1:1'"), p.stderr
    assert "Traceback" not in p.stderr and Store(tmp_path / "home").rows() == []
