"""Tables of the protocol chapter: what each profile, protocol, regime and method is.

Everything here is read from the registries and from ``benchmarks/results``,
so the protocol page cannot drift from the code that produced the other pages.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Tuple

import altair as alt
import pandas as pd

from ddlib.core.config import METHOD_DEFAULT_FIELDS, PROFILES, PROTOCOLS
from ddlib.core.registry import DDLibError
from ddlib.engine import regimes
from ddlib.methods.coresets import CORESETS
from ddlib.methods.coresets.cad_prune import passes_per_sample
from ddlib.methods.distill import DISTILLERS

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def profiles_table() -> pd.DataFrame:
    """One column per profile, one row per setting (sizes, models, grid defaults)."""
    cols = {}
    for name in PROFILES.names():
        d = asdict(PROFILES.get(name))
        d.pop("name")
        for f in METHOD_DEFAULT_FIELDS:  # per-method defaults: each method's own table, not this one
            d.pop(f)
        cols[name] = {k + GRID_DEFAULT.get(k, ""): ", ".join(map(str, v)) if isinstance(v, tuple) else
                      ("whole split" if v is None else str(v)) for k, v in d.items()}
    return pd.DataFrame(cols)


# the profile fields a chapter grid overrides: shown as what they are, so that the table never reads as
# the chapters' own IPCs or budgets (those are in the chapters table)
GRID_DEFAULT = {f: " (a grid naming none)" for f in ("methods", "ipcs", "regimes", "budgets", "seeds")}


def plain(text: str) -> str:
    """A docstring fragment for a table cell: RST literals (````x````) as plain text, whitespace collapsed."""
    return " ".join(re.sub(r"``([^`]+)``", r"\1", text).split())


def protocols_table() -> pd.DataFrame:
    """Every named training protocol with its hyperparameters (one row each)."""
    rows = [asdict(PROTOCOLS.get(n)) for n in PROTOCOLS.names()]
    t = pd.DataFrame(rows).set_index("name")
    # a reader's widths: DSA op lists wrap ("color, crop, ...") and the headers are short
    t["augment"] = [a.replace("_", ", ") for a in t["augment"]]
    t["weight_decay"] = [f"{w:g}" for w in t["weight_decay"]]
    return t.rename(columns={"momentum": "mom.", "weight_decay": "wd", "batch_size": "batch",
                             "temperature": "T (KD)"})


def regimes_table() -> pd.DataFrame:
    """Each label regime with its definition from :mod:`ddlib.engine.regimes`' docstring."""
    # the module docstring's bullet list "* ``name`` text" is the definition
    found = dict(re.findall(r"^\* ``(\w+)``\s+(.+?)(?=^\* |^\S|\Z)", regimes.__doc__ or "", re.M | re.S))
    rows = [{"regime": n, "labels": plain(found.get(n, ""))} for n in regimes.REGIMES.names()]
    return pd.DataFrame(rows).set_index("regime")


def methods_table() -> pd.DataFrame:
    """Every registered coreset method and distiller with the first docstring line."""
    rows = []
    for family, reg in (("coreset", CORESETS), ("distiller", DISTILLERS)):
        for n in reg.names():
            doc = (reg.get(n).__doc__ or "").strip().splitlines()
            rows.append({"method": n, "family": family, "what it does": plain(doc[0]) if doc else ""})
    return pd.DataFrame(rows).set_index("method")


def epochs_over_set(profile: str, ipcs, budgets, num_classes: int = 10,
                    pool_per_class: Optional[int] = None) -> pd.DataFrame:
    """Epochs over the condensed set that a budget buys: e = B * |pool| / (K * IPC)
    (:func:`ddlib.methods.coresets.cad_prune.passes_per_sample`, per IPC and budget).

    A budget of ``B`` full-pool epochs is ``B * |pool|`` samples seen,
    whatever the set's size, so a smaller set is passed over more often.

    Args:
        profile: whose pool size to use (its ``pool_per_class``).
        ipcs: images per class of the condensed sets.
        budgets: budgets in full-pool epochs.
        num_classes: K.
        pool_per_class: override of the profile's pool size (required when the
            profile uses the whole train split, whose size depends on the data).

    Returns:
        frame with columns ipc, budget, samples_seen, epochs_over_set.
    """
    ppc = pool_per_class or PROFILES.get(profile).pool_per_class
    if not ppc:
        raise DDLibError(f"profile {profile!r} uses the whole train split; pass pool_per_class")
    rows = []
    for i in ipcs:
        for b in budgets:
            rows.append({"ipc": int(i), "budget": float(b), "samples_seen": int(float(b) * ppc * num_classes),
                         "epochs_over_set": passes_per_sample(b, ppc * num_classes, num_classes, int(i))})
    return pd.DataFrame(rows)


def passes_chart(df: pd.DataFrame, *, width: int = 300, height: int = 200) -> alt.Chart:
    """Log-log lines of epochs over the set against IPC, one line per budget."""
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("ipc:Q", scale=alt.Scale(type="log"), title="images per class"),
        y=alt.Y("epochs_over_set:Q", scale=alt.Scale(type="log"), title="epochs over the condensed set"),
        color=alt.Color("budget:N", title="budget (full-pool epochs)"),
    ).properties(width=width, height=height)


