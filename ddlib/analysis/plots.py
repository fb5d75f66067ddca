"""Altair charts of study results, rendered as static SVG (no network, no CDN).

``setup()`` switches altair to its ``svg`` renderer: vl-convert draws each
chart to SVG inside the kernel, so the executed notebook and the built book
show charts with no JavaScript and nothing fetched.
"""
from __future__ import annotations

import io

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image

from ddlib.analysis.style import ACCURACY, family_shape, log_x, method_color, method_order, regime_labels
from ddlib.analysis.tables import is_distiller, summarize


def setup() -> None:
    """Render charts as inline SVG (offline, deterministic for nbval) and show tables whole.

    pandas would otherwise cut a table at 60 rows ("…"), a text cell at 50
    characters, and print six decimals; readers get every row, whole
    descriptions and two decimals (a table that needs more formats its own).
    """
    alt.renderers.enable("svg")
    alt.data_transformers.disable_max_rows()
    pd.set_option("display.max_rows", 1000)
    pd.set_option("display.min_rows", 1000)
    pd.set_option("display.max_columns", 100)
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.precision", 2)


def mean_std(df: pd.DataFrame, by) -> pd.DataFrame:
    """:func:`summarize` with ``low`` / ``high`` (mean ∓ std) and each method's ``family``."""
    s = summarize(df, by=by)
    s["low"], s["high"] = s["mean"] - s["std"], s["mean"] + s["std"]
    if "method" in s:
        s["family"] = families(s["method"])
    if "regime" in s:
        s["regime"] = regime_labels(s["regime"])
    return s


def families(methods) -> list:
    """"distilled" or "coreset" per method (the values :func:`ddlib.analysis.style.family_shape` draws)."""
    return ["distilled" if is_distiller(m) else "coreset" for m in methods]


def _series(x: alt.X, color: alt.Color, tooltip, shape=None):
    """Lines with filled points and mean ± std bars; no data of their own (the caller's chart holds it)."""
    pt = dict(filled=True, size=60, opacity=1)
    enc = dict(x=x, y=alt.Y("mean:Q", title=ACCURACY, scale=alt.Scale(zero=False)), color=color, tooltip=tooltip)
    lines = alt.Chart().mark_line(point=alt.OverlayMarkDef(**pt) if shape is None else False).encode(**enc)
    layers = [alt.Chart().mark_errorbar().encode(x=x, y=alt.Y("low:Q", title=ACCURACY), y2="high:Q", color=color),
              lines]
    if shape is not None:
        layers.append(alt.Chart().mark_point(**pt).encode(**enc, shape=shape))
    return layers


def _dots(x: alt.X, color: alt.Color, tooltip, shape=None):
    """One filled point per category along a nominal ``x`` with its mean ± std bar (no data of their own)."""
    point = alt.Chart().mark_point(filled=True, size=70, opacity=1).encode(
        x=x, y=alt.Y("mean:Q", title=ACCURACY, scale=alt.Scale(zero=False)), color=color, tooltip=tooltip)
    return [alt.Chart().mark_errorbar().encode(x=x, y=alt.Y("low:Q", title=ACCURACY), y2="high:Q", color=color),
            point if shape is None else point.encode(shape=shape)]


def budget_chart(df: pd.DataFrame, *, width: int = 180, height: int = 150) -> alt.FacetChart:
    """Accuracy (mean ± std over seeds) against compute budget.

    One line per method (coresets circles, distilled sets triangles), one panel per
    (regime x IPC).  Columns of ``df``: method, regime, ipc, budget, accuracy.
    """
    s = mean_std(df, ("regime", "ipc", "method", "budget"))
    x = log_x("budget", s["budget"], "budget (full-train-set epochs)")
    tip = ["method", "regime", "ipc", "budget", alt.Tooltip("mean:Q", format=".1f"),
           alt.Tooltip("std:Q", format=".1f"), "seeds"]
    return alt.layer(*_series(x, method_color(s["method"]), tip, family_shape()), data=s).properties(
        width=width, height=height).facet(row=alt.Row("ipc:O", title="IPC"),
                                          column=alt.Column("regime:N", title="label regime"))


def ipc_chart(df: pd.DataFrame, *, width: int = 220, height: int = 160) -> alt.FacetChart:
    """Accuracy (mean ± std over seeds) against IPC, one line per method, one panel per budget."""
    s = mean_std(df, ("regime", "budget", "method", "ipc"))
    x = log_x("ipc", s["ipc"], "images per class")
    tip = ["method", "ipc", "budget", alt.Tooltip("mean:Q", format=".1f"), "seeds"]
    return alt.layer(*_series(x, method_color(s["method"]), tip, family_shape()), data=s).properties(
        width=width, height=height).facet(column=alt.Column("budget:O", title="budget (full-train-set epochs)"))


