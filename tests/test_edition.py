"""The published edition: the executed `default` notebooks committed in book/, made by this very ddlib.

A reader opens the book without computing (``python -m ddlib book --no-execute`` builds the HTML
from them); ``make book`` regenerates them whenever results change, and this test fails when the
edition was made by another ddlib version than the code's, or lacks a chapter.
"""
import json
from pathlib import Path

import pytest

from ddlib import __version__

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
STATUS = REPO / "book" / ".execution_status.json"


def test_every_chapter_has_an_executed_default_copy_of_this_version():
    sources = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
    assert STATUS.exists(), "no published edition: run make book and commit book/"
    status = json.loads(STATUS.read_text())
    for name in sources:
        assert (REPO / "book" / f"{name}.ipynb").exists(), f"book/{name}.ipynb missing: run make book"
        rec = status.get(name)
        assert rec and rec["profile"] == "default", f"{name}: the edition is the default profile's"
        assert rec["version"] == __version__, (f"{name} was executed by ddlib {rec['version']}, the code is "
                                               f"{__version__}: run make book and commit book/")
    assert set(status) == set(sources)


def test_the_edition_is_executed_and_tagged_for_readers():
    for path in sorted((REPO / "book").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert nb["metadata"]["papermill"]["parameters"]["profile"] == "default", path.name
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(c.get("execution_count") for c in code), f"{path.name} has unexecuted cells"
        assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])), path.name
        for c in code:
            tags = set(c.get("metadata", {}).get("tags", []))
            assert ("remove-cell" in tags) if tags & {"parameters", "injected-parameters"} else ("hide-input" in tags)
