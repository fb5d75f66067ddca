"""The one training engine: a student on a condensed set under a label regime.

Compute budget (the *Hard truths* protocol): a budget of ``B`` full-train-set
epochs means the student sees exactly ``round(B * pool_size)`` samples, however
small the condensed set, so runs on different sets compare at equal compute.
Samples are drawn epoch by epoch from seeded permutations of the condensed
set; augmentation is batched on the device.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from tqdm import tqdm

from ddlib.core.config import Protocol
from ddlib.core.seeding import generator
from ddlib.engine import augment as aug
from ddlib.engine import distributed
from ddlib.engine.fastpath import Engine, Stepper, eval_batch, plan_step
from ddlib.engine.inference import EAGER, Forward
from ddlib.engine.regimes import FitPlan, Regime


def budget_samples(budget: float, pool_size: int) -> int:
    """Samples a student sees for ``budget`` full-train-set epochs of a pool of ``pool_size``."""
    return int(round(budget * pool_size))


def batch_sizes(samples: int, batch_size: int) -> List[int]:
    """Split ``samples`` into steps of ``batch_size``; the last takes the remainder.

    A remainder of one sample joins the previous step (batch norm needs >= 2).
    """
    full, rest = divmod(samples, batch_size)
    sizes = [batch_size] * full + ([rest] if rest else [])
    if rest == 1 and full:
        sizes[-2:] = [batch_size + 1]
    return sizes


class Batches:
    """Seeded epoch-permutation batches without per-sample Python in the hot path.

    Every epoch is one permutation of the ``n`` stored images, so each image
    appears exactly once per epoch; :meth:`next_with_epoch` also says which
    epoch each drawn sample belongs to (stored per-view labels are keyed by it).
    """

    def __init__(self, n: int, gen: torch.Generator):
        self.n, self.gen = n, gen
        self.buf = torch.empty(0, dtype=torch.long)
        self.ebuf = torch.empty(0, dtype=torch.long)
        self.epochs = 0

    def next_with_epoch(self, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(indices (k,), epoch of each (k,)) of the next ``k`` samples."""
        while len(self.buf) < k:
            self.buf = torch.cat([self.buf, torch.randperm(self.n, generator=self.gen)])
            self.ebuf = torch.cat([self.ebuf, torch.full((self.n,), self.epochs, dtype=torch.long)])
            self.epochs += 1
        out, self.buf = self.buf[:k], self.buf[k:]
        ep, self.ebuf = self.ebuf[:k], self.ebuf[k:]
        return out, ep

    def next(self, k: int) -> torch.Tensor:
        return self.next_with_epoch(k)[0]


