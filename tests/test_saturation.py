"""Saturation / convergence analyses on tiny hand-made frames with known answers."""
import numpy as np
import pandas as pd
import pytest

from ddlib.analysis.saturation import (
    beats_random_sentence,
    convergence,
    convergence_sentence,
    gap_table,
    gap_to_full,
    saturation_chart,
    saturation_sentence,
)
from ddlib.analysis.stats import paired_interval
from ddlib.analysis.tables import gains


def _rows(method, regime, ipc, accs):
    """accs: {budget: [acc per seed]}"""
    return [{"method": method, "regime": regime, "ipc": ipc, "budget": b, "seed": s, "accuracy": a}
            for b, vals in accs.items() for s, a in enumerate(vals)]


# five seeds; the seed noise is shared by the full-data runs only in part, so paired gaps are noisy
FULL = pd.DataFrame(_rows("random", "hl", 200, {1.0: [0.80, 0.82, 0.84, 0.81, 0.83],
                                                4.0: [0.90, 0.91, 0.89, 0.90, 0.90]}))
SUB = pd.DataFrame(_rows("random", "hl", 1, {1.0: [0.40, 0.43, 0.44, 0.40, 0.43],
                                             4.0: [0.50, 0.52, 0.49, 0.51, 0.50]})
                   + _rows("random", "slkd", 1, {1.0: [0.70, 0.72, 0.74, 0.71, 0.73],
                                                 4.0: [0.86, 0.87, 0.86, 0.86, 0.85]}))


def test_gap_to_full_pairs_by_budget_and_seed():
    g = gap_to_full(SUB, FULL).set_index(["regime", "budget"])
    d = [80 - 40, 82 - 43, 84 - 44, 81 - 40, 83 - 43]
    iv = paired_interval(d)
    assert g.loc[("hl", 1.0), "gap"] == pytest.approx(iv.mean)
    assert (g.loc[("hl", 1.0), "ci_low"], g.loc[("hl", 1.0), "ci_high"]) == pytest.approx((iv.low, iv.high))
    assert g.loc[("slkd", 4.0), "gap"] == pytest.approx(4.0)
    assert g.loc[("slkd", 4.0), "fraction"] == pytest.approx(0.86 / 0.90)
    assert (g["pairs"] == 5).all()
    assert gap_table(SUB, FULL).loc[("hl", "random", 1), "budget 1"] == iv.cell(".1f")
    assert iv.cell(".1f").endswith("(n=5)")


def test_saturation_sentence_counts_sets_shown_near_full_data():
    s = saturation_sentence(SUB, FULL, near=0.9)
    assert "largest budget (4 full-pool epochs; 5 seeds" in s
    # tolerance 9 points: slkd's gap 4 +- 0.6 is shown below it, hl's 40 is not
    assert "under HL, 0 of 1 sets" in s and "under SLKD, 1 of 1 sets" in s
    assert "reaches 56% on average" in s  # 0.504 / 0.90
    two = saturation_sentence(SUB[SUB.seed < 2], FULL, near=0.9)
    assert "under SLKD, 0 of 1 sets" in two   # two seeds: no test, nothing is shown


def test_convergence_improves_saturates_or_stays_undecided():
    c = convergence(SUB).set_index("regime")
    assert c.loc["hl", "gain"] == pytest.approx(np.mean([10, 9, 5, 11, 7]))
    assert c.loc["hl", "ci_low"] > 0
    flat = pd.DataFrame(_rows("dm", "hl", 10, {1.0: [0.60, 0.61, 0.60, 0.62, 0.61],
                                               4.0: [0.603, 0.608, 0.604, 0.617, 0.612]}))
    noisy = pd.DataFrame(_rows("herding", "hl", 10, {1.0: [0.5, 0.6, 0.4, 0.55, 0.45],
                                                     4.0: [0.6, 0.5, 0.45, 0.4, 0.6]}))
    s = convergence_sentence(pd.concat([SUB[SUB.regime == "hl"], flat, noisy]), distillers=["dm"])
    assert "the sets that still improve are: random (coreset)" in s
    assert "shown to have saturated (gain within ±1 point): dm (distilled)" in s
    assert "undecided: herding (coreset)" in s and "Holm-adjusted over the 3 sets" in s


def test_beats_random_sentence():
    df = pd.concat([SUB[SUB.regime == "hl"],
                    pd.DataFrame(_rows("dm", "hl", 1, {1.0: [0.50, 0.52, 0.55, 0.50, 0.53],
                                                       4.0: [0.45, 0.46, 0.44, 0.45, 0.47]}))])
    s = beats_random_sentence(gains(df), ["dm"])
    assert "dm beats it in 1 of 2, matches it in 0, is below it in 1" in s and "(5 paired seeds;" in s


def test_saturation_chart_has_full_data_layer():
    spec = saturation_chart(SUB, FULL).to_dict()
    layers = spec["spec"]["layer"]
    assert len(layers) == 3 and layers[0]["mark"]["strokeDash"] == [4, 3]


def test_saturation_chart_gives_each_panel_its_own_rows():
    """No layer carries its own data (a faceted layer with data is drawn whole in every panel), and the
    top-level rows of each (IPC, regime) panel are that panel's set means plus one full-data curve."""
    chart = saturation_chart(SUB, FULL)
    spec = chart.to_dict()
    assert all("data" not in layer for layer in spec["spec"]["layer"])
    d = chart.data
    for (ipc, regime), g in d.groupby(["ipc", "regime"]):
        sets, full = g[g["kind"] == "set"], g[g["kind"] == "full"]
        own = SUB[(SUB["ipc"] == ipc) & (SUB["regime"].map({"hl": "HL", "slkd": "SL+KD"}) == regime)]
        assert sorted(sets["budget"]) == sorted(own["budget"].unique())
        assert sets.set_index("budget")["mean"].round(6).to_dict() == \
            (own.groupby("budget")["accuracy"].mean() * 100).round(6).to_dict()
        assert full.set_index("budget")["mean"].round(6).to_dict() == \
            (FULL.groupby("budget")["accuracy"].mean() * 100).round(6).to_dict()
    assert len(d.groupby(["ipc", "regime"])) == len(SUB.groupby(["ipc", "regime"]))
    filters = [layer["transform"][0]["filter"] for layer in spec["spec"]["layer"]]
    assert filters == ["(datum.kind === 'full')", "(datum.kind === 'set')", "(datum.kind === 'set')"]
    # one y title, not "test accuracy (%), low, test accuracy (%)"
    assert {layer["encoding"]["y"]["title"] for layer in spec["spec"]["layer"]} == {"test accuracy (%)"}
