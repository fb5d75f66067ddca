"""set_quality_table on stored digits sets embedded by a 1-epoch teacher."""
from __future__ import annotations

import json

import pandas as pd
import pytest

import ddlib
from ddlib.config import RunConfig, config_hash
from ddlib.quality_study import set_quality_table
from ddlib.registry import DDLibError
from ddlib.runner import build_key, condensed_set, validate
from ddlib.store import Store
from ddlib.teachers import get_teacher


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, digits, fast_teacher_profile):
    """One 1-epoch digits teacher for the module, cached in its own temporary store."""
    model, _ = get_teacher(digits, fast_teacher_profile, Store(tmp_path_factory.mktemp("teacher")))
    return model


def test_set_quality_table_full_pool_and_random(home, digits, teacher):
    cfg = validate(RunConfig("digits", "random", 2, "hl", 1.0, 0, "smoke"))
    images, labels, _, _ = condensed_set(cfg, digits, home)
    # the whole train pool stored as a "condensed set" of its own
    full_key = config_hash({"test": "full pool", "data": digits.meta.fingerprint, "version": ddlib.__version__})
    home.save_artifact("condensed", full_key, {"images": digits.train_x.cpu(), "labels": digits.train_y.cpu()})
    # a store-like row of the same random set under another regime: same build key, one table row
    row = {"key": "x", "variant": "random", "config_json": json.dumps(
        RunConfig("digits", "random", 2, "slkd", 5.0, 0, "smoke").resolved().as_dict())}
    df = set_quality_table(home, digits, teacher, [cfg, row, full_key])
    assert len(df) == 2
    rnd, full = df.iloc[0], df.iloc[1]
    assert (rnd["method"], rnd["family"], rnd["ipc"], rnd["seed"]) == ("random", "coreset", 2, 0)
    assert rnd["build_key"] == build_key(cfg) and rnd["n_syn"] == 20 == len(images)
    assert rnd["n_real"] == full["n_real"] == full["n_syn"] == len(digits.train_y)
    assert pd.isna(full["method"]) and full["build_key"] == full_key
    assert full["coverage"] == 1.0 and full["precision"] == 1.0 and full["recall"] == 1.0
    assert abs(full["fd"]) < 1e-6 * rnd["fd"] and abs(full["mmd2"]) < 2 / len(digits.train_y)
    assert rnd["coverage"] < 1.0 and rnd["fd"] > 0
    assert 1.0 <= rnd["vendi"] <= rnd["vendi_centred"] <= 20 and rnd["mean_pdist"] > 0
    again = set_quality_table(home, digits, teacher, pd.DataFrame([row]))
    pd.testing.assert_frame_equal(again, df.iloc[[0]].reset_index(drop=True).assign(variant="random"))


def test_set_quality_table_missing_set(home, digits, teacher):
    with pytest.raises(DDLibError, match="no stored condensed set"):
        set_quality_table(home, digits, teacher, [RunConfig("digits", "random", 1, "hl", 1.0, 3, "smoke")])


def test_study_quality_and_correlation(home, digits, teacher):
    from ddlib.quality_study import quality_vs_accuracy, study_quality_table
    from ddlib.study import Study

    st = Study.from_params(profile="smoke", methods=["random"], ipcs=[1], regimes=["hl"],
                           budgets=[1.0, 2.0], seeds=[0, 1, 2])
    for cfg in st.configs():
        condensed_set(validate(cfg), digits, home)
    q = study_quality_table(st, home, teacher=teacher)
    assert list(q["seed"]) == [0, 1, 2] and set(q["n_syn"]) == {10} and q["fd"].nunique() == 3
    fd = dict(zip(q["seed"], q["fd"]))
    # made-up accuracies: falling with FD at budget 1, rising at budget 2
    res = pd.DataFrame([{"config_json": json.dumps(c.resolved().as_dict()), "regime": c.regime,
                         "budget": c.budget, "accuracy": (1 - fd[c.seed]) if c.budget == 1.0 else fd[c.seed]}
                        for c in st.configs()])
    corr = quality_vs_accuracy(res, q, metrics=("fd",), n_boot=200).set_index("budget")
    assert list(corr.loc[1.0, ["rho", "low", "high", "n"]]) == [-1.0, -1.0, -1.0, 3]
    assert list(corr.loc[2.0, ["rho", "low", "high", "n"]]) == [1.0, 1.0, 1.0, 3]
    with pytest.raises(DDLibError, match="no quality row"):
        quality_vs_accuracy(res, q.iloc[:2], metrics=("fd",))
