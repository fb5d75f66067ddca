"""Label regimes: how labels reach the student (*Hard truths about soft labels*).

* ``hl``   cross-entropy on hard labels.
* ``sl``   a teacher's soft label computed once per stored image (on the
           un-augmented image), kept in fp16 and fixed for every view of it.
* ``slkd`` the teacher labels every augmented view online (knowledge distillation).
* ``mt``   as ``slkd`` with an ensemble of teachers, probabilities averaged.
* ``slkd_stored`` the teacher's logits on every view of every epoch, computed
           once, stored in fp16 with the view parameters and replayed (FKD).

Soft-label losses are Hinton et al.'s KD loss,
``T^2 * KL(softmax(t/T) || softmax(s/T))`` with batch-mean reduction.
"""
from __future__ import annotations

import abc
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddlib import __version__
from ddlib.core.config import config_hash
from ddlib.core.cost import Cost
from ddlib.core.hparams import HParam
from ddlib.core.registry import Registry
from ddlib.core.seeding import generator
from ddlib.engine import augment as aug

REGIMES = Registry("label regime")
# What a soft-label regime reads: not set by --hp, but declared so `describe` shows
# each profile's value (read from its protocol / its fields) beside the other hyper-parameters.
TEMPERATURE_HP = HParam("temperature", float, None, "", "KD temperature T of the soft labels, the profile's "
                        "protocol's", "paper (Hinton et al.) on paper (T = 4); tuned on the validation split on default (T = 1)",
                        profile=("protocol.temperature",), low=0.0)
