"""Many small trainings at once: K students trained together, each exactly as :func:`ddlib.engine.train.fit`.

Two ways, both given explicit fit arguments (which runs to group and when is
the run layer's business, :mod:`ddlib.run.many`):

* :func:`fit_threads`: K ordinary ``fit`` calls on concurrent Python threads,
  one intra-op thread each (what pays on a small CPU);
* :func:`fit_many`: K models of one architecture stacked and trained by one
  vectorised step (below).

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
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from ddlib.core.config import Protocol
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import generator
from ddlib.engine import augment as aug
from ddlib.engine.fastpath import Engine
from ddlib.engine.regimes import FitPlan, Regime
from ddlib.engine.train import Batches, FitResult, batch_sizes, budget_samples, fit, lr_at


@dataclass(frozen=True)
class FitArgs:
    """The arguments of one :func:`ddlib.engine.train.fit` call, spelled out.

    ``fit(a.model, a.images, a.labels, **a.options())`` is the call; the
    fields mean what ``fit``'s arguments of the same names mean (``dist`` is
    not one of them: a data-parallel fit is never run alongside others).
    """

    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    regime: Regime
    teachers: List[nn.Module]
    budget: float
    pool_size: int
    protocol: Protocol
    seed: int
    augment: Optional[str] = None
    quiet: bool = True
    desc: str = "train"
    lr: Optional[float] = None
    cache: Any = None
    lr_schedule: Optional[torch.Tensor] = None
    schedule_chunks: int = 1
    engine: Optional[Engine] = None

    def options(self) -> Dict[str, Any]:
        """``fit``'s keyword arguments (every field but model, images and labels)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("model", "images", "labels")}


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
    strategy = aug.resolve(protocol.augment if augment is None else augment)
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


def fit_threads(jobs: Sequence[FitArgs], workers: Optional[int] = None) -> List[FitResult]:
    """Run ``fit`` calls concurrently, one Python thread each, one intra-op thread per op.

    Each job is exactly :func:`ddlib.engine.train.fit` (results differ from a
    run with more intra-op threads by float rounding only); PyTorch releases
    the GIL inside ops, so ``workers`` (default: the intra-op thread count)
    runs use the cores side by side instead of splitting every small op
    across them, which on a small, shared CPU costs more in synchronisation
    than it gains (benchmarks/README.md).  ``seconds`` of each result is the
    group's wall time divided by its size.
    """
    t0 = time.perf_counter()
    results = map_threads(lambda a: fit(a.model, a.images, a.labels, **a.options()), jobs, workers)
    secs = (time.perf_counter() - t0) / len(jobs)
    return [FitResult(r.steps, r.samples_seen, secs, r.final_loss, r.engine) for r in results]


def map_threads(fn: Callable[[Any], Any], items: Sequence[Any], workers: Optional[int] = None) -> List[Any]:
    """``[fn(item) for item in items]`` on concurrent Python threads, one intra-op thread each
    (``workers`` threads, default the intra-op thread count; the count is restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers or threads) as ex:
            return list(ex.map(fn, items))
    finally:
        torch.set_num_threads(threads)


def stream_threads(fn: Callable[[Any], Any], items: Sequence[Any],
                   workers: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
    """``(index, fn(item))`` for every item, each as soon as it is done.

    The items run on ``workers`` concurrent Python threads with one intra-op thread each
    (default: the intra-op thread count; restored after), taken in order as a thread
    frees up, so no item waits for a whole round of others (:func:`map_threads`' callers
    wait for its slowest).  Every item runs on one intra-op thread, however many items
    there are: a fit's float rounding depends on its thread count, so a run must not
    change with the runs that happen to be pending beside it.

    When an item raises, the items not yet started are cancelled, the running ones are
    still yielded as they end (their caller keeps what they computed), then the first
    exception is raised.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ex = ThreadPoolExecutor(max(1, min(workers or threads, len(items) or 1)))
    try:
        futures = {ex.submit(fn, item): i for i, item in enumerate(items)}
        pending, error = set(futures), None
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=futures.get):
                if f.cancelled():
                    continue
                if f.exception() is not None:
                    if error is None:
                        error = f.exception()
                        for g in pending:
                            g.cancel()
                    continue
                yield futures[f], f.result()
        if error is not None:
            raise error
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
