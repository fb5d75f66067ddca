"""Do distillation objectives predict generalization?  (*Hard truths about soft labels*, CVPR 2026.)

Each distiller optimises its own objective; if that objective measured what
makes a condensed set good, a set with a lower objective value would train a
better student.  The objectives (:mod:`ddlib.methods.objectives`) are
evaluated on every stored set by the run layer
(:func:`ddlib.run.measure.score_sets`: random real subsets, coresets and
distilled sets of one IPC); this module correlates those scores with the sets'
stored test accuracy and writes the chapter's table, sentences and chart.
It trains and loads nothing.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from ddlib.analysis.stats import spearman_ci
from ddlib.analysis.tables import interval_table


def correlations(scores: pd.DataFrame, *, n_boot: int = 2000) -> pd.DataFrame:
    """Spearman rho [95% bootstrap CI] of objective value against accuracy, per probe and IPC.

    A *lower* objective should mean a *better* set, so a predictive objective
    has rho < 0; ``predicts`` is True when the whole interval lies below 0 and
    ``inverse`` when it lies above 0 (the objective ranks the sets the wrong way
    round: a lower value goes with a *worse* student).

    Returns:
        columns probe, ipc, rho, ci_low, ci_high, sets, predicts, inverse.
    """
    rows = []
    for (probe, ipc), g in scores.groupby(["probe", "ipc"], sort=True):
        rho, lo, hi = spearman_ci(g["value"].to_numpy(), g["accuracy"].to_numpy(), n_boot=n_boot)
        rows.append({"probe": probe, "ipc": int(ipc), "rho": rho, "ci_low": lo, "ci_high": hi,
                     "sets": len(g), "predicts": bool(hi < 0), "inverse": bool(lo > 0)})
    return pd.DataFrame(rows, columns=["probe", "ipc", "rho", "ci_low", "ci_high", "sets", "predicts", "inverse"])


def objective_table(corr: pd.DataFrame) -> pd.DataFrame:
    """:func:`correlations` as a wide table: one row per probe, one "rho [low, high]" column per IPC."""
    c = corr.sort_values(["ipc", "probe"])  # IPC columns in numeric order
    wide = interval_table(c.assign(ipc=[f"IPC {i}" for i in c["ipc"]]), index="probe", columns="ipc",
                          value="rho", low="ci_low", high="ci_high", n="sets").sort_index()
    wide.index.name = "objective (architecture)"
    return wide


def sentences(corr: pd.DataFrame) -> str:
    """One Markdown bullet per probe: does its objective predict accuracy, per IPC?

    Three answers, from the interval alone: "predicts" (wholly below 0), "predicts it the wrong way
    round" (wholly above 0: lower objective, worse set) and "does not predict" (it covers 0)."""
    lines = []
    for probe, g in corr.groupby("probe", sort=True):
        parts = []
        for _, r in g.sort_values("ipc").iterrows():
            stat = (f"rho = {r['rho']:+.2f}, 95% CI [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], "
                    f"{r['sets']} sets")
            if r["predicts"]:
                parts.append(f"predicts accuracy at IPC {r['ipc']} ({stat})")
            elif r["ci_low"] > 0:
                parts.append(f"ranks the sets the wrong way round at IPC {r['ipc']}: a lower value goes with "
                             f"a worse student ({stat})")
            else:
                parts.append(f"does not predict accuracy at IPC {r['ipc']} ({stat})")
        lines.append(f"* **{probe}** " + "; ".join(parts) + ".")
    return "\n".join(lines)


def scatter_chart(scores: pd.DataFrame, *, width: int = 200, height: int = 130):
    """Objective value (x, own scale per panel) against test accuracy; panels: IPC (columns) x probe (rows)."""
    base = alt.Chart(scores).mark_point(filled=True, opacity=1, size=40).encode(
        x=alt.X("value:Q", title="objective value (lower = closer to the real data)",
                scale=alt.Scale(zero=False)),
        y=alt.Y("accuracy:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
        color=alt.Color("kind:N", title="set"),
        shape=alt.Shape("kind:N", title="set"),
        tooltip=["probe", "method", "ipc", "seed", alt.Tooltip("accuracy:Q", format=".1f"),
                 alt.Tooltip("value:Q", format=".4g")])
    return base.properties(width=width, height=height).facet(
        row=alt.Row("probe:N", title="objective (architecture)"),
        column=alt.Column("ipc:O", title="IPC")).resolve_scale(x="independent", y="independent")
