"""Execute chapter notebooks' code cells in one IPython shell, as papermill would, without a kernel per notebook.

``python tests/run_chapters.py PLAN.json``: PLAN maps a notebook path to its
papermill parameters.  Each notebook's code cells run in order in a fresh
namespace of one in-process :class:`IPython.core.interactiveshell.InteractiveShell`
(the machinery a kernel runs cells with: display hook, rich formatters,
``display``); the parameters are injected after the cell tagged ``parameters``,
as papermill injects them.  A cell that raises stops everything with exit
status 1 and the notebook, cell and traceback on stderr.  With ``--quick`` the
smoke profile is shortened as ``python -m ddlib check`` shortens profiles
(:func:`ddlib.chapters.check.quick_profile`: one-epoch teachers, two synthesis
iterations, one scorer): the chapters' code and grids are unchanged.

Why not papermill: a kernel start and ddlib's imports cost several seconds per
notebook, more than a tiny chapter's runs; one process also shares the data,
the teachers and the store between chapters, as the book build's store does.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def code_cells(path: Path, params: dict):
    """The notebook's code cells, with a papermill-like injected-parameters cell after ``parameters``."""
    nb = json.loads(path.read_text())
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] != "code":
            continue
        cells.append("".join(c["source"]))
        if "parameters" in c.get("metadata", {}).get("tags", []):
            cells.append("\n".join(f"{k} = {v!r}" for k, v in params.items()))
    return cells


def main(argv) -> int:
    quick = "--quick" in argv
    plan = json.loads(Path([a for a in argv if not a.startswith("--")][0]).read_text())
    if quick:
        import ddlib.core.config as config
        from ddlib.chapters.check import quick_profile

        config.PROFILES._items["smoke"] = quick_profile(config.PROFILES.get("smoke"))
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    for nb, params in plan.items():
        t0 = time.time()
        shell.reset(new_session=False)
        for i, src in enumerate(code_cells(Path(nb), params)):
            res = shell.run_cell(src, store_history=False, silent=False)
            if not res.success:
                err = res.error_in_exec or res.error_before_exec
                print(f"FAILED {nb} cell {i}: {type(err).__name__}: {err}\n{src}", file=sys.stderr)
                return 1
        print(f"TIME {Path(nb).stem} {time.time() - t0:.1f}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
