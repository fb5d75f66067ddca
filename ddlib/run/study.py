"""A study: the grid of runs a notebook asks for, run or reused, and its tables.

Notebooks freeze their papermill parameters into a :class:`Study` right after
the parameters cell; everything else they show is a call into this module or
:mod:`ddlib.analysis.plots`.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass, replace
from typing import Optional, Sequence, Tuple

import pandas as pd
import torch
from tqdm import tqdm

from ddlib.core.config import PROFILES, RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data import unnormalize
from ddlib.methods.build import build_key
from ddlib.run.many import run_many
from ddlib.run.runner import run, validate
from ddlib.run.settings import Settings, default_device, default_store, load_data

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
    # the student architectures (registry names); empty: the profile's student.  The
    # condensed sets do not depend on it (ddlib.methods.build.build_key), so every
    # architecture trains on the very same sets
    models: Tuple[str, ...] = ()

    @classmethod
    def from_params(cls, profile: str = "default", dataset: str = "",
                    methods: Sequence[str] = (), ipcs: Sequence[int] = (),
                    regimes: Sequence[str] = (), budgets: Sequence[float] = (),
                    seeds: Sequence[int] = (), eval_lr: str = "protocol",
                    hparams: Optional[dict] = None, models: Sequence[str] = ()) -> "Study":
        """Fill empty parameters from the profile's defaults and validate every name.

        A chapter's grid is filled in one layer up (:func:`ddlib.chapters.study`)."""
        p = PROFILES.get(profile)
        s = cls(profile, dataset or p.dataset, tuple(methods or p.methods),
                tuple(int(i) for i in (ipcs or p.ipcs)),
                tuple(regimes or p.regimes),
                tuple(float(b) for b in (budgets or p.budgets)),
                tuple(int(x) for x in (seeds or p.seeds)),
                eval_lr, tuple(sorted((hparams or {}).items())), tuple(dict.fromkeys(models)))
        for cfg in s.configs():
            validate(cfg)
        return s

    def configs(self):
        """Every RunConfig of the grid, condensed sets grouped so caches are reused."""
        return [RunConfig(self.dataset, m, i, r, b, s, self.profile, model=a, hparams=self.hparams,
                          eval_lr=self.eval_lr)
                for m, i, s, a, r, b in itertools.product(self.methods, self.ipcs, self.seeds, self.models or ("",),
                                                          self.regimes, self.budgets)]

    def describe(self) -> pd.DataFrame:
        """One-row-per-parameter table of the frozen config (shown on every page)."""
        p = PROFILES.get(self.profile)
        d = {k: v for k, v in asdict(self).items() if k != "models"}
        d = {**d, "student": ", ".join(self.models or (p.model,)), "teacher": p.teacher_model,
             "protocol": p.protocol, "runs": len(self.configs())}
        return pd.DataFrame({"value": [", ".join(map(str, v)) if isinstance(v, tuple) else str(v)
                                       for v in d.values()]}, index=list(d))

    def run(self, store: Optional[Store] = None, *, quiet: bool = False,
            batch_seeds: Optional[bool] = None) -> pd.DataFrame:
        """Run every missing grid point (reusing stored ones); the grid's rows as a frame.

        ``batch_seeds``: train the missing runs side by side (:func:`ddlib.run.many.run_many`,
        whose docstring says what their ``train_seconds`` is).  Default: on CPU only, where
        concurrent single-threaded runs pay (benchmarks/README.md); ``fit_many``, the
        CUDA path, is tested but its speed there not yet measured.
        """
        settings = Settings.from_env()  # the notebook boundary: the environment, read once
        store = store or settings.store()
        cfgs = self.configs()
        log.info("study: %d runs on profile %s, results in %s", len(cfgs), self.profile, store.db_path)
        keys, computed = [], 0
        if batch_seeds if batch_seeds is not None else default_device(settings=settings).type == "cpu":
            computed += run_many(cfgs, store, settings=settings)  # the loop below finds these rows stored
        for cfg in tqdm(cfgs, desc="study", disable=quiet):
            row, hit = run(cfg, store, quiet=True, settings=settings)
            keys.append(row["key"])
            computed += not hit
        log.info("study: %d computed, %d reused", computed, len(cfgs) - computed)
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
        store = store or default_store()
        r = validate(RunConfig(self.dataset, method or self.methods[0], int(ipc or self.ipcs[0]), self.regimes[0],
                               self.budgets[0], self.seeds[0] if seed is None else int(seed),
                               self.profile, hparams=self.hparams, eval_lr=self.eval_lr))
        art = store.load_artifact("condensed", build_key(r))
        if art is None:
            raise DDLibError(f"no stored {r.method} set for seed {r.seed}; run the study first")
        return unnormalize(art["images"], load_data(r.dataset, PROFILES.get(r.profile)).meta), art["labels"]


def run_all(studies: Sequence[Study], store: Optional[Store] = None, *, quiet: bool = False) -> pd.DataFrame:
    """Run several studies (e.g. one per hyperparameter variant); their rows in one frame.

    On CPU their missing runs train side by side as one :func:`~ddlib.run.many.run_many` (as
    :meth:`Study.run` does for one study), so a small study's last fit does not run alone."""
    settings = Settings.from_env()
    store = store or settings.store()
    if default_device(settings=settings).type == "cpu":
        run_many([c for s in studies for c in s.configs()], store, settings=settings)
    return pd.concat([s.run(store, quiet=quiet) for s in studies], ignore_index=True)


def lr_table(studies: Sequence[Study], store: Optional[Store] = None) -> pd.DataFrame:
    """The per-step learning rates a distiller learnt (``extras["lrs"]``), per variant and seed.

    One row per (variant, seed), one column per GD step; studies whose sets
    carry no learnt lrs are left out.
    """
    store = store or default_store()
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
    p = PROFILES.get(profile)
    y = load_data(dataset or p.dataset, p).train_y
    return int(torch.bincount(y).min())
