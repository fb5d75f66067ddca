"""One run end to end: config -> condensed set -> training -> evaluation -> row.

The condensed set comes from :mod:`ddlib.methods.build` (cached by its build
key).  A row already in the store is returned as is, never recomputed.
"""
from __future__ import annotations

import datetime as _dt
import logging
import subprocess
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ddlib import __version__
from ddlib.core.config import PROFILES, PROTOCOLS, RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import pick_device, stream_seed
from ddlib.core.store import Store
from ddlib.data import load
from ddlib.data.sources import SOURCES
from ddlib.engine.fastpath import Engine
from ddlib.engine.models import MODELS, create_model
from ddlib.engine.regimes import REGIMES, create_regime
from ddlib.engine.teachers import get_teachers
from ddlib.engine.train import evaluate, fit
from ddlib.methods.build import build_key, condensed_set, method_family
from ddlib.methods.context import check_ipc
from ddlib.run.settings import Settings, resolve

log = logging.getLogger("ddlib")


def validate(cfg: RunConfig) -> RunConfig:
    """Resolve profile defaults and check every name; raises DDLibError on the first bad one."""
    r = cfg.resolved()
    if not r.dataset.startswith("imagefolder:"):
        SOURCES.get(r.dataset)
    method_family(r.method)
    REGIMES.get(r.regime)
    MODELS.get(r.model)
    PROTOCOLS.get(r.protocol)
    return r


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run(cfg: RunConfig, store: Optional[Store] = None, *, device: Optional[str] = None,
        quiet: bool = True, fit_fn=None, settings: Optional[Settings] = None) -> Tuple[Dict, bool]:
    """Run (or reuse) one config; returns (row, reused).

    ``fit_fn`` replaces :func:`ddlib.engine.train.fit` (same signature and result):
    :func:`ddlib.engine.batched.run_many` uses it to train several runs together.
    ``settings``: the environment's (:mod:`ddlib.run.settings`), read here when
    None; they give the store (when None), device (when None), data folder
    and engine mode.
    """
    settings = resolve(settings)
    store = store or settings.store()
    engine = Engine(settings.engine)  # shared by this run's fits: a failed compilation is tried once
    r = validate(cfg)
    key = cfg.key()
    hit = store.get(key)
    if hit is not None:
        return hit, True
    prof = PROFILES.get(r.profile)
    dev = pick_device(device or settings.device)
    split = load(r.dataset, prof, dev, data_dir=settings.data)
    check_ipc(split, r.ipc)
    images, labels, cost, extras = condensed_set(r, split, store, quiet, engine=engine)
    protocol = PROTOCOLS.get(r.protocol)
    lr = protocol.lr
    if r.eval_lr == "learned":
        if "syn_lr" not in extras:
            raise DDLibError(f"eval_lr 'learned' needs a distiller that learns a learning rate; "
                             f"{r.method} does not")
        lr = float(extras["syn_lr"])
    schedule = None
    if r.eval_lr == "unrolled":  # DD's evaluation: replay the learnt per-step lrs
        if "lrs" not in extras:
            raise DDLibError(f"eval_lr 'unrolled' needs a distiller that learns per-step learning rates "
                             f"(such as dd); {r.method} does not")
        schedule = extras["lrs"].to(dev)
        lr = float(schedule.mean())
    regime = create_regime(r.regime)
    # a set built against its own teacher (sre2l's BN teacher) is relabelled by that teacher
    teacher_arch = str(extras.get("teacher_arch", "")) or prof.teacher_model
    teachers, _ = get_teachers(split, prof, store, regime.n_teachers(prof), quiet=quiet,
                               checkpoint=dict(r.hparams).get("teacher_ckpt"), arch=teacher_arch,
                               engine=engine)
    m = split.meta
    model = create_model(r.model, m.num_classes, m.in_chans, m.img_size,
                         seed=stream_seed(r.seed, "init")).to(dev)
    if schedule is not None and "init_state" in extras:  # a set learnt for one fixed init
        try:
            model.load_state_dict(extras["init_state"])
        except RuntimeError:
            raise DDLibError(f"the {r.method} set was learnt for another network than {r.model}; "
                             f"distil it with model={r.model}") from None
    log.info("training %s on %s/%s ipc=%d regime=%s budget=%g seed=%d", r.model, r.dataset, r.method,
             r.ipc, r.regime, r.budget, r.seed)
    res = (fit_fn or fit)(model, images.to(dev), labels.to(dev), regime=regime, teachers=teachers,
                          budget=r.budget, pool_size=len(split.train_y), protocol=protocol, lr=lr,
                          seed=r.seed, quiet=quiet, desc=f"{r.method} ipc={r.ipc} {r.regime} B={r.budget:g}",
                          cache=(store, build_key(r)), lr_schedule=schedule,
                          schedule_chunks=int(extras.get("steps", 1)), engine=engine)
    cost = cost + regime.label_cost(len(images), res.samples_seen)  # the relabel is construction
    row = {
        "key": key, "dataset": r.dataset, "method": r.method, "family": method_family(r.method),
        "ipc": r.ipc, "regime": r.regime, "budget": r.budget, "seed": r.seed, "profile": r.profile,
        "model": r.model, "protocol": r.protocol,
        "accuracy": evaluate(model, split.test_x, split.test_y),
        "val_accuracy": evaluate(model, split.val_x, split.val_y),
        "steps": res.steps, "samples_seen": res.samples_seen, "train_seconds": res.seconds,
        "build_seconds": cost.seconds, "build_peak_mem_mb": cost.peak_mem_mb, "build_fwd": cost.fwd,
        "build_bwd": cost.bwd,
        "label_bytes": cost.label_bytes + regime.label_bytes(len(images), m.num_classes, res.samples_seen),
        "device": str(dev.type), "teacher_model": teacher_arch if regime.n_teachers(prof) or "teacher_arch" in extras else "",
        "eval_lr": r.eval_lr, "lr": lr, "engine": res.engine,
        "version": __version__, "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config_json": r.as_dict(),
    }
    store.put(row)
    return row, False
