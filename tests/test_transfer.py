"""The transfer analysis (ddlib.analysis.transfer) on frames with known answers, and the transfer chapter's grid."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ddlib.analysis import transfer
from ddlib.analysis.stats import paired_interval
from ddlib.chapters import study
from ddlib.chapters.grids import chapter_grid
from ddlib.core.config import PROFILES

NOISE = np.array([0.3, -0.2, 0.1, -0.4, 0.2]) / 100  # per seed, shared by every method: pairs cancel it


def _frame(effects, seeds=5, models=("convnet", "mnet"), regimes=("hl", "slkd")):
    """Rows whose accuracy is 0.5 + effect[(method, model)] + a per-seed jitter of the method."""
    rows = []
    for model in models:
        for regime in regimes:
            for method in ("random", "dm", "herding"):
                for s in range(seeds):
                    jit = NOISE[s] * (1 + 0.5 * ("dm", "herding", "random").index(method))
                    rows.append(dict(model=model, method=method, regime=regime, seed=s, ipc=10, budget=1.5,
                                     accuracy=0.5 + effects.get((method, model), 0.0) + jit))
    return pd.DataFrame(rows)


EFFECTS = {("dm", "convnet"): 0.05, ("dm", "mnet"): 0.0, ("herding", "convnet"): 0.03, ("herding", "mnet"): 0.03}


def test_gains_are_paired_on_the_same_architecture():
    df = _frame(EFFECTS)
    g = transfer.transfer_gains(df).set_index(["regime", "method", "model"])
    r = g.loc[("hl", "dm", "convnet")]
    dm = df[(df.method == "dm") & (df.model == "convnet") & (df.regime == "hl")].accuracy.to_numpy()
    rnd = df[(df.method == "random") & (df.model == "convnet") & (df.regime == "hl")].accuracy.to_numpy()
    iv = paired_interval(dm * 100, rnd * 100)
    assert r["gain"] == pytest.approx(5.0) and (r["ci_low"], r["ci_high"]) == pytest.approx((iv.low, iv.high))
    assert r["pairs"] == 5 and r["accuracy"] == pytest.approx(dm.mean() * 100)
    assert g.loc[("hl", "dm", "convnet"), "verdict"] == "greater"
    assert g.loc[("hl", "dm", "mnet"), "verdict"] == "same"  # TOST: within 1 point of random
    assert g.loc[("hl", "herding", "mnet"), "verdict"] == "greater"
    # a model worse for everyone does not count against a set: only the gain on it does
    worse = _frame({**EFFECTS, **{(m, "mnet"): EFFECTS.get((m, "mnet"), 0.0) - 0.2
                                  for m in ("random", "dm", "herding")}})
    assert np.allclose(transfer.transfer_gains(worse)["gain"], transfer.transfer_gains(df)["gain"])


def test_gaps_show_a_set_that_only_suits_its_home_network():
    gaps = transfer.transfer_gaps(_frame(EFFECTS), home="convnet").set_index(["regime", "method", "model"])
    assert set(gaps.index.get_level_values("model")) == {"mnet"}
    assert gaps.loc[("hl", "dm", "mnet"), "gap"] == pytest.approx(-5.0)
    assert gaps.loc[("hl", "dm", "mnet"), "verdict"] == "less"
    assert gaps.loc[("hl", "herding", "mnet"), "gap"] == pytest.approx(0.0, abs=1e-9)
    assert gaps.loc[("hl", "herding", "mnet"), "verdict"] == "same"


def test_claim_verdicts():
    df = _frame(EFFECTS)
    dm = transfer.transfer_claim(df, "dm", home="convnet")
    assert dm["verdict"] == "against" and dm["settings"] == 2 and dm["against"] == 2
    herding = transfer.transfer_claim(df, "herding", home="convnet")
    assert herding["verdict"] == "support" and herding["support"] == 2
    assert list(herding["table"]["model"]) == ["mnet", "mnet"]
    few = transfer.transfer_claim(_frame(EFFECTS, seeds=2), "herding", home="convnet")
    assert few["verdict"] == "unclear" and few["unclear"] == 2  # no test below 3 pairs
    none = transfer.transfer_claim(df, "cim", home="convnet")
    assert none["verdict"] == "no data" and "no verdict" in transfer.claim_sentence(none, "cim", "convnet")
    mixed = transfer.transfer_claim(_frame({**EFFECTS, ("dm", "vit"): 0.05}, models=("convnet", "mnet", "vit")),
                                    "dm", home="convnet")
    assert mixed["verdict"] == "mixed" and (mixed["support"], mixed["against"]) == (2, 2)
    claims = transfer.transfer_claims(df, home="convnet").set_index("method")
    assert claims.loc["dm", "verdict"] == "against" and claims.loc["herding", "verdict"] == "support"
    assert "support" in transfer.claim_sentence(herding, "herding", "convnet")


def test_table_cells_carry_n_and_intervals():
    t = transfer.transfer_table(_frame(EFFECTS), models=["mnet", "convnet"])
    assert list(t.columns) == ["mnet", "convnet"]
    cell = t.loc[("hl", 10, 1.5, "dm"), "convnet"]
    assert cell.startswith("55.") and "(n=5)" in cell and " | +5.0 [" in cell
    assert " | " not in t.loc[("hl", 10, 1.5, "random"), "convnet"]
    few = transfer.transfer_table(_frame(EFFECTS, seeds=2))
    assert "no interval" in few.loc[("hl", 10, 1.5, "dm"), "convnet"]


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_chapter_reuses_chapters_three_and_seven_on_the_profile_student(profile):
    g = chapter_grid("transfer", profile)
    assert g["models"][0] == PROFILES.get(profile).model and len(g["models"]) >= 2
    own = {c.key() for c in study("transfer", profile).configs() if c.model == g["models"][0]}
    earlier = {c.key() for ch in ("distilled_vs_coresets", "teacher_based") for c in study(ch, profile).configs()}
    assert own and own <= earlier
    assert set(chapter_grid("transfer", "paper")["models"]) >= {"resnet18", "vgg11_bn", "vit_tiny"}
