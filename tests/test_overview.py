"""The protocol chapter's tables: epochs a budget buys, the benchmark headline figures."""
import json

import pytest

from ddlib.analysis.overview import benchmarks_table, epochs_over_set, profiles_table, regimes_table
from ddlib.core.config import PROFILES
from ddlib.core.registry import DDLibError


def test_a_budget_buys_more_epochs_over_a_smaller_set():
    df = epochs_over_set("default", ipcs=[1, 10], budgets=[0.5, 2.0])
    assert len(df) == 4
    row = df[(df["ipc"] == 10) & (df["budget"] == 2.0)].iloc[0]
    # default: 200 images per class, 10 classes -> 2 x 2000 = 4000 samples = 40 passes over 100 images
    assert row["samples_seen"] == 4000 and row["epochs_over_set"] == pytest.approx(40.0)
    one = df[(df["ipc"] == 1) & (df["budget"] == 0.5)].iloc[0]
    assert one["samples_seen"] == 1000 and one["epochs_over_set"] == pytest.approx(100.0)


def test_whole_split_profile_needs_its_pool_size():
    with pytest.raises(DDLibError, match="whole train split; pass pool_per_class"):
        epochs_over_set("smoke", [1], [1.0])
    assert epochs_over_set("smoke", [1], [1.0], pool_per_class=50)["samples_seen"].tolist() == [500]


def test_benchmark_table_keeps_headline_numbers_only(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({
        "ratio": 2.5, "engine_img_s": 300.0, "gemm_gflop_s": 80.0, "fraction_of_gemm": 0.4,
        "device": "cpu", "quick": True, "k": 3, "note": "x", "wall_min": 12.5, "target_min": 30.0}))
    (tmp_path / "b.json").write_text(json.dumps({"ratio_threads": 1.7, "device": "cuda"}))
    t = benchmarks_table(tmp_path)
    assert t.loc[("a", "ratio"), "value"] == 2.5
    assert t.loc[("a", "wall_min"), "value"] == 12.5 and t.loc[("b", "ratio_threads"), "device"] == "cuda"
    assert set(t.loc["a"].index) == {"ratio", "engine_img_s", "gemm_gflop_s", "fraction_of_gemm",
                                     "wall_min", "target_min"}
    with pytest.raises(DDLibError, match="no benchmark results"):
        benchmarks_table(tmp_path / "empty")


def test_profile_and_regime_tables_list_the_registries():
    assert {"smoke", "default", "paper"} <= set(profiles_table().columns) | set(profiles_table().index)
    assert {"hl", "sl", "slkd", "mt", "slkd_stored"} <= set(regimes_table().index)


def test_profile_table_never_reads_as_the_chapters_grids():
    """The contradiction a reader found: chapter 1's profile table gave budgets the chapters do not use.
    Fields a chapter grid overrides are labelled as the defaults of a grid naming none."""
    from ddlib.chapters.grids import CHAPTERS

    t = profiles_table()
    for field in ("methods", "ipcs", "regimes", "budgets", "seeds"):
        assert field not in t.index and f"{field} (a grid naming none)" in t.index
    # every chapter grid that names no budgets falls back to exactly what the table shows
    for ch in CHAPTERS.names():
        for prof, g in CHAPTERS.get(ch).items():
            if not g.get("budgets"):
                shown = t.loc["budgets (a grid naming none)", prof]
                assert shown == ", ".join(map(str, PROFILES.get(prof).budgets)), (ch, prof)


def test_tables_show_docstrings_without_rst_markup():
    from ddlib.analysis.overview import methods_table

    for text in list(regimes_table()["labels"]) + list(methods_table()["what it does"]):
        assert "``" not in text, text
