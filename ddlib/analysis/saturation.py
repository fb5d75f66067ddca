"""Saturation and convergence: how close a condensed set gets to full data, and
whether it keeps improving with more training (*Hard truths about soft labels*).

All gaps and gains are in percentage points, paired by seed, with a paired t
95% interval (:func:`ddlib.analysis.stats.paired_interval`); "saturated" means
the gain of the next budget step is shown to lie within ± the equivalence
margin (TOST), and every count of settings is Holm-adjusted over the settings
it counts.
"""
from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd

from ddlib.analysis.stats import (ALPHA, MARGIN, direction_table, holm, interval_cell, n_range, p_value, p_values,
                                  paired)
from ddlib.analysis.style import ACCURACY, log_x, method_color, regime_labels
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
        fraction (condensed mean / full-data mean), pairs, ref (full-data mean, points)
        and ``d`` (the per-seed gaps, points).
    """
    ref = full.groupby(["budget", "seed"])[value].mean()
    rows = []
    for (regime, method, ipc, budget), g in df.groupby(["regime", "method", "ipc", "budget"]):
        p = paired(ref, g.set_index(["budget", "seed"])[value], scale=100, order="b")
        if p is None:
            continue
        rows.append({"regime": regime, "method": method, "ipc": ipc, "budget": budget,
                     "gap": p.diff, "ci_low": p.ci_low, "ci_high": p.ci_high,
                     "fraction": float(p.b.mean() / p.a.mean()), "pairs": p.n, "ref": float(p.a.mean()),
                     "d": tuple(p.d)})
    return pd.DataFrame(rows, columns=["regime", "method", "ipc", "budget", "gap", "ci_low", "ci_high",
                                       "fraction", "pairs", "ref", "d"])


def gap_table(df: pd.DataFrame, full: pd.DataFrame) -> pd.DataFrame:
    """Wide :func:`gap_to_full`: cells "12.3 [10.1, 14.0] (n=5)" points below full data, one column per budget."""
    g = gap_to_full(df, full)
    g["cell"] = [interval_cell(m, lo, hi, n, ".1f") for m, lo, hi, n in zip(g["gap"], g["ci_low"], g["ci_high"],
                                                                          g["pairs"])]
    wide = g.pivot_table(index=["regime", "method", "ipc"], columns="budget", values="cell", aggfunc="first")
    wide.columns = [f"budget {c:g}" for c in wide.columns]
    return wide


def near_full(gap: pd.DataFrame, near: float = 0.9) -> pd.Series:
    """Per row of :func:`gap_to_full`, whether the set is shown to be near full data.

    Near: the deficit (full - subset, per seed) is below ``(1 - near)`` x the
    full-data accuracy, by a one-sided paired t-test at 5%, Holm-adjusted over
    the rows (so a set with fewer than 3 seeds is never "near").
    """
    if gap.empty:
        return pd.Series([], dtype=bool)
    ps = [p_value(d, "not_greater", margin=(1 - near) * ref) for d, ref in zip(gap["d"], gap["ref"])]
    return pd.Series(holm(ps) < ALPHA, index=gap.index)


def saturation_sentence(df: pd.DataFrame, full: pd.DataFrame, *, near: float = 0.9) -> str:
    """Per regime, how many (method, IPC) sets are shown to reach ``near`` x full-data accuracy at the largest budget."""
    g = gap_to_full(df, full)
    if g.empty:
        return "No condensed runs share a budget and seed with the full-data runs yet."
    top = g[g["budget"] == g["budget"].max()].copy()
    top["near"] = near_full(top, near)
    parts = []
    for regime, r in top.groupby("regime", sort=True):
        worst = r.loc[r["fraction"].idxmin()]
        parts.append(f"under {regime.upper()}, {int(r['near'].sum())} of {len(r)} sets are shown to be within "
                     f"{1 - near:.0%} of full-data accuracy (the weakest, {worst['method']} at IPC {worst['ipc']}, "
                     f"reaches {worst['fraction']:.0%} on average)")
    return (f"At the largest budget ({top['budget'].iloc[0]:g} full-pool epochs; {n_range(top['pairs'])} "
            f"seeds paired with the full-data runs; one-sided t-tests at 5%, Holm-adjusted "
            f"over the {len(top)} sets), " + "; ".join(parts) + ".")


def saturation_chart(df: pd.DataFrame, full: pd.DataFrame, *, width: int = 170,
                     height: int = 140) -> alt.FacetChart:
    """Accuracy against budget per (regime x IPC) panel, with the full-data curve in every panel.

    Mean ± std over seeds; the full-data runs (``hl``) are drawn as a grey dashed line.
    Every layer reads the one top-level frame (its rows tagged ``kind`` = ``set`` or
    ``full``), so the facet hands each panel exactly its own rows: a layer carrying its
    own data would be drawn whole in every panel.
    """
    s = summarize(df, by=("regime", "ipc", "method", "budget")).assign(kind="set")
    f = summarize(full, by=("budget",))
    f = pd.concat([f.assign(regime=r, ipc=i) for r, i in s[["regime", "ipc"]].drop_duplicates().itertuples(index=False)],
                  ignore_index=True).assign(method="full data (HL)", kind="full")
    d = pd.concat([s, f], ignore_index=True)
    d["low"], d["high"] = d["mean"] - d["std"], d["mean"] + d["std"]
    d["regime"] = regime_labels(d["regime"])
    x = log_x("budget", d["budget"], "budget (full-train-set epochs)")
    y = alt.Y("mean:Q", title=ACCURACY, scale=alt.Scale(zero=False))
    color = method_color(s["method"])
    sets = alt.datum.kind == "set"
    lines = alt.Chart().mark_line(point=alt.OverlayMarkDef(filled=True, size=50, opacity=1)).encode(
        x=x, y=y, color=color, tooltip=["method", "regime", "ipc", "budget", alt.Tooltip("mean:Q", format=".1f"),
                                        "seeds"]).transform_filter(sets)
    band = alt.Chart().mark_errorbar().encode(x=x, y=alt.Y("low:Q", title=ACCURACY), y2="high:Q",
                                              color=color).transform_filter(sets)
    ref = alt.Chart().mark_line(strokeDash=[4, 3], color="gray").encode(
        x=x, y=y, tooltip=["method", "budget", alt.Tooltip("mean:Q", format=".1f"), "seeds"]
    ).transform_filter(alt.datum.kind == "full")
    return alt.layer(ref, band, lines, data=d).properties(width=width, height=height).facet(
        row=alt.Row("ipc:O", title="IPC"), column=alt.Column("regime:N", title="label regime"))


def convergence(df: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Gain from each budget to the next, per (regime, method, IPC), paired by seed.

    Returns:
        one row per step: regime, method, ipc, from_budget, to_budget, gain (points),
        ci_low, ci_high, pairs and the step's ``p_<statement>`` columns
        (:func:`ddlib.analysis.stats.p_values`).  A set still improves where the gain
        is greater than zero and has saturated where it is shown to be within ±
        the margin (:func:`convergence_sentence`).
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
                         "pairs": p.n, **p_values(p.d)})
    return pd.DataFrame(rows, columns=["regime", "method", "ipc", "from_budget", "to_budget", "gain",
                                       "ci_low", "ci_high", "pairs", *p_values([0.0])])


def convergence_sentence(df: pd.DataFrame, distillers: Sequence[str]) -> str:
    """Which sets still improve over the last budget step, which have saturated, distillers against coresets.

    Improves: the step's paired gain is greater than zero; saturated: it is
    within ± :data:`ddlib.analysis.stats.MARGIN` points (TOST); each
    Holm-adjusted over the sets; anything else is undecided.
    """
    c = convergence(df)
    if c.empty:
        return "No set has runs at two budgets yet."
    last = c[c["to_budget"] == c["to_budget"].max()].copy()
    last["outcome"] = direction_table(last)
    kind = lambda o: ", ".join(f"{m} ({'distilled' if m in distillers else 'coreset'})"  # noqa: E731
                               for m in last[last["outcome"] == o]["method"]) or "none"
    return (f"From {last['from_budget'].iloc[0]:g} to {last['to_budget'].iloc[0]:g} full-pool epochs "
            f"({n_range(last['pairs'])} paired seeds; t-tests at 5%, Holm-adjusted over the "
            f"{len(last)} sets), the sets that still improve are: {kind('greater')}; those shown to have "
            f"saturated (gain within ±{MARGIN:g} point): {kind('same')}; those that get worse: {kind('less')}; "
            f"undecided: {kind('unclear')}.")


def beats_random_sentence(g: pd.DataFrame, methods: Sequence[str]) -> str:
    """From :func:`ddlib.analysis.tables.gains`: in how many settings each of ``methods`` beats random.

    Beats: the paired gain is greater than zero; matches: within ±
    :data:`ddlib.analysis.stats.MARGIN` points (TOST); below: less than zero;
    t-tests at 5%, Holm-adjusted over all the settings counted.
    """
    g = g[g["method"].isin(methods)].copy()
    if g.empty:
        return "No paired runs of these methods and random are stored yet."
    g["outcome"] = direction_table(g)
    parts = []
    for m, r in g.groupby("method", sort=True):
        c = r["outcome"].value_counts()
        parts.append(f"{m} beats it in {c.get('greater', 0)} of {len(r)}, matches it in {c.get('same', 0)}, "
                     f"is below it in {c.get('less', 0)}")
    return (f"Against random, per (regime, IPC, budget) setting ({n_range(g['pairs'])} paired "
            f"seeds; t-tests at 5%, Holm-adjusted over the {len(g)} settings): " + "; ".join(parts) + ".")
