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

from ddlib.analysis.tables import is_distiller, summarize


def setup() -> None:
    """Render charts as inline SVG (offline, deterministic for nbval)."""
    alt.renderers.enable("svg")
    alt.data_transformers.disable_max_rows()


def budget_chart(df: pd.DataFrame, *, width: int = 180, height: int = 150) -> alt.FacetChart:
    """Accuracy (mean ± std over seeds) against compute budget.

    One line per method, one panel per (regime x IPC): the *Hard truths*
    saturation figure.  Columns of ``df``: method, regime, ipc, budget, accuracy.
    """
    s = summarize(df, by=("regime", "ipc", "method", "budget"))
    s["low"], s["high"] = s["mean"] - s["std"], s["mean"] + s["std"]
    s["regime"] = s["regime"].str.upper()
    base = alt.Chart(s).encode(
        x=alt.X("budget:Q", scale=alt.Scale(type="log"), title="budget (full-train-set epochs)"),
        color=alt.Color("method:N", title="method"))
    lines = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
        tooltip=["method", "regime", "ipc", "budget", alt.Tooltip("mean:Q", format=".1f"),
                 alt.Tooltip("std:Q", format=".1f"), "seeds"])
    band = base.mark_errorbar().encode(y="low:Q", y2="high:Q")
    return (band + lines).properties(width=width, height=height).facet(
        row=alt.Row("ipc:O", title="IPC"), column=alt.Column("regime:N", title="label regime"))


def ipc_chart(df: pd.DataFrame, *, width: int = 220, height: int = 160) -> alt.FacetChart:
    """Accuracy (mean ± std over seeds) against IPC, one line per method, one panel per budget."""
    s = summarize(df, by=("regime", "budget", "method", "ipc"))
    s["low"], s["high"] = s["mean"] - s["std"], s["mean"] + s["std"]
    base = alt.Chart(s).encode(
        x=alt.X("ipc:Q", scale=alt.Scale(type="log"), title="images per class"),
        color=alt.Color("method:N", title="method"))
    lines = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
        tooltip=["method", "ipc", "budget", alt.Tooltip("mean:Q", format=".1f"), "seeds"])
    band = base.mark_errorbar().encode(y="low:Q", y2="high:Q")
    return (band + lines).properties(width=width, height=height).facet(
        column=alt.Column("budget:O", title="budget (full-train-set epochs)"))


def regime_chart(df: pd.DataFrame, *, width: int = 200, height: int = 160) -> alt.FacetChart:
    """Accuracy (mean ± std over seeds) against IPC, one line per method, one panel per label regime.

    Distillers are drawn solid, coresets dashed.  Columns of ``df``: method,
    regime, ipc, budget, accuracy (one budget expected; several are averaged).
    """
    s = summarize(df, by=("regime", "method", "ipc"))
    s["low"], s["high"] = s["mean"] - s["std"], s["mean"] + s["std"]
    s["family"] = ["distilled" if is_distiller(m) else "coreset" for m in s["method"]]
    s["regime"] = s["regime"].str.upper()
    base = alt.Chart(s).encode(
        x=alt.X("ipc:Q", scale=alt.Scale(type="log"), title="images per class"),
        color=alt.Color("method:N", title="method"))
    lines = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
        strokeDash=alt.StrokeDash("family:N", title="family"),
        tooltip=["method", "regime", "ipc", alt.Tooltip("mean:Q", format=".1f"), "seeds"])
    band = base.mark_errorbar().encode(y="low:Q", y2="high:Q")
    return (band + lines).properties(width=width, height=height).facet(
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
    """Accuracy (mean ± std over seeds) against budget, one line per (``variant``, IPC)."""
    s = summarize(df, by=("variant", "ipc", "budget"))
    s["variant"] = [f"{v}, IPC {i}" for v, i in zip(s["variant"], s["ipc"])]
    s["low"], s["high"] = s["mean"] - s["std"], s["mean"] + s["std"]
    base = alt.Chart(s).encode(
        x=alt.X("budget:Q", scale=alt.Scale(type="log"), title="budget (full-train-set epochs)"),
        color=alt.Color("variant:N", title="set"))
    lines = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
        tooltip=["variant", "budget", alt.Tooltip("mean:Q", format=".1f"), "seeds"])
    band = base.mark_errorbar().encode(y="low:Q", y2="high:Q")
    return (band + lines).properties(width=width, height=height)


def transfer_chart(gains: pd.DataFrame, *, width: int = 220, height: int = 160) -> alt.FacetChart:
    """Gain over random (points) on each student architecture, with its paired 95% interval.

    ``gains``: :func:`ddlib.analysis.transfer.transfer_gains` (regime, method, ipc, model, gain,
    ci_low, ci_high, pairs); one panel per label regime, one colour per method, the
    architectures along x.  A missing interval (fewer than 3 seeds) draws no bar.
    """
    s = gains.copy()
    s["regime"] = s["regime"].str.upper()
    base = alt.Chart(s).encode(x=alt.X("model:N", title="student architecture"),
                               color=alt.Color("method:N", title="method"),
                               xOffset=alt.XOffset("method:N"))
    # Opaque and large enough to read: with few seeds a method may be only a handful of dots.
    dots = base.mark_point(filled=True, size=90, opacity=1.0).encode(
        y=alt.Y("gain:Q", title="gain over random (points)"),
        tooltip=["method", "model", "regime", "ipc", alt.Tooltip("gain:Q", format="+.1f"), "pairs"])
    bars = base.mark_errorbar().encode(y=alt.Y("ci_low:Q", title="gain over random (points)"),
                                       y2="ci_high:Q")
    zero = alt.Chart(s).mark_rule(color="grey").encode(y=alt.datum(0.0))
    return (zero + bars + dots).properties(width=width, height=height).facet(
        column=alt.Column("regime:N", title="label regime"))
