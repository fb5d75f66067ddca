"""One run end to end, in three visible parts: prepare -> fit -> finish.

* :func:`prepare` turns a config into a :class:`RunPlan`: the data split, the
  condensed set (from :mod:`ddlib.methods.build`, cached by its build key),
  the label regime, the teachers (cached), the student's initial weights on
  the device, and the learning rate it trains with.
* :func:`fit_plan` trains the plan's student (:func:`ddlib.engine.train.fit`).
* :func:`finish` evaluates the trained student (test and val), adds the cost
  of the relabelling to the set's, and stores the row.

:func:`run` is those three for one config, after a store lookup: a row already
in the store is returned as is, never recomputed.  :mod:`ddlib.run.many` runs
several plans' fits together (threads on CPU, ``vmap`` elsewhere) between the
same ``prepare`` and ``finish``; under torchrun the plan carries the process
group and ``fit_plan`` trains data-parallel.
"""
from __future__ import annotations

import datetime as _dt
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ddlib import __version__
from ddlib.core.config import PROFILES, PROTOCOLS, Profile, Protocol, RunConfig
from ddlib.core.cost import Cost
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import pick_device, stream_seed
from ddlib.core.store import Store
from ddlib.data import Split, load
from ddlib.data.sources import SOURCES
from ddlib.data.zca import base_name
from ddlib.engine import augment as aug
from ddlib.engine.batched import FitArgs
from ddlib.engine.distributed import DistInfo
from ddlib.engine.fastpath import Engine
from ddlib.engine.models import MODELS, create_model
from ddlib.engine.regimes import REGIMES, Regime, create_regime
from ddlib.engine.teachers import get_teachers
from ddlib.engine.train import FitResult, evaluate, fit
from ddlib.methods.build import build_key, condensed_set, method_family
from ddlib.methods.context import check_ipc
from ddlib.methods.describe import check_hparams
from ddlib.methods.distill.dd import seeded_xavier
from ddlib.methods.distill.rded import decode_mosaics
from ddlib.run.settings import Settings, resolve

log = logging.getLogger("ddlib")


def validate(cfg: RunConfig) -> RunConfig:
    """Resolve profile defaults and check every name and hyper-parameter; raises DDLibError on the first bad one."""
    r = cfg.resolved()
    if not r.dataset.startswith("imagefolder:"):
        SOURCES.get(base_name(r.dataset))  # "cifar10+zca": the cifar10 source, whitened
    method_family(r.method)
    check_hparams(r.method, dict(r.hparams))  # before anything is built: a typo is not a new setting
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


def error_text(e: BaseException) -> str:
    """One line for a failed run (the grids' failures table): a DDLibError's message, else 'Type: message'."""
    return str(e) if isinstance(e, DDLibError) else f"{type(e).__name__}: {e}"


