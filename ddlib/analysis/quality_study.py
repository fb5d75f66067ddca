"""Quality metrics of stored condensed sets, one table row per built set.

A condensed set is stored once per *build key* (:func:`ddlib.methods.build.build_key`:
no regime, no budget unless the method uses it), so the many result rows of a
study that share a set give one quality row.  Sets and the real train pool are
embedded with one network (normally the profile's teacher) and compared by
:func:`ddlib.analysis.quality.set_quality`.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import altair as alt
import numpy as np
import pandas as pd
import torch.nn as nn

from ddlib.analysis.quality import MAX_REAL, features, set_quality
from ddlib.analysis.stats import holm, interval_cell, spearman_ci, welch
from ddlib.analysis.style import ACCURACY, family_shape, method_color, regime_labels
from ddlib.analysis.tables import interval_table, sig_decimals
from ddlib.core.config import RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data import Split
from ddlib.methods.build import build_key, method_family
from ddlib.run.runner import validate
from ddlib.run.settings import default_store

Entry = Union[str, RunConfig, Dict[str, Any]]


def _entries(keys_or_rows: Union[pd.DataFrame, Iterable[Entry]]) -> List[Tuple[str, Dict[str, Any]]]:
    """(build key, descriptive columns) per distinct condensed set, in first-seen order."""
    items = keys_or_rows.to_dict("records") if isinstance(keys_or_rows, pd.DataFrame) else list(keys_or_rows)
    out: Dict[str, Dict[str, Any]] = {}
    for it in items:
        if isinstance(it, str):
            key, info = it, {"method": None, "ipc": None, "seed": None, "variant": None}
        else:
            r = validate(it if isinstance(it, RunConfig) else RunConfig.from_row(it))
            key = build_key(r)
            variant = it.get("variant") if isinstance(it, dict) else None
            info = {"method": r.method, "ipc": r.ipc, "seed": r.seed,
                    "variant": variant if isinstance(variant, str) and variant else r.method}
        out.setdefault(key, info)
    return list(out.items())


def set_quality_table(store: Store, split: Split, teacher: nn.Module,
                      keys_or_rows: Union[pd.DataFrame, Iterable[Entry]], *, k: int = 5, seed: int = 0,
                      max_real: int = MAX_REAL, batch: int = 512) -> pd.DataFrame:
    """Quality of each stored condensed set against the real train pool.

    Args:
        store: where the condensed sets were cached (``artifacts/condensed``).
        split: the data the sets were built from; its train pool (N, C, H, W)
            is the real reference.
        teacher: the embedding network (its ``embed`` gives (N, D) features).
        keys_or_rows: result rows (a frame from ``Study.run`` / ``Store.frame``
            or dicts with ``config_json``), RunConfigs, or bare build keys
            (whose method/ipc/seed columns are then empty).  Rows sharing a
            build key give one table row.
        k, seed, max_real: passed to :func:`ddlib.analysis.quality.set_quality`.
        batch: images per embedding forward pass.

    Returns:
        One row per condensed set: method, family, variant, ipc, seed,
        build_key, then precision, recall, density, coverage, fd, mmd2,
        mmd_bandwidth, vendi, vendi_centred, mean_pdist, n_real, n_syn, k.
    """
    entries = _entries(keys_or_rows)
    real = features(teacher, split.train_x, batch)
    rows = []
    for key, info in entries:
        art = store.load_artifact("condensed", key)
        if art is None:
            raise DDLibError(f"no stored condensed set {key} ({info['method'] or 'unknown method'}); "
                             f"run the study first")
        syn = features(teacher, art["images"], batch)
        fam = method_family(info["method"]) if info["method"] else None
        rows.append({**info, "family": fam, "build_key": key,
                     **set_quality(real, syn, k=k, seed=seed, max_real=max_real)})
    cols = ["method", "family", "variant", "ipc", "seed", "build_key"]
    df = pd.DataFrame(rows)
    if rows:  # bare build keys leave method/ipc/seed empty: keep integer columns integer
        df = df.astype({"ipc": "Int64", "seed": "Int64"})
    return df[cols + [c for c in df.columns if c not in cols]] if rows else pd.DataFrame(columns=cols)


QUALITY_METRICS = ("precision", "recall", "density", "coverage", "fd", "mmd2", "vendi", "vendi_centred",
                   "mean_pdist")


def with_build_keys(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` (rows with ``config_json``) plus the ``build_key`` of each row's condensed set."""
    out = results.copy()
    out["build_key"] = [build_key(validate(RunConfig.from_row(r))) for r in results.to_dict("records")]
    return out


