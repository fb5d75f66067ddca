"""A study: the grid of runs a notebook asks for, run or reused, and its tables.

Notebooks freeze their papermill parameters into a :class:`Study` right after
the parameters cell; everything else they show is a call into this module or
:mod:`ddlib.plots`.
"""
from __future__ import annotations

import itertools
import logging
import platform
from dataclasses import asdict, dataclass, replace
from typing import Optional, Sequence, Tuple

import pandas as pd
import torch
from tqdm import tqdm

from .config import PROFILES, RunConfig
from .metrics.stats import bootstrap_ci, mean_std, paired_bootstrap_ci
from .pareto import label_bytes_by_regime
from .registry import DDLibError
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
    # how the student's lr is chosen (RunConfig.eval_lr) and the builders'
    # hyperparameters, the same for every run of the grid
    eval_lr: str = "protocol"
    hparams: Tuple[Tuple[str, object], ...] = ()

    @classmethod
    def from_params(cls, profile: str = "default", dataset: str = "",
                    methods: Sequence[str] = (), ipcs: Sequence[int] = (),
                    regimes: Sequence[str] = (), budgets: Sequence[float] = (),
                    seeds: Sequence[int] = (), eval_lr: str = "protocol",
                    hparams: Optional[dict] = None, chapter: str = "") -> "Study":
        """Fill empty parameters from the chapter's grid (:mod:`ddlib.chapters`), then
        the profile's defaults, and validate every name."""
        from .chapters import chapter_grid

        p = PROFILES.get(profile)
        g = chapter_grid(chapter, profile) if chapter else {}
        s = cls(profile, dataset or p.dataset, tuple(methods or g.get("methods") or p.methods),
                tuple(int(i) for i in (ipcs or g.get("ipcs") or p.ipcs)),
                tuple(regimes or g.get("regimes") or p.regimes),
                tuple(float(b) for b in (budgets or g.get("budgets") or p.budgets)),
                tuple(int(x) for x in (seeds or g.get("seeds") or p.seeds)),
                eval_lr, tuple(sorted((hparams or {}).items())))
        for cfg in s.configs():
            validate(cfg)
        return s

    def configs(self):
        """Every RunConfig of the grid, condensed sets grouped so caches are reused."""
        return [RunConfig(self.dataset, m, i, r, b, s, self.profile, hparams=self.hparams,
                          eval_lr=self.eval_lr)
                for m, i, s, r, b in itertools.product(self.methods, self.ipcs, self.seeds,
                                                       self.regimes, self.budgets)]

    def describe(self) -> pd.DataFrame:
        """One-row-per-parameter table of the frozen config (shown on every page)."""
        p = PROFILES.get(self.profile)
        d = {**asdict(self), "student": p.model, "teacher": p.teacher_model,
             "protocol": p.protocol, "runs": len(self.configs())}
        return pd.DataFrame({"value": [", ".join(map(str, v)) if isinstance(v, tuple) else str(v)
                                       for v in d.values()]}, index=list(d))

    def run(self, store: Optional[Store] = None, *, quiet: bool = False,
            batch_seeds: Optional[bool] = None) -> pd.DataFrame:
        """Run every missing grid point (reusing stored ones); the grid's rows as a frame.

        ``batch_seeds``: train the missing runs that differ only in their seed
        together (:func:`ddlib.batched.run_many`; their ``train_seconds`` is the
        group's time / its size).  Default: on CPU only, where concurrent
        single-threaded runs pay (benchmarks/README.md); ``fit_many``, the
        CUDA path, is tested but its speed there not yet measured.
        """
        from .batched import run_many
        from .seeding import pick_device

        store = store or Store()
        cfgs = self.configs()
        log.info("study: %d runs on profile %s, results in %s", len(cfgs), self.profile, store.db_path)
        keys, reused = [], 0
        if batch_seeds if batch_seeds is not None else pick_device().type == "cpu":
            reused -= run_many(cfgs, store)  # those rows are found by the loop below
        for cfg in tqdm(cfgs, desc="study", disable=quiet):
            row, hit = run(cfg, store, quiet=True)
            keys.append(row["key"])
            reused += hit
        log.info("study: %d computed, %d reused", len(cfgs) - reused, reused)
        df = store.frame()
        df = df[df["key"].isin(keys)].reset_index(drop=True)
        df["variant"] = [f"{m} ({self.variant()})" if self.hparams else m for m in df["method"]]
        return df

    def full_data(self, regimes: Sequence[str] = ("hl",)) -> "Study":
        """The same budgets and seeds on the whole class-balanced train pool.

        ``random`` at the pool's largest class-balanced IPC keeps every image, so
        these runs are the full-data reference the condensed sets are measured against.
        """
        return replace(self, methods=("random",), ipcs=(full_pool_ipc(self.profile, self.dataset),),
                       regimes=tuple(regimes))

    def variant(self) -> str:
        """The grid's hyperparameters as "k=v, ..." ("" when none)."""
        return ", ".join(f"{k}={v}" for k, v in self.hparams)

    def condensed(self, seed: Optional[int] = None, store: Optional[Store] = None, *,
                  method: str = "", ipc: int = 0):
        """(images in [0, 1] (M, C, H, W), labels) of a stored set of the grid.

        The set is the one :meth:`run` built for ``method`` and ``ipc`` (default:
        the grid's first) and ``seed`` (default: the first); pixels are mapped
        back from the dataset's normalisation and clipped.
        """
        from .data import load
        from .runner import build_key

        store = store or Store()
        r = validate(RunConfig(self.dataset, method or self.methods[0], int(ipc or self.ipcs[0]), self.regimes[0],
                               self.budgets[0], self.seeds[0] if seed is None else int(seed),
                               self.profile, hparams=self.hparams, eval_lr=self.eval_lr))
        art = store.load_artifact("condensed", build_key(r))
        if art is None:
            raise DDLibError(f"no stored {r.method} set for seed {r.seed}; run the study first")
        meta = load(r.dataset, PROFILES.get(r.profile)).meta
        mean = torch.tensor(meta.mean).view(1, -1, 1, 1)
        std = torch.tensor(meta.std).view(1, -1, 1, 1)
        return (art["images"] * std + mean).clamp(0, 1), art["labels"]


