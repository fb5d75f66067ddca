"""Saturation and convergence: how close a condensed set gets to full data, and
whether it keeps improving with more training (*Hard truths about soft labels*).

All gaps and gains are in percentage points, paired by seed, with a paired
bootstrap 95% interval (:func:`ddlib.analysis.stats.paired_bootstrap_ci`).
"""
from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd

from ddlib.analysis.stats import paired
from ddlib.analysis.tables import summarize


def gap_to_full(df: pd.DataFrame, full: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Full-data accuracy minus the condensed set's, paired by budget and seed.

    Args:
        df: runs of condensed sets (regime, method, ipc, budget, seed, accuracy).
        full: full-data runs (budget, seed, accuracy; any regime, usually ``hl``):
            each condensed run is paired with the full-data run of the same budget
            and seed, whatever the condensed run's regime.

    Returns:
        one row per (regime, method, ipc, budget): gap, ci_low, ci_high,
        fraction (condensed mean / full-data mean) and pairs.
    """
    ref = full.groupby(["budget", "seed"])[value].mean()
    rows = []
    for (regime, method, ipc, budget), g in df.groupby(["regime", "method", "ipc", "budget"]):
        p = paired(ref, g.set_index(["budget", "seed"])[value], scale=100, order="b")
        if p is None:
            continue
        rows.append({"regime": regime, "method": method, "ipc": ipc, "budget": budget,
                     "gap": p.diff, "ci_low": p.ci_low, "ci_high": p.ci_high,
                     "fraction": float(p.b.mean() / p.a.mean()), "pairs": p.n})
    return pd.DataFrame(rows, columns=["regime", "method", "ipc", "budget", "gap", "ci_low", "ci_high",
                                       "fraction", "pairs"])


def gap_table(df: pd.DataFrame, full: pd.DataFrame) -> pd.DataFrame:
    """Wide :func:`gap_to_full`: cells "12.3 [10.1, 14.0]" points below full data, one column per budget."""
    g = gap_to_full(df, full)
    g["cell"] = [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in zip(g["gap"], g["ci_low"], g["ci_high"])]
    wide = g.pivot_table(index=["regime", "method", "ipc"], columns="budget", values="cell", aggfunc="first")
    wide.columns = [f"budget {c:g}" for c in wide.columns]
    return wide


def saturation_sentence(df: pd.DataFrame, full: pd.DataFrame, *, near: float = 0.9) -> str:
    """Per regime, how many (method, IPC) sets reach ``near`` x full-data accuracy at the largest budget."""
    g = gap_to_full(df, full)
    if g.empty:
        return "No condensed runs share a budget and seed with the full-data runs yet."
    top = g[g["budget"] == g["budget"].max()]
    parts = []
    for regime, r in top.groupby("regime", sort=True):
        k = int((r["fraction"] >= near).sum())
        worst = r.loc[r["fraction"].idxmin()]
        parts.append(f"under {regime.upper()}, {k} of {len(r)} sets reach {near:.0%} of full-data accuracy "
                     f"(the weakest, {worst['method']} at IPC {worst['ipc']}, reaches {worst['fraction']:.0%})")
    return (f"At the largest budget ({top['budget'].iloc[0]:g} full-pool epochs), " + "; ".join(parts) + ".")


def saturation_chart(df: pd.DataFrame, full: pd.DataFrame, *, width: int = 170,
                     height: int = 140) -> alt.FacetChart:
    """Accuracy against budget per (regime x IPC) panel, with the full-data curve in every panel.

    Mean ± std over seeds; the full-data runs (``hl``) are drawn as a grey dashed line.
    """
    s = summarize(df, by=("regime", "ipc", "method", "budget"))
    f = summarize(full, by=("budget",))
    f = pd.concat([f.assign(regime=r, ipc=i) for r, i in s[["regime", "ipc"]].drop_duplicates().itertuples(index=False)],
                  ignore_index=True)
    s["low"], s["high"] = s["mean"] - s["std"], s["mean"] + s["std"]
    s["regime"], f["regime"] = s["regime"].str.upper(), f["regime"].str.upper()
    x = alt.X("budget:Q", scale=alt.Scale(type="log"), title="budget (full-train-set epochs)")
    y = alt.Y("mean:Q", title="test accuracy (%)", scale=alt.Scale(zero=False))
    base = alt.Chart(s).encode(x=x, color=alt.Color("method:N", title="method"))
    lines = base.mark_line(point=True).encode(y=y, tooltip=["method", "regime", "ipc", "budget",
                                                           alt.Tooltip("mean:Q", format=".1f"), "seeds"])
    band = base.mark_errorbar().encode(y="low:Q", y2="high:Q")
    ref = alt.Chart(f).mark_line(strokeDash=[4, 3], color="gray").encode(x=x, y=y)
    return alt.layer(ref, band, lines, data=s).properties(width=width, height=height).facet(
        row=alt.Row("ipc:O", title="IPC"), column=alt.Column("regime:N", title="label regime"))


def convergence(df: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Gain from each budget to the next, per (regime, method, IPC), paired by seed.

    Returns:
        one row per step: regime, method, ipc, from_budget, to_budget, gain (points),
        ci_low, ci_high, pairs.  A gain whose interval excludes zero means the set
        still improves with more training; one around zero, that it has saturated.
    """
    rows = []
    for (regime, method, ipc), g in df.groupby(["regime", "method", "ipc"]):
        budgets = sorted(g["budget"].unique())
        by_b = {b: g[g["budget"] == b].set_index("seed")[value] for b in budgets}
        for lo_b, hi_b in zip(budgets, budgets[1:]):
            p = paired(by_b[hi_b], by_b[lo_b], scale=100, order="b")
            if p is None:
                continue
            rows.append({"regime": regime, "method": method, "ipc": ipc, "from_budget": lo_b,
                         "to_budget": hi_b, "gain": p.diff, "ci_low": p.ci_low, "ci_high": p.ci_high,
                         "pairs": p.n})
    return pd.DataFrame(rows, columns=["regime", "method", "ipc", "from_budget", "to_budget", "gain",
                                       "ci_low", "ci_high", "pairs"])


def convergence_sentence(df: pd.DataFrame, distillers: Sequence[str]) -> str:
    """Which sets still improve over the last budget step, distillers against coresets."""
    c = convergence(df)
    if c.empty:
        return "No set has runs at two budgets yet."
    last = c[c["to_budget"] == c["to_budget"].max()]
    improving = last[last["ci_low"] > 0]["method"].tolist()
    flat = last[last["ci_low"] <= 0]["method"].tolist()
    kind = lambda ms: ", ".join(f"{m} ({'distilled' if m in distillers else 'coreset'})" for m in ms) or "none"
    return (f"From {last['from_budget'].iloc[0]:g} to {last['to_budget'].iloc[0]:g} full-pool epochs, "
            f"the sets that still improve with 95% confidence are: {kind(improving)}; "
            f"those whose gain is not distinguishable from zero: {kind(flat)}.")


def beats_random_sentence(g: pd.DataFrame, methods: Sequence[str]) -> str:
    """From :func:`ddlib.analysis.tables.gains`: which of ``methods`` beat random with 95% confidence, per setting."""
    g = g[g["method"].isin(methods)]
    if g.empty:
        return "No paired runs of these methods and random are stored yet."
    parts = []
    for m, r in g.groupby("method", sort=True):
        parts.append(f"{m} in {int((r['ci_low'] > 0).sum())} of {len(r)}")
    worse = g[g["ci_high"] < 0]["method"].unique().tolist()
    return ("Settings (regime, IPC, budget) where each method beats random with 95% confidence: "
            + "; ".join(parts) + "." + (f" Significantly below random somewhere: {', '.join(sorted(worse))}."
                                        if worse else ""))