def quality_vs_accuracy(results: pd.DataFrame, quality: pd.DataFrame, *,
                        metrics=QUALITY_METRICS, value: str = "accuracy", by=("regime", "budget"),
                        n_boot: int = 2000, random_state: int = 0) -> pd.DataFrame:
    """Spearman correlation (95% paired bootstrap CI) of each set metric with ``value``.

    Each result row is joined to the quality row of its condensed set (by build
    key); within every ``by`` group the n (metric, accuracy) pairs, one per
    run, are correlated with :func:`ddlib.analysis.stats.spearman_ci`.

    Args:
        results: result rows with ``config_json`` and ``value`` (``Study.run``'s frame).
        quality: :func:`set_quality_table`'s frame.
        metrics: quality columns to correlate.
        by: result columns that define a group (one regime and budget: runs
            that differ only in their set).

    Returns:
        One row per (group, metric): the ``by`` columns, metric, rho, low, high, n.
    """
    joined = with_build_keys(results).merge(quality[["build_key", *metrics]], on="build_key", how="inner")
    if len(joined) < len(results):
        raise DDLibError(f"{len(results) - len(joined)} result rows have no quality row; "
                         f"pass their sets to set_quality_table first")
    rows = []
    for keys, g in joined.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for m in metrics:
            rho, lo, hi = spearman_ci(g[m].to_numpy(float), g[value].to_numpy(float), n_boot=n_boot,
                                      random_state=random_state)
            rows.append({**dict(zip(by, keys)), "metric": m, "rho": rho, "low": lo, "high": hi, "n": len(g)})
    return pd.DataFrame(rows)


def study_quality_table(study, split: Split, teacher: nn.Module, store: Optional[Store] = None,
                        **kw) -> pd.DataFrame:
    """:func:`set_quality_table` of every condensed set of ``study`` (a :class:`ddlib.run.study.Study`).

    The sets must be stored (run the study first).  ``split`` and ``teacher``, the
    embedding network, come from the run layer
    (:func:`ddlib.run.measure.reference_teacher`: the profile's first teacher);
    keyword arguments go to :func:`set_quality_table`.
    """
    df = set_quality_table(store or default_store(), split, teacher, study.configs(), **kw)
    if study.hparams:
        df["variant"] = [f"{m} ({study.variant()})" for m in df["method"]]
    return df


# the metrics the book shows: raw ``vendi`` is left out (post-ReLU features make it ~1 for any set)
BOOK_METRICS = ("precision", "recall", "density", "coverage", "fd", "mmd2", "vendi_centred", "mean_pdist")
LOWER_IS_BETTER = frozenset({"fd", "mmd2"})  # distances to the real pool; every other metric: higher is more
# what each metric says about a set (for prose): fidelity, representativeness, diversity
ASPECT = {"precision": "fidelity", "density": "fidelity", "recall": "representativeness",
          "coverage": "representativeness", "fd": "representativeness", "mmd2": "representativeness",
          "vendi": "diversity", "vendi_centred": "diversity", "mean_pdist": "diversity"}


def quality_summary(quality: pd.DataFrame, *, metrics=BOOK_METRICS, by=("family", "method", "ipc"),
                    digits: int = 4) -> pd.DataFrame:
    """Mean of each metric over the seeds of every (family, method, IPC) to ``digits`` significant
    digits (the metrics' scales differ by orders of magnitude), plus the set count."""
    g = quality.groupby(list(by), sort=True)
    out = g[list(metrics)].mean().apply(lambda col: col.map(lambda v: float(f"{v:.{digits}g}")))
    out["sets"] = g.size()
    return out


def _method_means(quality: pd.DataFrame, metric: str) -> pd.Series:
    return quality.groupby("method", sort=True)[metric].mean()


