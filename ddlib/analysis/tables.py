"""Tables and verdicts over stored rows: means, intervals, gains over a baseline, wins, costs.

Every function takes the store's rows as a frame (:meth:`ddlib.core.store.Store.frame`)
and trains nothing.  Intervals are paired Student-t intervals over seeds and
verdicts are Holm-adjusted over a table's settings (:mod:`ddlib.analysis.stats`);
every table carries n (``seeds`` / ``pairs``).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ddlib.analysis.pareto import label_bytes_by_regime
from ddlib.analysis.stats import (ALPHA, MARGIN, direction_table, holm, interval_cell, mean_std, mean_std_cell,
                                  n_range, p_value, p_values, paired, paired_interval)
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
    s["cell"] = [mean_std_cell(m, sd, n) for m, sd, n in zip(s["mean"], s["std"], s["seeds"])]
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
    return (f"Over {len(w)} (regime, IPC, budget) settings with {n_range(w['pairs'])} paired "
            f"seeds, {method} beats all of {', '.join(rivals)} in {c.get('win', 0)}, loses to at least one "
            f"in {c.get('loss', 0)}, is within ±{MARGIN:g} point of all of them in {c.get('tie', 0)}, and is "
            f"undecided in {c.get('unclear', 0)} (paired t-tests at 5%, Holm-adjusted over the settings).")


def is_distiller(method: str) -> bool:
    """Whether ``method`` is a registered distiller (else a coreset method)."""
    return method_family(method) == "distill"


def sig_decimals(values, sig: int = 3, most: int = 6) -> int:
    """Decimals that give the largest finite |value| of ``values`` ``sig`` significant digits.

    0.0123 -> 4 (0.0123), 1.23 -> 2, 20.8 -> 1, 123 -> 0 (never below 0 nor above ``most``);
    ``sig`` - 1 when no value is finite and non-zero.  One row of a reader table
    is printed to one such number of decimals.
    """
    a = np.abs(np.asarray(values, dtype=float))
    a = a[np.isfinite(a) & (a > 0)]
    if len(a) == 0:
        return sig - 1
    return int(min(most, max(0, sig - 1 - math.floor(math.log10(float(a.max()))))))


def variant_duels(df: pd.DataFrame, variants: Sequence[str], rivals: Sequence[str], *, label: str = "variant",
                  value: str = "accuracy") -> pd.DataFrame:
    """Each of ``variants`` against each of ``rivals`` (values of column ``label``), paired by seed.

    Two runs pair when they share regime, IPC, budget and seed; settings where
    the rival has no run are left out.  The gain (points) has the paired t 95%
    interval of :func:`ddlib.analysis.stats.paired`.  Verdict, every statement
    Holm-adjusted over all rows: "same" when TOST places the gain within
    ± :data:`ddlib.analysis.stats.MARGIN` points, else "greater" / "less" when
    the two-sided t-test is below 5% (so the 95% interval excludes 0), else
    "unclear" (also below 3 pairs).

    Returns:
        One row per (regime, IPC, budget) setting and (variant, rival), in that order
        (``variants`` x ``rivals`` within a setting): variant, rival, regime, ipc,
        budget, mean and rival_mean (percent, over the paired seeds), gain, ci_low,
        ci_high, pairs, verdict.
    """
    missing = [v for v in (*variants, *rivals) if v not in set(df[label])]
    if missing:
        raise ValueError(f"no rows with {label} {', '.join(map(repr, missing))}")
    keys = [c for c in ("regime", "ipc", "budget") if c in df.columns]
    rows, diffs = [], []
    for a in variants:
        for b in rivals:
            rb = df[df[label] == b].set_index(keys + ["seed"])[value]
            for setting, g in df[df[label] == a].groupby(keys, sort=True):
                setting = setting if isinstance(setting, tuple) else (setting,)
                p = paired(g.set_index(keys + ["seed"])[value], rb, scale=100)
                if p is None:
                    continue
                rows.append({"variant": a, "rival": b, **dict(zip(keys, setting)), "mean": float(p.a.mean()),
                             "rival_mean": float(p.b.mean()), "gain": p.diff, "ci_low": p.ci_low,
                             "ci_high": p.ci_high, "pairs": p.n})
                diffs.append(p.d)
    out = pd.DataFrame(rows, columns=["variant", "rival", *keys, "mean", "rival_mean", "gain", "ci_low", "ci_high",
                                      "pairs"])
    same = holm([p_value(d, "same") for d in diffs]) < ALPHA
    differ = holm([p_value(d, "different") for d in diffs]) < ALPHA
    out["verdict"] = ["same" if s else ("greater" if g > 0 else "less") if dif else "unclear"
                      for s, dif, g in zip(same, differ, out["gain"])]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def duel_sentences(duels: pd.DataFrame) -> str:
    """Markdown of :func:`variant_duels`: per setting a heading line, then one bullet per row.

    "**dd (init=fixed)** at 30.6 % is **below** random at 55.5 %: -24.9 points [-33.1, -16.7] (n=5).",
    with "above", "within ±1 point of" or "undecided against" for the other verdicts;
    the setting line names IPC and budget (and the regime when there are several);
    a last line says how the verdicts were reached.
    """
    if duels.empty:
        return "No paired runs of these sets are stored yet."
    word = {"less": "is **below**", "greater": "is **above**", "unclear": "is **undecided** against",
            "same": f"is **within ±{MARGIN:g} point{'' if MARGIN == 1 else 's'} of**"}
    several = "regime" in duels.columns and duels["regime"].nunique() > 1
    lines, where = [], None
    for r in duels.to_dict("records"):
        here = (f"{r['regime']}, " if several else "") + f"IPC {r['ipc']}, budget {r['budget']:g}"
        if here != where:
            lines += ([""] if lines else []) + [f"At {here}:", ""]
            where = here
        mean, rest = interval_cell(r["gain"], r["ci_low"], r["ci_high"], r["pairs"]).split(" ", 1)
        lines.append(f"* **{r['variant']}** at {r['mean']:.1f} % {word[r['verdict']]} {r['rival']} at "
                     f"{r['rival_mean']:.1f} %: {mean} points {rest}.")
    lines.append(f"\nDifferences are paired by seed, with their t 95% intervals and n seeds; *below* / *above*: a "
                 f"two-sided t-test at 5%, *within*: two one-sided tests (TOST) at a ±{MARGIN:g}-point margin, each "
                 f"Holm-adjusted over these {len(duels)} comparisons; *undecided*: neither (or fewer than 3 seeds).")
    return "\n".join(lines)
