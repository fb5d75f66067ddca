"""End to end on the smoke profile: papermill -> nbval -> jupyter-book -> Chromium.

One module-scoped build in a temporary copy of the book sources (so the
repository's own ``book/`` and ``_build/`` are untouched), then:

* nbval re-executes the executed notebook against a *fresh* results store and
  compares every ``# NBVAL_CHECK_OUTPUT`` cell: the numbers, tables and SVG
  charts must come out identical when recomputed from scratch (determinism);
* headless Chromium, with networking disabled, loads the built page and every
  chart must be present as drawn SVG; a screenshot of every page of the book
  goes to ``test-artifacts/`` (for a person to look at, page by page).
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
from devtools_browser import Browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# pages whose only chart shows results a long benchmark records, absent from a fresh clone
CHARTLESS_UNTIL_RUN = {"11_deviations": "benchmarks/results/reproduce.json"}


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


def test_every_notebook_cell_has_an_id():
    """nbformat 4.5 cells carry ids (nbformat warns today and will refuse later)."""
    import json

    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        assert all(c.get("id") for c in cells), f"{path.name}: a cell without an id"


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
    """Re-run every notebook in a fresh store: the checked outputs must match exactly.

    One pytest process for all the notebooks, in the book's order (later chapters reuse the
    fresh store's runs as the book does); its JUnit report gives each notebook's passes."""
    import xml.etree.ElementTree as ET

    report = tmp_path / "nbval.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "--nbval-cell-timeout=900", f"--junitxml={report}",
         *[str(built / "book" / path.name) for path in NOTEBOOKS]],
        cwd=tmp_path, env=_env(tmp_path / "fresh_home"), capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-5000:]
    passed = {path.name: 0 for path in NOTEBOOKS}
    for case in ET.parse(report).getroot().iter("testcase"):
        notebook = ".".join(case.get("classname", "").split(".")[-2:])  # "<dirs>.<stem>.ipynb"
        if notebook in passed and not list(case):  # no failure, error or skipped child
            passed[notebook] += 1
    assert all(n >= 3 for n in passed.values()), passed


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("Chromium is needed for the browser test (make setup installs Debian's chromium)")


def _chart_colours(svg_text: str) -> set:
    """The saturated fill / stroke colours of an SVG chart (greys and near-greys left out)."""
    found = [tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
             for h in re.findall(r'(?:fill|stroke)="#([0-9a-fA-F]{6})"', svg_text)]
    found += [tuple(int(v) for v in m)
              for m in re.findall(r'(?:fill|stroke)="rgb\((\d+), *(\d+), *(\d+)\)"', svg_text)]
    return {rgb for rgb in found if max(rgb) - min(rgb) >= 60}


def _painted(png: Path):
    """The screenshot's colours and how many pixels each paints: ((k, 3) int RGB, (k,) counts).

    Counted once per page (the screenshot is 1280 px wide, as tall as the page); each chart colour is then
    looked up among the page's few thousand distinct colours."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(png).convert("RGB")).astype(np.int32)
    counts = np.bincount(((a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]).ravel(), minlength=1 << 24)
    codes = np.flatnonzero(counts)
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1), counts[codes]


def _colour_pixels(painted, rgb, tol: int = 12) -> int:
    import numpy as np

    colours, counts = painted
    return int(counts[np.abs(colours - np.array(rgb)).max(axis=1) <= tol].sum())


def _screenshot(browser, page: Path) -> Path:
    """Chromium's offline screenshot of ``page``, kept in ``test-artifacts/`` for a reader to look at."""
    shot = ARTIFACTS / f"{page.stem}.png"
    shot.unlink(missing_ok=True)
    browser.screenshot(page.as_uri(), shot)
    assert shot.exists(), f"Chromium produced no screenshot of {page.name}"
    return shot


def test_book_pages_draw_every_chart_offline(built, tmp_path):
    """Each chart of each page is an SVG the page references, and Chromium paints it.

    The screenshot is taken with networking disabled; for every chart, one of
    the saturated colours its SVG draws with must appear in it.
    """
    html_dir = built / "_build" / "html"
    ARTIFACTS.mkdir(exist_ok=True)
    with Browser(_chromium(), tmp_path / "chrome-profile") as browser:
        _check_pages(built, browser)
    assert {p.stem for p in ARTIFACTS.glob("*.png")} >= {p.stem for p in (html_dir / "book").glob("*.html")}


def _check_pages(built: Path, browser) -> None:
    """Every chart of every notebook's page drawn and painted; every page kept as a screenshot."""
    html_dir = built / "_build" / "html"
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
        needs = path.stem not in CHARTLESS_UNTIL_RUN or (REPO / CHARTLESS_UNTIL_RUN[path.stem]).exists()
        assert (charts >= 1 or not needs) and len(srcs) == charts, f"{path.name}: {len(srcs)} of {charts} charts"
        colours = []
        for src in srcs:
            svg = (page.parent / src).resolve()
            assert svg.exists() and 'class="marks"' in svg.read_text()[:2000], src
            colours.append((src, _chart_colours(svg.read_text())))
            assert colours[-1][1], f"{src} draws with no saturated colour"
        shot = _screenshot(browser, page)
        if not srcs:
            continue
        pixels = _painted(shot)
        for src, rgbs in colours:
            painted = max(_colour_pixels(pixels, rgb) for rgb in rgbs)
            assert painted > 30, f"{path.name}: none of the colours of {src} painted"
    # every other page of the book (the introduction, the execution status) is kept as a screenshot too
    for page in sorted((html_dir / "book").glob("*.html")):
        if page.stem not in {p.stem for p in NOTEBOOKS}:
            _screenshot(browser, page)