def family_contrast(quality: pd.DataFrame, *, metrics=BOOK_METRICS, by=("ipc",),
                    confidence: float = 0.95) -> pd.DataFrame:
    """Distilled minus coreset mean of each metric, with Welch's interval over methods.

    Each method's sets are first averaged over seeds (a method is the unit: the
    question is about families of methods, and seeds of one method are not
    independent evidence about the family).  The interval is Welch's t
    interval of the difference of the two families' method means
    (:func:`ddlib.analysis.stats.welch`; no interval with fewer than 2 methods
    in a family), and a family is ahead on a metric when its two-sided p-value,
    Holm-adjusted over every row of the table, is below 5%.

    Returns:
        One row per (``by`` group, metric): by, metric, coreset, distill (family
        means), diff (distill - coreset), low, high, n_coreset, n_distill
        (methods), p (Holm-adjusted) and ``more`` = "distill" / "coreset" / "" :
        the family whose sets have *more* of what the metric measures (for fd
        and mmd2, lower is more representative), where the adjusted p < 0.05.
    """
    rows = []
    for keys, g in quality.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for m in metrics:
            c = _method_means(g[g["family"] == "coreset"], m).to_numpy(float)
            d = _method_means(g[g["family"] == "distill"], m).to_numpy(float)
            if len(c) == 0 or len(d) == 0:
                continue
            iv, p = welch(d, c, confidence)
            rows.append({**dict(zip(by, keys)), "metric": m, "coreset": float(c.mean()), "distill": float(d.mean()),
                         "diff": iv.mean, "low": iv.low, "high": iv.high, "n_coreset": len(c),
                         "n_distill": len(d), "p": p})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p"] = holm(out["p"].to_numpy(float))
    sign = np.where(out["metric"].isin(LOWER_IS_BETTER), -1, 1)
    ahead = (out["p"] < 1 - confidence).to_numpy()
    out["more"] = np.where(ahead & (sign * out["diff"] > 0), "distill",
                           np.where(ahead & (sign * out["diff"] < 0), "coreset", ""))
    return out


# reader tables: a metric shown scaled says so in its row label; family names as the prose says them
SHOWN = {"mmd2": (1e3, "mmd2 ×10³")}
FAMILY_LABEL = {"coreset": "coresets", "distill": "distilled"}


def _label(metric: str) -> str:
    return SHOWN.get(metric, (1.0, metric))[1]


def _cells(values, decimals: int) -> list:
    """Strings with ``decimals`` decimals ("–" for NaN; no "-0.00")."""
    return ["–" if pd.isna(v) else f"{round(float(v), decimals) + 0.0:.{decimals}f}" for v in values]


def quality_view(quality: pd.DataFrame, *, metrics=BOOK_METRICS, sig: int = 3) -> pd.DataFrame:
    """:func:`quality_summary` for reading: one row per (IPC, metric), one column per method.

    Cells are strings: the mean over seeds of each metric (``mmd2`` x 10³, its
    row label says so), every row to the decimals that give its largest |value|
    ``sig`` significant digits (:func:`ddlib.analysis.tables.sig_decimals`);
    "–" where a method has no set at that IPC.  Each IPC ends with a row
    "seeds (n)": how many sets (seeds) the means are over.

    Returns:
        Index (IPC, metric label); columns (family "coresets" / "distilled", method), sorted.
    """
    q = quality.dropna(subset=["family", "method"])
    by = ["ipc", "family", "method"]
    means, counts = q.groupby(by, sort=True)[list(metrics)].mean(), q.groupby(by, sort=True).size()
    cols = sorted({(f, m) for f, m in zip(q["family"], q["method"])})
    rows = {}
    for ipc in sorted(q["ipc"].unique()):
        m = means.loc[ipc].reindex(cols)
        for metric in metrics:
            vals = m[metric].to_numpy(float) * SHOWN.get(metric, (1.0,))[0]
            rows[(int(ipc), _label(metric))] = _cells(vals, sig_decimals(vals, sig))
        rows[(int(ipc), "seeds (n)")] = ["–" if pd.isna(n) else str(int(n)) for n in counts.loc[ipc].reindex(cols)]
    out = pd.DataFrame(list(rows.values()), index=pd.MultiIndex.from_tuples(list(rows), names=["IPC", "metric"]),
                       columns=pd.MultiIndex.from_tuples([(FAMILY_LABEL.get(f, f), m) for f, m in cols]))
    return out


CONTRAST_CELL = "distilled − coresets [95% CI] (n)"


