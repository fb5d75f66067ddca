"""Best distiller against best coreset on hand-made noisy frames: chosen on validation, reported on test."""
import numpy as np
import pandas as pd
import pytest

from ddlib.analysis.compare import duel_sentence, family_duel
from ddlib.core.registry import DDLibError

NOISE = (0.004, -0.006, 0.001, 0.007, -0.003)   # a method's own per-seed noise (accuracy fraction)


def _rows(method, regime, test, val=None, shift=0, ipc=10, scale=1.0):
    """Five seeds around ``test`` (and ``val``, default = test) with rotated noise per method."""
    val = test if val is None else val
    return [{"method": method, "regime": regime, "ipc": ipc, "budget": 2.0, "seed": s,
             "accuracy": test + scale * NOISE[(s + shift) % 5], "val_accuracy": val + NOISE[(s + shift + 2) % 5]}
            for s in range(5)]


def test_family_duel_picks_each_familys_best_on_validation_and_pairs_by_seed():
    df = pd.DataFrame(_rows("random", "hl", 0.50, shift=0) + _rows("herding", "hl", 0.60, shift=1)
                      + _rows("dm", "hl", 0.70, shift=2) + _rows("dc", "hl", 0.65, shift=3)
                      + _rows("random", "slkd", 0.80, shift=0, scale=0.3) + _rows("dm", "slkd", 0.801, shift=4, scale=0.3))
    d = family_duel(df).set_index("regime")
    assert d.loc["hl", "best_distiller"] == "dm" and d.loc["hl", "best_coreset"] == "herding"
    assert d.loc["hl", "gain"] == pytest.approx(10.0, abs=0.01) and d.loc["hl", "pairs"] == 5
    assert d.loc["hl", "ci_low"] < 10 < d.loc["hl", "ci_high"]
    assert d.loc["hl", "verdict"] == "distilled"
    assert abs(d.loc["slkd", "gain"]) < 0.5 and d.loc["slkd", "verdict"] == "tie"   # within the 1-point margin
    s = duel_sentence(family_duel(df))
    assert "chosen on validation accuracy" in s
    assert "under HL the best distilled set beats the best coreset in 1 of 1" in s
    assert "under SLKD the best distilled set beats the best coreset in 0 of 1 settings, loses in 0, is within" in s


def test_the_winner_does_not_depend_on_test_accuracy():
    """dc is best on validation, dm on test: the duel takes dc; scrambling test accuracy changes no choice."""
    df = pd.DataFrame(_rows("random", "hl", 0.50, shift=0) + _rows("dm", "hl", 0.70, val=0.60, shift=2)
                      + _rows("dc", "hl", 0.65, val=0.66, shift=3))
    d = family_duel(df)
    assert d["best_distiller"].tolist() == ["dc"]
    garbage = df.assign(accuracy=np.random.default_rng(0).permutation(df["accuracy"].to_numpy()))
    g = family_duel(garbage)
    assert g[["best_distiller", "best_coreset"]].equals(d[["best_distiller", "best_coreset"]])
    with pytest.raises(DDLibError, match="val_accuracy"):
        family_duel(df.drop(columns="val_accuracy"))


def test_noisy_duel_is_unclear_and_two_seeds_give_no_interval():
    noisy = pd.DataFrame(_rows("random", "hl", 0.50, shift=0)
                         + [dict(r, accuracy=r["accuracy"] + 0.03 * (-1) ** r["seed"])
                            for r in _rows("dm", "hl", 0.51, shift=1)])
    assert family_duel(noisy)["verdict"].tolist() == ["unclear"]
    two = pd.DataFrame([r for r in _rows("random", "hl", 0.5) + _rows("dm", "hl", 0.7, shift=1) if r["seed"] < 2])
    d = family_duel(two)
    assert d["pairs"].tolist() == [2] and np.isnan(d["ci_low"].iloc[0]) and d["verdict"].tolist() == ["unclear"]


def test_family_duel_needs_both_families():
    df = pd.DataFrame(_rows("random", "hl", 0.5))
    assert family_duel(df).empty
    assert duel_sentence(family_duel(df)).startswith("No setting")


def test_duel_view_reads_without_a_raw_index():
    from ddlib.analysis.compare import duel_view

    duel = pd.DataFrame([{"regime": "hl", "ipc": 10, "budget": 6.4, "best_distiller": "dm", "best_coreset": "herding",
                          "gain": 0.39, "ci_low": -0.83, "ci_high": 1.61, "pairs": 5, "verdict": "unclear"}])
    v = duel_view(duel)
    assert list(v.index.names) == ["regime", "IPC", "budget"]
    assert v.iloc[0].tolist() == ["dm", "herding", "+0.4 [-0.8, +1.6] (n=5)", "unclear"]
