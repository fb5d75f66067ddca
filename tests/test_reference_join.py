"""Published numbers: the CSV is well formed; our summary joins it on (method, dataset, IPC) and setting."""
import pandas as pd
import pytest

from ddlib.analysis.reference import NETWORKS, REGIME_FAMILIES, beside_published, parse_setting, published
from ddlib.data import dataset_names
from ddlib.engine.models import MODELS
from ddlib.engine.regimes import REGIMES
from ddlib.methods.coresets import CORESETS
from ddlib.methods.distill import DISTILLERS

pytestmark = pytest.mark.unit

# methods with published rows that ddlib does not implement: listed, never matched to a run
NOT_IMPLEMENTED = {"full", "idc", "idc_i"}
DATASETS = {"mnist", "fashion_mnist", "cifar10", "cifar100"}


def test_published_csv_is_well_formed():
    df = published()
    assert list(df.columns) == ["paper", "table", "method", "dataset", "ipc", "setting", "accuracy",
                                "std", "note"]
    assert df["paper"].notna().all() and df["table"].notna().all()
    assert df["accuracy"].between(0, 100).all()
    fm = published(method="dc", dataset="fashion_mnist")
    assert sorted(fm["ipc"].astype(int)) == [1, 10, 50] and set(fm["dataset"]) == {"fashion_mnist"}


def test_every_published_row_is_complete_and_unique():
    df = published()
    for col in ("paper", "table", "note", "method", "dataset", "setting"):
        assert df[col].notna().all() and (df[col].str.strip() != "").all(), col
    assert df["accuracy"].notna().all() and df["accuracy"].between(0, 100).all()
    assert (df["std"].dropna() >= 0).all()
    assert set(df["dataset"]) <= DATASETS and set(df["dataset"]) <= set(dataset_names())
    full = df["method"] == "full"
    assert df.loc[~full, "ipc"].notna().all(), "only full-data rows may leave ipc empty"
    assert (df.loc[~full, "ipc"].astype(int) > 0).all()
    known = set(DISTILLERS.names()) | set(CORESETS.names()) | NOT_IMPLEMENTED
    assert set(df["method"]) <= known, set(df["method"]) - known
    key = ["paper", "method", "dataset", "ipc", "setting"]
    assert not df.duplicated(key).any(), df[df.duplicated(key, keep=False)][key]
    # every setting either names a network and regime ddlib has, or is free text (no constraint)
    assert all(parse_setting(s)[0] for s in df["setting"]), "a setting names a network ddlib has not got"


def test_setting_vocabulary_is_ddlibs():
    assert set(REGIME_FAMILIES) <= set(REGIMES.names())
    assert all(set(fam) <= set(REGIMES.names()) for fam in REGIME_FAMILIES.values())
    assert all(any(m.startswith(p) for m in MODELS.names()) for p in NETWORKS.values())
    assert parse_setting("ConvNet hl") == (True, "convnet", ("hl",))
    assert parse_setting("ResNet-18 slkd") == (True, "resnet18", ("slkd", "slkd_stored"))
    assert parse_setting("LeNet hl")[0] is False
    assert parse_setting("fixed init") == (True, None, None) and parse_setting(None) == (True, None, None)


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


def test_beside_published_matches_only_runs_the_setting_describes():
    runs = pd.DataFrame({
        "dataset": ["c100"] * 4, "method": ["sre2l"] * 4, "ipc": [10] * 4,
        "regime": ["hl", "slkd_stored", "slkd", "slkd"], "budget": [1.0] * 4,
        "model": ["resnet18", "resnet18", "convnet_d3w32", "resnet18"],
        "accuracy": [0.20, 0.50, 0.40, 0.55], "seed": [0] * 4})
    ref = pd.DataFrame({
        "paper": ["A", "B", "C", "D"], "table": ["T"] * 4, "method": ["sre2l"] * 4, "dataset": ["c100"] * 4,
        "ipc": [10] * 4, "setting": ["ResNet-18 slkd", "ConvNet hl", "LeNet hl", "some text"],
        "accuracy": [60.0, 30.0, 25.0, 40.0], "std": [None] * 4, "note": [""] * 4})
    out = beside_published(runs, ref)
    got = {(r.paper, r.regime, r.model) for r in out.itertuples()}
    assert got == {("A", "slkd_stored", "resnet18"), ("A", "slkd", "resnet18"),  # soft labels, ResNet-18
                   # ConvNet hl: no ConvNet run has hard labels; LeNet: no such ddlib network
                   ("D", "hl", "resnet18"), ("D", "slkd_stored", "resnet18"), ("D", "slkd", "convnet_d3w32"),
                   ("D", "slkd", "resnet18")}  # free text: every run of the method, dataset and IPC
    assert set(out.loc[out["paper"] == "A", "setting"]) == {"ResNet-18 slkd"}
    # without a model column the network is not checked, the regime still is
    out = beside_published(runs.drop(columns="model"), ref)
    assert set(out.loc[out["paper"] == "B", "regime"]) == {"hl"}
    assert set(out.loc[out["paper"] == "A", "regime"]) == {"slkd", "slkd_stored"}


def test_beside_published_on_the_real_table():
    """The book's grid: a hard-label number stands beside the hl runs only; IDC (not in ddlib) never."""
    runs = pd.DataFrame({
        "dataset": ["fashion_mnist"] * 3, "method": ["dsa"] * 3, "ipc": [10] * 3, "regime": ["hl", "slkd", "mt"],
        "budget": [6.4] * 3, "model": ["convnet_d3w32"] * 3, "accuracy": [0.73, 0.77, 0.78], "seed": [0] * 3})
    out = beside_published(runs)
    assert list(out["regime"]) == ["hl"] and out.iloc[0]["published"] == 84.6
    assert not published(method="idc").empty and set(published(method="idc")["setting"]) == {"ConvNet-3 hl"}
    assert beside_published(runs.assign(model="resnet18")).empty  # a ConvNet number is not a ResNet's


def test_beside_published_empty():
    assert beside_published(pd.DataFrame(), published()).empty


def test_reader_views_have_no_raw_index_and_no_empty_cells():
    from ddlib.analysis.reference import beside_view, published_view

    v = published_view(published("Wang"))
    assert v.index.names == ["paper", "where"] and not v.isna().any().any()
    assert "—" in set(v["IPC"]) and "79.5 ± 8.1" in set(v["accuracy (%)"]) and "93.8" in set(v["accuracy (%)"])
    beside = pd.DataFrame([{"dataset": "mnist", "method": "dc", "ipc": 10, "regime": "hl", "budget": 1.0,
                            "ours": 90.04, "ours_std": 0.5, "seeds": 5, "published": 97.4, "published_std": float("nan"),
                            "gap": -7.36, "paper": "P", "table": "T1", "setting": "ConvNet hl"}])
    b = beside_view(beside)
    assert b.iloc[0].tolist() == ["90.0 ± 0.5 (n=5)", "97.4", "-7.4", "P, T1"]
    assert list(b.index) == ["dc, IPC 10, hl, budget 1"] and b.index.name == "our runs"
