"""set_quality_table on stored digits sets embedded by a 1-epoch teacher."""
from __future__ import annotations

import json

import pandas as pd
import pytest

import ddlib
from ddlib.analysis.quality_study import set_quality_table
from ddlib.core.config import RunConfig, config_hash
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.engine.teachers import get_teacher
from ddlib.methods.build import build_key, condensed_set
from ddlib.run.runner import validate


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, digits, fast_teacher_profile):
    """One 1-epoch digits teacher for the module, cached in its own temporary store."""
    model, _ = get_teacher(digits, fast_teacher_profile, Store(tmp_path_factory.mktemp("teacher")), seed=0)
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
    from ddlib.analysis.quality_study import quality_vs_accuracy, study_quality_table
    from ddlib.run.study import Study

    st = Study.from_params(profile="smoke", methods=["random"], ipcs=[1], regimes=["hl"],
                           budgets=[1.0, 2.0], seeds=[0, 1, 2])
    for cfg in st.configs():
        condensed_set(validate(cfg), digits, home)
    q = study_quality_table(st, digits, teacher, home)
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


def _toy_quality() -> pd.DataFrame:
    """Three coreset and three distilled methods, two seeds each, at one IPC; known metric values."""
    rows = []
    for fam, method, cov, fd, pd_ in (("coreset", "random", (0.1, 0.3), 9.0, 1.0),
                                       ("coreset", "herding", (0.3, 0.3), 8.0, 2.0),
                                       ("coreset", "kcenter", (0.2, 0.3), 8.5, 1.5),
                                       ("distill", "dm", (0.5, 0.7), 4.0, 1.0),
                                       ("distill", "dc", (0.7, 0.7), 5.0, 2.0),
                                       ("distill", "mtt", (0.6, 0.7), 4.5, 1.5)):
        for seed, c in enumerate(cov):
            rows.append({"method": method, "family": fam, "ipc": 10, "seed": seed, "coverage": c, "fd": fd,
                         "mean_pdist": pd_ + 0.5 * seed, "mmd2": 0.0012})
    return pd.DataFrame(rows)


def test_quality_summary_means_over_seeds():
    from ddlib.analysis.quality_study import quality_summary

    s = quality_summary(_toy_quality().assign(fd=[9.87654] * 12), metrics=("coverage", "mmd2", "fd"))
    assert s.loc[("coreset", "random", 10)].tolist() == [0.2, 0.0012, 9.877, 2]  # 4 significant digits
    assert list(s.columns) == ["coverage", "mmd2", "fd", "sets"]
    assert list(s.index.get_level_values("method")) == ["herding", "kcenter", "random", "dc", "dm", "mtt"]



def test_quality_view_one_row_per_metric_scaled_mmd_and_seed_counts():
    from ddlib.analysis.quality_study import quality_view

    q = pd.concat([_toy_quality(), _toy_quality().query("method == 'dm'").assign(ipc=1, coverage=0.05)])
    v = quality_view(q, metrics=("coverage", "fd", "mmd2", "mean_pdist"))
    assert list(v.index.names) == ["IPC", "metric"]
    assert list(v.index) == [(1, "coverage"), (1, "fd"), (1, "mmd2 ×10³"), (1, "mean_pdist"), (1, "seeds (n)"),
                             (10, "coverage"), (10, "fd"), (10, "mmd2 ×10³"), (10, "mean_pdist"), (10, "seeds (n)")]
    assert list(v.columns) == [("coresets", "herding"), ("coresets", "kcenter"), ("coresets", "random"),
                               ("distilled", "dc"), ("distilled", "dm"), ("distilled", "mtt")]
    # each row to 3 significant digits of its largest value: coverage 0.700 -> 3 decimals, fd 9.00 -> 2
    assert v.loc[(10, "coverage")].tolist() == ["0.300", "0.250", "0.200", "0.700", "0.600", "0.650"]
    assert v.loc[(10, "fd")].tolist() == ["8.00", "8.50", "9.00", "5.00", "4.00", "4.50"]
    assert v.loc[(10, "mmd2 ×10³")].tolist() == ["1.20"] * 6  # 0.0012 x 10³
    assert v.loc[(10, "seeds (n)")].tolist() == ["2"] * 6
    # only dm has sets at IPC 1
    assert v.loc[(1, "coverage")].tolist() == ["–", "–", "–", "–", "0.0500", "–"]
    assert v.loc[(1, "seeds (n)")].tolist() == ["–", "–", "–", "–", "2", "–"]


