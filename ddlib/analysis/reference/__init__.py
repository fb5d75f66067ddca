"""Published numbers that the book sets beside its own (``published.csv``).

Columns: paper, table (where in the paper or its project page), method,
dataset, ipc, setting, accuracy and std (percent; std empty when not
reported), note.  Every row is typed from the cited source, never computed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

CSV = Path(__file__).with_name("published.csv")


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


def beside_published(df: pd.DataFrame, reference: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Our mean ± std accuracy per (dataset, method, IPC, regime, budget) next to the published one.

    Args:
        df: result rows (the store's frame): dataset, method, ipc, regime, budget,
            accuracy (fraction in [0, 1]).
        reference: published rows (default :func:`published`).

    Returns:
        One row per group of ``df`` that has a published number for its
        (method, dataset, IPC): dataset, method, ipc, regime, budget, ours
        (mean, percent), ours_std, seeds, published, published_std, gap
        (ours - published, points), paper, table.
    """
    ref = published() if reference is None else reference
    cols = ["dataset", "method", "ipc", "regime", "budget", "ours", "ours_std", "seeds", "published",
            "published_std", "gap", "paper", "table"]
    if df.empty or ref.empty:
        return pd.DataFrame(columns=cols)
    acc = df.assign(pct=df["accuracy"] * 100.0)
    ours = acc.groupby(["dataset", "method", "ipc", "regime", "budget"])["pct"].agg(
        ours="mean", ours_std=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0, seeds="count").reset_index()
    ref = ref.dropna(subset=["ipc"]).astype({"ipc": "int64"}).rename(
        columns={"accuracy": "published", "std": "published_std"})
    out = ours.astype({"ipc": "int64"}).merge(
        ref[["dataset", "method", "ipc", "published", "published_std", "paper", "table"]],
        on=["dataset", "method", "ipc"], how="inner")
    out["gap"] = out["ours"] - out["published"]
    return out[cols].sort_values(["dataset", "method", "ipc", "budget"]).reset_index(drop=True)
