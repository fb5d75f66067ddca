"""Reader-facing helpers of ddlib.analysis.tables on hand-made rows: decimals and paired variant duels."""
import pandas as pd
import pytest

import ddlib.analysis.tables as tables


def test_sig_decimals():
    assert [tables.sig_decimals([v]) for v in (0.0123, 1.23, 20.8, 123.0, -41.0)] == [4, 2, 1, 0, 1]
    assert tables.sig_decimals([0.5, -0.03, float("nan")]) == 3  # the largest |value| decides
    assert tables.sig_decimals([0.0, float("nan")]) == 2 and tables.sig_decimals([0.0123], 2) == 3


def _runs() -> pd.DataFrame:
    """Three seeds at IPC 1, budget 2 (accuracy in points before /100): known paired differences."""
    r = [50.0, 52.0, 54.0]
    acc = {"random": r,
           "class_mean": [x + d for x, d in zip(r, (25.0, 24.0, 26.0))],
           "dd (init=fixed)": [x + d for x, d in zip(r, (0.2, 0.1, 0.3))],
           "dd (init=random)": [x + d for x, d in zip(r, (-3.0, 0.0, 4.0))]}
    return pd.DataFrame([{"variant": v, "method": v.split(" ")[0], "regime": "hl", "ipc": 1, "budget": 2.0,
                          "seed": s, "accuracy": a / 100} for v, accs in acc.items() for s, a in enumerate(accs)])


def test_variant_duels_known_answer():
    d = tables.variant_duels(_runs(), ["dd (init=fixed)", "dd (init=random)"], ["random", "class_mean"])
    assert list(d.columns) == ["variant", "rival", "regime", "ipc", "budget", "mean", "rival_mean", "gain",
                               "ci_low", "ci_high", "pairs", "verdict"]
    assert list(zip(d["variant"], d["rival"])) == [("dd (init=fixed)", "random"), ("dd (init=fixed)", "class_mean"),
                                                 ("dd (init=random)", "random"), ("dd (init=random)", "class_mean")]
    # differences (points): +0.2 +0.1 +0.3 (sd 0.1); -24.8 -23.9 -25.7 (sd 0.9); -3 0 +4; -28 -24 -22;
    # 95% half-width t(0.975, 2) = 4.3027 x sd / sqrt(3)
    assert d["gain"].tolist() == pytest.approx([0.2, -24.8, 1 / 3, -74 / 3])
    assert d["ci_low"].tolist() == pytest.approx([-0.0484, -27.0357, -8.3907, -32.2558], abs=1e-4)
    assert d["ci_high"].tolist() == pytest.approx([0.4484, -22.5643, 9.0574, -17.0775], abs=1e-4)
    assert d["mean"].tolist() == pytest.approx([52.2, 52.2, 52 + 1 / 3, 52 + 1 / 3])
    assert d["rival_mean"].tolist() == pytest.approx([52.0, 77.0, 52.0, 77.0])
    assert d["pairs"].tolist() == [3, 3, 3, 3]
    # +0.2: 90% interval [0.03, 0.37] inside ±1 (TOST p 0.0026, x4 by Holm) -> same, though its 95% interval
    # covers 0; -24.8 and -24.7: two-sided p 0.0004 and 0.005 (x4, x3) -> less; -3..+4: neither
    assert d["verdict"].tolist() == ["same", "less", "unclear", "less"]
    up = tables.variant_duels(_runs(), ["class_mean"], ["dd (init=random)"])
    assert up["verdict"].tolist() == ["greater"] and up["gain"].tolist() == pytest.approx([74 / 3])
    with pytest.raises(ValueError, match="no rows with variant 'dd'"):
        tables.variant_duels(_runs(), ["dd"], ["random"])


def test_variant_duels_pairs_by_seed_and_setting():
    df = _runs()
    extra = df[df["variant"] == "random"].assign(ipc=385)  # the full pool: no dd set to pair with
    short = df[~((df["variant"] == "class_mean") & (df["seed"] == 2))]  # one rival seed missing
    d = tables.variant_duels(pd.concat([short, extra]), ["dd (init=fixed)"], ["random", "class_mean"])
    assert d["ipc"].tolist() == [1, 1] and d["pairs"].tolist() == [3, 2]
    # two pairs: no interval, no test
    assert d["verdict"].tolist()[1] == "unclear" and pd.isna(d["ci_low"].iloc[1])


def test_duel_sentences():
    d = tables.variant_duels(_runs(), ["dd (init=fixed)", "dd (init=random)"], ["random", "class_mean"])
    lines = tables.duel_sentences(d).split("\n")
    assert lines[:6] == [
        "At IPC 1, budget 2:", "",
        "* **dd (init=fixed)** at 52.2 % is **within ±1 point of** random at 52.0 %: +0.2 points [-0.0, +0.4] (n=3).",
        "* **dd (init=fixed)** at 52.2 % is **below** class_mean at 77.0 %: -24.8 points [-27.0, -22.6] (n=3).",
        "* **dd (init=random)** at 52.3 % is **undecided** against random at 52.0 %: +0.3 points [-8.4, +9.1] (n=3).",
        "* **dd (init=random)** at 52.3 % is **below** class_mean at 77.0 %: -24.7 points [-32.3, -17.1] (n=3)."]
    assert "Holm-adjusted over these 4 comparisons" in lines[-1]
    up = tables.duel_sentences(tables.variant_duels(_runs(), ["class_mean"], ["random"]))
    assert "* **class_mean** at 77.0 % is **above** random at 52.0 %: +25.0 points [+22.5, +27.5] (n=3)." in up
    # one heading per setting: budgets (and regimes, when several) before variants
    two = pd.concat([_runs(), _runs().assign(regime="sl"), _runs().assign(budget=4.0)])
    t = tables.duel_sentences(tables.variant_duels(two, ["class_mean", "dd (init=fixed)"], ["random"])).split("\n")
    assert [x for x in t if x.startswith("At")] == ["At hl, IPC 1, budget 2:", "At hl, IPC 1, budget 4:",
                                                      "At sl, IPC 1, budget 2:"]
    assert t[2].startswith("* **class_mean**") and t[3].startswith("* **dd (init=fixed)**")
    one = tables.duel_sentences(tables.variant_duels(_runs().query("seed == 0"), ["class_mean"], ["random"]))
    assert "is **undecided** against random at 50.0 %: +25.0 points (n=1: no interval)." in one
    assert tables.duel_sentences(d.iloc[:0]) == "No paired runs of these sets are stored yet."
