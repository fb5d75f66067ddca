"""Many small trainings at once: K students trained together, each exactly as :func:`ddlib.engine.train.fit`.

The K models must share an architecture (same parameter names and shapes) and
carry no buffers (instance / no norm; batch norm's running statistics are not
supported).  Their parameters are stacked into (K, ...) tensors and one step
runs all K forwards as one vectorised call (``torch.func.vmap`` over
``torch.func.functional_call``; convolutions become one grouped convolution),
so a step costs one dispatch of large kernels instead of K of small ones.

Per model everything else is :func:`ddlib.engine.train.fit`'s: its own seeded order
and augmentation generators, its own regime instance (``prepare``, ``views``,
``loss`` hooks), the same batch sizes and lr schedule.  The summed loss has
gradient ``d loss_k / d theta_k`` on model k's slice, and SGD (momentum, weight
decay, PyTorch's ``torch.optim.SGD`` on the stacked tensors, which is
elementwise) updates each slice as it would update the model alone.  Results
agree with K separate fits up to float rounding (grouped vs single
convolutions sum in another order).
"""
from __future__ import annotations

import time
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from ddlib.core.config import Protocol
from ddlib.core.registry import DDLibError
from ddlib.engine.regimes import FitPlan, Regime
from ddlib.core.seeding import generator
from ddlib.engine.train import Batches, FitResult, batch_sizes, budget_samples, lr_at


def can_batch(models: Sequence[nn.Module]) -> bool:
    """Whether ``models`` can train together: same parameter names/shapes, no buffers."""
    if not models or any(len(list(m.buffers())) for m in models):
        return False
    ref = [(n, p.shape) for n, p in models[0].named_parameters()]
    return all([(n, p.shape) for n, p in m.named_parameters()] == ref for m in models[1:])