def test_contrast_view_cells():
    from ddlib.analysis.quality_study import CONTRAST_CELL, contrast_view, family_contrast

    v = contrast_view(family_contrast(_toy_quality(), metrics=("coverage", "fd", "mmd2", "mean_pdist")))
    assert list(v.index.names) == ["IPC", "metric"] and list(v.index.get_level_values("metric")) == [
        "coverage", "fd", "mmd2 ×10³", "mean_pdist"]
    assert list(v.columns) == ["coresets", "distilled", CONTRAST_CELL, "ahead"]
    # Welch interval of coverage [0.2867, 0.5133] (test above); decimals: 2 significant digits of 0.51
    assert v.loc[(10, "coverage")].tolist() == ["0.250", "0.650", "+0.40 [+0.29, +0.51] (n=6)", "distilled"]
    assert v.loc[(10, "fd")].tolist() == ["8.50", "4.50", "-4.0 [-5.1, -2.9] (n=6)", "distilled"]
    # equal values in every set: no interval, not separated
    assert v.loc[(10, "mmd2 ×10³")].tolist() == ["1.20", "1.20", "+0.00 (n=6: no interval)", "—"]
    assert v.loc[(10, "mean_pdist"), "ahead"] == "—"
    assert contrast_view(pd.DataFrame()).empty

def test_family_contrast_known_answer():
    from ddlib.analysis.quality_study import contrast_sentence, family_contrast

    c = family_contrast(_toy_quality(), metrics=("coverage", "fd", "mean_pdist")).set_index("metric")
    # method means: coverage coreset 0.2, 0.3, 0.25 / distill 0.6, 0.7, 0.65 -> diff 0.4, Welch
    # se = sqrt(2 x 0.0025 / 3) = 0.0408, df = 4: 0.4 +- 2.776 x 0.0408 = [0.287, 0.513]
    assert c.loc["coverage", ["coreset", "distill", "n_coreset", "n_distill"]].tolist() == \
        pytest.approx([0.25, 0.65, 3, 3])
    assert c.loc["coverage", "diff"] == pytest.approx(0.4)
    assert (c.loc["coverage", "low"], c.loc["coverage", "high"]) == pytest.approx((0.2867, 0.5133), abs=1e-4)
    # distilled sets are closer to the real pool (lower FD): more representative
    assert c.loc["fd", "diff"] == pytest.approx(-4.0) and c.loc["fd", "more"] == "distill"
    assert c.loc["coverage", "more"] == "distill"
    # identical per-family values of mean_pdist: no difference
    assert c.loc["mean_pdist", "diff"] == 0.0 and c.loc["mean_pdist", "more"] == ""
    s = contrast_sentence(c.reset_index())
    assert s.startswith("* **IPC 10** (3 distillers vs 3 coreset methods): distilled sets are more representative "
                        "by coverage, fd; the other 1 of 3 metrics do not separate the families")
    assert s.endswith("distilled sets are clearly ahead in 2, the coresets in 0, and neither in 1.")
    tie = contrast_sentence(c.reset_index().assign(more=""))
    assert "no metric separates the families (Welch t-tests at 5%, Holm-adjusted over all 3)." in tie
    assert family_contrast(_toy_quality().query("family == 'coreset'"), metrics=("coverage",)).empty
    # two methods per family: the same gap is no longer shown once Holm counts three metrics
    two = family_contrast(_toy_quality().query("method not in ('kcenter', 'mtt')"), metrics=("coverage", "fd",
                                                                                        "mean_pdist"))
    assert set(two["more"]) == {""}


