"""The resumable grid runner (ddlib.run.grid): expansion, skip-stored, failures, CLI."""
import subprocess
import sys

import pytest

import ddlib.run.runner
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.run.grid import configs, run_grid

DETERMINISTIC = ("key", "accuracy", "val_accuracy", "steps")
SPEC = {"profile": "smoke", "dataset": "digits", "methods": "random", "ipcs": [1, 2],
        "regimes": "hl", "budgets": 0.2, "seeds": [0, 1]}


def _cols(rows):
    return sorted(tuple(r[c] for c in DETERMINISTIC) for r in rows)


def test_scalars_and_lists_expand_to_product():
    cfgs = configs(SPEC)
    assert len(cfgs) == 4 and len({c.key() for c in cfgs}) == 4
    assert {(c.ipc, c.seed) for c in cfgs} == {(1, 0), (1, 1), (2, 0), (2, 1)}


def test_typo_key_names_it_and_lists_valid_ones():
    with pytest.raises(DDLibError, match=r"unknown grid key 'ipcz'.*valid keys: dataset, methods"):
        configs({**SPEC, "ipcz": [1]})


def test_grid_equals_single_runs_and_resumes(home, tmp_path):
    s = run_grid(SPEC, home, quiet=True)
    assert (s.done, s.skipped, s.failed) == (4, 0, ())
    ref = Store(tmp_path / "ref")
    for c in configs(SPEC):
        ddlib.run.runner.run(c, ref)
    assert _cols(home.rows()) == _cols(ref.rows())
    again = run_grid(SPEC, home, quiet=True)  # everything stored: nothing recomputed
    assert (again.done, again.skipped) == (0, 4) and len(home.rows()) == 4


def test_failure_is_recorded_and_grid_goes_on(home, monkeypatch):
    bad = configs(SPEC)[1].key()
    real = ddlib.run.runner.run

    def flaky(cfg, store=None, **kw):
        if cfg.key() == bad:
            raise RuntimeError("boom")
        return real(cfg, store, **kw)

    monkeypatch.setattr(ddlib.run.runner, "run", flaky)
    s = run_grid(SPEC, home, quiet=True)
    assert s.done == 3 and s.failed == ((bad, "RuntimeError: boom"),)
    assert [f["key"] for f in home.failures()] == [bad] and "boom" in home.failures()[0]["error"]
    monkeypatch.setattr(ddlib.run.runner, "run", real)
    s = run_grid(SPEC, home, quiet=True)  # the restart finishes exactly the missing run
    assert (s.done, s.skipped, s.failed) == (1, 3, ()) and home.failures() == []
    assert len(home.rows()) == 4


def test_fail_fast_stops_at_first_failure(home, monkeypatch):
    monkeypatch.setattr(ddlib.run.runner, "run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    s = run_grid(SPEC, home, quiet=True, fail_fast=True)
    assert s.done == 0 and len(s.failed) == 1


def test_cli_grid_two_workers(tmp_path, child_env, repo_root):
    grid = tmp_path / "grid.yaml"
    grid.write_text("profile: smoke\ndataset: digits\nmethods: random\nipcs: [1, 2]\n"
                    "regimes: hl\nbudgets: 0.2\nseeds: 0\n")
    env = child_env(DDLIB_HOME=tmp_path / "home", DDLIB_DATA=tmp_path / "data")
    call = lambda *a: subprocess.run([sys.executable, "-m", "ddlib", *a], env=env, cwd=repo_root,
                                     capture_output=True, text=True, timeout=300)
    p = call("grid", str(grid), "--workers", "2", "--quiet")
    assert p.returncode == 0, p.stderr
    assert "2 done, 0 skipped, 0 failed" in p.stdout
    assert len(Store(tmp_path / "home").rows()) == 2
    p = call("grid", str(grid), "--quiet")
    assert "0 done, 2 skipped" in p.stdout
    grid.write_text("profile: smoke\nmethodz: random\n")
    p = call("grid", str(grid))
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("ddlib: error: unknown grid key")
