"""Published numbers that the book sets beside its own (``published.csv``).

Columns: paper, table (where in the paper, its project page or its authors'
README), method, dataset, ipc, setting, accuracy and std (percent; std empty
when not reported), note (exactly where the number was read, and the setting's
details).  Every row is typed from the cited source, never computed.

``method`` is ddlib's name of the method where ddlib implements it; a method
ddlib does not implement (``idc``, ``idc_i``, ``full``) is kept under its own
name: :func:`published` lists it, :func:`beside_published` never matches it
(no run carries that method).

``setting`` says which run a row can be set beside.  ``"<network> <regime>"``
(:data:`NETWORKS`, :data:`REGIME_FAMILIES`), e.g. ``"ConvNet hl"`` or
``"ResNet-18 slkd"``, is matched only to runs of that regime family and, when
the runs say their student (``model``), of that network family.  A setting
that ends in a regime but names a network ddlib has not got never matches.
Any other setting (free text such as ``"fixed init"``) constrains nothing: the
row is matched on (method, dataset, IPC) alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import pandas as pd

from ddlib.analysis.stats import mean_std_cell

CSV = Path(__file__).with_name("published.csv")

# the network a setting names -> the prefix of ddlib's model names of that family
NETWORKS = {"ConvNet": "convnet", "ConvNet-3": "convnet", "ResNet-18": "resnet18"}
# the regime a setting names -> ddlib regimes a run may have to be set beside it: the
# teacher's labels of every augmented view, online (slkd) or relabelled once and
# replayed (slkd_stored, the SRe2L/RDED relabel), are one family
REGIME_FAMILIES = {
    "hl": ("hl",),
    "sl": ("sl",),
    "slkd": ("slkd", "slkd_stored"),
    "slkd_stored": ("slkd", "slkd_stored"),
    "mt": ("mt",),
}


def published(paper: Optional[str] = None, method: Optional[str] = None,
              dataset: Optional[str] = None) -> pd.DataFrame:
    """The published-results table as a pandas DataFrame, optionally filtered.

    Args:
        paper: keep rows whose ``paper`` column starts with this (e.g. "Wang").
        method: keep rows of this method name.
        dataset: keep rows of this dataset (ddlib's name, e.g. "fashion_mnist").
    """
    df = pd.read_csv(CSV, dtype={"paper": str, "table": str, "method": str, "dataset": str,
                                 "setting": str, "note": str, "ipc": "Int64"})
    if paper is not None:
        df = df[df["paper"].str.startswith(paper)]
    if method is not None:
        df = df[df["method"] == method]
    if dataset is not None:
        df = df[df["dataset"] == dataset]
    return df.reset_index(drop=True)


def parse_setting(setting) -> Tuple[bool, Optional[str], Optional[Tuple[str, ...]]]:
    """What a ``setting`` asks of a run: (can match at all, model-name prefix or None, regimes or None).

    ``"ConvNet hl"`` -> ``(True, "convnet", ("hl",))``; ``"ResNet-18 slkd"`` ->
    ``(True, "resnet18", ("slkd", "slkd_stored"))``; ``"LeNet hl"`` (a network
    ddlib has not got) -> ``(False, None, ("hl",))``; free text or empty ->
    ``(True, None, None)``: no constraint.
    """
    words = str(setting).split() if isinstance(setting, str) else []
    if not words or words[-1] not in REGIME_FAMILIES:
        return True, None, None
    regimes = REGIME_FAMILIES[words[-1]]
    network = " ".join(words[:-1])
    if not network:
        return True, None, regimes
    if network not in NETWORKS:
        return False, None, regimes
    return True, NETWORKS[network], regimes


def _comparable(row) -> bool:
    ok, prefix, regimes = parse_setting(row["setting"])
    if not ok:
        return False
    if regimes is not None and row["regime"] not in regimes:
        return False
    model = row.get("model")
    if prefix is not None and isinstance(model, str) and model and not model.startswith(prefix):
        return False
    return True


def beside_published(df: pd.DataFrame, reference: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Our mean ± std accuracy per (dataset, method, IPC, regime, budget[, model]) next to the published one.

    A published row is set beside a group only when its ``setting`` can
    describe the group's runs (:func:`parse_setting`: same regime family and,
    when ``df`` has a ``model`` column, the same network family); a method
    that no run carries (e.g. ``idc``) is never matched.

    Args:
        df: result rows (the store's frame): dataset, method, ipc, regime, budget,
            accuracy (fraction in [0, 1]), optionally model (the student).
        reference: published rows (default :func:`published`).

    Returns:
        One row per (group of ``df``, matching published row): dataset, method,
        ipc, regime, budget, model (the student; empty when ``df`` has none), ours (mean,
        percent), ours_std, seeds, published, published_std, gap (ours -
        published, points), paper, table, setting (the published one).
    """
    ref = published() if reference is None else reference
    cols = ["dataset", "method", "ipc", "regime", "budget", "model", "ours", "ours_std", "seeds", "published",
            "published_std", "gap", "paper", "table", "setting"]
    if df.empty or ref.empty:
        return pd.DataFrame(columns=cols)
    acc = df.assign(pct=df["accuracy"] * 100.0)
    if "model" not in acc.columns:
        acc = acc.assign(model=None)
    ours = acc.groupby(["dataset", "method", "ipc", "regime", "budget", "model"], dropna=False)["pct"].agg(
        ours="mean", ours_std=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0, seeds="count").reset_index()
    ref = ref.dropna(subset=["ipc"]).astype({"ipc": "int64"}).rename(
        columns={"accuracy": "published", "std": "published_std"})
    if "setting" not in ref.columns:
        ref = ref.assign(setting="")
    out = ours.astype({"ipc": "int64"}).merge(
        ref[["dataset", "method", "ipc", "published", "published_std", "paper", "table", "setting"]],
        on=["dataset", "method", "ipc"], how="inner")
    if out.empty:
        return pd.DataFrame(columns=cols)
    out = out[out.apply(_comparable, axis=1)]
    out = out.assign(gap=out["ours"] - out["published"])
    return out[cols].sort_values(["dataset", "method", "ipc", "budget", "regime", "paper"]).reset_index(drop=True)


def _pm(mean, std, n=None) -> str:
    """:func:`~ddlib.analysis.stats.mean_std_cell`, "—" for a missing mean."""
    return "—" if pd.isna(mean) else mean_std_cell(mean, std, n)


def published_view(ref: pd.DataFrame) -> pd.DataFrame:
    """:func:`published` rows for a reader: indexed by paper and where in it, one "mean ± std" cell,
    no empty cells ("—")."""
    out = pd.DataFrame({
        "method": ref["method"], "dataset": ref["dataset"],
        "IPC": [("—" if pd.isna(i) else str(int(i))) for i in ref["ipc"]],
        "setting": ref["setting"].fillna("—"),
        "accuracy (%)": [_pm(m, s) for m, s in zip(ref["accuracy"], ref["std"])],
        "note": ref["note"].fillna("—")})
    out.index = pd.MultiIndex.from_arrays([ref["paper"], ref["table"]], names=["paper", "where"])
    return out


def beside_view(beside: pd.DataFrame) -> pd.DataFrame:
    """:func:`beside_published` for a reader: one row per (method, IPC, regime, budget) and published
    number, named in one index column; ours and theirs as "mean ± std" (ours with its n), the gap in
    points, the source (paper and table)."""
    if beside.empty:
        return pd.DataFrame(columns=["ours (%)", "published (%)", "gap (points)", "source"])
    out = pd.DataFrame({
        "ours (%)": [_pm(m, s, n) for m, s, n in zip(beside["ours"], beside["ours_std"], beside["seeds"])],
        "published (%)": [_pm(m, s) for m, s in zip(beside["published"], beside["published_std"])],
        "gap (points)": [f"{g:+.1f}" for g in beside["gap"]],
        "source": [f"{p}, {t}" for p, t in zip(beside["paper"], beside["table"])]})
    # one short index column: the chapter's dataset is its own, the published setting is the run's regime
    out.index = pd.Index([f"{m}, IPC {int(i)}, {r}, budget {b:g}" for m, i, r, b in
                          zip(beside["method"], beside["ipc"], beside["regime"], beside["budget"])], name="our runs")
    return out
