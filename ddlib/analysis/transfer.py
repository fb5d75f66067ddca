"""Do condensed sets transfer?  Accuracy and gain over random per student architecture.

A condensed set is built once (its build key has no student) and trained on by
several architectures (the rows' ``model``).  Distillers match or embed with one
network (the profile's ``synth_model``; the teacher-based ones with its
``teacher_model``); a set that only suits that network shows it as a gain over
random real images on that architecture that shrinks or vanishes on the others.
So every comparison here is **on the same architecture**: a set's gain over
``random`` is paired by seed within (regime, IPC, budget, model), with the
paired t 95% interval and the per-setting p-values of :mod:`ddlib.analysis.stats`;
the *transfer gap* compares that gain on a foreign architecture with the gain on
the home one, again paired by seed.  Verdicts are Holm-adjusted over the
settings of the table they come from; "same" needs TOST within
:data:`ddlib.analysis.stats.MARGIN` points.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ddlib.analysis.stats import (
    ALPHA,
    MARGIN,
    decide,
    direction_table,
    interval_cell,
    p_values,
    paired,
    paired_interval,
)

SETTING = ["regime", "ipc", "budget", "model"]
_P_COLS = list(p_values([0.0]).keys())


def transfer_gains(df: pd.DataFrame, baseline: str = "random", value: str = "accuracy") -> pd.DataFrame:
    """Gain over ``baseline`` on the same architecture (points), per regime, IPC, budget, model and method.

    Args:
        df: stored rows (``regime, method, ipc, budget, model, seed`` and ``value``), any mix of models.
        baseline: the reference method, trained on the same architecture, regime, IPC, budget and seed.

    Returns:
        one row per (regime, method, ipc, budget, model) with ``accuracy`` (mean, %),
        ``gain``, ``ci_low``, ``ci_high`` (paired t 95%, NaN below 3 pairs), ``pairs``, the
        ``p_<statement>`` columns and ``verdict``: "greater" / "less" / "same" (TOST) /
        "unclear", Holm-adjusted over the table's rows (:func:`ddlib.analysis.stats.direction_table`).
    """
    keys = SETTING + ["seed"]
    base = df[df["method"] == baseline].set_index(keys)[value]
    rows = []
    for (regime, method, ipc, budget, model), g in df[df["method"] != baseline].groupby(
            ["regime", "method", "ipc", "budget", "model"], sort=True):
        p = paired(g.set_index(keys)[value], base, scale=100)
        if p is None:
            continue
        rows.append({"regime": regime, "method": method, "ipc": ipc, "budget": budget, "model": model,
                     "accuracy": float(p.a.mean()), "gain": p.diff, "ci_low": p.ci_low, "ci_high": p.ci_high,
                     "pairs": p.n, **p_values(p.d)})
    out = pd.DataFrame(rows, columns=["regime", "method", "ipc", "budget", "model", "accuracy", "gain",
                                      "ci_low", "ci_high", "pairs", *_P_COLS])
    out["verdict"] = direction_table(out) if len(out) else []
    return out


def _gain_by_seed(df: pd.DataFrame, method: str, baseline: str, value: str) -> pd.Series:
    """method - baseline per (regime, ipc, budget, model, seed), in points."""
    keys = SETTING + ["seed"]
    a = df[df["method"] == method].set_index(keys)[value]
    b = df[df["method"] == baseline].set_index(keys)[value]
    common = a.index.intersection(b.index)
    return (a.loc[common] - b.loc[common]) * 100


def transfer_gaps(df: pd.DataFrame, home: str, baseline: str = "random",
                  value: str = "accuracy") -> pd.DataFrame:
    """How much of a set's gain over ``baseline`` survives on each other architecture.

    For every method, regime, IPC, budget and foreign ``model``: ``gap`` = (gain on
    ``model``) - (gain on ``home``), both over ``baseline`` and paired by seed, so the
    seed's split, order and set are shared by all four runs of a pair.  A negative gap
    means the set helps its home network more than others.

    Returns:
        columns regime, method, ipc, budget, model, gap, ci_low, ci_high, pairs, ``p_*`` and
        ``verdict`` (Holm over the rows: "less" = the gain shrinks off home, "same" = within
        the margin, "greater", "unclear").
    """
    rows = []
    for method in sorted(set(df["method"]) - {baseline}):
        gain = _gain_by_seed(df, method, baseline, value)
        if gain.empty:
            continue
        g = gain.reset_index()
        for (regime, ipc, budget), s in g.groupby(["regime", "ipc", "budget"], sort=True):
            at_home = s[s["model"] == home].set_index("seed")[value]
            for model, t in s[s["model"] != home].groupby("model", sort=True):
                p = paired(t.set_index("seed")[value], at_home)
                if p is None:
                    continue
                rows.append({"regime": regime, "method": method, "ipc": ipc, "budget": budget, "model": model,
                             "gap": p.diff, "ci_low": p.ci_low, "ci_high": p.ci_high, "pairs": p.n,
                             **p_values(p.d)})
    out = pd.DataFrame(rows, columns=["regime", "method", "ipc", "budget", "model", "gap", "ci_low", "ci_high",
                                      "pairs", *_P_COLS])
    out["verdict"] = direction_table(out) if len(out) else []
    return out


def transfer_table(df: pd.DataFrame, baseline: str = "random", value: str = "accuracy",
                   models: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The chapter's table: rows (regime, ipc, budget, method), one column per architecture.

    Each cell is the mean accuracy (%) over seeds with its t 95% interval and n, and,
    for every method but ``baseline``, the gain over ``baseline`` on that architecture
    with its paired interval (:func:`transfer_gains`):
    ``"71.2 [70.1, 72.3] (n=5) | +3.1 [+1.2, +5.0] (n=5)"``.
    """
    gains = transfer_gains(df, baseline, value).set_index(["regime", "ipc", "budget", "method", "model"])
    cells = []
    for (regime, ipc, budget, method, model), g in df.groupby(["regime", "ipc", "budget", "method", "model"],
                                                              sort=True):
        iv = paired_interval(g[value].to_numpy(float) * 100)
        cell = interval_cell(iv.mean, iv.low, iv.high, iv.n, ".1f")
        key = (regime, ipc, budget, method, model)
        if key in gains.index:
            r = gains.loc[key]
            cell += " | " + interval_cell(r["gain"], r["ci_low"], r["ci_high"], int(r["pairs"]))
        cells.append({"regime": regime, "ipc": ipc, "budget": budget, "method": method, "model": model,
                      "cell": cell})
    c = pd.DataFrame(cells, columns=["regime", "ipc", "budget", "method", "model", "cell"])
    wide = c.pivot_table(index=["regime", "ipc", "budget", "method"], columns="model", values="cell",
                         aggfunc="first")
    order = list(models) if models else list(dict.fromkeys(df["model"]))
    wide = wide.reindex(columns=[m for m in order if m in wide.columns])
    wide.columns.name = None
    return wide


