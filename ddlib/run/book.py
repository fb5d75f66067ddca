"""Build the book: execute every notebook with papermill, then jupyter-book.

``notebooks/*.ipynb`` are the parameterised sources (no outputs);
papermill writes executed copies into ``book/`` with the chosen profile
injected; ``book/execution_status.md`` records how long each took and where;
``jupyter-book build -W -n --keep-going .`` renders them without executing.

The kernels and jupyter-book inherit this process's environment unread: the
``DDLIB_*`` variables pass on to the notebooks, whose run-layer calls read
them once (:mod:`ddlib.run.settings`).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

import torch

from ddlib import __version__
from ddlib.core.config import PROFILES
from ddlib.core.registry import DDLibError

log = logging.getLogger("ddlib")


def repo_root(start: Optional[Path] = None) -> Path:
    """The nearest folder at or above ``start`` (default cwd) holding ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").exists() and (d / "notebooks").is_dir():
            return d
    raise DDLibError(f"no book found: no _toc.yml with a notebooks/ folder at or above {here}")


def execute(src: Path, dst: Path, profile: str, *, quiet: bool = False,
            parameters: Optional[dict] = None) -> float:
    """Execute notebook ``src`` into ``dst`` with ``profile`` injected; returns seconds."""
    import papermill as pm

    t0 = time.perf_counter()
    root = Path(__file__).resolve().parents[2]
    # the kernel imports this very ddlib, wherever the process was started
    paths = [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    try:
        # shutdown_kernel="immediate": once the last cell has replied every output is in, and a kernel
        # that imported torch takes 1.5-2 s more to exit gracefully (measured; 11 notebooks a book);
        # the store commits each row when it is written and the work log writes whole lines, so
        # ending the kernel then loses nothing
        pm.execute_notebook(str(src), str(dst), parameters={"profile": profile, **(parameters or {})},
                            kernel_name="python3", progress_bar=not quiet, log_output=not quiet,
                            cwd=str(dst.parent), shutdown_kernel="immediate")
    except pm.PapermillExecutionError as e:
        raise DDLibError(f"{src.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}") from None
    reader_tags(dst)
    return time.perf_counter() - t0


def reader_tags(path: Path) -> None:
    """Tag the executed notebook for its readers: the parameters cells removed from the page, every
    other code cell's input folded (jupyter-book's ``hide-input``: a reader can still expand it, and
    the notebook keeps it), so a page shows its text, tables and charts."""
    nb = json.loads(Path(path).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        want = "remove-cell" if {"parameters", "injected-parameters"} & set(tags) else "hide-input"
        if want not in tags:
            tags.append(want)
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def status_page(records: dict) -> str:
    """Markdown of the execution-status page from {notebook: record}."""
    lines = ["# Execution status", "",
             "Each chapter is a notebook executed by papermill before the book is built; "
             "this table is written by `python -m ddlib book` at that time.  Its seconds are the "
             "execution's, against the results store as it was (runs already stored are read, not "
             "recomputed); the book from an empty store is timed by `benchmarks/book_time.py`.", "",
             "| notebook | profile | seconds | machine | finished (UTC) | ddlib |",
             "|---|---|---:|---|---|---|"]
    for name in sorted(records):
        r = records[name]
        lines.append(f"| {name} | {r['profile']} | {r['seconds']:.0f} | {r['machine']} | "
                     f"{r['finished']} | {r['version']} |")
    return "\n".join(lines) + "\n"


def build_book(profile: str = "default", only: Optional[Iterable[str]] = None,
               skip_build: bool = False, quiet: bool = False, root: Optional[Path] = None,
               skip_execute: bool = False) -> Path:
    """Execute the notebooks (all, or those named in ``only``) and build the HTML book.

    ``skip_execute``: build the HTML from the executed copies already in ``book/`` (the
    committed edition), computing nothing; every notebook must have one.

    Returns:
        path of the built ``index.html``'s folder (``_build/html``).
    """
    PROFILES.get(profile)
    root = root or repo_root()
    sources = sorted((root / "notebooks").glob("*.ipynb"))
    if only:
        wanted = {Path(n).stem for n in only}
        unknown = wanted - {s.stem for s in sources}
        if unknown:
            raise DDLibError(f"unknown notebook(s) {sorted(unknown)}; have {[s.stem for s in sources]}")
        sources = [s for s in sources if s.stem in wanted]
    status_file = root / "book" / ".execution_status.json"
    records = json.loads(status_file.read_text()) if status_file.exists() else {}
    present = {s.stem for s in (root / "notebooks").glob("*.ipynb")}
    records = {k: v for k, v in records.items() if k in present}  # renamed or removed notebooks
    for stale in (root / "book").glob("*.ipynb"):  # their executed copies would fail the strict build
        if stale.stem not in present:
            log.info("removing %s: its notebook no longer exists", stale)
            stale.unlink()
    if skip_execute:
        missing = [s.name for s in sources if not (root / "book" / s.name).exists()]
        if missing:
            raise DDLibError(f"no executed copy in book/ of {', '.join(missing)}; run make book to compute them")
        sources = []
    for src in sources:
        dst = root / "book" / src.name
        log.info("executing %s on profile %s -> %s", src.name, profile, dst)
        secs = execute(src, dst, profile, quiet=quiet)
        records[src.stem] = {"profile": profile, "seconds": secs, "machine": machine(),
                             "finished": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                             "ended_unix": round(time.time(), 1), "version": __version__}
        status_file.write_text(json.dumps(records, indent=1))
    (root / "book" / "execution_status.md").write_text(status_page(records))
    if skip_build:
        return root / "_build" / "html"
    log.info("building the book in %s/_build/html", root)
    env = dict(os.environ)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", "-W", "-n", "--keep-going", str(root)]
    if subprocess.run(cmd, cwd=root, env=env).returncode != 0:
        raise DDLibError("jupyter-book build failed (warnings are errors); see the log above")
    return root / "_build" / "html"


def machine() -> str:
    """A short description of where this ran (for execution-status pages)."""
    dev = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{platform.node() or 'host'} ({platform.machine()}, {torch.get_num_threads()} threads, {dev})"