def test_correlation_table_and_sentence():
    from ddlib.analysis.quality_study import correlation_sentence, correlation_table

    corr = pd.DataFrame([
        {"regime": "hl", "budget": 2.0, "metric": "coverage", "rho": 0.5, "low": 0.1, "high": 0.8, "n": 12},
        {"regime": "hl", "budget": 2.0, "metric": "fd", "rho": -0.7, "low": -0.9, "high": -0.3, "n": 12},
        {"regime": "hl", "budget": 2.0, "metric": "vendi_centred", "rho": 0.2, "low": -0.3, "high": 0.6, "n": 12},
        {"regime": "mt", "budget": 2.0, "metric": "coverage", "rho": float("nan"), "low": float("nan"),
         "high": float("nan"), "n": 12},
        {"regime": "mt", "budget": 2.0, "metric": "fd", "rho": 0.1, "low": -0.4, "high": 0.5, "n": 12},
    ])
    t = correlation_table(corr)
    assert list(t.index) == ["coverage", "fd", "vendi_centred"] and list(t.columns) == ["hl", "mt"]
    assert t.loc["fd", "hl"] == "-0.70 [-0.90, -0.30] (n=12)" and t.loc["coverage", "mt"] == "n/a"
    s = correlation_sentence(corr)
    assert "* **hl** (12 runs): fd (rho -0.70), coverage (rho +0.50); 1 of 3 metrics have intervals covering 0." in s
    assert "* **mt** (12 runs): no metric's interval excludes 0." in s
    two = pd.concat([corr.assign(ipc=1), corr.assign(ipc=10)])  # IPC varies: it names the groups
    assert list(correlation_table(two).columns) == ["hl, IPC 1", "mt, IPC 1", "hl, IPC 10", "mt, IPC 10"]
    assert "* **mt, IPC 10** (12 runs)" in correlation_sentence(two)


def test_quality_charts_specs():
    from ddlib.analysis.quality_study import correlation_heatmap, quality_chart

    cfgs = [RunConfig("digits", m, 1, r, 2.0, 0, "smoke") for m in ("random", "dm") for r in ("hl", "slkd")]
    res = pd.DataFrame([{"config_json": json.dumps(c.resolved().as_dict()), "regime": c.regime, "method": c.method,
                         "family": "coreset" if c.method == "random" else "distill", "ipc": 1,
                         "accuracy": 0.5} for c in cfgs])
    q = pd.DataFrame({"build_key": [build_key(validate(cfgs[0])), build_key(validate(cfgs[2]))],
                      "coverage": [0.2, 0.4]})
    spec = quality_chart(res, q).to_dict()
    assert spec["facet"]["column"]["field"] == "regime" and spec["facet"]["row"]["field"] == "ipc"
    assert spec["spec"]["encoding"]["x"]["field"] == "coverage"
    data = next(iter(spec["datasets"].values()))
    assert sorted((d["regime"], d["method"], d["coverage"], d["accuracy"]) for d in data) == [
        ("HL", "dm", 0.4, 50.0), ("HL", "random", 0.2, 50.0), ("SL+KD", "dm", 0.4, 50.0), ("SL+KD", "random", 0.2, 50.0)]
    corr = pd.DataFrame({"regime": ["hl", "hl"], "metric": ["fd", "coverage"], "rho": [-0.5, 0.2],
                         "low": [-0.8, -0.1], "high": [-0.2, 0.5], "n": [4, 4]})
    h = correlation_heatmap(corr).to_dict()
    assert [layer["mark"]["type"] for layer in h["layer"]] == ["rect", "text"]
    assert h["layer"][0]["encoding"]["color"]["scale"]["domain"] == [-1, 1]
