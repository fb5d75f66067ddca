"""ddlib.analysis.pareto: pass accounting and Pareto fronts on hand-made frames with known answers."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ddlib.analysis.pareto import (
    LABEL_FORWARDS,
    compute_frame,
    front_summary,
    label_forwards,
    pareto_chart,
    pareto_mask,
    pareto_points,
    passes_table,
    wall_table,
)
from ddlib.core.config import PROTOCOLS
from ddlib.core.cost import Meter
from ddlib.core.registry import DDLibError
from ddlib.engine.models import create_model
from ddlib.engine.regimes import REGIMES, create_regime
from ddlib.engine.train import fit


def test_pareto_mask_known_front():
    cost = [1.0, 2.0, 3.0, 2.0, 0.5, 4.0, 1.0, 5.0]
    acc = [0.5, 0.7, 0.6, 0.7, 0.1, 0.9, 0.4, 0.9]
    # (3, .6) is beaten by (2, .7); (1, .4) by (1, .5) at equal cost; (5, .9) by (4, .9) at equal
    # accuracy; the two equal points (2, .7) dominate neither each other
    assert pareto_mask(cost, acc).tolist() == [True, True, False, True, True, True, False, False]
    assert pareto_mask([1.0], [0.2]).tolist() == [True]
    # one point cheapest and best: it alone is the front
    assert pareto_mask([1, 2, 3], [3, 2, 1]).tolist() == [True, False, False]
    with pytest.raises(DDLibError, match="NaN"):
        pareto_mask([1.0, np.nan], [0.1, 0.2])
    with pytest.raises(DDLibError, match="same length"):
        pareto_mask([1.0, 2.0], [0.1])


def test_label_forwards_per_regime():
    assert set(LABEL_FORWARDS) == set(REGIMES.names())  # a new regime must state its labelling cost
    got = {r: label_forwards(r, 100, 20, 3) for r in LABEL_FORWARDS}
    assert got == {"hl": 0, "sl": 20, "slkd": 100, "mt": 300, "slkd_stored": 100}
    assert label_forwards("slkd_stored", 101, 20, 3) == 120  # 6 epochs of 20 stored views
    with pytest.raises(DDLibError, match="known: hl, mt, sl, slkd, slkd_stored"):
        label_forwards("kd2", 1, 1, 1)


@pytest.mark.parametrize("regime", ["hl", "sl", "slkd", "mt", "slkd_stored"])
def test_label_forwards_match_the_engine(regime):
    """The formula agrees with the teacher forwards fit() actually makes (hooks count them)."""
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(6, 1, 8, 8, generator=gen), torch.arange(3).repeat(2)
    teachers = [create_model("convnet_d3w16", 3, 1, 8, seed=s).eval() for s in (1, 2)]
    student = create_model("convnet_d3w16", 3, 1, 8, seed=0)
    protocol = PROTOCOLS.get("sgd_cos_b64_lr1_v1")
    reg = create_regime(regime)
    used = reg.n_teachers(SimpleNamespace(n_teachers=2))  # the teachers ddlib.run.runner hands the regime
    with Meter() as meter:
        for t in teachers:
            meter.watch(t)
        res = fit(student, images, labels, regime=reg, teachers=teachers[:used],
                  budget=1.0, pool_size=75, protocol=protocol, seed=0)
    assert res.samples_seen == 75
    assert meter.cost.fwd == label_forwards(regime, res.samples_seen, len(images), 2)


def _runs() -> pd.DataFrame:
    """Two regimes x three points (one averaged over two seeds), 10 classes, 2 mt teachers."""
    rows = [
        # regime, family, method, ipc, seed, samples, fwd, bwd, acc, label bytes
        ("hl", "coreset", "random", 1, 0, 100, 0, 0, 0.30, 10),
        ("hl", "coreset", "herding", 1, 0, 100, 500, 100, 0.40, 10),
        ("hl", "distill", "dm", 1, 0, 100, 1000, 1000, 0.35, 10),
        ("hl", "distill", "dm", 1, 1, 100, 1000, 1000, 0.45, 10),
        ("mt", "coreset", "random", 1, 0, 100, 0, 0, 0.50, 0),
        ("mt", "coreset", "herding", 1, 0, 100, 500, 100, 0.45, 0),
        ("mt", "distill", "dm", 1, 0, 100, 1000, 1000, 0.60, 0),
    ]
    cols = ["regime", "family", "method", "ipc", "seed", "samples_seen", "build_fwd", "build_bwd",
            "accuracy", "label_bytes"]
    df = pd.DataFrame(rows, columns=cols)
    df["device"], df["build_seconds"], df["train_seconds"], df["build_peak_mem_mb"] = "cpu", 1.0, 2.0, 3.0
    return df


def test_compute_frame_known_passes():
    c = compute_frame(_runs(), num_classes=10, n_teachers=2)
    # herding hl: 500 + 2*100 build, 3*100 training, no labelling
    h = c[(c["method"] == "herding") & (c["regime"] == "hl")].iloc[0]
    assert (h["build_passes"], h["train_passes"], h["label_passes"], h["total_passes"]) == (700, 300, 0, 1000)
    # random mt: two teachers label each of the 100 samples
    r = c[(c["method"] == "random") & (c["regime"] == "mt")].iloc[0]
    assert (r["label_passes"], r["total_passes"]) == (200, 500)
    assert compute_frame(_runs(), num_classes=10, n_teachers=2, backward_weight=1.0)["total_passes"].tolist() == \
        [200, 800, 2200, 2200, 400, 1000, 2400]
    assert list(c.columns[:10]) == list(_runs().columns[:10])  # the input's columns are kept, in order


def test_pareto_points_per_regime():
    p = pareto_points(compute_frame(_runs(), num_classes=10, n_teachers=2))
    hl = p[p["regime"] == "hl"].set_index("method")
    assert hl.loc["dm", "accuracy"] == pytest.approx(40.0) and hl.loc["dm", "seeds"] == 2
    assert hl.loc["dm", "std"] == pytest.approx(np.std([35.0, 45.0], ddof=1))
    assert hl.loc["random", "std"] == 0.0
    # hl: random (300, 30) and herding (1000, 40) are on the front, dm (3300, 40) is dominated
    assert hl["pareto"].to_dict() == {"random": True, "herding": True, "dm": False}
    mt = p[p["regime"] == "mt"].set_index("method")
    # mt: random (500, 50) beats herding (1200, 45); dm (3500, 60) is the most accurate
    assert mt["pareto"].to_dict() == {"random": True, "herding": False, "dm": True}
    assert list(p["regime"]) == ["hl"] * 3 + ["mt"] * 3  # sorted by regime, then cost
    assert p.groupby("regime")["total_passes"].apply(lambda s: s.is_monotonic_increasing).all()


def test_tables_and_summary():
    runs = compute_frame(_runs(), num_classes=10, n_teachers=2)
    p = pareto_points(runs)
    t = passes_table(p, runs)
    assert t.loc[("hl", "distill", "dm", 1)].tolist() == [3000, 300, 0, 3300, 10, 40.0, ""]
    assert t.loc[("mt", "coreset", "random", 1), "on front"] == "yes"
    w = wall_table(runs)
    assert w.loc[("coreset", "herding", 1), ["device", "build s", "train s"]].tolist() == ["cpu", 1.0, 2.0]
    assert w.loc[("distill", "dm", 1), ["label bytes (hl)", "label bytes (mt)"]].tolist() == [10, 0]
    s = front_summary(p, teacher=30_000)
    assert "**hl**: the front holds 2 of 3 points: random IPC 1 (300 passes, 30.0%), herding IPC 1 " \
           "(1k passes, 40.0%). 0 of them are distilled sets" in s
    assert "**mt**: the front holds 2 of 3 points" in s and "1 of them is a distilled set" in s
    assert "the most accurate point, dm IPC 1 (60.0%), costs 7x the cheapest point." in s
    one = front_summary(p[p["method"] != "dm"])  # mt: random alone is cheapest and best
    assert "the most accurate point, random IPC 1 (50.0%), is also the cheapest." in one
    assert "Training one teacher took 30k passes: 100x the cheapest run" in s


def test_pareto_chart_layers_and_facets():
    spec = pareto_chart(pareto_points(compute_frame(_runs(), num_classes=10, n_teachers=2))).to_dict()
    assert spec["facet"]["field"] == "regime" and spec["columns"] == 2
    marks = [layer["mark"]["type"] for layer in spec["spec"]["layer"]]
    assert marks == ["line", "point", "point"]
    assert spec["spec"]["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