def run_all(studies: Sequence[Study], store: Optional[Store] = None, *, quiet: bool = False) -> pd.DataFrame:
    """Run several studies (e.g. one per hyperparameter variant); their rows in one frame."""
    return pd.concat([s.run(store, quiet=quiet) for s in studies], ignore_index=True)


def lr_table(studies: Sequence[Study], store: Optional[Store] = None) -> pd.DataFrame:
    """The per-step learning rates a distiller learnt (``extras["lrs"]``), per variant and seed.

    One row per (variant, seed), one column per GD step; studies whose sets
    carry no learnt lrs are left out.
    """
    from .runner import build_key

    store = store or Store()
    rows = []
    for st in studies:
        for seed in st.seeds:
            r = validate(RunConfig(st.dataset, st.methods[0], st.ipcs[0], st.regimes[0], st.budgets[0],
                                   seed, st.profile, hparams=st.hparams, eval_lr=st.eval_lr))
            art = store.load_artifact("condensed", build_key(r))
            lrs = (art or {}).get("extras", {}).get("lrs")
            if lrs is None:
                continue
            name = f"{r.method} ({st.variant()})" if st.hparams else r.method
            rows.append({"variant": name, "seed": seed,
                         **{f"step {i + 1}": round(float(v), 4) for i, v in enumerate(lrs)}})
    return pd.DataFrame(rows).set_index(["variant", "seed"]) if rows else pd.DataFrame()


def full_pool_ipc(profile: str, dataset: str = "") -> int:
    """The largest class-balanced IPC of the profile's train pool (the "full data" set)."""
    from .data import load

    p = PROFILES.get(profile)
    y = load(dataset or p.dataset, p).train_y
    return int(torch.bincount(y).min())


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


def cost_table(df: pd.DataFrame, by: Sequence[str] = ("method", "ipc")) -> pd.DataFrame:
    """Construction cost per method and IPC (means over seeds).

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
    ints = {c: "int64" for c in out.columns if c in ("forward samples", "backward samples")
            or c.startswith("label bytes")}
    return out.round({"build s": 2, "peak MiB": 1}).astype(ints)


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


def is_distiller(method: str) -> bool:
    """Whether ``method`` is a registered distiller (else a coreset method)."""
    from .runner import method_family

    return method_family(method) == "distill"


def machine() -> str:
    """A short description of where this ran (for execution-status pages)."""
    import torch

    dev = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{platform.node() or 'host'} ({platform.machine()}, {torch.get_num_threads()} threads, {dev})"
