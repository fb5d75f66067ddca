"""Quality metrics of stored condensed sets, one table row per built set.

A condensed set is stored once per *build key* (:func:`ddlib.runner.build_key`:
no regime, no budget unless the method uses it), so the many result rows of a
study that share a set give one quality row.  Sets and the real train pool are
embedded with one network (normally the profile's teacher) and compared by
:func:`ddlib.metrics.quality.set_quality`.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Iterable, List, Tuple, Union

import pandas as pd
import torch.nn as nn

from .config import RunConfig
from .data import Split
from .metrics.quality import MAX_REAL, features, set_quality
from .registry import DDLibError
from .runner import build_key, method_family, validate
from .store import Store

_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}
Entry = Union[str, RunConfig, Dict[str, Any]]


def _config_of(row: Dict[str, Any]) -> RunConfig:
    """The RunConfig of a store row (its ``config_json``) or of a dict of RunConfig fields."""
    d = row.get("config_json")
    d = json.loads(d) if isinstance(d, str) else dict(d) if d else dict(row)
    d = {k: v for k, v in d.items() if k in _FIELDS}
    d.setdefault("regime", "hl")
    d.setdefault("budget", 1.0)
    hp = d.get("hparams") or {}
    d["hparams"] = tuple(sorted(hp.items() if isinstance(hp, dict) else tuple(map(tuple, hp))))
    try:
        return RunConfig(**d)
    except TypeError as e:
        raise DDLibError(f"cannot read a run config from row {row.get('key', '?')}: {e}") from None


def _entries(keys_or_rows: Union[pd.DataFrame, Iterable[Entry]]) -> List[Tuple[str, Dict[str, Any]]]:
    """(build key, descriptive columns) per distinct condensed set, in first-seen order."""
    items = keys_or_rows.to_dict("records") if isinstance(keys_or_rows, pd.DataFrame) else list(keys_or_rows)
    out: Dict[str, Dict[str, Any]] = {}
    for it in items:
        if isinstance(it, str):
            key, info = it, {"method": None, "ipc": None, "seed": None, "variant": None}
        else:
            r = validate(it if isinstance(it, RunConfig) else _config_of(it))
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
        k, seed, max_real: passed to :func:`ddlib.metrics.quality.set_quality`.
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
    out["build_key"] = [build_key(validate(_config_of(r))) for r in results.to_dict("records")]
    return out


def quality_vs_accuracy(results: pd.DataFrame, quality: pd.DataFrame, *,
                        metrics=QUALITY_METRICS, value: str = "accuracy", by=("regime", "budget"),
                        n_boot: int = 2000, random_state: int = 0) -> pd.DataFrame:
    """Spearman correlation (95% paired bootstrap CI) of each set metric with ``value``.

    Each result row is joined to the quality row of its condensed set (by build
    key); within every ``by`` group the n (metric, accuracy) pairs, one per
    run, are correlated with :func:`ddlib.metrics.stats.spearman_ci`.

    Args:
        results: result rows with ``config_json`` and ``value`` (``Study.run``'s frame).
        quality: :func:`set_quality_table`'s frame.
        metrics: quality columns to correlate.
        by: result columns that define a group (one regime and budget: runs
            that differ only in their set).

    Returns:
        One row per (group, metric): the ``by`` columns, metric, rho, low, high, n.
    """
    from .metrics.stats import spearman_ci

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


def study_quality_table(study, store: Store = None, *, teacher: nn.Module = None, **kw) -> pd.DataFrame:
    """:func:`set_quality_table` of every condensed set of ``study`` (a :class:`ddlib.study.Study`).

    The sets must be stored (run the study first).  The embedding network is
    ``teacher`` or, by default, the profile's first teacher (trained and cached
    like every teacher); keyword arguments go to :func:`set_quality_table`.
    """
    from .config import PROFILES
    from .data import load
    from .seeding import pick_device
    from .teachers import get_teacher

    store = store or Store()
    prof = PROFILES.get(study.profile)
    split = load(study.dataset, prof, pick_device())
    if teacher is None:
        teacher, _ = get_teacher(split, prof, store)
    df = set_quality_table(store, split, teacher, study.configs(), **kw)
    if study.hparams:
        df["variant"] = [f"{m} ({study.variant()})" for m in df["method"]]
    return df
