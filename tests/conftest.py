"""Shared fixtures for the ddlib test suite, and the kind of every test.

Every test that touches the results store gets a fresh temporary folder
(``DDLIB_HOME`` is monkeypatched), so no test ever reads or writes
``~/.cache/ddlib``.

Kinds (markers registered in pytest.ini): a test is ``subprocess``,
``notebook`` and/or ``browser`` when it starts processes, executes notebooks
or drives Chromium, and ``unit`` otherwise.  The kind follows from the
fixtures a test uses (:data:`KIND_BY_FIXTURE`: every process-starting test
goes through one of them) plus a short table of tests no fixture gives away
(:data:`KIND_BY_TEST`), so a new CLI test that uses ``child_env`` is marked
without anyone remembering to.  ``make check`` runs ``-m "unit and not slow"``.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `pytest tests` (not `python -m pytest`) from anywhere
    sys.path.insert(0, str(REPO))

import ddlib.data  # noqa: E402
from ddlib.core.config import PROFILES  # noqa: E402
from ddlib.core.store import Store  # noqa: E402
from ddlib.run.settings import default_store  # noqa: E402

# fixture -> the kinds of every test that uses it (directly or through another fixture)
KIND_BY_FIXTURE = {
    "child_env": ("subprocess",),  # `python -m ddlib` / `python -c` children: CLI, torchrun, grid workers
    "ddlib_cli": ("subprocess",),  # `python -m ddlib` children forked by tests/cli_server.py
    "ray_local": ("subprocess",),  # a local Ray instance: GCS, raylet and worker processes
    "built": ("notebook", "subprocess"),  # test_book: `python -m ddlib book` runs papermill + jupyter-book
}
# "file::function" -> extra kinds that no fixture shows
KIND_BY_TEST = {
    "test_book.py::test_book_pages_draw_every_chart_offline": ("browser",),
    "test_layout.py::test_import_contracts_hold": ("subprocess",),  # import-linter in a child python
    "test_data_formats.py::test_every_chapter_notebook_executes_on_a_tiny_fake_cifar": ("notebook",),
}
# "file::function" of unit tests too slow for `make check` (from `pytest -m unit --durations=0`)
# Measured 2026-11-30 (CPU seconds of the whole unit set: 656; these 16 take 530).
SLOW = frozenset({
    "test_perf_equivalence.py::test_study_threads_mix_regimes_and_budgets",
    "test_dc.py::test_matching_beats_no_update_on_the_same_networks",
    "test_dd.py::test_fixed_init_beats_random_real_images_trained_the_same_way",
    "test_dc.py::test_dc_loss_decreases",
    "test_dc.py::test_deterministic_and_seed_dependent",
    "test_coresets_registry.py::test_distiller_contract",
    "test_dc.py::test_images_start_real_and_move_away",
    "test_fastpath.py::test_compiled_fit_matches_eager",
    "test_distill_speed_equivalence.py::test_dm_compiled_slices_match_the_per_class_loop",
    "test_teacher_distill.py::test_cim_residual_keeps_pixels_in_range",
    "test_teacher_distill.py::test_teacher_distillers_shape_determinism_cost",
    "test_dc.py::test_defaults_come_from_profile",
    "test_dcs.py::test_objectives_are_deterministic_for_a_seed",
    "test_train.py::test_fit_sees_exactly_the_budget",
    "test_teacher_distill.py::test_ca2d_harder_patches_for_larger_budget",
    "test_dm.py::test_dm_beats_no_update_on_the_same_networks",
    "test_teacher_distill.py::test_runner_relabels_sre2l_with_its_bn_teacher",
    "test_check.py::test_paper_profile_builds_every_method_and_trains_students",
})
KINDS = ("subprocess", "notebook", "browser")


def pytest_collection_modifyitems(config, items):
    """Mark every collected test with its kind (see the module docstring)."""
    seen = {}
    for item in items:
        fname = Path(str(item.fspath)).name
        name = f"{fname}::{item.originalname}"
        seen.setdefault(fname, item.module)
        kinds = set()
        for fixture in getattr(item, "fixturenames", ()):
            kinds.update(KIND_BY_FIXTURE.get(fixture, ()))
        kinds.update(KIND_BY_TEST.get(name, ()))
        for kind in sorted(kinds & set(KINDS)) or ["unit"]:
            item.add_marker(kind)
        if name in SLOW:
            item.add_marker("slow")
    # a renamed test must not silently lose its kind: every table entry names a test
    for name in (*KIND_BY_TEST, *SLOW):
        fname, func = name.split("::")
        if fname in seen and not hasattr(seen[fname], func):
            raise pytest.UsageError(f"tests/conftest.py names {name}, which does not exist")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Store:
    """A fresh results store: ``$DDLIB_HOME`` points at ``tmp_path``."""
    monkeypatch.setenv("DDLIB_HOME", str(tmp_path))

    return default_store()


@pytest.fixture(scope="session")
def smoke_profile():
    return PROFILES.get("smoke")


@pytest.fixture(scope="session")
def fast_teacher_profile(smoke_profile):
    """The smoke profile with a 1-epoch teacher.

    The smoke teacher trains for 40 epochs (about 40 s on 2 CPU cores); the
    tests that need *a* teacher (herding) only need one that exists, so the
    suite trains it for one epoch.  Everything else is the smoke profile.
    """
    return dataclasses.replace(smoke_profile, teacher_epochs=1)


@pytest.fixture(scope="session")
def digits(smoke_profile):
    """The digits dataset sized by the smoke profile (cached by ddlib.data.load)."""
    return ddlib.data.load("digits", "smoke")


@pytest.fixture(scope="session")
def child_env():
    """Build the environment of a ``python -m ddlib`` / ``python -c`` child (repo importable)."""

    def make(**extra) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    return make


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def ddlib_cli(tmp_path_factory, child_env):
    """``ddlib_cli(args, env, cwd, timeout)`` -> ``CompletedProcess``: ``python -m ddlib ARGS`` in a child
    process forked from a pre-imported server (tests/cli_server.py), the way the CLI tests call it.

    The result has ``returncode``, ``stdout`` and ``stderr`` (text) like ``subprocess.run(...,
    capture_output=True, text=True)``; past ``timeout`` seconds the server is killed and the test fails.
    """
    import json
    import selectors
    import subprocess

    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "cli_server.py")], env=child_env(), cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    folder = tmp_path_factory.mktemp("cli_io")
    calls = [0]

    def call(args, env: dict, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
        calls[0] += 1
        out, err = folder / f"{calls[0]}.out", folder / f"{calls[0]}.err"
        req = {"args": [str(a) for a in args], "env": {k: str(v) for k, v in env.items()}, "cwd": str(cwd),
               "out": str(out), "err": str(err)}
        server.stdin.write(json.dumps(req) + "\n")
        server.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(server.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                server.kill()
                pytest.fail(f"python -m ddlib {' '.join(req['args'])} ran past {timeout} s")
        line = server.stdout.readline()
        assert line, "the CLI test server died"
        return subprocess.CompletedProcess(["python", "-m", "ddlib", *req["args"]], json.loads(line)["rc"],
                                           out.read_text(), err.read_text())

    yield call
    server.stdin.close()
    server.wait(timeout=30)