def lr_at(protocol: Protocol, step: int, total: int) -> float:
    """Learning rate of ``step`` of ``total`` under the protocol's schedule."""
    if protocol.schedule == "cosine":
        return protocol.lr * 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))
    if protocol.schedule == "step":
        return protocol.lr * (0.1 if step >= total // 2 else 1.0)
    raise ValueError(f"unknown schedule {protocol.schedule!r}")


@dataclass(frozen=True)
class FitResult:
    steps: int
    samples_seen: int
    seconds: float
    final_loss: float
    engine: str = "plain"  # how the steps ran (ddlib.engine.fastpath.StepPlan.describe)


def fit(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, regime: Regime,
        teachers: List[nn.Module], budget: float, pool_size: int, protocol: Protocol,
        seed: int, augment: Optional[str] = None, quiet: bool = True,
        desc: str = "train", lr: Optional[float] = None, cache=None,
        lr_schedule: Optional[torch.Tensor] = None, schedule_chunks: int = 1,
        dist=None, engine: Union[Engine, str, None] = None, stop_at: float = 1.0) -> FitResult:
    """Train ``model`` in place on (images (M, C, H, W), labels (M,) or (M, K)).

    Args:
        regime: label regime (prepared here with ``teachers``).
        budget: full-train-set epochs; the run sees ``round(budget * pool_size)`` samples.
        protocol: optimiser, schedule, batch size, augmentation, KD temperature.
        seed: run seed; data order and augmentation use their own streams.
        augment: DSA strategy overriding the protocol's ("" = no augmentation).
        lr: initial learning rate overriding the protocol's (e.g. MTT's learned
            synthetic lr); the protocol's schedule still applies.
        cache: ``(store, set_key)`` where a regime may cache what it derives
            from the set (stored per-view labels), or None.
        lr_schedule: (S,) per-step learning rates learnt with the set (DD,
            Wang et al. 2018): then exactly S plain-SGD steps (no momentum,
            weight decay or augmentation; ``budget`` is ignored), see
            :func:`fit_schedule`.
        schedule_chunks: with ``lr_schedule``, the stored images split into this
            many contiguous equal batches; step ``s`` uses batch ``s mod chunks``.
        dist: a :class:`ddlib.engine.distributed.DistInfo` to split every batch across
            the torchrun processes with DDP (same result as one process, up to
            float rounding); None trains in this process alone.
        engine: step execution mode (:mod:`ddlib.engine.fastpath`: "auto", "plain",
            "eager", "compiled"; default "auto"; the run layer passes
            ``$DDLIB_ENGINE``), or an :class:`ddlib.engine.fastpath.Engine`
            shared with other fits (it remembers a failed compilation); it
            changes speed and float rounding, not what is computed.
        stop_at: fraction of the run's steps to take (the schedule is still the
            whole run's): 0.1 stops a run a tenth of the way in, at its learning
            rate there (EL2N's early scores, Paul et al. 2021).
    """
    if lr_schedule is not None:
        return fit_schedule(model, images, labels, regime=regime, teachers=teachers,
                            protocol=protocol, lr_schedule=lr_schedule, chunks=schedule_chunks)
    t0 = time.perf_counter()
    device = images.device
    strategy = aug.resolve(protocol.augment if augment is None else augment)
    samples = budget_samples(budget, pool_size)
    eng = Engine.of(engine)
    plan = None if dist is not None else plan_step(model, tuple(images.shape[1:]), protocol.batch_size, samples,
                                                   device, eng)
    # the online teachers' passes run compiled where the student's step is, on its slices
    teacher_forward = Forward(plan.micro_batch or protocol.batch_size, eng) if plan and plan.compiled else None
    regime.prepare(images, labels, teachers, protocol.temperature,
                   plan=FitPlan(samples, strategy, protocol.batch_size, cache, teacher_forward))
    sizes = batch_sizes(samples, protocol.batch_size)
    n_steps = len(sizes)  # the schedule's length, whatever the stop
    if stop_at < 1.0:
        sizes = sizes[:max(1, int(round(stop_at * n_steps)))]
    order, agen = Batches(len(images), generator(seed, "order")), generator(seed, "augment")
    base_lr = protocol.lr if lr is None else float(lr)
    opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    model.train()
    net = model
    if dist is not None:
        net = distributed.wrap(model, dist)
    else:
        if plan.channels_last:  # in place, before the optimiser's state exists: the parameters keep their identity
            model.to(memory_format=torch.channels_last)
        stepper = Stepper(model, plan, protocol.batch_size, eng)
    loss_val = float("nan")
    for step, bs in enumerate(tqdm(sizes, desc=desc, disable=quiet, leave=False)):
        for g in opt.param_groups:
            g["lr"] = lr_at(protocol, step, n_steps) * base_lr / protocol.lr
        idx, epoch = order.next_with_epoch(bs)
        idx = idx.to(device)
        batch = regime.batch(images, idx, epoch, strategy, agen)
        opt.zero_grad(set_to_none=True)
        if dist is None:
            loss = stepper.backward(regime, batch)
        else:  # every rank drew the same global batch and views; each trains on its slice
            loss = distributed.shard_loss(net, regime, batch, dist)
            loss.backward()
        opt.step()
        loss_val = float(loss.detach())
    if dist is not None:
        distributed.unwrap(model)
        loss_val = dist.all_sum(loss_val) / dist.world  # the global batch's mean loss
    return FitResult(len(sizes), sum(sizes), time.perf_counter() - t0, loss_val,
                     stepper.describe() if dist is None else "ddp")


def fit_schedule(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, regime: Regime,
                 teachers: List[nn.Module], protocol: Protocol, lr_schedule: torch.Tensor,
                 chunks: int = 1) -> FitResult:
    """Replay learnt GD steps: step ``s`` is ``theta -= lr_schedule[s] * grad`` on batch ``s mod chunks``.

    The evaluation of Dataset Distillation (Wang et al. 2018; ``ddlib.methods.distill.dd``):
    the stored images (M, C, H, W) are ``chunks`` contiguous batches of
    M / chunks images; the loss is the regime's on the un-augmented batch.
    """
    t0 = time.perf_counter()
    if chunks < 1 or len(images) % chunks:
        raise ValueError(f"{len(images)} images do not split into {chunks} equal batches")
    m = len(images) // chunks
    regime.prepare(images, labels, teachers, protocol.temperature, plan=FitPlan(
        m * len(lr_schedule), "", m, None))
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.0, weight_decay=0.0)
    model.train()
    loss_val = float("nan")
    for s, lr in enumerate(lr_schedule.tolist()):
        idx = torch.arange((s % chunks) * m, (s % chunks + 1) * m, device=images.device)
        views = images[idx]
        loss = regime.loss(model(views), views, idx)
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_val = float(loss.detach())
    return FitResult(len(lr_schedule), m * len(lr_schedule), time.perf_counter() - t0, loss_val)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: Optional[int] = None,
             forward: Optional[Forward] = None) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` on (x (N, C, H, W), y (N,)) in eval mode.

    ``batch``: images per forward; default :func:`ddlib.engine.fastpath.eval_batch`
    (cache-sized slices on CPU).  ``forward``: runs each pass (default eager;
    :func:`eval_forward` compiles them where the fit was compiled).
    """
    model.eval()
    batch = batch or eval_batch(model, tuple(x.shape[1:]), x.device)
    forward = forward or EAGER
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((forward(model, x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / max(len(x), 1)


def eval_forward(model: nn.Module, x: torch.Tensor, engine: Optional[Engine]) -> Forward:
    """How :func:`evaluate` runs ``model`` on images like ``x``: its slices compiled under a compiled
    ``engine`` (a group of fits that compiled their steps), else eager."""
    if engine is None or engine.mode != "compiled" or engine.compile_failed:
        return EAGER
    return Forward(eval_batch(model, tuple(x.shape[1:]), x.device), engine)


def predict_logits(model: nn.Module, x: torch.Tensor, batch: Optional[int] = None) -> torch.Tensor:
    """Logits (N, K) of ``model`` in eval mode on x (N, C, H, W), ``batch`` images per forward
    (default :func:`ddlib.engine.fastpath.eval_batch`)."""
    model.eval()
    batch = batch or eval_batch(model, tuple(x.shape[1:]), x.device)
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