def contrast_view(contrast: pd.DataFrame, *, sig: int = 3) -> pd.DataFrame:
    """:func:`family_contrast` for reading: index (IPC, metric label), four string columns.

    ``coresets`` and ``distilled``: the family means, to the decimals that give
    the larger ``sig`` significant digits; :data:`CONTRAST_CELL`: the
    difference with its Welch 95% interval and n (methods, both families
    together), to the decimals that give the interval's larger bound 2
    significant digits; ``ahead``: "distilled" / "coresets" (``more``), "—" where
    the families are not separated.  ``mmd2`` is shown x 10³ (its label says so).
    """
    if contrast.empty:
        return pd.DataFrame(columns=["coresets", "distilled", CONTRAST_CELL, "ahead"])
    by = list(contrast.columns[:list(contrast.columns).index("metric")])
    rows = []
    for r in contrast.to_dict("records"):
        k = SHOWN.get(r["metric"], (1.0,))[0]
        lev = [r["coreset"] * k, r["distill"] * k]
        iv = [r["diff"] * k, r["low"] * k, r["high"] * k]
        d = sig_decimals(iv[1:], 2) if not pd.isna(iv[1]) else sig_decimals(lev, sig)
        iv = [round(v, d) + 0.0 for v in iv]  # no "-0.000"
        c, s = _cells(lev, sig_decimals(lev, sig))
        rows.append({**{("IPC" if b == "ipc" else b): r[b] for b in by}, "metric": _label(r["metric"]),
                     "coresets": c, "distilled": s,
                     CONTRAST_CELL: interval_cell(*iv, r["n_coreset"] + r["n_distill"], f"+.{d}f"),
                     "ahead": FAMILY_LABEL.get(r["more"], "—")})
    out = pd.DataFrame(rows)
    return out.set_index([("IPC" if b == "ipc" else b) for b in by] + ["metric"])


_MORE = {"representativeness": "more representative", "fidelity": "closer to the real images",
         "diversity": "more diverse"}


def contrast_sentence(contrast: pd.DataFrame) -> str:
    """Markdown answering "are distilled sets more representative / diverse than coresets?".

    One line per IPC naming, per aspect (:data:`ASPECT`), the metrics on which
    each family is clearly ahead (``more`` of :func:`family_contrast`), then a
    count over every (IPC, metric) comparison.
    """
    if contrast.empty:
        return "No study has both coresets and distilled sets stored yet."
    lines = []
    for ipc, g in contrast.groupby("ipc", sort=True):
        n = g.iloc[0]
        head = f"* **IPC {ipc}** ({n['n_distill']} distillers vs {n['n_coreset']} coreset methods): "
        said = []
        for fam, name in (("distill", "distilled sets"), ("coreset", "coresets")):
            for aspect, phrase in _MORE.items():
                ms = [m for m, w in zip(g["metric"], g["more"]) if w == fam and ASPECT.get(m) == aspect]
                if ms:
                    said.append(f"{name} are {phrase} by {', '.join(ms)}")
        rest = int((g["more"] == "").sum())
        if said:
            lines.append(head + "; ".join(said) + f"; the other {rest} of {len(g)} metrics do not separate "
                         "the families (Welch t-tests at 5%, Holm-adjusted).")
        else:
            lines.append(head + f"no metric separates the families (Welch t-tests at 5%, Holm-adjusted over all {len(contrast)}).")
    c = contrast["more"].value_counts()
    lines.append(f"\nOver all {len(contrast)} (IPC, metric) comparisons the distilled sets are clearly ahead in "
                 f"{c.get('distill', 0)}, the coresets in {c.get('coreset', 0)}, and neither in {c.get('', 0)}.")
    return "\n".join(lines)


def _group_labels(corr: pd.DataFrame) -> pd.Series:
    """"hl", "hl, IPC 10", "hl, IPC 10, budget 2": the correlation groups, naming only columns that vary.

    The regime is always named; IPC and budget when they take more than one value.
    """
    parts = [corr["regime"].astype(str)]
    for col, fmt in (("ipc", "IPC {}"), ("budget", "budget {:g}")):
        if col in corr and corr[col].nunique() > 1:
            parts.append(corr[col].map(fmt.format))
    out = parts[0]
    for p in parts[1:]:
        out = out + ", " + p
    return out


def correlation_table(corr: pd.DataFrame) -> pd.DataFrame:
    """:func:`quality_vs_accuracy` as a wide table: cells "+0.45 [+0.10, +0.70]", one row per metric,
    one column per group (regime, and IPC / budget when they vary)."""
    return interval_table(corr.assign(group=_group_labels(corr)), index="metric", columns="group",
                          value="rho", low="low", high="high", n="n")