def regime_chart(df: pd.DataFrame, *, width: int = 200, height: int = 160) -> alt.FacetChart:
    """Accuracy (mean ± std over seeds) per method, one panel per label regime.

    Against IPC (log x, one line per method) when the frame has several IPCs; with
    one IPC, one point per method along x, coresets first.  Coresets are circles and
    distilled sets triangles.  Columns of ``df``: method, regime, ipc, budget,
    accuracy (one budget expected; several are averaged).
    """
    s = mean_std(df, ("regime", "method", "ipc"))
    color = method_color(s["method"])
    tip = ["method", "family", "regime", "ipc", alt.Tooltip("mean:Q", format=".1f"), "seeds"]
    if s["ipc"].nunique() > 1:
        x = log_x("ipc", s["ipc"], "images per class")
        layers = _series(x, color, tip, family_shape())
    else:
        order = sorted(method_order(s["method"]), key=is_distiller)  # coresets first (a stable sort)
        x = alt.X("method:N", sort=order, title=f"method (IPC {int(s['ipc'].iloc[0])})",
                  axis=alt.Axis(labelAngle=-40))
        layers = _dots(x, color, tip, family_shape())
    return alt.layer(*layers, data=s).properties(width=width, height=height).facet(
        column=alt.Column("regime:N", title="label regime"))


def image_grid(images, labels=None, *, ncols: int = 10, scale: int = 3, pad: int = 1):
    """A PNG of condensed images in a grid, for ``IPython.display.Image``.

    Args:
        images: (M, C, H, W) tensor with values in [0, 1] (C = 1 or 3).
        labels: unused but accepted so ``image_grid(*study.condensed())`` works.
        ncols: images per row (10: one row per step of a class-major set).
        scale: nearest-neighbour upscaling factor of every pixel.
        pad: white pixels between images (before scaling).

    Returns:
        PNG bytes; the same tensor always gives the same bytes (no metadata).
    """
    x = images.detach().cpu().float().clamp(0, 1).numpy()
    m, c, h, w = x.shape
    rows = -(-m // ncols)
    canvas = np.ones((rows * (h + pad) + pad, ncols * (w + pad) + pad, c), dtype=np.float32)
    for i in range(m):
        r, q = divmod(i, ncols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h,
               pad + q * (w + pad):pad + q * (w + pad) + w] = x[i].transpose(1, 2, 0)
    arr = (canvas * 255).round().astype(np.uint8)
    arr = arr.repeat(scale, 0).repeat(scale, 1)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def variant_chart(df: pd.DataFrame, *, width: int = 260, height: int = 180) -> alt.LayerChart:
    """Accuracy (mean ± std over seeds) per (``variant``, IPC): against budget (log x) when the
    frame has several budgets, else one point per set along x."""
    s = mean_std(df, ("variant", "ipc", "budget"))
    s["set"] = [f"{v}, IPC {i}" for v, i in zip(s["variant"], s["ipc"])]
    color = alt.Color("set:N", title="set")
    tip = ["set", "budget", alt.Tooltip("mean:Q", format=".1f"), alt.Tooltip("std:Q", format=".1f"), "seeds"]
    if s["budget"].nunique() > 1:
        layers = _series(log_x("budget", s["budget"], "budget (full-train-set epochs)"), color, tip)
    else:
        x = alt.X("set:N", title=f"set (budget {s['budget'].iloc[0]:g} full-train-set epochs)",
                  axis=alt.Axis(labelAngle=-30, labelLimit=260))
        layers = _dots(x, color, tip)
    return alt.layer(*layers, data=s).properties(width=width, height=height)


def transfer_chart(gains: pd.DataFrame, *, width: int = 220, height: int = 160) -> alt.FacetChart:
    """Gain over random (points) on each student architecture, with its paired 95% interval.

    ``gains``: :func:`ddlib.analysis.transfer.transfer_gains` (regime, method, ipc, model, gain,
    ci_low, ci_high, pairs); one panel per label regime, one colour per method, the
    architectures along x.  A missing interval (fewer than 3 seeds) draws no bar.
    """
    s = gains.copy()
    s["regime"] = regime_labels(s["regime"])
    s["family"] = families(s["method"])
    x = alt.X("model:N", title="student architecture")
    color, off = method_color(s["method"]), alt.XOffset("method:N")
    # Opaque and large enough to read: with few seeds a method may be only a handful of dots.
    dots = alt.Chart().mark_point(filled=True, size=90, opacity=1.0).encode(
        x=x, xOffset=off, color=color, shape=family_shape(), y=alt.Y("gain:Q", title="gain over random (points)"),
        tooltip=["method", "model", "regime", "ipc", alt.Tooltip("gain:Q", format="+.1f"), "pairs"])
    bars = alt.Chart().mark_errorbar().encode(x=x, xOffset=off, color=color,
                                              y=alt.Y("ci_low:Q", title="gain over random (points)"), y2="ci_high:Q")
    zero = alt.Chart().mark_rule(color="grey").encode(y=alt.datum(0.0))
    return alt.layer(zero, bars, dots, data=s).properties(width=width, height=height).facet(
        column=alt.Column("regime:N", title="label regime"))
