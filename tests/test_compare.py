"""Best distiller against best coreset on hand-made frames."""
import pandas as pd
import pytest

from ddlib.analysis.compare import duel_sentence, family_duel


def _rows(method, regime, accs):
    return [{"method": method, "regime": regime, "ipc": 10, "budget": 2.0, "seed": s, "accuracy": a}
            for s, a in enumerate(accs)]


def test_family_duel_picks_each_familys_best_and_pairs_by_seed():
    df = pd.DataFrame(_rows("random", "hl", [0.50, 0.52, 0.54]) + _rows("herding", "hl", [0.60, 0.61, 0.62])
                      + _rows("dm", "hl", [0.70, 0.71, 0.72]) + _rows("dc", "hl", [0.65, 0.66, 0.67])
                      + _rows("random", "slkd", [0.80, 0.80, 0.80]) + _rows("dm", "slkd", [0.79, 0.81, 0.80]))
    d = family_duel(df).set_index("regime")
    assert d.loc["hl", "best_distiller"] == "dm" and d.loc["hl", "best_coreset"] == "herding"
    assert d.loc["hl", "gain"] == pytest.approx(10.0)
    assert d.loc["hl", "verdict"] == "distilled"
    assert d.loc["slkd", "gain"] == pytest.approx(0.0) and d.loc["slkd", "verdict"] == "tie"
    s = duel_sentence(family_duel(df))
    assert "under HL the best distilled set beats the best coreset in 1 of 1" in s
    assert "under SLKD the best distilled set beats the best coreset in 0 of 1 settings, loses in 0 and ties in 1" in s


def test_family_duel_needs_both_families():
    df = pd.DataFrame(_rows("random", "hl", [0.5, 0.6]))
    assert family_duel(df).empty
    assert duel_sentence(family_duel(df)).startswith("No setting")
