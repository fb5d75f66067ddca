"""Altair charts of study results, rendered as static SVG (no network, no CDN).

``setup()`` switches altair to its ``svg`` renderer: vl-convert draws each
chart to SVG inside the kernel, so the executed notebook and the built book
show charts with no JavaScript and nothing fetched.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from .study import summarize


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
