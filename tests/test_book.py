"""End to end on the smoke profile: papermill -> nbval -> jupyter-book -> Chromium.

One module-scoped build in a temporary copy of the book sources (so the
repository's own ``book/`` and ``_build/`` are untouched), then:

* nbval re-executes the executed notebook against a *fresh* results store and
  compares every ``# NBVAL_CHECK_OUTPUT`` cell: the numbers, tables and SVG
  charts must come out identical when recomputed from scratch (determinism);
* headless Chromium, with networking disabled, loads the built page and every
  chart must be present as drawn SVG; screenshots go to ``test-artifacts/``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _env(home: Path) -> dict:
    env = dict(os.environ)
    env["DDLIB_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bookroot")
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / f, root / f)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    (root / "book").mkdir()
    for md in (REPO / "book").glob("*.md"):
        if md.name != "execution_status.md":
            shutil.copy(md, root / "book" / md.name)
    home = tmp_path_factory.mktemp("home_first")
    proc = subprocess.run([sys.executable, "-m", "ddlib", "book", "--profile", "smoke", "--quiet"],
                          cwd=root, env=_env(home), capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def test_notebook_sources_have_no_outputs_and_a_parameters_cell():
    assert NOTEBOOKS, "no notebooks under notebooks/"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, f"{path.name} needs exactly one parameters cell"
        assert "profile" in params[0].source


def test_executed_copies_and_status_page(built):
    for path in NOTEBOOKS:
        nb = nbformat.read(built / "book" / path.name, as_version=4)
        assert nb.metadata["papermill"]["parameters"]["profile"] == "smoke"
        checked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
        assert checked and all(c.outputs for c in checked), "checked cells must have outputs"
    status = (built / "book" / "execution_status.md").read_text()
    for path in NOTEBOOKS:
        assert path.stem in status and "| smoke |" in status


def test_nbval_recomputes_identical_outputs(built, tmp_path):
    """Re-run every notebook in a fresh store: the checked outputs must match exactly."""
    for path in NOTEBOOKS:
        executed = built / "book" / path.name
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
             "--nbval-current-env", "--nbval-cell-timeout=900", str(executed)],
            cwd=tmp_path, env=_env(tmp_path / "fresh_home"), capture_output=True, text=True,
            timeout=1500)
        assert proc.returncode == 0, proc.stdout[-5000:]
        m = re.search(r"(\d+) passed", proc.stdout)
        assert m and int(m.group(1)) >= 3, proc.stdout[-2000:]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("Chromium is needed for the browser test (make setup installs Debian's chromium)")


def _chrome(args, tmp_path) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           f"--user-data-dir={tmp_path / 'chrome-profile'}", "--virtual-time-budget=8000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _chart_colours(svg_text: str) -> set:
    """The saturated fill / stroke colours of an SVG chart (greys and near-greys left out)."""
    found = [tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
             for h in re.findall(r'(?:fill|stroke)="#([0-9a-fA-F]{6})"', svg_text)]
    found += [tuple(int(v) for v in m)
              for m in re.findall(r'(?:fill|stroke)="rgb\((\d+), *(\d+), *(\d+)\)"', svg_text)]
    return {rgb for rgb in found if max(rgb) - min(rgb) >= 60}


def _colour_pixels(png: Path, rgb, tol: int = 12) -> int:
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int((np.abs(a - np.array(rgb)).max(axis=2) <= tol).sum())


def test_book_pages_draw_every_chart_offline(built, tmp_path):
    """Each chart of each page is an SVG the page references, and Chromium paints it.

    The screenshot is taken with networking disabled; for every chart, one of
    the saturated colours its SVG draws with must appear in it.
    """
    html_dir = built / "_build" / "html"
    ARTIFACTS.mkdir(exist_ok=True)
    for path in NOTEBOOKS:
        nb = nbformat.read(built / "book" / path.name, as_version=4)
        charts = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if "image/svg+xml" in o.get("data", {}))
        page = html_dir / "book" / f"{path.stem}.html"
        assert page.exists(), f"{page} was not built"
        raw = page.read_text()
        remote = re.findall(r'<(?:script|link|img)[^>]*(?:src|href)="(?:https?:)?//[^"]*"', raw)
        assert not remote, f"{path.name} loads remote resources: {remote[:3]}"
        srcs = re.findall(r'<img[^>]*src="([^"]+\.svg)"', raw)
        assert charts >= 1 and len(srcs) == charts, f"{path.name}: {len(srcs)} of {charts} charts"
        colours = []
        for src in srcs:
            svg = (page.parent / src).resolve()
            assert svg.exists() and 'class="marks"' in svg.read_text()[:2000], src
            colours.append((src, _chart_colours(svg.read_text())))
            assert colours[-1][1], f"{src} draws with no saturated colour"
        shot = ARTIFACTS / f"{path.stem}.png"
        shot.unlink(missing_ok=True)
        _chrome([f"--screenshot={shot}", "--window-size=1280,14000", page.as_uri()], tmp_path)
        assert shot.exists(), "Chromium produced no screenshot"
        for src, rgbs in colours:
            painted = max(_colour_pixels(shot, rgb) for rgb in rgbs)
            assert painted > 30, f"{path.name}: none of the colours of {src} painted"
