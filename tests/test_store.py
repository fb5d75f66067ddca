"""The results store: rows, filters, atomic artifacts, crash safety."""
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import torch

from ddlib.core.registry import DDLibError
from ddlib.core.store import COLUMNS, Store


def _row(key="k1", **over):
    row = {c: None for c in COLUMNS}
    row.update(key=key, dataset="digits", method="random", family="coreset", ipc=1, regime="hl",
               budget=2.0, seed=0, profile="smoke", model="convnet_d3w16", protocol="p",
               accuracy=0.5, val_accuracy=0.4, steps=3, samples_seen=100, train_seconds=1.0,
               build_seconds=0.1, build_peak_mem_mb=0.0, build_fwd=0, build_bwd=0, label_bytes=0,
               device="cpu", version="0.1.0", git_commit="x", created="2026-01-01T00:00:00+00:00",
               config_json={"a": 1, "hparams": {}})
    row.update(over)
    return row


def test_home_fixture_points_at_tmp(home, tmp_path):
    assert home.root == tmp_path
    from ddlib.run.settings import Settings

    assert Settings.from_env().home == tmp_path
    assert (tmp_path / "results.sqlite").exists()


def test_put_get_roundtrip(home):
    row = _row()
    home.put(row)
    got = home.get("k1")
    assert got is not None
    for c in COLUMNS:
        if c == "config_json":
            assert got[c] == '{"a": 1, "hparams": {}}'
        else:
            assert got[c] == row[c], c
    assert isinstance(got["ipc"], int) and isinstance(got["budget"], float)
    assert home.get("missing") is None
    assert Store(home.root).get("k1") == got  # a second handle sees it


def test_put_same_key_twice_keeps_first_row(home):
    home.put(_row(accuracy=0.5))
    home.put(_row(accuracy=0.9))
    rows = home.rows()
    assert len(rows) == 1 and rows[0]["accuracy"] == 0.5


def test_put_incomplete_row_raises(home):
    row = _row()
    del row["accuracy"]
    with pytest.raises(ValueError, match="accuracy"):
        home.put(row)
    assert home.rows() == []


def test_frame_filters(home):
    home.put(_row("a", method="random", dataset="digits", created="1"))
    home.put(_row("b", method="herding", dataset="digits", created="2"))
    home.put(_row("c", method="dm", dataset="mnist", created="3"))
    df = home.frame()
    assert list(df.columns) == list(COLUMNS) and list(df["key"]) == ["a", "b", "c"]
    assert list(home.frame(dataset="digits")["key"]) == ["a", "b"]
    assert list(home.frame(method=["dm", "random"])["key"]) == ["a", "c"]
    assert list(home.frame(method=("herding",), dataset="mnist")["key"]) == []
    assert list(home.frame(method=None, dataset="mnist")["key"]) == ["c"]
    assert list(home.frame(method={"herding"}).index) == [0]


def test_empty_frame_has_columns(home):
    df = home.frame(dataset="digits")
    assert len(df) == 0 and list(df.columns) == list(COLUMNS)


# ------------------------------------------------------------- artifacts ----

def test_artifact_roundtrip(home):
    obj = {"images": torch.randn(3, 1, 8, 8), "labels": torch.tensor([0, 1, 2]),
           "cost": {"seconds": 1.0}, "extras": {"n": 3}}
    path = home.save_artifact("condensed", "abc", obj)
    assert path == home.artifact_path("condensed", "abc") and path.exists()
    back = home.load_artifact("condensed", "abc")
    assert torch.equal(back["images"], obj["images"]) and torch.equal(back["labels"], obj["labels"])
    assert back["cost"] == {"seconds": 1.0} and back["extras"] == {"n": 3}
    assert home.load_artifact("condensed", "nope") is None
    assert list(home.artifact_keys("condensed")) == ["abc"]
    assert list(home.artifact_keys("teachers")) == []
    assert not list(path.parent.glob(".tmp-*"))


def _failing_save():
    def save(obj, f, *a, **kw):
        f.write(b"PARTIAL-GARBAGE" * 100)  # half-written, then the process dies
        raise RuntimeError("disk full")
    return save


def test_artifact_save_is_atomic(home, monkeypatch):
    good = {"x": torch.arange(5)}
    home.save_artifact("teachers", "k", good)
    monkeypatch.setattr(torch, "save", _failing_save())
    with pytest.raises(RuntimeError, match="disk full"):
        home.save_artifact("teachers", "k", {"x": torch.zeros(5)})
    with pytest.raises(RuntimeError):
        home.save_artifact("teachers", "fresh", {"x": torch.zeros(5)})
    monkeypatch.undo()
    folder = home.artifact_path("teachers", "k").parent
    assert not list(folder.glob(".tmp-*")), "temp file left behind"
    assert not home.artifact_path("teachers", "fresh").exists()
    assert torch.equal(home.load_artifact("teachers", "k")["x"], torch.arange(5))
    assert list(home.artifact_keys("teachers")) == ["k"]


def test_corrupt_artifact_raises_naming_path(home):
    path = home.artifact_path("condensed", "bad")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a torch file at all")
    with pytest.raises(DDLibError) as e:
        home.load_artifact("condensed", "bad")
    assert str(path) in str(e.value)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_artifact_with_code_is_refused(home):
    path = home.artifact_path("condensed", "evil")
    path.parent.mkdir(parents=True)
    torch.save({"x": Evil()}, path)
    with pytest.raises(DDLibError, match="corrupt"):
        home.load_artifact("condensed", "evil")


def test_unreadable_database_raises(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"this is not sqlite" * 200)
    with pytest.raises(DDLibError, match="results.sqlite"):
        Store(tmp_path)


# --------------------------------------------------------- crash safety ----

CHILD = textwrap.dedent("""
    import os, signal, sqlite3, sys
    from ddlib.core.store import COLUMNS, Store
    root, how = sys.argv[1], sys.argv[2]
    s = Store(root)
    row = {c: 1 for c in COLUMNS}
    row.update(key="survivor", dataset="digits", method="random", config_json={"x": 1})
    s.put(row)
    # a second row whose transaction is still open when the process dies
    con = sqlite3.connect(s.db_path)
    con.execute("BEGIN")
    vals = [row[c] if c != "key" else "half" for c in COLUMNS]
    vals[COLUMNS.index("config_json")] = "{}"
    con.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", vals)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)
""")


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_rows_survive_killed_process(tmp_path, child_env, how):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), how], env=child_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == (-9 if how == "kill" else 1), proc.stderr
    s = Store(tmp_path)
    got = s.get("survivor")
    assert got is not None and got["dataset"] == "digits" and got["config_json"] == '{"x": 1}'
    assert s.get("half") is None  # the uncommitted row is all gone
    assert [r["key"] for r in s.rows()] == ["survivor"]
    con = sqlite3.connect(s.db_path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    # and the store keeps working after the crash
    s.put(_row("after"))
    assert {r["key"] for r in s.rows()} == {"survivor", "after"}
