"""The house rules: layers import downwards only, no cycles, and README's map names every module.

The import contracts live in ``.importlinter`` (layers chapters > analysis > run >
methods > engine > data > core, and no cycles between sibling modules); this
test runs import-linter on them, so a wrong-way import fails the suite.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("core", "data", "engine", "methods", "run", "analysis", "chapters")
# plug-in folders, one file per method: the map may name the folder instead of each file
PLUGIN_FOLDERS = ("ddlib/methods/coresets/", "ddlib/methods/distill/")


def _modules() -> list:
    """Every ddlib module as a path relative to the repo (``ddlib/engine/train.py``), packages' ``__init__`` left out."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "ddlib").rglob("*.py")
                  if p.name != "__init__.py" and "__pycache__" not in p.parts)


def test_import_contracts_hold():
    """import-linter's layers and acyclic contracts (.importlinter) are kept."""
    proc = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--no-cache"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and proc.stdout.count("KEPT") >= 2, proc.stdout[-2000:]


def test_every_module_sits_in_a_layer():
    top = {p.split("/")[1] for p in _modules() if p.count("/") >= 2}
    # __main__ (the command line) and stats (a re-export of analysis.stats at the top level) are the entry points
    loose = [p for p in _modules() if p.count("/") == 1 and p not in ("ddlib/__main__.py", "ddlib/stats.py")]
    assert not loose, f"modules outside the layer packages: {loose}"
    assert top <= set(LAYERS), f"unknown top-level packages: {sorted(top - set(LAYERS))}"


def test_readme_map_names_every_module():
    """README's "What is where" names each module by its path (or by its package folder for plug-in folders)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## What is where", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(ddlib/[\w/]+(?:\.py)?)`", section))
    missing = []
    for mod in _modules():
        folder = mod.rsplit("/", 1)[0] + "/"
        if mod not in named and not (folder in PLUGIN_FOLDERS and folder in named):
            missing.append(mod)
    assert not missing, f"README's map does not name: {missing}"
    stale = [p for p in named if not (REPO / p).exists()]
    assert not stale, f"README's map names paths that do not exist: {stale}"
