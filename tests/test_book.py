"""End to end on the smoke profile: papermill -> nbval -> jupyter-book -> Chromium.

One module-scoped build in a temporary copy of the book sources (so the
repository's own ``book/`` and ``_build/`` are untouched), and:

* nbval re-executes each executed notebook against a *fresh* results store and
  compares every ``# NBVAL_CHECK_OUTPUT`` cell: the numbers, tables and SVG
  charts must come out identical when recomputed from scratch (determinism).
  It runs beside the build, one notebook behind it, each process on one thread;
* headless Chromium, with networking disabled, loads the built page and every
  chart must be present as drawn SVG; a screenshot of every page of the book
  goes to ``test-artifacts/`` (for a person to look at, page by page).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from devtools_browser import Browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# pages whose only chart shows results a long benchmark records, absent from a fresh clone
CHARTLESS_UNTIL_RUN = {"11_deviations": "benchmarks/results/reproduce.json"}


# Both executions of the book (the build and nbval's recomputation) run at once, each process on one
# thread: two processes of two OpenMP threads each on two cores slowed a chapter eightfold, while one
# thread each keeps both cores busy; both executions have the same thread count, so they compare alike
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _env(home: Path) -> dict:
    env = {**os.environ, **ONE_THREAD}
    env["DDLIB_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _executed(status_file: Path) -> set:
    """The notebooks the build has finished, from its execution-status file (rewritten after each)."""
    try:
        return set(json.loads(status_file.read_text()))
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return set()


def _nbval(notebook: Path, home: Path, work: Path) -> dict:
    """nbval on one executed notebook in the store ``home``: its return code, output and passed cells."""
    import xml.etree.ElementTree as ET

    report = work / f"{notebook.stem}.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "--nbval-cell-timeout=900", f"--junitxml={report}", str(notebook)],
        cwd=work, env=_env(home), capture_output=True, text=True, timeout=1500)
    cases = ET.parse(report).getroot().iter("testcase") if report.exists() else []
    return {"rc": proc.returncode, "out": proc.stdout[-5000:],
            "passed": sum(1 for case in cases if not list(case))}  # no failure, error or skipped child


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The smoke book built in a copy of the sources, and nbval's recomputation of every notebook.

    nbval re-executes notebook k in its own fresh store while the build executes notebook k+1:
    the notebooks in the book's order (later chapters reuse the store's runs, as in the book)."""
    root = tmp_path_factory.mktemp("bookroot")
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / f, root / f)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    (root / "book").mkdir()
    for md in (REPO / "book").glob("*.md"):
        if md.name != "execution_status.md":
            shutil.copy(md, root / "book" / md.name)
    home, fresh, work = (tmp_path_factory.mktemp(n) for n in ("home_first", "home_fresh", "nbval"))
    log = root / "build.log"
    with open(log, "w") as out:
        build = subprocess.Popen([sys.executable, "-m", "ddlib", "book", "--profile", "smoke", "--quiet"],
                                 cwd=root, env=_env(home), stdout=out, stderr=subprocess.STDOUT)
    nbval, deadline = {}, time.monotonic() + 1500
    try:
        for path in NOTEBOOKS:
            while path.stem not in _executed(root / "book" / ".execution_status.json"):
                assert build.poll() is None, log.read_text()[-6000:]
                assert time.monotonic() < deadline, f"the build did not finish {path.name} in time"
                time.sleep(0.2)
            nbval[path.name] = _nbval(root / "book" / path.name, fresh, work)
        assert build.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, log.read_text()[-6000:]
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    return SimpleNamespace(root=root, nbval=nbval)


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
        nb = nbformat.read(built.root / "book" / path.name, as_version=4)
        assert nb.metadata["papermill"]["parameters"]["profile"] == "smoke"
        checked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
        assert checked and all(c.outputs for c in checked), "checked cells must have outputs"
    status = (built.root / "book" / "execution_status.md").read_text()
    for path in NOTEBOOKS:
        assert path.stem in status and "| smoke |" in status


def test_nbval_recomputes_identical_outputs(built):
    """Every notebook re-run in a fresh store (nbval, in the fixture): the checked outputs must match exactly."""
    failed = {name: r["out"] for name, r in built.nbval.items() if r["rc"] != 0}
    assert not failed, failed
    passed = {name: r["passed"] for name, r in built.nbval.items()}
    assert set(passed) == {p.name for p in NOTEBOOKS} and all(n >= 3 for n in passed.values()), passed


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
    html_dir = built.root / "_build" / "html"
    ARTIFACTS.mkdir(exist_ok=True)
    with Browser(_chromium(), tmp_path / "chrome-profile") as browser:
        _check_pages(built.root, browser)
    assert {p.stem for p in ARTIFACTS.glob("*.png")} >= {p.stem for p in (html_dir / "book").glob("*.html")}


def _check_pages(root: Path, browser) -> None:
    """Every chart of every notebook's page drawn and painted; every page kept as a screenshot."""
    html_dir = root / "_build" / "html"
    for path in NOTEBOOKS:
        nb = nbformat.read(root / "book" / path.name, as_version=4)
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
