"""Many runs at once: the missing runs of a grid, prepared one by one, trained together, finished one by one.

Each run goes through :func:`ddlib.run.runner.prepare` and
:func:`ddlib.run.runner.finish` exactly as a one-by-one :func:`ddlib.run.runner.run`;
only the fits in between run side by side, with the engine's multi-model fits
(:mod:`ddlib.engine.batched`):

* on CPU (:data:`CPU_THREADS`) every missing run is prepared first (sets built,
  teachers trained, with every core), then the fits stream through concurrent
  single-threaded workers, longest budgets first
  (:func:`ddlib.engine.batched.stream_threads`, one intra-op thread each, as
  many as the intra-op threads); each student is evaluated by its worker and
  stored as soon as it and every run before it in the grid's order are done
  (the store's rows keep the grid's order, whatever order the fits end in), so
  an interrupted grid keeps every finished run, and no worker waits for a
  round's slowest fit.  Under ``auto``, when the grid's sliced training work
  repays a compilation (:func:`ddlib.engine.fastpath.group_engine`), its fits
  share one compiled engine;
* elsewhere, groups of >= 2 runs sharing every field but ``seed`` train as one
  :func:`ddlib.engine.batched.fit_many`.

Each stored row means what it means for a one-by-one run, except
``train_seconds``: on CPU the fit's wall time divided by the number of workers
(fits side by side), for ``fit_many`` the group's training wall time divided by
its size.  Runs that cannot train together (regimes outside :data:`BATCHED_REGIMES`; learnt
lr schedules, batch norm or different teachers for ``fit_many``) are left to
the caller's one-by-one loop.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from ddlib.core.config import RunConfig
from ddlib.core.seeding import pick_device
from ddlib.core.store import Store
from ddlib.engine.batched import can_batch, fit_many, stream_threads
from ddlib.engine.fastpath import Engine, group_engine, per_sample, profile
from ddlib.engine.regimes import module_hash
from ddlib.engine.train import FitResult, budget_samples, eval_forward, evaluate, fit
from ddlib.run import runner
from ddlib.run.runner import RunPlan, validate
from ddlib.run.settings import Settings, resolve

# regimes trained together here; slkd_stored (a relabel pass and its per-view
# logits per run) keeps the one-by-one path, as before the prepare/finish split
BATCHED_REGIMES = ("hl", "sl", "slkd", "mt")
# on CPU, runs train as concurrent single-threaded fits (fit_many's grouped
# convolutions are slower there: benchmarks/README.md)
CPU_THREADS = True

log = logging.getLogger("ddlib")


def run_many(cfgs: Sequence[RunConfig], store: Store, *, quiet: bool = True,
             settings: Optional[Settings] = None) -> int:
    """Compute the missing runs of ``cfgs`` several at a time; returns how many were stored.

    Runs already stored, and runs that cannot train together, are left alone
    (see the module docstring); the caller runs what is still missing one by one.
    ``settings``: the environment's (device, data folder, engine), read once when None.
    """
    settings = resolve(settings)
    pending: Dict[str, RunConfig] = {}
    for cfg in cfgs:
        key = cfg.key()
        if key not in pending and store.get(key) is None:
            pending[key] = cfg
    todo = list(pending.values())
    if CPU_THREADS and pick_device(settings.device).type == "cpu":
        todo.sort(key=lambda c: -c.budget)  # longest first: the workers end at nearly the same time
        return _train_threads(todo, store, quiet, settings)
    groups: Dict[str, List[RunConfig]] = {}
    for cfg in todo:
        groups.setdefault(dataclasses.replace(cfg, seed=0).key(), []).append(cfg)
    return sum(_train_and_store(g, store, quiet, settings) for g in groups.values() if len(g) >= 2)


def _compatible(plans: Sequence[RunPlan]) -> bool:
    """Whether ``plans`` can train as one :func:`fit_many` (everything but the seed and the set shared)."""
    first = plans[0].fit_args
    if any(p.lr_schedule is not None for p in plans):
        return False
    same = ("budget", "pool_size", "protocol", "lr")
    args = [p.fit_args for p in plans]
    if any(any(getattr(a, s) != getattr(first, s) for s in same) for a in args[1:]):
        return False
    th = [module_hash(t) for t in first.teachers]
    if any([module_hash(t) for t in a.teachers] != th for a in args[1:]):
        return False
    models = [p.model for p in plans]
    return can_batch(models) and len({q.device for m in models for q in m.parameters()}) == 1


def _sliced_work(plan: RunPlan) -> float:
    """Training FLOPs of the plan's fit if its student trains in slices (per-sample networks), else 0."""
    a = plan.fit_args
    if not per_sample(a.model):
        return 0.0
    return 3 * profile(a.model, tuple(a.images.shape[1:]))[0] * budget_samples(a.budget, a.pool_size)


