"""Tables and verdicts over stored rows: means, intervals, gains over a baseline, wins, costs.

Every function takes the store's rows as a frame (:meth:`ddlib.core.store.Store.frame`)
and trains nothing.  Intervals are paired Student-t intervals over seeds and
verdicts are Holm-adjusted over a table's settings (:mod:`ddlib.analysis.stats`);
every table carries n (``seeds`` / ``pairs``).
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from ddlib.analysis.pareto import label_bytes_by_regime
from ddlib.analysis.stats import MARGIN, direction_table, interval_cell, mean_std, p_values, paired, paired_interval
from ddlib.methods.build import method_family


def summarize(df: pd.DataFrame, by: Sequence[str] = ("regime", "method", "ipc", "budget"),
              value: str = "accuracy", scale: float = 100.0) -> pd.DataFrame:
    """Mean, std, 95% t-interval of the mean (NaN below 3 seeds) and seed count of ``value`` per group (x ``scale``)."""
    rows = []
    for keys, g in df.groupby(list(by), sort=True):
        vals = g[value].to_numpy() * scale
        m, s = mean_std(vals)
        iv = paired_interval(vals)
        rows.append({**dict(zip(by, keys)), "mean": m, "std": s, "ci_low": iv.low, "ci_high": iv.high,
                     "seeds": len(vals)})
    return pd.DataFrame(rows)


def pivot_table(df: pd.DataFrame, index=("regime", "method", "ipc"), columns="budget",
                value: str = "accuracy") -> pd.DataFrame:
    """Wide "mean ± std (n)" table (percent), one column per ``columns`` value (n: seeds)."""
    s = summarize(df, by=tuple(index) + (columns,), value=value)
    s["cell"] = [f"{m:.1f} ± {sd:.1f} (n={n})" for m, sd, n in zip(s["mean"], s["std"], s["seeds"])]
    wide = s.pivot_table(index=list(index), columns=columns, values="cell", aggfunc="first")
    wide.columns = [f"{columns} {c:g}" if isinstance(c, float) else f"{columns} {c}" for c in wide.columns]
    return wide


def gains(df: pd.DataFrame, baseline: str = "random", value: str = "accuracy") -> pd.DataFrame:
    """Gain over ``baseline`` (percentage points) per regime, method, IPC and budget.

    Runs are paired by seed (same regime, IPC, budget); the interval is the
    paired t 95% interval of the mean difference (NaN below 3 pairs).  Columns:
    regime, method, ipc, budget, gain, ci_low, ci_high, pairs, and the
    per-setting p-values ``p_<statement>`` of :func:`ddlib.analysis.stats.p_values`
    (margin :data:`ddlib.analysis.stats.MARGIN` points) that verdicts adjust.
    """
    keys = ["regime", "ipc", "budget", "seed"]
    base = df[df["method"] == baseline].set_index(keys)[value]
    rows = []
    for (regime, method, ipc, budget), g in df[df["method"] != baseline].groupby(
            ["regime", "method", "ipc", "budget"]):
        p = paired(g.set_index(keys)[value], base, scale=100)
        if p is None:
            continue
        rows.append({"regime": regime, "method": method, "ipc": ipc, "budget": budget,
                     "gain": p.diff, "ci_low": p.ci_low, "ci_high": p.ci_high, "pairs": p.n, **p_values(p.d)})
    return pd.DataFrame(rows, columns=["regime", "method", "ipc", "budget", "gain", "ci_low",
                                       "ci_high", "pairs", *p_values([0.0]).keys()])


def interval_table(df: pd.DataFrame, *, index: str, columns: str, value: str, low: str, high: str,
                   fmt: str = "+.2f", n: str = "") -> pd.DataFrame:
    """Wide table of "value [low, high]" cells ("n/a" where the value is NaN; "(n=...)" from column ``n``).

    One row per ``index`` value and one column per ``columns`` value, both in
    first-seen order of ``df``; the index keeps its column's name.
    """
    c = df.copy()
    counts = c[n] if n else [None] * len(c)
    c["cell"] = [("n/a" if pd.isna(v) else f"{v:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]" + (f" (n={k})" if n else ""))
                 for v, lo, hi, k in zip(c[value], c[low], c[high], counts)]
    wide = c.pivot_table(index=index, columns=columns, values="cell", aggfunc="first")
    wide = wide.reindex(index=list(dict.fromkeys(c[index])), columns=list(dict.fromkeys(c[columns])))
    wide.index.name, wide.columns.name = index, None
    return wide


def gain_table(df: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Wide table of :func:`gains`: cells "+1.2 [+0.4, +2.0] (n=5)", one column per budget."""
    g = gains(df, baseline)
    g["cell"] = [interval_cell(m, lo, hi, n) for m, lo, hi, n in zip(g["gain"], g["ci_low"], g["ci_high"], g["pairs"])]
    wide = g.pivot_table(index=["regime", "method", "ipc"], columns="budget", values="cell", aggfunc="first")
    wide.columns = [f"budget {c:g}" for c in wide.columns]
    return wide