def fit_many(models: Sequence[nn.Module], images_list: Sequence[torch.Tensor],
             labels_list: Sequence[torch.Tensor], *, regimes: Sequence[Regime],
             teachers: List[nn.Module], budget: float, pool_size: int, protocol: Protocol,
             seeds: Sequence[int], augment: Optional[str] = None, lr: Optional[float] = None,
             caches: Optional[Sequence] = None) -> List[FitResult]:
    """Train K ``models`` in place together; model k as ``fit(models[k], images_list[k], ...)``.

    Args:
        models: K networks of one architecture without buffers, on one device.
        images_list: K condensed sets (M_k, C, H, W) (sizes may differ).
        labels_list: K label tensors (M_k,) or (M_k, K_cls).
        regimes: K regime instances (one per model; prepared here).
        teachers: teachers shared by every run (as ``fit``'s ``teachers``).
        budget, pool_size, protocol, augment, lr: as :func:`ddlib.engine.train.fit`, common to all.
        seeds: K run seeds (order and augmentation streams of each run).
        caches: K ``(store, set_key)`` or None, as ``fit``'s ``cache``.

    Returns:
        K :class:`FitResult`; ``seconds`` is the group's wall time divided by K.
    """
    k = len(models)
    if not (k == len(images_list) == len(labels_list) == len(regimes) == len(seeds)):
        raise DDLibError("fit_many needs one image set, label set, regime and seed per model")
    if not can_batch(models):
        raise DDLibError("fit_many needs models of one architecture without buffers (no batch norm)")
    t0 = time.perf_counter()
    strategy = protocol.augment if augment is None else augment
    samples = budget_samples(budget, pool_size)
    caches = list(caches) if caches is not None else [None] * k
    for reg, im, lb, c in zip(regimes, images_list, labels_list, caches):
        reg.prepare(im, lb, teachers, protocol.temperature,
                    plan=FitPlan(samples, strategy, protocol.batch_size, c))
    sizes = batch_sizes(samples, protocol.batch_size)
    orders = [Batches(len(im), generator(s, "order")) for im, s in zip(images_list, seeds)]
    agens = [generator(s, "augment") for s in seeds]
    base_lr = protocol.lr if lr is None else float(lr)

    for m in models:
        m.train()
    params, _ = stack_module_state(list(models))  # name -> (K, ...) leaf tensors
    names = list(params)
    stacked = [params[n] for n in names]
    base = models[0]

    def one(p, x):
        return functional_call(base, dict(zip(names, p)), (x,))

    forward = vmap(one, in_dims=(0, 0))
    opt = torch.optim.SGD(stacked, lr=base_lr, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    losses = [float("nan")] * k
    for step, bs in enumerate(sizes):
        for g in opt.param_groups:
            g["lr"] = lr_at(protocol, step, len(sizes)) * base_lr / protocol.lr
        views, idxs = [], []
        for j in range(k):
            idx, epoch = orders[j].next_with_epoch(bs)
            idx = idx.to(images_list[j].device)
            views.append(regimes[j].views(images_list[j], idx, epoch, strategy, agens[j]))
            idxs.append(idx)
        logits = forward(stacked, torch.stack(views))  # (K, B, n_classes)
        per = [regimes[j].loss(logits[j], views[j], idxs[j]) for j in range(k)]
        opt.zero_grad(set_to_none=True)
        torch.stack(per).sum().backward()
        opt.step()
        losses = [float(v) for v in torch.stack(per).detach()]
    with torch.no_grad():
        for j, m in enumerate(models):
            for n, p in m.named_parameters():
                p.copy_(params[n][j])
    secs = (time.perf_counter() - t0) / k
    return [FitResult(len(sizes), sum(sizes), secs, losses[j], "vmap") for j in range(k)]


# regimes whose rows do not depend on state left by ``prepare`` (replayed runs skip it)
BATCHED_REGIMES = ("hl", "sl", "slkd", "mt")
# on CPU, groups run as concurrent single-threaded fits (fit_many's grouped
# convolutions are slower there: benchmarks/README.md)
CPU_THREADS = True
# runs trained side by side per chunk on CPU; the store is written after each chunk
THREAD_CHUNK = 8


class _Captured(Exception):
    """Carries the arguments of a ``fit`` call out of :func:`ddlib.run.runner.run` (nothing stored)."""

    def __init__(self, args, kwargs):
        super().__init__("captured fit call")
        self.args, self.kwargs = args, kwargs


def _capture(*args, **kwargs):
    raise _Captured(args, kwargs)


def _compatible(calls) -> bool:
    """Whether captured ``fit`` calls can run as one :func:`fit_many` (all but the seed shared)."""
    from ddlib.engine.regimes import module_hash

    first = calls[0].kwargs
    same = ("budget", "pool_size", "protocol", "lr")
    if any(c.kwargs.get("lr_schedule") is not None or c.kwargs["regime"].name not in BATCHED_REGIMES
           for c in calls):
        return False
    if any(any(c.kwargs[s] != first[s] for s in same) for c in calls[1:]):
        return False
    th = [module_hash(t) for t in first["teachers"]]
    if any([module_hash(t) for t in c.kwargs["teachers"]] != th for c in calls[1:]):
        return False
    models = [c.args[0] for c in calls]
    return can_batch(models) and len({p.device for m in models for p in m.parameters()}) == 1


def fit_threads(calls, workers: Optional[int] = None) -> List[FitResult]:
    """Run captured ``fit`` calls concurrently, one Python thread each, one intra-op thread per op.

    The CPU path of :func:`run_many`: each run is exactly :func:`ddlib.engine.train.fit`
    (results differ from a run with more intra-op threads by float rounding
    only); PyTorch releases the GIL inside ops, so ``workers`` (default: the
    intra-op thread count) runs use the cores side by side instead of splitting
    every small op across them, which on a small, shared CPU costs more in
    synchronisation than it gains (benchmarks/README.md).  ``seconds`` of each
    result is the group's wall time divided by its size.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ddlib.engine.train import fit

    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers or threads) as ex:
            results = list(ex.map(lambda c: fit(*c.args, **c.kwargs), calls))
    finally:
        torch.set_num_threads(threads)
    secs = (time.perf_counter() - t0) / len(calls)
    return [FitResult(r.steps, r.samples_seen, secs, r.final_loss, r.engine) for r in results]


def run_many(cfgs, store, *, quiet: bool = True, device=None) -> int:
    """Compute the missing runs of ``cfgs`` several at a time; returns how many.

    Each missing run is prepared by :func:`ddlib.run.runner.run` as usual (its
    ``fit`` call captured), trained together with others, and then stored by
    ``run`` again, which replays the trained weights instead of training.
    Each stored row means what it means for a one-by-one run, except
    ``train_seconds``: the batch's training wall time divided by its size.

    On CPU (:data:`CPU_THREADS`) any runs train side by side as concurrent
    single-threaded fits (:func:`fit_threads`), longest budgets first and
    :data:`THREAD_CHUNK` at a time, so the store is written after every
    chunk.  Elsewhere, groups of >= 2 runs sharing every field but ``seed``
    train as one :func:`fit_many`.  Runs that cannot (learnt lr schedules,
    batch norm or different teachers for ``fit_many``; regimes with
    per-run preparation) are left for the caller's one-by-one loop.
    ``device``: the runs' device name (None: CUDA when present), as given to ``run``.
    """
    import dataclasses

    from ddlib.core.seeding import pick_device

    pending = [cfg for cfg in cfgs if store.get(cfg.key()) is None]
    if CPU_THREADS and pick_device(device).type == "cpu":
        pending.sort(key=lambda c: -c.budget)  # longest first: chunks of similar length
        return sum(_train_and_store(pending[i:i + THREAD_CHUNK], store, quiet, threads=True)
                   for i in range(0, len(pending), THREAD_CHUNK))
    groups = {}
    for cfg in pending:
        groups.setdefault(dataclasses.replace(cfg, seed=0).key(), []).append(cfg)
    return sum(_train_and_store(g, store, quiet, threads=False) for g in groups.values() if len(g) >= 2)


def _train_and_store(cfgs, store, quiet: bool, *, threads: bool) -> int:
    """Capture the ``fit`` calls of ``cfgs``, train them together, store the rows; how many were stored."""
    from ddlib.run.runner import run

    calls, kept = [], []
    for cfg in cfgs:
        try:
            run(cfg, store, quiet=quiet, fit_fn=_capture)
        except _Captured as c:
            if c.kwargs["regime"].name in BATCHED_REGIMES:
                calls.append(c)
                kept.append(cfg)
    if not calls:
        return 0
    if threads:
        results = fit_threads(calls)
    else:
        if len(calls) != len(cfgs) or not _compatible(calls):
            return 0
        kw = calls[0].kwargs
        results = fit_many([c.args[0] for c in calls], [c.args[1] for c in calls], [c.args[2] for c in calls],
                           regimes=[c.kwargs["regime"] for c in calls], teachers=kw["teachers"],
                           budget=kw["budget"], pool_size=kw["pool_size"], protocol=kw["protocol"],
                           seeds=[c.kwargs["seed"] for c in calls], lr=kw["lr"],
                           caches=[c.kwargs.get("cache") for c in calls])
    for cfg, call, res in zip(kept, calls, results):
        def replay(model, *a, _t=call.args[0], _r=res, **k):
            model.load_state_dict(_t.state_dict())
            return _r
        run(cfg, store, quiet=quiet, fit_fn=replay)
    return len(kept)
