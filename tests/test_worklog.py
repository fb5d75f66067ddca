"""The work log: each block's own seconds (nested blocks subtracted), one JSON line each, nothing when off."""
import json
import time

import pytest

from ddlib.core.store import Store
from ddlib.core.worklog import WorkLog

pytestmark = pytest.mark.unit


def test_nested_blocks_are_logged_once_each(tmp_path):
    log = WorkLog(tmp_path / "w.jsonl")
    with log.work("build", name="dm"):
        time.sleep(0.05)
        with log.work("teacher", member=0):
            time.sleep(0.1)
    lines = [json.loads(x) for x in (tmp_path / "w.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["teacher", "build"]
    teacher, build = lines
    assert 0.09 < teacher["seconds"] < 0.5 and teacher["member"] == 0
    assert 0.04 < build["seconds"] < 0.09  # its own 0.05 s, not the teacher's 0.1 s
    assert build["name"] == "dm" and build["at"] >= teacher["at"]


def test_a_block_that_raises_is_still_logged(tmp_path):
    log = WorkLog(tmp_path / "w.jsonl")
    with pytest.raises(ValueError):
        with log.work("train", runs=1):
            raise ValueError("boom")
    assert json.loads((tmp_path / "w.jsonl").read_text())["kind"] == "train"


def test_no_file_no_log(tmp_path):
    with WorkLog().work("build"):
        pass
    store = Store(tmp_path / "home")
    with store.worklog.work("build"):
        pass
    assert not [p for p in (tmp_path / "home").iterdir() if not p.name.startswith("results.sqlite")]


def test_settings_open_the_store_with_the_environment_s_log(tmp_path):
    from ddlib.run.settings import Settings
    s = Settings.from_env({"DDLIB_HOME": str(tmp_path / "h"), "DDLIB_WORKLOG": str(tmp_path / "w.jsonl")})
    with s.store().worklog.work("scores", name="el2n"):
        pass
    assert json.loads((tmp_path / "w.jsonl").read_text())["name"] == "el2n"
    assert Settings.from_env({"DDLIB_HOME": str(tmp_path / "h")}).store().worklog.path is None


def test_book_time_puts_each_line_in_its_notebook_window():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("book_time", Path(__file__).parents[1] / "benchmarks" / "book_time.py")
    bt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bt)
    status = {"01_a": {"profile": "default", "seconds": 100.0, "ended_unix": 1100.0},
              "02_b": {"profile": "default", "seconds": 50.0, "ended_unix": 1150.0},
              "03_c": {"profile": "smoke", "seconds": 9.0, "ended_unix": 2000.0}}
    lines = [{"at": 1010.0, "kind": "teacher", "seconds": 20.0}, {"at": 1090.0, "kind": "train", "seconds": 30.0},
             {"at": 1120.0, "kind": "build", "seconds": 12.0}, {"at": 1149.0, "kind": "train", "seconds": 8.0}]
    out = bt.breakdown(status, lines, "default")
    assert out == {"01_a": {"build": 0.0, "scores": 0.0, "teacher": 20.0, "train": 30.0, "other": 50.0},
                   "02_b": {"build": 12.0, "scores": 0.0, "teacher": 0.0, "train": 8.0, "other": 30.0}}
