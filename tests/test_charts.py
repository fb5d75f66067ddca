"""Every chart against its data: built on small frames with known values, checked in the compiled Vega-Lite.

The contract each chart keeps (the faults a reader met in the book): every layer reads the chart's
one top-level frame, so a facet hands each panel exactly its own rows; one title per axis (the
layers repeat it, never "low, test accuracy (%)"); filled points, so the key's symbols are visible;
one colour per method, the same in every chart; the family shown by shape, which a key can show;
a log axis that spans the data, not the decades around it.
"""
import numpy as np
import pandas as pd
import pytest

from ddlib.analysis import plots, style
from ddlib.analysis.pareto import compute_frame, pareto_chart, pareto_points
from ddlib.analysis.saturation import saturation_chart

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(0)
METHODS = ("random", "herding", "dm", "rded")


def _runs(methods=METHODS, regimes=("hl", "slkd"), ipcs=(10,), budgets=(6.4, 32.0), seeds=5):
    rows = []
    for k, m in enumerate(methods):
        for r in regimes:
            for i in ipcs:
                for b in budgets:
                    for s in range(seeds):
                        rows.append({"method": m, "regime": r, "ipc": i, "budget": b, "seed": s,
                                     "accuracy": 0.5 + 0.05 * k + 0.01 * np.log(b) + 0.01 * RNG.standard_normal()})
    return pd.DataFrame(rows)


def _layers(spec: dict) -> list:
    inner = spec.get("spec", spec)
    return inner.get("layer", [inner])


def _contract(chart, *, y_title: str = style.ACCURACY):
    spec = chart.to_dict()
    layers = _layers(spec)
    assert all("data" not in layer for layer in layers), "a layer with its own data is drawn whole in every panel"
    titles = {layer["encoding"]["y"].get("title") for layer in layers
              if "y" in layer.get("encoding", {}) and "field" in layer["encoding"]["y"]}
    assert titles == {y_title}
    for layer in layers:
        mark = layer["mark"] if isinstance(layer["mark"], dict) else {"type": layer["mark"]}
        keyed = any("field" in layer.get("encoding", {}).get(c, {}) for c in ("color", "shape"))
        if mark["type"] == "point" and keyed:  # a point with a key (a hollow ring drawn around others has none)
            assert mark.get("filled") is True and mark.get("opacity", 1) == 1
        if mark["type"] == "line" and mark.get("point"):
            assert mark["point"]["filled"] is True
        assert "order" not in layer.get("encoding", {})  # lines run in x order (Vega-Lite's default)
    return spec, layers


def _panels(chart, by):
    return {k: g for k, g in chart.data.groupby(list(by))}


def test_method_colours_are_fixed_and_distinct():
    assert len(set(style.METHOD_COLORS.values())) == len(style.METHOD_COLORS)
    a = style.method_color(["dm", "random"]).to_dict()["scale"]
    b = style.method_color(["random", "herding", "dm", "cim"]).to_dict()["scale"]
    assert dict(zip(a["domain"], a["range"]))["dm"] == dict(zip(b["domain"], b["range"]))["dm"] == \
        style.METHOD_COLORS["dm"]
    assert a["domain"] == ["random", "dm"]  # registry order, only what is shown


def test_every_registered_method_has_a_colour():
    from ddlib.methods.coresets import CORESETS
    from ddlib.methods.distill import DISTILLERS
    assert set(CORESETS.names()) | set(DISTILLERS.names()) == set(style.METHOD_COLORS)


def test_budget_chart_panels_hold_their_own_rows():
    df = _runs()
    chart = plots.budget_chart(df)
    spec, layers = _contract(chart)
    assert spec["facet"]["row"]["field"] == "ipc" and spec["facet"]["column"]["field"] == "regime"
    panels = _panels(chart, ("ipc", "regime"))
    assert set(panels) == {(10, "HL"), (10, "SL+KD")}
    for (ipc, regime), g in panels.items():
        own = df[(df["ipc"] == ipc) & (df["regime"] == {"HL": "hl", "SL+KD": "slkd"}[regime])]
        want = own.groupby(["method", "budget"])["accuracy"].mean().mul(100).round(6)
        assert g.set_index(["method", "budget"])["mean"].round(6).sort_index().equals(want.sort_index())
    x = layers[0]["encoding"]["x"]["scale"]
    assert x["type"] == "log" and 6.4 / 1.3 < x["domain"][0] < 6.4 < 32 < x["domain"][1] < 32 * 1.3
    shape = layers[-1]["encoding"]["shape"]
    assert shape["scale"]["range"] == ["circle", "triangle-up"]  # the family, in the key


def test_regime_chart_with_one_ipc_draws_a_point_per_method():
    df = _runs(budgets=(6.4,))
    chart = plots.regime_chart(df)
    spec, layers = _contract(chart)
    assert layers[-1]["encoding"]["x"]["field"] == "method"
    assert layers[-1]["encoding"]["x"]["sort"] == ["random", "herding", "dm", "rded"]  # coresets first
    for regime, g in chart.data.groupby("regime"):
        assert sorted(g["method"]) == sorted(METHODS) and (g["seeds"] == 5).all()


