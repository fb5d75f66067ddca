"""Building a condensed set: which family a method belongs to, its cache key, and the build.

The condensed set is cached by a *build key* that leaves out the regime and
budget, so one set serves every regime and budget of a study.
"""
from __future__ import annotations

import logging
from typing import Tuple

import torch

from ddlib import __version__
from ddlib.core.config import PROFILES, RunConfig, config_hash, profile_digest
from ddlib.core.cost import Cost, Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data import Split
from ddlib.methods.context import Context
from ddlib.methods.coresets import CORESETS, select
from ddlib.methods.distill import DISTILLERS, distill

log = logging.getLogger("ddlib")


def method_family(name: str) -> str:
    """"coreset" or "distill"; unknown names raise with both families' lists."""
    if name in CORESETS:
        return "coreset"
    if name in DISTILLERS:
        return "distill"
    raise DDLibError(f"unknown method {name!r}; coresets: {', '.join(CORESETS.names())}; "
                     f"distillers: {', '.join(DISTILLERS.names())}")


def uses_budget(method: str) -> bool:
    """Whether the builder of ``method`` depends on the training budget (e.g. CAD-Prune)."""
    reg = CORESETS if method_family(method) == "coreset" else DISTILLERS
    return bool(getattr(reg.get(method), "uses_budget", False))


def build_key(r: RunConfig) -> str:
    """Cache key of a condensed set: no regime, and no budget unless the method uses it.

    The profile enters by its contents (:func:`profile_digest`: pool, models,
    iterations, each method's defaults), not by its name, so editing a setting
    rebuilds the set and two profiles with the same settings share it.
    """
    cfg = {"dataset": r.dataset, "method": r.method, "ipc": r.ipc, "seed": r.seed,
           "profile_settings": profile_digest(PROFILES.get(r.profile)),
           "hparams": dict(r.hparams), "version": __version__}
    if uses_budget(r.method):
        cfg["budget"] = r.budget
    return config_hash(cfg)


def condensed_set(r: RunConfig, split: Split, store: Store, quiet: bool = True, engine=None
                  ) -> Tuple[torch.Tensor, torch.Tensor, Cost, dict]:
    """Build (or load from cache) the condensed set of run ``r``: images, labels, cost, extras.

    ``engine``: the step execution mode of the build's trainings (:class:`Context`).
    """
    key = build_key(r)
    art = store.load_artifact("condensed", key)
    if art is None:
        split = split.without_test()  # a set is built from train (and val) only
        hp = {k: v for k, v in r.hparams if k != "teacher_ckpt"}
        ctx = Context(PROFILES.get(r.profile), store, Meter(), quiet,
                      dict(r.hparams).get("teacher_ckpt"),
                      budget=r.budget if uses_budget(r.method) else None, engine=engine, seed=r.seed)
        log.info("building %s ipc=%d seed=%d -> %s", r.method, r.ipc, r.seed,
                 store.artifact_path("condensed", key))
        with store.worklog.work("build", name=r.method, ipc=r.ipc, seed=r.seed):
            if method_family(r.method) == "coreset":
                sel = select(r.method, split, r.ipc, seed=r.seed, ctx=ctx, **hp)
                idx = sel.indices.to(split.train_x.device)
                images, labels, cost = split.train_x[idx].cpu(), split.train_y[idx].cpu(), sel.cost
                extras = {"indices": sel.indices}
            else:
                syn = distill(r.method, split, r.ipc, seed=r.seed, ctx=ctx, **hp)
                images, labels, cost = syn.images, syn.labels, syn.cost
                extras = {k: v for k, v in syn.extras.items() if isinstance(v, (torch.Tensor, float, int, str))
                          or (isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values()))}
        art = {"images": images, "labels": labels, "cost": cost.as_dict(), "extras": extras}
        store.save_artifact("condensed", key, art)
    return art["images"], art["labels"], Cost(**art["cost"]), art.get("extras", {})