N_TEACHERS_HP = HParam("n_teachers", int, None, "teachers", "teachers whose probabilities are averaged, "
                       "the profile's n_teachers", "scale-down (the paper's ensembles are larger)",
                       profile=("n_teachers",), low=1)


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * KL(p_teacher || softmax(student/T)), mean over the batch."""
    logp = F.log_softmax(student_logits / T, dim=1)
    return F.kl_div(logp, teacher_probs, reduction="batchmean") * T * T


def _eager(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


@torch.no_grad()
def teacher_probs(teachers: Sequence[nn.Module], x: torch.Tensor, T: float,
                  batch: int = 1024, forward: Optional[Callable] = None) -> torch.Tensor:
    """Mean over ``teachers`` of softmax(logits / T) for inputs x (N, C, H, W) -> (N, K).

    ``forward(teacher, x) -> logits`` runs each pass (default: eager ``teacher(x)``;
    a fit passes :class:`ddlib.engine.inference.Forward`, compiled where its step is).
    """
    forward = forward or _eager
    out = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        out.append(torch.stack([F.softmax(forward(t, xb).float() / T, dim=1) for t in teachers]).mean(0))
    return torch.cat(out)


@dataclass(frozen=True)
class Batch:
    """One step's training inputs, handed from :meth:`Regime.batch` to :meth:`Regime.batch_loss`.

    Attributes:
        views: (B, C, H, W) the training views.
        idx: (B,) their stored-image indices.
        stored: (B, K) the per-view teacher logits ``slkd_stored`` replays for
            these views (fp16), or None for regimes without per-view labels.
    """

    views: torch.Tensor
    idx: torch.Tensor
    stored: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.idx)

    def rows(self, sl: slice) -> "Batch":
        """Rows ``sl`` of the batch (a micro-batch or a rank's shard)."""
        return Batch(self.views[sl], self.idx[sl], None if self.stored is None else self.stored[sl])


@dataclass(frozen=True)
class FitPlan:
    """What one training run will do, known before its first step.

    Attributes:
        samples: samples the student will see (``round(budget * pool)``).
        strategy: DSA augmentation strategy of the run ("" = none).
        batch_size: samples per step.
        cache: ``(store, set_key)`` for artifacts derived from the set, or None.
        teacher_forward: ``forward(teacher, x) -> logits`` for the online teachers' passes
            (:class:`ddlib.engine.inference.Forward`), or None (eager).
    """

    samples: int = 0
    strategy: str = ""
    batch_size: int = 256
    cache: Any = None
    teacher_forward: Optional[Callable] = None


class Regime(abc.ABC):
    """Base: ``prepare`` once per training run, ``batch`` and ``batch_loss`` once per step.

    A regime holds what ``prepare`` derived for the whole run, never per-step
    state: what one step's loss needs beyond the views travels in the
    :class:`Batch` that :meth:`batch` returns.
    """

    name = ""
    online = False

    def n_teachers(self, profile) -> int:
        return 0

    def label_bytes(self, n: int, k: int, samples: int = 0) -> int:
        """Bytes of labels stored with ``n`` images of ``k`` classes (uint8 class ids).

        ``samples`` is the training run's sample count (for per-view labels).
        """
        return n

    def label_cost(self, n: int, samples: int = 0) -> Cost:
        """What labelling ``n`` stored images spent before training (teacher passes, seconds).

        Charged to the row's construction cost (the *relabel* of SRe2L / RDED).
        Online teachers (``slkd``, ``mt``) label during training: nothing here.
        A pure function of the sizes except for ``slkd_stored``, whose recorded
        relabel cost is known once prepared (batched runs replay without
        ``prepare``).
        """
        return Cost()

    def prepare(self, images: torch.Tensor, labels: torch.Tensor,
                teachers: List[nn.Module], T: float, plan: Optional[FitPlan] = None) -> None:
        self.labels, self.teachers, self.T = labels, teachers, T
        self.plan = plan or FitPlan()

    def views(self, images: torch.Tensor, idx: torch.Tensor, epoch: torch.Tensor, strategy: str,
              gen: torch.Generator) -> torch.Tensor:
        """The training views of stored images ``idx`` (B,) drawn in epochs ``epoch`` (B,).

        Default: one DSA op per batch with fresh per-sample parameters from ``gen``.
        """
        x = images[idx]
        return aug.augment(x, strategy, gen) if strategy else x

    def batch(self, images: torch.Tensor, idx: torch.Tensor, epoch: torch.Tensor, strategy: str,
              gen: torch.Generator) -> Batch:
        """One step's :class:`Batch`: :meth:`views` of ``idx`` (B,) in epochs ``epoch`` (B,)."""
        return Batch(self.views(images, idx, epoch, strategy, gen), idx)

    @abc.abstractmethod
    def loss(self, logits: torch.Tensor, views: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Training loss of a batch: student logits (B, K) on ``views`` of stored images ``idx``."""

    def batch_loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Training loss of ``batch`` (from :meth:`batch`) given the student's logits (B, K) on its views."""
        return self.loss(logits, batch.views, batch.idx)


@REGIMES.register("hl")
class HardLabels(Regime):
    """Cross-entropy on hard labels (a distiller's soft labels by their arg-max)."""

    name = "hl"

    def loss(self, logits, views, idx):
        y = self.labels[idx]
        if y.dim() == 2:  # a distiller's soft labels: HL uses their arg-max
            y = y.argmax(1)
        return F.cross_entropy(logits, y)


@REGIMES.register("sl", hparams=(TEMPERATURE_HP,))
class StoredSoftLabels(Regime):
    """A teacher's soft label per stored image, computed once on the un-augmented image (fp16)."""

    name = "sl"

    def n_teachers(self, profile) -> int:
        return 1

    def label_bytes(self, n: int, k: int, samples: int = 0) -> int:
        return n * k * 2  # one fp16 probability vector per stored image

    def label_cost(self, n: int, samples: int = 0) -> Cost:
        return Cost(fwd=n)  # one teacher pass per stored image

    def prepare(self, images, labels, teachers, T, plan=None):
        super().prepare(images, labels, teachers, T, plan)
        # what is stored is fp16 (label_bytes): train on exactly that
        self.soft: Optional[torch.Tensor] = teacher_probs(teachers, images, T).half().float()

    def loss(self, logits, views, idx):
        return kd_loss(logits, self.soft[idx], self.T)


@REGIMES.register("slkd", hparams=(TEMPERATURE_HP,))
class OnlineKD(Regime):
    """The teacher labels every augmented view online (knowledge distillation)."""

    name = "slkd"
    online = True

    def label_bytes(self, n: int, k: int, samples: int = 0) -> int:
        return 0  # nothing stored: the teacher itself must ship with the set

    def n_teachers(self, profile) -> int:
        return 1

    def loss(self, logits, views, idx):
        return kd_loss(logits, teacher_probs(self.teachers, views, self.T, forward=self.plan.teacher_forward),
                       self.T)


@REGIMES.register("mt", hparams=(TEMPERATURE_HP, N_TEACHERS_HP))
class MultiTeacherKD(OnlineKD):
    """As ``slkd`` with the profile's ensemble of teachers, probabilities averaged."""

    name = "mt"

    def n_teachers(self, profile) -> int:
        return profile.n_teachers


def tensor_hash(*named) -> str:
    """16-hex SHA-256 of tensors (or (name, tensor) pairs): dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for item in named:
        k, v = item if isinstance(item, tuple) else ("", item)
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}:{t.dtype}:{tuple(v.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def module_hash(model: nn.Module) -> str:
    """Hash of a module's state: a teacher's identity."""
    return tensor_hash(*sorted(model.state_dict().items()))


@REGIMES.register("slkd_stored", hparams=(TEMPERATURE_HP,))
class StoredViewKD(Regime):
    """FKD-style stored soft labels (Shen & Xing, *A Fast Knowledge Distillation
    Framework for Visual Recognition*, ECCV 2022; the relabel of SRe2L / RDED).

    A relabel pass runs the teacher ONCE on every view the student will see:
    ``E = ceil(samples / n)`` epochs x ``n`` stored images, view ``(e, i)`` being
    one DSA op of the run's strategy with its own parameters, drawn per
    (epoch, image) from the stream ``relabel-views`` seeded by the set's pixels
    (not the student seed, and not the set's cache key, so a version bump does
    not redraw the views).  The logits (E, n, K) are kept in fp16 with the view parameters and
    replayed: the engine's sample ``i`` of epoch ``e`` is trained on exactly view
    ``(e, i)`` against ``softmax(logits[e, i] / T)`` with the KD loss.  Cached
    as artifact ``relabel`` keyed by set, teacher state, strategy, E, T.
    """

    name = "slkd_stored"

    def n_teachers(self, profile) -> int:
        return 1

    @staticmethod
    def epochs(n: int, samples: int) -> int:
        return max(1, -(-int(samples) // max(int(n), 1)))

    def label_bytes(self, n: int, k: int, samples: int = 0) -> int:
        e = self.epochs(n, samples)
        per_view = 1 + 4 * aug.PARAM_SLOTS  # uint8 op id + float32 parameter slots
        if getattr(self, "plan", None) is not None and not self.plan.strategy:
            per_view = 0  # no augmentation: nothing but the logits is stored
        return e * n * (k * 2 + per_view)

    def label_cost(self, n: int, samples: int = 0) -> Cost:
        cost = getattr(self, "relabel_cost", None)
        return cost if cost is not None else Cost(fwd=self.epochs(n, samples) * n)

    def prepare(self, images, labels, teachers, T, plan=None):
        super().prepare(images, labels, teachers, T, plan)
        n, strategy = len(images), self.plan.strategy
        e = self.epochs(n, self.plan.samples)
        teacher = teachers[0]
        if self.plan.cache is not None:
            store, set_key = self.plan.cache
        else:
            store, set_key = None, tensor_hash(images)  # no set key: the images name the set
        key = config_hash({"set": set_key, "teacher": module_hash(teacher), "strategy": strategy,
                           "epochs": e, "T": float(T), "version": __version__})
        art = store.load_artifact("relabel", key) if store is not None else None
        if art is None:
            t0 = time.perf_counter()
            # the views belong to the set, whoever trains on it: seeded by the set's
            # pixels, never by its cache key (which a new library version changes)
            gen = generator(int(tensor_hash(images)[:15], 16), "relabel-views")
            size = images.shape[-1]
            logits, ops, vals = [], [], []
            with torch.no_grad():
                for _ in range(e):
                    mp = aug.draw_mixed(strategy, n, gen, size)
                    x = aug.apply_mixed(images, mp)
                    logits.append(torch.cat([teacher(x[i:i + 1024]).float() for i in range(0, n, 1024)]
                                            ).half().cpu())
                    ops.append(mp.op_ids)
                    vals.append(mp.values)
            cost = Cost(seconds=time.perf_counter() - t0, fwd=e * n, device=images.device.type)
            art = {"logits": torch.stack(logits), "op_ids": torch.stack(ops), "values": torch.stack(vals),
                   "ops": "_".join(aug.parse_strategy(strategy)), "cost": cost.as_dict()}
            if store is not None:
                store.save_artifact("relabel", key, art)
        self.strategy = strategy
        self.relabel_key = key
        self.relabel_cost = Cost(**art["cost"])
        self.stored_logits = art["logits"].to(images.device)  # (E, n, K) fp16
        self.op_ids, self.values = art["op_ids"], art["values"]  # (E, n), (E, n, slots) on CPU
        self.ops = aug.parse_strategy(art["ops"])

    def view_params(self, idx: torch.Tensor, epoch: torch.Tensor) -> "aug.MixedParams":
        """The stored parameters of views (epoch[b], idx[b]) as per-row ops."""
        e, i = epoch.cpu().long(), idx.cpu().long()
        return aug.MixedParams(self.ops, self.op_ids[e, i], self.values[e, i])

    def views(self, images, idx, epoch, strategy, gen):
        return self.batch(images, idx, epoch, strategy, gen).views

    def batch(self, images, idx, epoch, strategy, gen):
        """The stored views (epoch[b], idx[b]) and, in :attr:`Batch.stored`, their stored logits."""
        e = epoch.to(self.stored_logits.device).long() % len(self.stored_logits)
        stored = self.stored_logits[e, idx.to(e.device)]
        return Batch(aug.apply_mixed(images[idx], self.view_params(idx, e)), idx, stored)

    def _kd(self, logits: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
        return kd_loss(logits, F.softmax(stored.float() / self.T, dim=1), self.T)

    def loss(self, logits, views, idx):
        """KD loss against the stored logits of epoch 0's views of ``idx`` (un-augmented callers:
        :func:`ddlib.engine.train.fit_schedule`); training steps use :meth:`batch_loss`."""
        return self._kd(logits, self.stored_logits[0, idx])

    def batch_loss(self, logits, batch):
        if batch.stored is None:
            return self.loss(logits, batch.views, batch.idx)
        return self._kd(logits, batch.stored)


def slice_loss(regime: Regime, net, batch: Batch, sl: slice) -> torch.Tensor:
    """``regime``'s mean loss on rows ``sl`` of ``batch`` (a micro-batch or a rank's shard)."""
    part = batch.rows(sl)
    return regime.batch_loss(net(part.views), part)


def create_regime(name: str) -> Regime:
    return REGIMES.get(name)()