def benchmarks_table(folder: Optional[Path] = None) -> pd.DataFrame:
    """Headline figures of every committed benchmark result (``benchmarks/results/*.json``).

    One row per (benchmark, field) for its top-level ratios, throughputs
    (images/s), GFLOP rates, fractions of the GEMM rate and the end-to-end
    book minutes (``book_time.py``), with its device.
    """
    folder = Path(folder or BENCHMARKS)
    rows = []
    for f in sorted(folder.glob("*.json")):
        d = json.loads(f.read_text())
        for k, v in d.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and \
                    (any(s in k for s in ("ratio", "img_s", "gflop_s", "fraction")) or k in ("wall_min", "target_min")):
                rows.append({"benchmark": f.stem, "field": k, "value": v, "device": str(d.get("device", ""))})
    if not rows:
        raise DDLibError(f"no benchmark results in {folder}; run the scripts in benchmarks/")
    return pd.DataFrame(rows).set_index(["benchmark", "field"])


def reproduce_curves(path: Optional[Path] = None) -> pd.DataFrame:
    """``benchmarks/reproduce.py``'s accuracy along synthesis (``results/reproduce.json``).

    One row per (method, IPC, checkpoint iterations): mean validation and test
    accuracy (%), the students behind them, synthesis seconds, the published
    number; empty (no rows) when the benchmark has not been run.
    """
    f = Path(path or BENCHMARKS / "reproduce.json")
    cols = ["method", "ipc", "iters", "val_mean", "test_mean", "students", "synth_seconds", "published"]
    if not f.exists():
        return pd.DataFrame(columns=cols).set_index(["method", "ipc", "iters"])
    rows = [{**{k: r[k] for k in cols if k in r}, "students": len(r["test_acc"])}
            for r in json.loads(f.read_text())["curves"]]
    return pd.DataFrame(rows, columns=cols).round(2).set_index(["method", "ipc", "iters"])


def reproduce_table(path: Optional[Path] = None) -> pd.DataFrame:
    """Per (method, IPC): the checkpoint chosen on validation, its test accuracy, random real images at
    the same IPC and the published number (a one-line note when the benchmark has not been run)."""
    f = Path(path or BENCHMARKS / "reproduce.json")
    if not f.exists():
        return pd.DataFrame([{"status": "not run yet: python benchmarks/reproduce.py (hours on 2 CPU cores)"}])
    d = json.loads(f.read_text())
    return pd.DataFrame(d["chosen"]).set_index(["method", "ipc"])


def reproduce_chart(curves: pd.DataFrame) -> Optional[alt.Chart]:
    """Test accuracy against synthesis iterations, one line per (method, IPC), the published number dashed.

    ``None`` (nothing drawn) when no reproduction is recorded: :func:`reproduce_table` says so.
    """
    df = curves.reset_index()
    if df.empty:
        return None
    df["run"] = df["method"] + " ipc " + df["ipc"].astype(str)
    df["x"] = df["iters"].clip(lower=0.5)  # iteration 0 (the real images) on the log axis
    base = alt.Chart(df).encode(color=alt.Color("run:N", title=None))
    line = base.mark_line(point=True).encode(
        x=alt.X("x:Q", scale=alt.Scale(type="log"), title="synthesis iterations (0 drawn at 0.5)"),
        y=alt.Y("test_mean:Q", title="test accuracy (%)"))
    pub = base.mark_rule(strokeDash=[4, 3]).encode(y="published:Q")
    return (line + pub.transform_filter("isValid(datum.published)")).properties(width=360, height=220)


def convergence_table(path: Optional[Path] = None) -> Tuple[pd.DataFrame, str]:
    """The `default` full-pool student along a doubling budget series (``benchmarks/converge_default.py``).

    Returns the table (budget in full-pool epochs, SGD steps, mean validation and
    test accuracy %, seeds) and one sentence: the converged validation accuracy
    (the longest run), the largest budget within the recorded margin of it and
    the smallest with >= 100 steps, as chosen on validation.
    """
    f = Path(path or BENCHMARKS / "default_convergence.json")
    if not f.exists():
        raise DDLibError(f"no {f.name}; run python benchmarks/converge_default.py")
    d = json.loads(f.read_text())
    df = pd.DataFrame([{"budget (epochs)": r["budget"], "SGD steps": r["steps"], "val %": r["val_mean"],
                        "test %": r["test_mean"], "n": len(r["val"])} for r in d["rows"]]).set_index("budget (epochs)")
    text = (f"On the `{d['profile']}` profile's {d['pool']:,}-image pool, the student ({d['model']}, "
            f"{d['protocol']}) converges at {d['converged_val']:.2f} % validation accuracy (budget "
            f"{d['converged_at_budget']:g}, mean of {len(d['seeds'])} seeds).  The largest budget the book "
            f"trains, {d['largest_budget']:g} epochs, is the first within {d['within_points']:g} points of it; the "
            f"smallest, {d['smallest_budget']:g} epochs, is the first with at least {d['min_steps']} SGD steps.")
    return df, text
