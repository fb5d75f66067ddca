"""Saturation / convergence analyses on tiny hand-made frames with known answers."""
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
from ddlib.analysis.tables import gains


def _rows(method, regime, ipc, accs):
    """accs: {budget: [acc per seed]}"""
    return [{"method": method, "regime": regime, "ipc": ipc, "budget": b, "seed": s, "accuracy": a}
            for b, vals in accs.items() for s, a in enumerate(vals)]


FULL = pd.DataFrame(_rows("random", "hl", 200, {1.0: [0.80, 0.82, 0.84], 4.0: [0.90, 0.90, 0.90]}))
SUB = pd.DataFrame(_rows("random", "hl", 1, {1.0: [0.40, 0.42, 0.44], 4.0: [0.50, 0.50, 0.50]})
                   + _rows("random", "slkd", 1, {1.0: [0.70, 0.72, 0.74], 4.0: [0.85, 0.86, 0.87]}))


def test_gap_to_full_pairs_by_budget_and_seed():
    g = gap_to_full(SUB, FULL).set_index(["regime", "budget"])
    assert g.loc[("hl", 1.0), "gap"] == pytest.approx(40.0)
    # every pair differs by exactly 40 points: the paired interval collapses on it
    assert g.loc[("hl", 1.0), "ci_low"] == pytest.approx(40.0)
    assert g.loc[("hl", 1.0), "ci_high"] == pytest.approx(40.0)
    assert g.loc[("slkd", 4.0), "gap"] == pytest.approx(4.0)
    assert g.loc[("slkd", 4.0), "fraction"] == pytest.approx(0.86 / 0.90)
    assert (g["pairs"] == 3).all()
    assert gap_table(SUB, FULL).loc[("hl", "random", 1), "budget 1"] == "40.0 [40.0, 40.0]"


def test_saturation_sentence_counts_sets_near_full_data():
    s = saturation_sentence(SUB, FULL, near=0.9)
    assert "largest budget (4 full-pool epochs)" in s
    assert "under HL, 0 of 1 sets" in s and "under SLKD, 1 of 1 sets" in s
    assert "reaches 56%" in s  # 0.50 / 0.90


def test_convergence_gain_between_consecutive_budgets():
    c = convergence(SUB).set_index("regime")
    assert c.loc["hl", "gain"] == pytest.approx(8.0)  # (50-40, 50-42, 50-44) -> mean 8
    assert c.loc["hl", "ci_low"] > 0
    flat = pd.DataFrame(_rows("dm", "hl", 10, {1.0: [0.5, 0.6, 0.4], 4.0: [0.6, 0.5, 0.4]}))
    c2 = convergence(flat)
    assert c2["gain"].iloc[0] == pytest.approx(0.0)
    assert c2["ci_low"].iloc[0] <= 0 <= c2["ci_high"].iloc[0]
    s = convergence_sentence(pd.concat([SUB[SUB.regime == "hl"], flat]), distillers=["dm"])
    assert "still improve with 95% confidence are: random (coreset)" in s
    assert "not distinguishable from zero: dm (distilled)" in s


def test_beats_random_sentence():
    df = pd.concat([SUB[SUB.regime == "hl"],
                    pd.DataFrame(_rows("dm", "hl", 1, {1.0: [0.50, 0.52, 0.54], 4.0: [0.45, 0.46, 0.47]}))])
    s = beats_random_sentence(gains(df), ["dm"])
    assert "dm in 1 of 2" in s and "Significantly below random somewhere: dm" in s


def test_saturation_chart_has_full_data_layer():
    spec = saturation_chart(SUB, FULL).to_dict()
    layers = spec["spec"]["layer"]
    assert len(layers) == 3 and layers[0]["mark"]["strokeDash"] == [4, 3]
