"""A study: the grid of runs a notebook asks for, run or reused, and its tables.

Notebooks freeze their papermill parameters into a :class:`Study` right after
the parameters cell; everything else they show is a call into this module or
:mod:`ddlib.plots`.
"""
from __future__ import annotations

import itertools
import logging
import platform
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Tuple

import pandas as pd
from tqdm import tqdm

from .config import PROFILES, RunConfig
from .metrics.stats import bootstrap_ci, mean_std, paired_bootstrap_ci
from .runner import run, validate
from .store import Store

log = logging.getLogger("ddlib")


@dataclass(frozen=True)
class Study:
    """The frozen grid of one notebook: every list expands into a product of runs."""

    profile: str
    dataset: str
    methods: Tuple[str, ...]
    ipcs: Tuple[int, ...]
    regimes: Tuple[str, ...]
    budgets: Tuple[float, ...]
    seeds: Tuple[int, ...]

    @classmethod
    def from_params(cls, profile: str = "default", dataset: str = "",
                    methods: Sequence[str] = (), ipcs: Sequence[int] = (),
                    regimes: Sequence[str] = (), budgets: Sequence[float] = (),
                    seeds: Sequence[int] = ()) -> "Study":
        """Fill empty parameters with the profile's defaults and validate every name."""
        p = PROFILES.get(profile)
        s = cls(profile, dataset or p.dataset, tuple(methods or p.methods),
                tuple(int(i) for i in (ipcs or p.ipcs)), tuple(regimes or p.regimes),
                tuple(float(b) for b in (budgets or p.budgets)), tuple(int(x) for x in (seeds or p.seeds)))
        for cfg in s.configs():
            validate(cfg)
        return s

    def configs(self):
        """Every RunConfig of the grid, condensed sets grouped so caches are reused."""
        return [RunConfig(self.dataset, m, i, r, b, s, self.profile)
                for m, i, s, r, b in itertools.product(self.methods, self.ipcs, self.seeds,
                                                       self.regimes, self.budgets)]

    def describe(self) -> pd.DataFrame:
        """One-row-per-parameter table of the frozen config (shown on every page)."""
        p = PROFILES.get(self.profile)
        d = {**asdict(self), "student": p.model, "teacher": p.teacher_model,
             "protocol": p.protocol, "runs": len(self.configs())}
        return pd.DataFrame({"value": [", ".join(map(str, v)) if isinstance(v, tuple) else str(v)
                                       for v in d.values()]}, index=list(d))

    def run(self, store: Optional[Store] = None, *, quiet: bool = False) -> pd.DataFrame:
        """Run every missing grid point (reusing stored ones); the grid's rows as a frame."""
        store = store or Store()
        cfgs = self.configs()
        log.info("study: %d runs on profile %s, results in %s", len(cfgs), self.profile, store.db_path)
        keys, reused = [], 0
        for cfg in tqdm(cfgs, desc="study", disable=quiet):
            row, hit = run(cfg, store, quiet=True)
            keys.append(row["key"])
            reused += hit
        log.info("study: %d computed, %d reused", len(cfgs) - reused, reused)
        df = store.frame()
        return df[df["key"].isin(keys)].reset_index(drop=True)


def summarize(df: pd.DataFrame, by: Sequence[str] = ("regime", "method", "ipc", "budget"),
              value: str = "accuracy", scale: float = 100.0) -> pd.DataFrame:
    """Mean, std, 95% bootstrap CI and seed count of ``value`` per group (x ``scale``)."""
    rows = []
    for keys, g in df.groupby(list(by), sort=True):
        vals = g[value].to_numpy() * scale
        m, s = mean_std(vals)
        lo, hi = bootstrap_ci(vals)
        rows.append({**dict(zip(by, keys)), "mean": m, "std": s, "ci_low": lo, "ci_high": hi,
                     "seeds": len(vals)})
    return pd.DataFrame(rows)


def pivot_table(df: pd.DataFrame, index=("regime", "method", "ipc"), columns="budget",
                value: str = "accuracy") -> pd.DataFrame:
    """Wide "mean ± std" table (percent), one column per ``columns`` value."""
    s = summarize(df, by=tuple(index) + (columns,), value=value)
    s["cell"] = [f"{m:.1f} ± {sd:.1f}" for m, sd in zip(s["mean"], s["std"])]
    wide = s.pivot_table(index=list(index), columns=columns, values="cell", aggfunc="first")
    wide.columns = [f"{columns} {c:g}" if isinstance(c, float) else f"{columns} {c}" for c in wide.columns]
    return wide


