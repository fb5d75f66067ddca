"""Measurements the analysis chapters need that touch models: the run layer's side of them.

The analysis layer never trains or loads a network; what it needs from one is
measured here and handed over as numbers or tensors:

* :func:`score_sets`: every distiller objective (:mod:`ddlib.methods.objectives`)
  on the stored condensed sets of a frame's rows (the DCS chapter); the
  objectives may train MTT's experts or the BN teacher (cached like the
  distillers' own).
* :func:`reference_teacher`: the data split and the profile's first teacher
  (trained and cached if missing), the embedding network of the quality chapter.
* :func:`teacher_passes`: the passes spent training that teacher (the cost chapter).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import pandas as pd
import torch.nn as nn

from ddlib import __version__
from ddlib.core.config import PROFILES, RunConfig, config_hash
from ddlib.core.cost import BACKWARD_WEIGHT, Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data import Split
from ddlib.engine.teachers import get_teacher
from ddlib.methods.build import build_key
from ddlib.methods.context import Context
from ddlib.methods.objectives import Probe, ReferenceCache
from ddlib.run.runner import validate
from ddlib.run.settings import Settings, default_device, load_data, resolve

SCORE_COLUMNS = ["probe", "method", "kind", "ipc", "seed", "accuracy", "value"]


def set_kind(method: str, family: str) -> str:
    """"random subset", "coreset" or "distilled" (the DCS scatter chart's colours)."""
    return "random subset" if method == "random" else "coreset" if family == "coreset" else "distilled"


def score_sets(frame: pd.DataFrame, probes: Sequence[str], *, eval_seed: int = 0, store: Optional[Store] = None,
               device=None, cache: Optional[ReferenceCache] = None,
               settings: Optional[Settings] = None) -> pd.DataFrame:
    """Every probe's value on the stored condensed set of every row of ``frame``.

    Values are cached in the store (artifact kind ``"dcs"``, keyed by the probe,
    the set's build key, the seed and the library version).

    Args:
        frame: study rows (one per set; e.g. the hl rows at one budget).
        probes: ``"name"`` / ``"name:arch"`` strings (see :class:`ddlib.methods.objectives.Probe`).
        eval_seed: the seed every objective is evaluated with (and whose teachers it uses).
        cache: the objectives' real-data side, shared by every set scored here
            (a fresh one by default; pass one to share it across calls).
        settings: the environment's (store, device, data folder, engine), read once when None.

    Returns:
        one row per (probe, set): probe, method, kind, ipc, seed, accuracy (%), value.
    """
    settings = resolve(settings)  # the notebook boundary
    store = store or settings.store()
    cache = cache if cache is not None else ReferenceCache()
    dev = default_device(device, settings)
    rows = []
    parsed = [Probe.parse(p) for p in probes]
    for profile, part in frame.groupby("profile"):
        prof = PROFILES.get(profile)
        ctx = Context(prof, store, Meter(), True, engine=settings.engine, seed=eval_seed)
        for dataset, sub in part.groupby("dataset"):
            train = load_data(dataset, prof, dev, settings)
            for _, r in sub.sort_values(["ipc", "method", "seed"]).iterrows():
                bkey = build_key(validate(RunConfig.from_row(r)))
                art = store.load_artifact("condensed", bkey)
                if art is None:
                    raise DDLibError(f"no stored {r['method']} set for row {r['key']}; run its study first")
                for p in parsed:
                    vkey = config_hash({"probe": [p.objective, p.arch], "set": bkey, "seed": int(eval_seed),
                                        "version": __version__})
                    hit = store.load_artifact("dcs", vkey)
                    if hit is None:
                        v = p(train, art["images"], art["labels"], seed=eval_seed, ctx=ctx, cache=cache)
                        store.save_artifact("dcs", vkey, {"value": v})
                    else:
                        v = float(hit["value"])
                    rows.append({"probe": p.label(prof), "method": r["method"],
                                 "kind": set_kind(r["method"], r["family"]), "ipc": int(r["ipc"]),
                                 "seed": int(r["seed"]), "accuracy": 100 * float(r["accuracy"]), "value": v})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def reference_teacher(profile: str, dataset: str = "", store: Optional[Store] = None,
                      device=None, settings: Optional[Settings] = None, *, seed: int = 0) -> Tuple[Split, nn.Module]:
    """The profile's data split and run seed ``seed``'s first teacher (trained and cached if missing).

    One fixed network (seed 0's) is the measuring instrument, so every set is
    measured with the same ruler.

    The quality chapter embeds every set with this network
    (:func:`ddlib.analysis.quality_study.study_quality_table`).
    """
    settings = resolve(settings)  # the notebook boundary
    p = PROFILES.get(profile)
    split = load_data(dataset or p.dataset, p, default_device(device, settings), settings)
    teacher, _ = get_teacher(split, p, store or settings.store(), seed=seed, engine=settings.engine)
    return split, teacher


def teacher_passes(profile: str, dataset: str = "", store: Optional[Store] = None, *,
                   backward_weight: float = BACKWARD_WEIGHT, settings: Optional[Settings] = None,
                   seed: int = 0) -> int:
    """Passes spent training one teacher: run seed ``seed``'s first (trained and cached if missing).

    Counted as :mod:`ddlib.analysis.pareto` counts a run: ``fwd + backward_weight * bwd``.
    """
    settings = resolve(settings)  # the notebook boundary
    p = PROFILES.get(profile)
    split = load_data(dataset or p.dataset, p, default_device(settings=settings), settings)
    _, c = get_teacher(split, p, store or settings.store(), seed=seed, engine=settings.engine)
    return int(round(c.fwd + backward_weight * c.bwd))