@dataclass(frozen=True)
class RunPlan:
    """Everything one run needs to train and to be finished into a row.

    The fields are fixed once prepared; ``model`` is the one thing that
    changes (trained in place by :func:`fit_plan`, or by a multi-model fit),
    and ``regime`` is prepared by the fit.

    Attributes:
        cfg: the config as given (its key is the row's key).
        r: the resolved config (profile defaults filled in, names checked).
        key: ``cfg.key()``.
        store: where the set and teachers are cached and the row goes.
        device: where the student trains.
        profile: ``r.profile``'s :class:`Profile`.
        split: the data (train pool, val, test) on ``device``.
        images, labels: the condensed set on ``device``.
        cost: what building the set cost (the relabelling is added by :func:`finish`).
        extras: what the builder stored with the set (learnt lrs, init state, ...).
        regime: the label regime instance (one per run).
        teachers: the regime's teachers (empty when it needs none), the run seed's own.
        teacher_cost: what training ``teachers`` cost (the row's ``teacher_*`` columns; a cached
            teacher's recorded cost, so every row that uses it is charged the same).
        teacher_arch: the teachers' architecture.
        model: the student, initialised from the run's seed, on ``device``.
        protocol: the training protocol.
        lr: the initial learning rate (the protocol's, or one the distiller learnt).
        lr_schedule: learnt per-step learning rates to replay (DD), else None.
        quiet: no progress bars.
        dist: the torchrun process group (:class:`ddlib.engine.distributed.DistInfo`), or None.
        engine: how the run's fits execute their steps, shared by the run's teacher, build
            and student fits (a failed compilation is tried once per run).
    """

    cfg: RunConfig
    r: RunConfig
    key: str
    store: Store
    device: torch.device
    profile: Profile
    split: Split
    images: torch.Tensor
    labels: torch.Tensor
    cost: Cost
    extras: dict
    regime: Regime
    teachers: List[nn.Module]
    teacher_arch: str
    model: nn.Module
    protocol: Protocol
    lr: float
    lr_schedule: Optional[torch.Tensor]
    quiet: bool = True
    dist: Optional[DistInfo] = None
    engine: Optional[Engine] = None
    teacher_cost: Cost = Cost()

    @property
    def fit_args(self) -> FitArgs:
        """The arguments of this run's :func:`ddlib.engine.train.fit` call (without ``dist``)."""
        r = self.r
        return FitArgs(self.model, self.images, self.labels, regime=self.regime, teachers=self.teachers,
                       budget=r.budget, pool_size=len(self.split.train_y), protocol=self.protocol,
                       augment=aug.resolve(self.protocol.augment, self.split.meta.name),
                       lr=self.lr, seed=r.seed, quiet=self.quiet,
                       desc=f"{r.method} ipc={r.ipc} {r.regime} B={r.budget:g}",
                       cache=(self.store, build_key(r)), lr_schedule=self.lr_schedule,
                       schedule_chunks=int(self.extras.get("steps", 1)), engine=self.engine)

    def describe(self) -> str:
        r = self.r
        return (f"training {r.model} on {r.dataset}/{r.method} ipc={r.ipc} regime={r.regime} "
                f"budget={r.budget:g} seed={r.seed}")


def prepare(cfg: RunConfig, store: Optional[Store] = None, *, device: Optional[str] = None,
            quiet: bool = True, dist: Optional[DistInfo] = None,
            settings: Optional[Settings] = None) -> RunPlan:
    """Config -> plan: data, condensed set (built or cached), regime, teachers, initial student.

    Args:
        cfg: the run (validated here; the store is not looked up).
        store: results and artifact store (default: the settings' store, ``$DDLIB_HOME``).
        device: where to train ("cpu", "cuda", ...; default :func:`ddlib.core.seeding.pick_device`).
        quiet: no progress bars.
        dist: the torchrun process group the fit is split across, or None.
        settings: the environment's (:mod:`ddlib.run.settings`), read here when None;
            they give the store (when None), device (when None), data folder and engine mode.
    """
    settings = resolve(settings)
    store = store or settings.store()
    engine = Engine(settings.engine)
    r = validate(cfg)
    prof = PROFILES.get(r.profile)
    dev = pick_device(device or settings.device)
    split = load(r.dataset, prof, dev, data_dir=settings.data)
    check_ipc(split, r.ipc)
    images, labels, cost, extras = condensed_set(r, split, store, quiet, engine=engine)
    factor = int(extras.get("decode_factor", 1))
    if factor > 1:  # a set of mosaics (cim) trains on its decoded patches, as its reference evaluator
        images, labels = decode_mosaics(images, labels, factor)
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
    # under torchrun the teachers train data-parallel in the run's process group
    teachers, teacher_cost = get_teachers(split, prof, store, regime.n_teachers(prof), seed=r.seed, quiet=quiet,
                               checkpoint=dict(r.hparams).get("teacher_ckpt"), arch=teacher_arch,
                               dist=dist, engine=engine)
    m = split.meta
    model = create_model(r.model, m.num_classes, m.in_chans, m.img_size,
                         seed=stream_seed(r.seed, "init")).to(dev)
    if extras.get("weight_init") == "xavier":  # a set learnt on Xavier-initialised networks (dd)
        model = seeded_xavier(r.model, m.num_classes, m, stream_seed(r.seed, "init")).to(dev)
    if schedule is not None and "init_state" in extras:  # a set learnt for one fixed init
        try:
            model.load_state_dict(extras["init_state"])
        except RuntimeError:
            raise DDLibError(f"the {r.method} set was learnt for another network than {r.model}; "
                             f"distil it with model={r.model}") from None
    return RunPlan(cfg, r, cfg.key(), store, dev, prof, split, images.to(dev), labels.to(dev), cost, extras,
                   regime, teachers, teacher_arch, model, protocol, lr, schedule, quiet, dist, engine,
                   teacher_cost)


