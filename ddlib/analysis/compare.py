"""Distilled sets against coresets (*Rethinking DD for classification*, 2026).

The question of the comparison chapter, per (regime, IPC, budget): does the best
distiller beat the best coreset (random included)?  "Best" is the highest mean
accuracy over seeds within each family; the duel is then paired by seed, with a
paired bootstrap 95% interval, so a distiller wins only where the seeds support it.
"""
from __future__ import annotations

import pandas as pd

from ddlib.analysis.stats import paired
from ddlib.methods.build import method_family

COLUMNS = ["regime", "ipc", "budget", "best_distiller", "best_coreset", "gain", "ci_low", "ci_high",
           "pairs", "verdict"]


def family_duel(df: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Best distiller minus best coreset (points) per (regime, IPC, budget).

    Args:
        df: runs with method, regime, ipc, budget, seed and ``value``.

    Returns:
        one row per setting with both winners' names, the paired gain of the
        distiller over the coreset, its 95% interval, the number of seed pairs and
        a verdict: "distilled" (interval above 0), "coreset" (below 0) or "tie".
    """
    fam = {m: method_family(m) for m in df["method"].unique()}
    rows = []
    for (regime, ipc, budget), g in df.groupby(["regime", "ipc", "budget"]):
        means = g.groupby("method")[value].mean()
        dist = means[[m for m in means.index if fam[m] == "distill"]]
        core = means[[m for m in means.index if fam[m] == "coreset"]]
        if dist.empty or core.empty:
            continue
        d, c = dist.idxmax(), core.idxmax()
        p = paired(g[g["method"] == d].set_index("seed")[value], g[g["method"] == c].set_index("seed")[value],
                   scale=100)
        if p is None:
            continue
        rows.append({"regime": regime, "ipc": ipc, "budget": budget, "best_distiller": d, "best_coreset": c,
                     "gain": round(p.diff, 2), "ci_low": round(p.ci_low, 2), "ci_high": round(p.ci_high, 2),
                     "pairs": p.n,
                     "verdict": "distilled" if p.ci_low > 0 else "coreset" if p.ci_high < 0 else "tie"})
    return pd.DataFrame(rows, columns=COLUMNS)


def duel_sentence(duel: pd.DataFrame) -> str:
    """Per regime, in how many IPC/budget settings the best distilled set wins, ties or loses."""
    if duel.empty:
        return "No setting has both a distilled set and a coreset stored yet."
    parts = []
    for regime, r in duel.groupby("regime", sort=True):
        c = r["verdict"].value_counts()
        parts.append(f"under {regime.upper()} the best distilled set beats the best coreset in "
                     f"{c.get('distilled', 0)} of {len(r)} settings, loses in {c.get('coreset', 0)} "
                     f"and ties in {c.get('tie', 0)}")
    return "With 95% confidence, " + "; ".join(parts) + "."