def _train_threads(cfgs: Sequence[RunConfig], store: Store, quiet: bool, settings: Settings) -> int:
    """The CPU path of :func:`run_many`: prepare every run, stream the fits side by side, finish each
    as it ends; how many runs were stored.

    When the runs' sliced training work repays compiling (:func:`ddlib.engine.fastpath.group_engine`)
    their sliced fits share one compiled engine (the row's ``engine`` says so)."""
    batchable = [c for c in cfgs if validate(c).regime in BATCHED_REGIMES]
    if not batchable:
        return 0
    plans = [runner.prepare(c, store, quiet=quiet, settings=settings) for c in batchable]
    shared = group_engine(settings.engine, sum(_sliced_work(p) for p in plans))
    jobs = [dataclasses.replace(p.fit_args, engine=shared) if shared is not None and per_sample(p.fit_args.model)
            else p.fit_args for p in plans]
    for p in plans:
        log.info("%s", p.describe())
    workers = min(torch.get_num_threads(), len(plans))
    done: Dict[int, tuple] = {}

    def keep(i: int) -> None:
        res, acc = done.pop(i)
        runner.finish(plans[i], FitResult(res.steps, res.samples_seen, res.seconds / workers, res.final_loss,
                                          res.engine), acc)
        bar.update()

    with store.worklog.work("train", runs=len(plans)), tqdm(total=len(plans), desc="train", disable=quiet) as bar:
        nxt = 0
        try:
            for i, out in stream_threads(_fit_and_score, list(zip(plans, jobs)), workers):
                done[i] = out
                while nxt in done:  # the grid's order, whatever order the fits end in
                    keep(nxt)
                    nxt += 1
        finally:  # a failure: every run that ended is stored all the same
            for i in sorted(done):
                keep(i)
    return len(plans)


def _fit_and_score(job: tuple) -> Tuple[FitResult, Tuple[float, float]]:
    """Train one prepared run's student (its fit arguments ``a``), then its (test, val) accuracy, with
    compiled evaluation passes where the fit shared a compiled engine."""
    p, a = job
    res = fit(a.model, a.images, a.labels, **a.options())
    forward = eval_forward(p.model, p.split.test_x, a.engine if isinstance(a.engine, Engine) else None)
    return res, (evaluate(p.model, p.split.test_x, p.split.test_y, forward=forward),
                 evaluate(p.model, p.split.val_x, p.split.val_y, forward=forward))


def _train_and_store(cfgs: Sequence[RunConfig], store: Store, quiet: bool, settings: Settings) -> int:
    """Prepare ``cfgs`` (one group differing only in seed), train them as one :func:`fit_many`, finish
    (store) each; how many were stored (0 when they cannot train together)."""
    if any(validate(c).regime not in BATCHED_REGIMES for c in cfgs):
        return 0
    plans = [runner.prepare(c, store, quiet=quiet, settings=settings) for c in cfgs]
    if not _compatible(plans):
        return 0
    for p in plans:
        log.info("%s", p.describe())
    a = plans[0].fit_args
    with store.worklog.work("train", runs=len(plans)):
        results = fit_many([p.model for p in plans], [p.images for p in plans], [p.labels for p in plans],
                           regimes=[p.regime for p in plans], teachers=a.teachers, budget=a.budget,
                           pool_size=a.pool_size, protocol=a.protocol, seeds=[p.r.seed for p in plans],
                           augment=a.augment, lr=a.lr, caches=[p.fit_args.cache for p in plans])
    for p, res in zip(plans, results):
        runner.finish(p, res)
    return len(plans)