def fit_plan(plan: RunPlan) -> FitResult:
    """Train the plan's student in place (data-parallel when the plan carries a process group)."""
    log.info("%s", plan.describe())
    a = plan.fit_args
    with plan.store.worklog.work("train", runs=1, regime=plan.r.regime, budget=plan.r.budget):
        return fit(a.model, a.images, a.labels, dist=plan.dist, **a.options())


def finish(plan: RunPlan, res: FitResult, accuracy: Optional[Tuple[float, float]] = None) -> Dict:
    """Plan + fit result -> the stored row: test and val accuracy, costs, provenance.

    ``accuracy``: the trained student's (test, val) accuracy when the caller has evaluated it
    (:func:`ddlib.run.many.run_many` evaluates a chunk side by side); else evaluated here.
    """
    if accuracy is None:
        accuracy = (evaluate(plan.model, plan.split.test_x, plan.split.test_y),
                    evaluate(plan.model, plan.split.val_x, plan.split.val_y))
    r, regime, images = plan.r, plan.regime, plan.images
    m = plan.split.meta
    cost = plan.cost + regime.label_cost(len(images), res.samples_seen)  # the relabel is construction
    row = {
        "key": plan.key, "dataset": r.dataset, "method": r.method, "family": method_family(r.method),
        "ipc": r.ipc, "regime": r.regime, "budget": r.budget, "seed": r.seed, "profile": r.profile,
        "model": r.model, "protocol": r.protocol,
        "accuracy": accuracy[0], "val_accuracy": accuracy[1],
        "steps": res.steps, "samples_seen": res.samples_seen, "train_seconds": res.seconds,
        "build_seconds": cost.seconds, "build_peak_mem_mb": cost.peak_mem_mb, "build_fwd": cost.fwd,
        "build_bwd": cost.bwd,
        "label_bytes": cost.label_bytes + regime.label_bytes(len(images), m.num_classes, res.samples_seen),
        "device": str(plan.device.type),
        "teacher_model": plan.teacher_arch if regime.n_teachers(plan.profile) or "teacher_arch" in plan.extras
        else "",
        "eval_lr": r.eval_lr, "lr": plan.lr, "engine": res.engine,
        "teacher_seconds": plan.teacher_cost.seconds, "teacher_fwd": plan.teacher_cost.fwd,
        "teacher_bwd": plan.teacher_cost.bwd,
        "version": __version__, "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config_json": r.as_dict(),
    }
    plan.store.put(row)
    return row


def run(cfg: RunConfig, store: Optional[Store] = None, *, device: Optional[str] = None,
        quiet: bool = True, dist: Optional[DistInfo] = None,
        settings: Optional[Settings] = None) -> Tuple[Dict, bool]:
    """Run (or reuse) one config; returns (row, reused).

    Args:
        cfg: the run.
        store: results store (default: the settings' store, ``$DDLIB_HOME``).
        device: where to train (default: :func:`ddlib.core.seeding.pick_device`).
        quiet: no progress bars.
        dist: under torchrun, this process's :class:`ddlib.engine.distributed.DistInfo`
            (every rank calls ``run``; the fit is split across them).
        settings: the environment's (:mod:`ddlib.run.settings`), read here when None.
    """
    settings = resolve(settings)
    store = store or settings.store()
    validate(cfg)
    hit = store.get(cfg.key())
    if hit is not None:
        return hit, True
    plan = prepare(cfg, store, device=device, quiet=quiet, dist=dist, settings=settings)
    return finish(plan, fit_plan(plan)), False
