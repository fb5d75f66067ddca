"""Published numbers: the CSV is well formed; our summary joins it on (method, dataset, IPC)."""
import pandas as pd
import pytest

from ddlib.analysis.reference import beside_published, published


def test_published_csv_is_well_formed():
    df = published()
    assert list(df.columns) == ["paper", "table", "method", "dataset", "ipc", "setting", "accuracy",
                                "std", "note"]
    assert df["paper"].notna().all() and df["table"].notna().all()
    assert df["accuracy"].between(0, 100).all()
    fm = published(method="dc", dataset="fashion_mnist")
    assert sorted(fm["ipc"].astype(int)) == [1, 10, 50] and set(fm["dataset"]) == {"fashion_mnist"}


def test_beside_published_known_answer():
    rows = pd.DataFrame({
        "dataset": ["fm"] * 5, "method": ["dc", "dc", "dc", "random", "dm"],
        "ipc": [10, 10, 1, 10, 10], "regime": ["hl"] * 5, "budget": [1.0] * 5,
        "accuracy": [0.80, 0.84, 0.50, 0.70, 0.75], "seed": [0, 1, 0, 0, 0]})
    ref = pd.DataFrame({"paper": ["P", "P"], "table": ["T1", "T1"], "method": ["dc", "random"],
                        "dataset": ["fm", "fm"], "ipc": [10, 10], "setting": ["", ""],
                        "accuracy": [85.0, 70.0], "std": [0.5, None], "note": ["", ""]})
    out = beside_published(rows, ref)
    assert list(out["method"]) == ["dc", "random"]  # dc ipc 1 and dm have no published number
    dc = out.iloc[0]
    assert dc["ours"] == pytest.approx(82.0) and dc["ours_std"] == pytest.approx(2.8284271, rel=1e-6)
    assert dc["seeds"] == 2 and dc["published"] == 85.0 and dc["gap"] == pytest.approx(-3.0)
    assert out.iloc[1]["gap"] == pytest.approx(0.0) and out.iloc[1]["ours_std"] == 0.0


def test_beside_published_empty():
    assert beside_published(pd.DataFrame(), published()).empty