def correlation_sentence(corr: pd.DataFrame) -> str:
    """Markdown: per group, the metrics whose Spearman 95% interval excludes 0, strongest first."""
    c = corr.copy()
    c["group"] = _group_labels(c)
    lines = []
    for group, g in c.groupby("group", sort=False):
        sig = g[(g["low"] > 0) | (g["high"] < 0)]  # NaN intervals compare False: left out
        sig = sig.loc[sig["rho"].abs().sort_values(ascending=False, kind="stable").index]
        n = int(g["n"].iloc[0])
        if sig.empty:
            lines.append(f"* **{group}** ({n} runs): no metric's interval excludes 0.")
        else:
            lines.append(f"* **{group}** ({n} runs): " + ", ".join(
                f"{m} (rho {r:+.2f})" for m, r in zip(sig["metric"], sig["rho"]))
                + f"; {len(g) - len(sig)} of {len(g)} metrics have intervals covering 0.")
    return "\n".join(lines)


def quality_chart(results: pd.DataFrame, quality: pd.DataFrame, *, metric: str = "coverage",
                  width: int = 200, height: int = 170):
    """Accuracy (mean over seeds) against ``metric`` (mean over seeds), per (method, IPC).

    One panel per (IPC, regime), each with its own axes (a set of 10x the
    images covers more of the pool whatever its method); colour: method, shape:
    family.  Call :func:`ddlib.analysis.plots.setup` first (SVG).
    """
    j = with_build_keys(results).merge(quality[["build_key", metric]], on="build_key", how="inner")
    s = j.groupby(["regime", "family", "method", "ipc"], sort=True).agg(
        **{metric: (metric, "mean"), "accuracy": ("accuracy", "mean"), "runs": ("accuracy", "size")}).reset_index()
    s["accuracy"] *= 100
    s["regime"] = regime_labels(s["regime"])
    s["family"] = ["distilled" if f == "distill" else "coreset" for f in s["family"]]
    return alt.Chart(s).mark_point(size=80, filled=True, opacity=1).encode(
        x=alt.X(f"{metric}:Q", title=metric, scale=alt.Scale(zero=False)),
        y=alt.Y("accuracy:Q", title=ACCURACY, scale=alt.Scale(zero=False)),
        color=method_color(s["method"]), shape=family_shape(),
        tooltip=["regime", "method", "ipc", alt.Tooltip(f"{metric}:Q", format=".3f"),
                 alt.Tooltip("accuracy:Q", format=".1f"), "runs"],
    ).properties(width=width, height=height).facet(
        row=alt.Row("ipc:O", title="IPC"), column=alt.Column("regime:N", title="label regime")
    ).resolve_scale(x="independent", y="independent")


def correlation_heatmap(corr: pd.DataFrame, *, width: int = 60, height: int = 18):
    """Spearman rho of each metric (rows) with accuracy per group (columns, as
    :func:`correlation_table`), diverging colour in [-1, 1].

    Cells whose 95% interval covers 0 are printed in grey, the others in black.
    """
    c = corr.copy()
    c["group"] = _group_labels(c)
    c["clear"] = (c["low"] > 0) | (c["high"] < 0)
    order = list(dict.fromkeys(c["metric"]))
    base = alt.Chart(c).encode(x=alt.X("group:N", sort=list(dict.fromkeys(c["group"])), title="runs correlated",
                                       axis=alt.Axis(labelAngle=-40)),
                               y=alt.Y("metric:N", sort=order, title="quality metric"))
    rect = base.mark_rect().encode(
        color=alt.Color("rho:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True),
                        title="Spearman rho"),
        tooltip=["group", "metric", alt.Tooltip("rho:Q", format="+.2f"), alt.Tooltip("low:Q", format="+.2f"),
                 alt.Tooltip("high:Q", format="+.2f"), "n"])
    text = base.transform_filter("isValid(datum.rho)").mark_text(fontSize=10).encode(
        text=alt.Text("rho:Q", format="+.2f"),
        color=alt.condition("datum.clear", alt.value("black"), alt.value("#888888")))
    return (rect + text).properties(width=width * c["group"].nunique(), height=height * len(order))
