"""The charts' shared look: one colour per method in every chapter, families by shape, the names readers know.

Kept apart from :mod:`ddlib.analysis.plots` (which reads tables) so that every module drawing a chart,
:mod:`ddlib.analysis.pareto` included, can use it without an import cycle.
"""
from __future__ import annotations

import altair as alt

# One colour per method in every chapter (a method keeps its colour whatever else a chart shows), distinct
# within each family; the family is told by the point's shape, which a key can show (a dash cannot).
METHOD_COLORS = {
    # coresets: circles
    "random": "#7f7f7f", "herding": "#1f77b4", "kcenter": "#17becf", "el2n_easy": "#2ca02c",
    "el2n_hard": "#bcbd22", "forgetting": "#8c564b", "ccs": "#e377c2", "cad_prune": "#9467bd",
    # distillers: triangles
    "dm": "#d62728", "dc": "#ff7f0e", "dsa": "#a6611a", "mtt": "#393b79", "dd": "#000000",
    "class_mean": "#6baed6", "kmeans": "#6b6ecf", "sre2l": "#e6ab02", "rded": "#1b9e77", "cim": "#e7298a",
    "ca2d": "#7570b3",
}
FAMILY_SHAPES = {"coreset": "circle", "distilled": "triangle-up"}
REGIME_LABELS = {"hl": "HL", "sl": "SL", "slkd": "SL+KD", "slkd_stored": "SL+KD (stored)", "mt": "MT"}
ACCURACY = "test accuracy (%)"  # the title of every accuracy axis (each layer repeats it: one title drawn)


def method_order(methods) -> list:
    """The distinct ``methods`` in :data:`METHOD_COLORS` order, names outside the table after them (sorted)."""
    present = set(methods)
    return [m for m in METHOD_COLORS if m in present] + sorted(present - set(METHOD_COLORS))


def method_color(methods, field: str = "method", title: str = "method") -> alt.Color:
    """The method colour encoding: the methods present, in :func:`method_order`, with their colours.

    Names outside the table (variants such as ``"dd (init=fixed)"``) take spare colours."""
    domain = method_order(methods)
    known = [m for m in domain if m in METHOD_COLORS]
    rest = domain[len(known):]
    spare = iter(c for c in ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
                             "#eeca3b", "#72b7b2", "#e45756") if c not in METHOD_COLORS.values())
    rng = [METHOD_COLORS[m] for m in known] + [next(spare, "#333333") for _ in rest]
    return alt.Color(f"{field}:N", title=title, scale=alt.Scale(domain=domain, range=rng),
                     sort=domain)


def family_shape() -> alt.Shape:
    """Coresets as circles, distilled sets as triangles (filled points: the key shows the symbols)."""
    return alt.Shape("family:N", title="family", scale=alt.Scale(domain=list(FAMILY_SHAPES),
                                                                   range=list(FAMILY_SHAPES.values())))


def log_x(field: str, values, title: str) -> alt.X:
    """A log x axis spanning the data (a little padding), not the surrounding decades."""
    v = [float(x) for x in values if x > 0]
    lo, hi = (min(v), max(v)) if v else (1.0, 10.0)
    return alt.X(f"{field}:Q", title=title, scale=alt.Scale(type="log", domain=[lo / 1.25, hi * 1.25], nice=False),
                 axis=alt.Axis(values=sorted(set(v))))


def regime_labels(regimes) -> list:
    """The names a reader knows (``slkd`` -> "SL+KD"); unknown ones upper-cased."""
    return [REGIME_LABELS.get(r, str(r).upper()) for r in regimes]
