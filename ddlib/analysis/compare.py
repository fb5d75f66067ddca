"""Distilled sets against coresets (*Rethinking DD for classification*, 2026).

The question of the comparison chapter, per (regime, IPC, budget): does the best
distiller beat the best coreset (random included)?  "Best" is the highest mean
**validation** accuracy over seeds within each family (the test split is only
reported: choosing on it and then testing the chosen pair on the same numbers
would favour whichever family has more, or noisier, members).  The duel is then
paired by seed on test accuracy, with a paired t 95% interval, and its verdict
is Holm-adjusted over the table's settings (:func:`ddlib.analysis.stats.direction_table`).
"""
from __future__ import annotations

import pandas as pd

from ddlib.analysis.stats import MARGIN, direction_table, interval_cell, n_range, p_values, paired
from ddlib.core.registry import DDLibError
from ddlib.methods.build import method_family

COLUMNS = ["regime", "ipc", "budget", "best_distiller", "best_coreset", "gain", "ci_low", "ci_high",
           "pairs", "verdict"]
VERDICT = {"greater": "distilled", "less": "coreset", "same": "tie", "unclear": "unclear"}


def best_by_validation(g: pd.DataFrame, methods) -> str:
    """The method of ``methods`` with the highest mean ``val_accuracy`` in ``g`` (ties: first by name)."""
    means = g[g["method"].isin(methods)].groupby("method")["val_accuracy"].mean().sort_index()
    return str(means.idxmax())


def family_duel(df: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Best distiller minus best coreset (points) per (regime, IPC, budget).

    Args:
        df: runs with method, regime, ipc, budget, seed, ``val_accuracy`` (the choice) and ``value``
            (the reported difference).

    Returns:
        one row per setting with both winners' names, the paired gain of the
        distiller over the coreset, its 95% interval, the number of seed pairs and
        a verdict: "distilled" (greater), "coreset" (less), "tie" (within ±
        :data:`ddlib.analysis.stats.MARGIN` points by TOST) or "unclear".
    """
    if len(df) and ("val_accuracy" not in df or df["val_accuracy"].isna().any()):
        raise DDLibError("family_duel chooses each family's best method on validation accuracy; "
                         "some rows have no val_accuracy")
    fam = {m: method_family(m) for m in df["method"].unique()}
    rows = []
    for (regime, ipc, budget), g in df.groupby(["regime", "ipc", "budget"]):
        dist = [m for m in g["method"].unique() if fam[m] == "distill"]
        core = [m for m in g["method"].unique() if fam[m] == "coreset"]
        if not dist or not core:
            continue
        d, c = best_by_validation(g, dist), best_by_validation(g, core)
        p = paired(g[g["method"] == d].set_index("seed")[value], g[g["method"] == c].set_index("seed")[value],
                   scale=100)
        if p is None:
            continue
        rows.append({"regime": regime, "ipc": ipc, "budget": budget, "best_distiller": d, "best_coreset": c,
                     "gain": round(p.diff, 2), "ci_low": round(p.ci_low, 2), "ci_high": round(p.ci_high, 2),
                     "pairs": p.n, **p_values(p.d)})
    out = pd.DataFrame(rows, columns=COLUMNS[:-1] + list(p_values([0.0])))
    out["verdict"] = [VERDICT[v] for v in direction_table(out)] if len(out) else []
    return out[COLUMNS + list(p_values([0.0]))]


def duel_sentence(duel: pd.DataFrame) -> str:
    """Per regime, in how many IPC/budget settings the best distilled set wins, ties, loses or is unclear."""
    if duel.empty:
        return "No setting has both a distilled set and a coreset stored yet."
    parts = []
    for regime, r in duel.groupby("regime", sort=True):
        c = r["verdict"].value_counts()
        parts.append(f"under {regime.upper()} the best distilled set beats the best coreset in "
                     f"{c.get('distilled', 0)} of {len(r)} settings, loses in {c.get('coreset', 0)}, "
                     f"is within ±{MARGIN:g} point of it in {c.get('tie', 0)} and is undecided in "
                     f"{c.get('unclear', 0)}")
    return (f"Each family's best method is chosen on validation accuracy; on test accuracy, paired over "
            f"{n_range(duel['pairs'])} seeds (t-tests at 5%, Holm-adjusted over the "
            f"{len(duel)} settings), " + "; ".join(parts) + ".")


def duel_view(duel: pd.DataFrame) -> pd.DataFrame:
    """:func:`family_duel` for a reader: one row per (regime, IPC, budget), the two winners chosen on
    validation, the paired gain "d [low, high] (n)" in test points and the verdict."""
    out = pd.DataFrame({
        "best distiller": duel["best_distiller"].to_numpy(), "best coreset": duel["best_coreset"].to_numpy(),
        "distilled − coreset (points)": [interval_cell(g, lo, hi, int(n)) for g, lo, hi, n in
                                         zip(duel["gain"], duel["ci_low"], duel["ci_high"], duel["pairs"])],
        "verdict": duel["verdict"].to_numpy()})
    out.index = pd.MultiIndex.from_frame(duel[["regime", "ipc", "budget"]].rename(columns={"ipc": "IPC"}))
    return out
