"""Label regimes: how labels reach the student (*Hard truths about soft labels*).

* ``hl``   cross-entropy on hard labels.
* ``sl``   a teacher's soft label computed once per stored image (on the
           un-augmented image) and kept fixed for every view of it.
* ``slkd`` the teacher labels every augmented view online (knowledge distillation).
* ``mt``   as ``slkd`` with an ensemble of teachers, probabilities averaged.

Soft-label losses are Hinton et al.'s KD loss,
``T^2 * KL(softmax(t/T) || softmax(s/T))`` with batch-mean reduction.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import augment as aug
from .registry import Registry

REGIMES = Registry("label regime")


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * KL(p_teacher || softmax(student/T)), mean over the batch."""
    logp = F.log_softmax(student_logits / T, dim=1)
    return F.kl_div(logp, teacher_probs, reduction="batchmean") * T * T


@torch.no_grad()
def teacher_probs(teachers: Sequence[nn.Module], x: torch.Tensor, T: float,
                  batch: int = 1024) -> torch.Tensor:
    """Mean over ``teachers`` of softmax(logits / T) for inputs x (N, C, H, W) -> (N, K)."""
    out = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        out.append(torch.stack([F.softmax(t(xb).float() / T, dim=1) for t in teachers]).mean(0))
    return torch.cat(out)


@dataclass(frozen=True)
class FitPlan:
    """What one training run will do, known before its first step.

    Attributes:
        samples: samples the student will see (``round(budget * pool)``).
        strategy: DSA augmentation strategy of the run ("" = none).
        batch_size: samples per step.
        cache: ``(store, set_key)`` for artifacts derived from the set, or None.
    """

    samples: int = 0
    strategy: str = ""
    batch_size: int = 256
    cache: Any = None


class Regime(abc.ABC):
    """Base: ``prepare`` once per training run, ``views`` and ``loss`` once per step."""

    name = ""
    online = False

    def n_teachers(self, profile) -> int:
        return 0

    def label_bytes(self, n: int, k: int, samples: int = 0) -> int:
        """Bytes of labels stored with ``n`` images of ``k`` classes (uint8 class ids).

        ``samples`` is the training run's sample count (for per-view labels).
        """
        return n

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

    @abc.abstractmethod
    def loss(self, logits: torch.Tensor, views: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Training loss of a batch: student logits (B, K) on ``views`` of stored images ``idx``."""


@REGIMES.register("hl")
class HardLabels(Regime):
    name = "hl"

    def loss(self, logits, views, idx):
        y = self.labels[idx]
        if y.dim() == 2:  # a distiller's soft labels: HL uses their arg-max
            y = y.argmax(1)
        return F.cross_entropy(logits, y)


@REGIMES.register("sl")
class StoredSoftLabels(Regime):
    name = "sl"

    def n_teachers(self, profile) -> int:
        return 1

    def label_bytes(self, n: int, k: int, samples: int = 0) -> int:
        return n * k * 2  # one fp16 probability vector per stored image

    def prepare(self, images, labels, teachers, T, plan=None):
        super().prepare(images, labels, teachers, T, plan)
        self.soft: Optional[torch.Tensor] = teacher_probs(teachers, images, T)

    def loss(self, logits, views, idx):
        return kd_loss(logits, self.soft[idx], self.T)


@REGIMES.register("slkd")
class OnlineKD(Regime):
    name = "slkd"
    online = True

    def label_bytes(self, n: int, k: int, samples: int = 0) -> int:
        return 0  # nothing stored: the teacher itself must ship with the set

    def n_teachers(self, profile) -> int:
        return 1

    def loss(self, logits, views, idx):
        return kd_loss(logits, teacher_probs(self.teachers, views, self.T), self.T)


@REGIMES.register("mt")
class MultiTeacherKD(OnlineKD):
    name = "mt"

    def n_teachers(self, profile) -> int:
        return profile.n_teachers


def create_regime(name: str) -> Regime:
    return REGIMES.get(name)()
