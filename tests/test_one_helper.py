"""One helper per concept: paired-by-seed differences, stored row -> RunConfig, un-normalising, wide interval tables."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from ddlib.analysis.stats import paired, paired_interval
from ddlib.analysis.tables import interval_table
from ddlib.core.config import RunConfig
from ddlib.core.registry import DDLibError
from ddlib.data import unnormalize
from ddlib.methods.objectives import ReferenceCache


def test_paired_keeps_the_shared_seeds_in_the_chosen_order():
    a = pd.Series([0.50, 0.60, 0.70, 0.90], index=[3, 0, 1, 2])
    b = pd.Series([0.40, 0.45, 0.80], index=[2, 1, 0])
    p = paired(a, b, scale=100)
    assert p.n == 3 and list(p.a) == pytest.approx([60, 70, 90]) and list(p.b) == pytest.approx([80, 45, 40])
    assert p.diff == pytest.approx(((60 - 80) + (70 - 45) + (90 - 40)) / 3)
    iv = paired_interval(p.a, p.b)
    assert (p.ci_low, p.ci_high) == (iv.low, iv.high)
    q = paired(a, b, scale=100, order="b")  # b's order: seeds 2, 1, 0
    assert list(q.a) == pytest.approx([90, 70, 60]) and q.diff == pytest.approx(p.diff)
    assert paired(a, pd.Series([0.1], index=[9])) is None


def test_paired_over_budget_and_seed():
    idx = pd.MultiIndex.from_tuples([(1.0, 0), (1.0, 1), (2.0, 0)], names=["budget", "seed"])
    a = pd.Series([0.5, 0.6, 0.7], index=idx)
    p = paired(a, a.iloc[[2, 0]] - 0.1)
    assert p.n == 2 and p.diff == pytest.approx(0.1) and np.isnan(p.ci_low)   # 2 pairs: no interval


def test_run_config_from_a_stored_row_a_dict_or_fields():
    cfg = RunConfig("digits", "dd", 1, "sl", 2.0, 3, "smoke", hparams=(("init", "fixed"), ("lr_img", 0.0)),
                    eval_lr="unrolled")
    stored = {"key": "k", "config_json": json.dumps(cfg.as_dict())}
    assert RunConfig.from_row(stored) == cfg
    assert RunConfig.from_row(pd.Series({"config_json": cfg.as_dict()})) == cfg
    fields = RunConfig.from_row({"dataset": "digits", "method": "random", "ipc": 1, "seed": 0, "extra": 1})
    assert (fields.regime, fields.budget, fields.hparams) == ("hl", 1.0, ())
    with pytest.raises(DDLibError, match="cannot read a run config from row k2"):
        RunConfig.from_row({"key": "k2", "config_json": json.dumps({"method": "random"})})


def test_unnormalize_inverts_the_loaders_normalisation(digits):
    x = unnormalize(digits.train_x[:4], digits.meta)
    assert x.shape == digits.train_x[:4].shape and 0 <= float(x.min()) and float(x.max()) <= 1
    mean = torch.tensor(digits.meta.mean).view(1, -1, 1, 1)
    std = torch.tensor(digits.meta.std).view(1, -1, 1, 1)
    assert torch.allclose((x - mean) / std, digits.train_x[:4], atol=1e-5)


def test_interval_table_cells_and_order():
    df = pd.DataFrame({"row": ["b", "b", "a"], "col": ["x", "y", "x"], "v": [0.5, np.nan, -0.25],
                       "lo": [0.1, np.nan, -0.5], "hi": [0.9, np.nan, 0.0]})
    t = interval_table(df, index="row", columns="col", value="v", low="lo", high="hi")
    assert list(t.index) == ["b", "a"] and list(t.columns) == ["x", "y"] and t.index.name == "row"
    assert t.loc["b", "x"] == "+0.50 [+0.10, +0.90]" and t.loc["b", "y"] == "n/a"
    assert t.loc["a", "x"] == "-0.25 [-0.50, +0.00]" and pd.isna(t.loc["a", "y"])


def test_reference_cache_builds_once_and_starts_over_when_full():
    calls = []
    cache = ReferenceCache(max_entries=2)
    for key in ("a", "a", "b", "c"):
        cache.get((key,), lambda k=key: calls.append(k) or k)
    assert calls == ["a", "b", "c"] and list(cache.entries) == [("c",)]


def test_teacher_passes_and_reference_teacher_ask_the_cached_teacher(monkeypatch, home):
    """The run layer's teacher measurements: one get_teacher call each, counted as the Pareto chapter counts."""
    import ddlib.run.measure as measure
    from ddlib.core.cost import Cost

    seen = []

    def fake_get_teacher(split, prof, store, seed, engine=None):
        seen.append((split.meta.name, prof.name, store))
        return "net", Cost(fwd=100, bwd=30)

    monkeypatch.setattr(measure, "get_teacher", fake_get_teacher)
    assert measure.teacher_passes("smoke", "digits", home) == 160
    assert measure.teacher_passes("smoke", "digits", home, backward_weight=1.0) == 130
    split, net = measure.reference_teacher("smoke", "digits", home)
    assert net == "net" and split.meta.name == "digits" and seen[-1] == ("digits", "smoke", home)