def cost_table(df: pd.DataFrame, by: Sequence[str] = ("method", "ipc")) -> pd.DataFrame:
    """Construction cost per method and IPC (means over seeds; ``seeds`` = n).

    Columns: build seconds, peak memory (MiB), samples forwarded and
    back-propagated through any network (teachers and scorers included: their
    cost is charged to every set that uses them), and label bytes.

    When ``by`` leaves out ``regime`` but the rows span several regimes, the
    build columns are the set's own construction, shared by every regime: the
    least over regimes of the per-regime means (a regime's relabel only adds
    to it, and ``hl`` has none); label bytes then get one column per regime
    (``label bytes (sl)``, ...) instead of a mean that no regime ships.
    """
    cols = {"build_seconds": "build s", "build_peak_mem_mb": "peak MiB", "build_fwd": "forward samples",
            "build_bwd": "backward samples", "label_bytes": "label bytes"}
    by = list(by)
    per_regime = "regime" not in by and "regime" in df.columns and df["regime"].nunique() > 1
    if per_regime:
        build = [c for c in cols if c != "label_bytes"]
        m = df.groupby(by + ["regime"])[build].mean()
        out = m.groupby(level=list(range(len(by)))).min().rename(columns=cols)
        out = out.join(label_bytes_by_regime(df, by))
    else:
        out = df.groupby(by)[list(cols)].mean().rename(columns=cols)
        out["label bytes"] = out["label bytes"].round()
    out["seeds"] = df.groupby(by)["seed"].nunique()  # n: the means are over this many seeds
    ints = {c: "int64" for c in out.columns if c in ("forward samples", "backward samples", "seeds")
            or c.startswith("label bytes")}
    return out.round({"build s": 2, "peak MiB": 1}).astype(ints)


def wins(df: pd.DataFrame, method: str, rivals: Sequence[str]) -> pd.DataFrame:
    """Does ``method`` beat every rival?  One row per (regime, IPC, budget).

    Against each rival, each setting's paired gain is "greater", "less",
    "same" (TOST within ± :data:`ddlib.analysis.stats.MARGIN` points) or
    "unclear", Holm-adjusted over the settings (:func:`ddlib.analysis.stats.direction_table`).
    A setting is a win when greater than every rival, a loss when less than
    some rival, a tie when the same as every rival, and unclear otherwise.
    Columns: regime, ipc, budget, gain over each rival with its interval (points), pairs, verdict.
    """
    parts, outcome = [], []
    for rival in rivals:
        g = gains(df[df["method"].isin([method, rival])], baseline=rival)
        g = g[g["method"] == method].set_index(["regime", "ipc", "budget"])
        outcome.append(pd.Series(direction_table(g), index=g.index, dtype=object))
        parts.append(g[["gain", "ci_low", "ci_high"]].add_suffix(f" vs {rival}"))
        parts.append(g[["pairs"]].add_suffix(f" vs {rival}"))
    if not parts:
        return pd.DataFrame()
    t = pd.concat(parts, axis=1).dropna(subset=[f"gain vs {r}" for r in rivals])
    o = pd.concat(outcome, axis=1).reindex(t.index)
    t["pairs"] = t[[f"pairs vs {r}" for r in rivals]].min(axis=1).astype(int)
    t = t.drop(columns=[f"pairs vs {r}" for r in rivals])
    t["verdict"] = ["win" if (r == "greater").all() else "loss" if (r == "less").any()
                    else "tie" if (r == "same").all() else "unclear" for _, r in o.iterrows()]
    return t.round(2).reset_index()


def verdict_sentence(w: pd.DataFrame, method: str, rivals: Sequence[str]) -> str:
    """One sentence counting the wins/losses/ties/unclear settings of :func:`wins` (no typed numbers)."""
    if w.empty:
        return f"No paired runs of {method} and {', '.join(rivals)} are stored yet."
    c = w["verdict"].value_counts()
    return (f"Over {len(w)} (regime, IPC, budget) settings with {w['pairs'].min()}–{w['pairs'].max()} paired "
            f"seeds, {method} beats all of {', '.join(rivals)} in {c.get('win', 0)}, loses to at least one "
            f"in {c.get('loss', 0)}, is within ±{MARGIN:g} point of all of them in {c.get('tie', 0)}, and is "
            f"undecided in {c.get('unclear', 0)} (paired t-tests at 5%, Holm-adjusted over the settings).")


def is_distiller(method: str) -> bool:
    """Whether ``method`` is a registered distiller (else a coreset method)."""
    return method_family(method) == "distill"
