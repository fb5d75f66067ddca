"""Frozen configuration: training protocols, profiles and the per-run config.

Protocols are named and frozen (airbench's rule): changing a hyperparameter of
an existing protocol changes old results, so a change is a *new* name.
Profiles size everything (data pool, models, iterations, grid) under one name:
``smoke`` (CI), ``default`` (the book on a 2-core CPU), ``paper`` (one GPU).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional, Tuple

from ddlib import __version__
from ddlib.core.registry import DDLibError, Registry

PROTOCOLS = Registry("protocol")
PROFILES = Registry("profile")


@dataclass(frozen=True)
class Protocol:
    """How a student is trained on a condensed set (the evaluation protocol).

    Attributes:
        name: registry name; part of every result key.
        lr: initial SGD learning rate (per step).
        momentum: SGD momentum.
        weight_decay: L2 coefficient (per step, decoupled from nothing: plain SGD).
        batch_size: samples per optimisation step.
        schedule: "cosine" (to zero over the run) or "step" (x0.1 at half, as DC/DM).
        augment: DSA strategy applied to every training batch ("" = none).
        temperature: KD temperature T for the soft-label regimes (dimensionless).
    """

    name: str
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    schedule: str = "cosine"
    augment: str = "color_crop_cutout_scale_rotate"
    temperature: float = 4.0


for _p in (
    # The DC/DSA/DM evaluation recipe: SGD 0.01, momentum 0.9, wd 5e-4, batch 256,
    # x0.1 at half; DSA augmentation without flip (digits/MNIST-safe).
    Protocol("dsa_step_v1", schedule="step"),
    # Same optimiser with a cosine schedule, the default of this study.
    Protocol("sgd_cos_v1"),
    # Higher-lr variants for the small CPU profiles, whose short budgets leave
    # lr 0.01 far from converged.  T = 1: the small teachers trained here have
    # logits of std ~2, which T = 4 flattens to near-uniform targets whose KD
    # gradient T * (p_s - p_t) is too weak for a few hundred steps.
    Protocol("sgd_cos_lr05_v1", lr=0.05, batch_size=128, temperature=1.0),
    Protocol("sgd_cos_b64_lr1_v1", lr=0.1, batch_size=64, temperature=1.0),
    # Teacher training: no constraint of a condensed set, longer and hotter.
    Protocol("teacher_cos_v1", lr=0.1, batch_size=128),
):
    PROTOCOLS.add(_p.name, _p)


@dataclass(frozen=True)
class Profile:
    """Sizes of everything for one scale of the study.

    Attributes:
        name: registry name.
        dataset: dataset used when a notebook or the CLI names none.
        pool_per_class: class-balanced train pool size per class (None = whole train split).
        val_per_class: validation images per class carved from train (fixed seed).
        test_limit: class-balanced cap on the test split (None = whole test split).
        model: student architecture for evaluation training.
        teacher_model: architecture of the teachers (SL, SL+KD, herding features).
        teacher_epochs: full-pool epochs to train each teacher.
        teacher_protocol: protocol the teachers are trained with.
        n_teachers: ensemble size of the multi-teacher regime.
        protocol: training protocol name.
        synth_iters: distiller optimisation iterations (DM).
        synth_model: network distillers embed or match with (DM's random nets).
        synth_batch_real: real images per class per distiller iteration.
        ipcs, budgets, seeds, methods, regimes: the notebook grid's defaults.
    """

    name: str
    dataset: str
    pool_per_class: Optional[int]
    val_per_class: int
    test_limit: Optional[int]
    model: str
    teacher_model: str
    teacher_epochs: int
    teacher_protocol: str
    n_teachers: int
    protocol: str
    synth_iters: int
    synth_batch_real: int
    synth_model: str
    ipcs: Tuple[int, ...]
    budgets: Tuple[float, ...]
    seeds: Tuple[int, ...]
    methods: Tuple[str, ...] = ("random", "herding", "dm")
    regimes: Tuple[str, ...] = ("hl", "sl", "slkd")


PROFILES.add("smoke", Profile(
    name="smoke", dataset="digits", pool_per_class=None, val_per_class=15, test_limit=None,
    model="convnet_d3w16", teacher_model="convnet_d3w32", teacher_epochs=40,
    teacher_protocol="teacher_cos_v1", n_teachers=2, protocol="sgd_cos_b64_lr1_v1", synth_iters=20,
    # batch norm: on 8x8 digits instance norm's last block sees 2x2 maps and
    # leaves DM's class means almost constant
    synth_batch_real=32, synth_model="convnet_d3w16_bn", ipcs=(1, 10), budgets=(2.0, 10.0), seeds=(0,)))
PROFILES.add("default", Profile(
    name="default", dataset="fashion_mnist", pool_per_class=200, val_per_class=100,
    test_limit=2000, model="convnet_d3w32", teacher_model="convnet_d3w32", teacher_epochs=30,
    teacher_protocol="teacher_cos_v1", n_teachers=3, protocol="sgd_cos_lr05_v1", synth_iters=60, synth_batch_real=64,
    synth_model="convnet_d3w32",
    ipcs=(1, 10, 50), budgets=(1.0, 3.0, 10.0), seeds=(0, 1, 2)))
PROFILES.add("paper", Profile(
    name="paper", dataset="fashion_mnist", pool_per_class=None, val_per_class=500,
    test_limit=None, model="convnet", teacher_model="convnet_bn", teacher_epochs=50,
    teacher_protocol="teacher_cos_v1", n_teachers=5, protocol="dsa_step_v1", synth_iters=20000, synth_batch_real=256,
    synth_model="convnet",
    ipcs=(1, 10, 50), budgets=(2.0, 5.0, 10.0, 20.0, 50.0), seeds=(0, 1, 2, 3, 4)))


EVAL_LR = ("protocol", "learned", "unrolled")


def config_hash(obj: dict) -> str:
    """Stable 16-hex-digit SHA-256 of a JSON-serialisable mapping (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one stored result row.

    ``model``/``protocol`` left empty resolve to the profile's choice, so the key
    always names the concrete architecture and recipe that ran.
    """

    dataset: str
    method: str
    ipc: int
    regime: str
    budget: float
    seed: int
    profile: str = "default"
    model: str = ""
    protocol: str = ""
    hparams: Tuple[Tuple[str, object], ...] = field(default_factory=tuple)
    # where the student's initial learning rate comes from: "protocol" (the
    # protocol's lr) or "learned" (the lr a distiller learnt with the set, MTT's), or
    # "unrolled": replay the per-step lrs (and fixed init) a distiller learnt (DD's)
    eval_lr: str = "protocol"

    def resolved(self) -> "RunConfig":
        """Fill profile defaults and validate scalar ranges (raises DDLibError)."""
        prof = PROFILES.get(self.profile)
        if int(self.ipc) != self.ipc or self.ipc < 1:
            raise DDLibError(f"ipc must be a positive integer, got {self.ipc!r}")
        if not self.budget > 0:
            raise DDLibError(f"budget must be > 0 full-train-set epochs, got {self.budget!r}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise DDLibError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.eval_lr not in EVAL_LR:
            raise DDLibError(f"eval_lr must be one of {', '.join(EVAL_LR)}, got {self.eval_lr!r}")
        return dataclasses.replace(
            self,
            dataset=self.dataset or prof.dataset,
            model=self.model or prof.model,
            protocol=self.protocol or prof.protocol,
            ipc=int(self.ipc), seed=int(self.seed), budget=float(self.budget),
            hparams=tuple(sorted(self.hparams)),
        )

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hparams"] = dict(self.hparams)
        return d

    def key(self) -> str:
        """Hash of the resolved config plus the library version: the row's identity.

        ``eval_lr`` enters the hash only when it is not the default, so the keys
        of rows stored before it existed stay valid.
        """
        d = self.resolved().as_dict()
        if d["eval_lr"] == "protocol":
            del d["eval_lr"]
        return config_hash({**d, "version": __version__})

    @classmethod
    def from_row(cls, row) -> "RunConfig":
        """The config of a stored row (its ``config_json``, a JSON string or a dict) or of a
        dict of RunConfig fields; ``regime`` and ``budget`` default to ``hl`` and 1.0.

        Raises:
            DDLibError: the row holds no valid config.
        """
        d = row.get("config_json")
        d = json.loads(d) if isinstance(d, str) else dict(d) if d else dict(row)
        d = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        d.setdefault("regime", "hl")
        d.setdefault("budget", 1.0)
        hp = d.get("hparams") or {}
        d["hparams"] = tuple(sorted(hp.items() if isinstance(hp, dict) else tuple(map(tuple, hp))))
        try:
            return cls(**d)
        except TypeError as e:
            raise DDLibError(f"cannot read a run config from row {row.get('key', '?')}: {e}") from None