def gains(df: pd.DataFrame, baseline: str = "random", value: str = "accuracy") -> pd.DataFrame:
    """Gain over ``baseline`` (percentage points) per regime, method, IPC and budget.

    Runs are paired by seed (same regime, IPC, budget); the interval is a paired
    bootstrap 95% CI of the mean difference.  Columns: regime, method, ipc,
    budget, gain, ci_low, ci_high, pairs.
    """
    keys = ["regime", "ipc", "budget", "seed"]
    base = df[df["method"] == baseline].set_index(keys)[value]
    rows = []
    for (regime, method, ipc, budget), g in df[df["method"] != baseline].groupby(
            ["regime", "method", "ipc", "budget"]):
        g = g.set_index(keys)[value]
        common = g.index.intersection(base.index)
        if len(common) == 0:
            continue
        a, b = g.loc[common].to_numpy() * 100, base.loc[common].to_numpy() * 100
        lo, hi = paired_bootstrap_ci(a, b)
        rows.append({"regime": regime, "method": method, "ipc": ipc, "budget": budget,
                     "gain": float((a - b).mean()), "ci_low": lo, "ci_high": hi, "pairs": len(common)})
    return pd.DataFrame(rows, columns=["regime", "method", "ipc", "budget", "gain", "ci_low",
                                       "ci_high", "pairs"])


def gain_table(df: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Wide table of :func:`gains`: cells "+1.2 [0.4, 2.0]", one column per budget."""
    g = gains(df, baseline)
    g["cell"] = [f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]" for m, lo, hi in zip(g["gain"], g["ci_low"], g["ci_high"])]
    wide = g.pivot_table(index=["regime", "method", "ipc"], columns="budget", values="cell", aggfunc="first")
    wide.columns = [f"budget {c:g}" for c in wide.columns]
    return wide


def cost_table(df: pd.DataFrame) -> pd.DataFrame:
    """Construction cost per method and IPC (means over seeds).

    Columns: build seconds, peak memory (MiB), samples forwarded and
    back-propagated through any network (teachers and scorers included: their
    cost is charged to every set that uses them), and label bytes.
    """
    cols = {"build_seconds": "build s", "build_peak_mem_mb": "peak MiB", "build_fwd": "forward samples",
            "build_bwd": "backward samples", "label_bytes": "label bytes"}
    out = df.groupby(["method", "ipc"])[list(cols)].mean().rename(columns=cols)
    return out.round({"build s": 2, "peak MiB": 1}).astype(
        {"forward samples": "int64", "backward samples": "int64", "label bytes": "int64"})


def wins(df: pd.DataFrame, method: str, rivals: Sequence[str]) -> pd.DataFrame:
    """Does ``method`` beat every rival?  One row per (regime, IPC, budget).

    A win needs the paired bootstrap 95% CI of the gain over each rival to lie
    above zero; a loss, below zero for some rival; otherwise it is a tie.
    Columns: regime, ipc, budget, gain over each rival (points), verdict.
    """
    parts = []
    for rival in rivals:
        g = gains(df[df["method"].isin([method, rival])], baseline=rival)
        g = g[g["method"] == method].set_index(["regime", "ipc", "budget"])
        parts.append(g[["gain", "ci_low", "ci_high"]].add_suffix(f" vs {rival}"))
    if not parts:
        return pd.DataFrame()
    t = pd.concat(parts, axis=1).dropna()
    lows = t[[f"ci_low vs {r}" for r in rivals]]
    highs = t[[f"ci_high vs {r}" for r in rivals]]
    t["verdict"] = ["win" if (lo > 0).all() else "loss" if (hi < 0).any() else "tie"
                    for (_, lo), (_, hi) in zip(lows.iterrows(), highs.iterrows())]
    return t.round(2).reset_index()


def verdict_sentence(w: pd.DataFrame, method: str, rivals: Sequence[str]) -> str:
    """One sentence counting the wins/ties/losses of :func:`wins` (no typed numbers)."""
    if w.empty:
        return f"No paired runs of {method} and {', '.join(rivals)} are stored yet."
    c = w["verdict"].value_counts()
    return (f"Over {len(w)} (regime, IPC, budget) settings, {method} beats all of "
            f"{', '.join(rivals)} with 95% confidence in {c.get('win', 0)}, loses to at least one "
            f"in {c.get('loss', 0)}, and is tied in {c.get('tie', 0)}.")


def machine() -> str:
    """A short description of where this ran (for execution-status pages)."""
    import torch

    dev = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{platform.node() or 'host'} ({platform.machine()}, {torch.get_num_threads()} threads, {dev})"