def test_regime_chart_with_several_ipcs_draws_lines_along_ipc():
    chart = plots.regime_chart(_runs(ipcs=(1, 10, 50), budgets=(6.4,)))
    _, layers = _contract(chart)
    assert layers[0]["encoding"]["x"]["field"] == "ipc" and layers[0]["encoding"]["x"]["scale"]["type"] == "log"
    assert any(layer["mark"]["type"] == "line" for layer in layers)


def test_ipc_chart_one_panel_per_budget():
    chart = plots.ipc_chart(_runs(ipcs=(1, 10), budgets=(6.4, 32.0)))
    spec, _ = _contract(chart)
    assert spec["facet"]["column"]["field"] == "budget"
    assert set(chart.data["budget"]) == {6.4, 32.0}


def test_variant_chart_one_budget_and_several():
    df = _runs(methods=("dd",), budgets=(6.4,)).assign(variant="dd (init=fixed)")
    one = plots.variant_chart(df)
    _, layers = _contract(one)
    assert layers[-1]["encoding"]["x"]["field"] == "set"
    two = plots.variant_chart(_runs(methods=("dd",)).assign(variant="dd"))
    _, layers = _contract(two)
    assert layers[0]["encoding"]["x"]["field"] == "budget"


def test_transfer_chart_dots_are_filled_and_coloured_by_method():
    gains = pd.DataFrame([{"regime": "hl", "method": m, "ipc": 10, "model": a, "gain": g, "ci_low": g - 1,
                           "ci_high": g + 1, "pairs": 5}
                          for m, g in (("dm", 2.0), ("rded", -1.0)) for a in ("convnet_d3w32", "mobilenet")])
    chart = plots.transfer_chart(gains)
    _, layers = _contract(chart, y_title="gain over random (points)")
    dots = layers[-1]
    assert dots["encoding"]["color"]["scale"]["range"] == [style.METHOD_COLORS["dm"], style.METHOD_COLORS["rded"]]


def test_saturation_chart_contract():
    df = _runs(methods=("random", "cad_prune"))
    full = _runs(methods=("random",), regimes=("hl",)).assign(ipc=200)
    chart = saturation_chart(df, full)
    _contract(chart)
    panels = _panels(chart, ("ipc", "regime"))
    assert len(panels) == 2 and all((g["kind"] == "full").sum() == 2 for g in panels.values())


def test_pareto_chart_one_panel_per_regime_and_visible_key():
    rows = [(r, fam, m, ipc, s, 12800, fwd, fwd, 0.5 + 0.1 * (m == "dm") + 0.01 * s, 10)
            for r in ("hl", "slkd", "mt") for fam, m, fwd in (("coreset", "random", 0), ("distill", "dm", 1e6))
            for ipc in (1, 10) for s in range(3)]
    runs = pd.DataFrame(rows, columns=["regime", "family", "method", "ipc", "seed", "samples_seen", "build_fwd",
                                       "build_bwd", "accuracy", "label_bytes"])
    runs["device"], runs["build_seconds"], runs["train_seconds"], runs["build_peak_mem_mb"] = "cpu", 1.0, 2.0, 3.0
    chart = pareto_chart(pareto_points(compute_frame(runs, num_classes=10, n_teachers=2)))
    spec, layers = _contract(chart)
    assert spec["columns"] == 3  # no empty fourth panel
    legend = layers[-1]["encoding"]["shape"]["legend"]
    assert legend["symbolFillColor"] == "black" and legend["symbolStrokeColor"] == "black"
    assert set(chart.data["regime"]) == {"HL", "SL+KD", "MT"}


def test_quality_chart_colours_methods_and_shapes_families(monkeypatch):
    import ddlib.analysis.quality_study as qs
    results = _runs(budgets=(6.4,)).assign(family=lambda d: np.where(d["method"].isin(["dm", "rded"]), "distill",
                                                                       "coreset"))
    results["build_key"] = results["method"] + "-" + results["seed"].astype(str)
    quality = results[["build_key"]].drop_duplicates().assign(coverage=lambda d: np.arange(len(d)) / len(d))
    monkeypatch.setattr(qs, "with_build_keys", lambda df: df)
    chart = qs.quality_chart(results, quality)
    spec = chart.to_dict()
    enc = spec["spec"]["encoding"]
    assert enc["shape"]["scale"]["range"] == ["circle", "triangle-up"]
    assert dict(zip(enc["color"]["scale"]["domain"], enc["color"]["scale"]["range"]))["rded"] == \
        style.METHOD_COLORS["rded"]
    assert set(chart.data["family"]) == {"coreset", "distilled"} and set(chart.data["regime"]) == {"HL", "SL+KD"}
