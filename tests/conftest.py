"""Shared fixtures for the ddlib unit suite.

Every test that touches the results store gets a fresh temporary folder
(``DDLIB_HOME`` is monkeypatched), so no test ever reads or writes
``~/.cache/ddlib``.
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


@pytest.fixture
def home(tmp_path, monkeypatch) -> Store:
    """A fresh results store: ``$DDLIB_HOME`` points at ``tmp_path``."""
    monkeypatch.setenv("DDLIB_HOME", str(tmp_path))
    from ddlib.run.settings import default_store

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