def transfer_claim(df: pd.DataFrame, method: str, home: str, baseline: str = "random",
                   value: str = "accuracy", margin: float = MARGIN, alpha: float = ALPHA) -> dict:
    """Verdict on "``method``'s sets keep a gain over ``baseline`` on architectures other than ``home``".

    The claim of CIM (and of every distiller's cross-architecture table).  Each
    setting is a (regime, ipc, budget, foreign model); it **supports** when the gain
    over random real images on that architecture is > 0 and **contradicts** when any
    gain is shown to be below ``margin`` points (one-sided test of d < margin), both
    Holm-adjusted over the settings (:func:`ddlib.analysis.stats.decide`); a setting
    with fewer than 3 paired seeds is "unclear".

    Returns:
        {"verdict": "support" | "against" | "mixed" | "unclear" | "no data", "settings": n,
        "support": k, "against": j, "unclear": u, "table": the per-setting rows (regime, ipc,
        budget, model, gain, ci_low, ci_high, pairs, decision)}.  "support"/"against" need
        every setting to agree; "mixed" has both; otherwise "unclear".
    """
    g = transfer_gains(df[df["method"].isin([method, baseline])], baseline, value)
    g = g[(g["method"] == method) & (g["model"] != home)].reset_index(drop=True)
    if g.empty:
        return {"verdict": "no data", "settings": 0, "support": 0, "against": 0, "unclear": 0, "table": g}
    keys = SETTING + ["seed"]
    a = df[df["method"] == method].set_index(keys)[value]
    b = df[df["method"] == baseline].set_index(keys)[value]
    diffs = []
    for r in g.itertuples():
        p = paired(a.xs((r.regime, r.ipc, r.budget, r.model), level=SETTING),
                   b.xs((r.regime, r.ipc, r.budget, r.model), level=SETTING), scale=100)
        diffs.append(p.d if p is not None else np.array([]))
    g["decision"] = decide(diffs, "greater", "not_greater", margin=margin, alpha=alpha)
    n_s, n_a = int((g["decision"] == "support").sum()), int((g["decision"] == "against").sum())
    n_u = len(g) - n_s - n_a
    verdict = ("support" if n_s == len(g) else "against" if n_a == len(g) else
               "mixed" if n_s and n_a else "unclear")
    return {"verdict": verdict, "settings": len(g), "support": n_s, "against": n_a, "unclear": n_u,
            "table": g[["regime", "ipc", "budget", "model", "gain", "ci_low", "ci_high", "pairs", "decision"]]}


def claim_sentence(claim: dict, method: str, home: str) -> str:
    """One line for the chapter and the ledger: the verdict and how many settings it pooled."""
    if claim["settings"] == 0:
        return f"No {method} runs on an architecture other than {home}: no verdict."
    return (f"**{method}**'s sets against random real images on architectures other than `{home}`: "
            f"**{claim['verdict']}** ({claim['support']} of {claim['settings']} settings show a gain > 0, "
            f"{claim['against']} a gain below {MARGIN:g} point, {claim['unclear']} unclear; Holm over the settings).")


def transfer_claims(df: pd.DataFrame, home: str, baseline: str = "random") -> pd.DataFrame:
    """:func:`transfer_claim` for every method of ``df`` but ``baseline``: one row each (method, verdict, counts).

    Each method's verdict is Holm-adjusted over its own settings (its own claim).
    """
    rows = []
    for m in sorted(set(df["method"]) - {baseline}):
        c = transfer_claim(df, m, home, baseline)
        rows.append({"method": m, "verdict": c["verdict"], "settings": c["settings"], "support": c["support"],
                     "against": c["against"], "unclear": c["unclear"]})
    return pd.DataFrame(rows, columns=["method", "verdict", "settings", "support", "against", "unclear"])
