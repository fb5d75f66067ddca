"""Teachers: trained by ddlib on the full train pool, cached by config hash.

A teacher is the profile's ``teacher_model`` trained with hard labels for
``teacher_epochs`` full-pool epochs under the profile's protocol.  Ensemble
member ``i`` of run seed ``s`` is seeded from the stream ``teacher{i}`` of ``s``
(:func:`teacher_seed`): every run seed trains its own teachers, so the spread
over seeds of a teacher-supervised row includes the teacher's own randomness
(a shared teacher would hide it).  Its training cost is charged to the rows
that use it (``teacher_*`` columns for the regime's teachers, the build cost
for a builder's).  No checkpoint is chosen: a teacher is the network after its
last epoch; its validation accuracy is recorded, the test split is never read.  Nothing is downloaded; a user may name a
local checkpoint (a ``state_dict`` saved with ``torch.save``) instead.
Under ``torchrun`` a teacher trains data-parallel (:mod:`ddlib.engine.distributed`)
in the process group it is given (``dist=``), by default the one its store
coordinates with: every rank of that group takes the same cache hit or miss,
so all of them train it together.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn

from ddlib import __version__
from ddlib.core.config import PROTOCOLS, Profile, config_hash
from ddlib.core.cost import Cost, Meter
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import stream_seed
from ddlib.core.store import Store
from ddlib.data import Split
from ddlib.engine import augment as aug
from ddlib.engine.distributed import DistInfo
from ddlib.engine.fastpath import Engine, group_engine, per_sample, profile as fwd_profile, wants_channels_last
from ddlib.engine.models import create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.train import budget_samples, evaluate, fit

log = logging.getLogger("ddlib")


def teacher_seed(run_seed: int, member: int) -> int:
    """The init / data-order seed of ensemble member ``member`` for run seed ``run_seed``."""
    return stream_seed(run_seed, f"teacher{member}")


def teacher_config(split: Split, profile: Profile, member: int, arch: str = "", *, seed: int) -> dict:
    """What determines teacher ``member`` of run seed ``seed`` (its cache key hashes this)."""
    return {"dataset": split.meta.name, "pool": len(split.train_y), "data": split.meta.fingerprint,
            "arch": arch or profile.teacher_model,
            "epochs": profile.teacher_epochs, "protocol": profile.teacher_protocol,
            "seed": teacher_seed(seed, member), "run_seed": int(seed), "version": __version__}


def _build(split: Split, cfg: dict) -> nn.Module:
    m = split.meta
    return create_model(cfg["arch"], m.num_classes, m.in_chans, m.img_size, seed=cfg["seed"])


def teacher_engine(model: nn.Module, split: Split, profile: Profile,
                   engine: Union[Engine, str, None]) -> Union[Engine, str, None]:
    """The engine a teacher of ``profile`` trains under.

    A study trains one teacher per run seed and ensemble member (the profile's
    ``seeds`` x ``n_teachers``), all of one architecture and batch shape, so on CPU
    under ``auto`` they share one compiled graph when that total work repays
    compiling (:func:`ddlib.engine.fastpath.group_engine`), as a grid's students do;
    one `default` teacher alone (0.9 training TFLOP) would not.  Compiled, the
    instance-norm ConvNet-3-32 teacher trains 1.42x faster; a batch-norm teacher
    already trains channels-last (:func:`ddlib.engine.fastpath.wants_channels_last`),
    where compiling gave 0.99x, so it stays eager (benchmarks/results/engine_layout.json).  Otherwise ``engine``.
    """
    if split.train_x.device.type != "cpu" or not per_sample(model):
        return engine
    one = 3 * fwd_profile(model, tuple(split.train_x.shape[1:]))[0] * budget_samples(
        profile.teacher_epochs, len(split.train_y))
    return group_engine(engine, one * len(profile.seeds) * profile.n_teachers) or engine


def _as_trained(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device`` in eval mode, in the memory layout the engine trains it in.

    A batch-norm teacher trains channels-last on CPU (:func:`ddlib.engine.fastpath.wants_channels_last`)
    and leaves its fit so; a teacher loaded from the store (or a checkpoint) would come back
    contiguous, and its passes would round differently.  Every teacher is returned in the
    training layout, so a cache hit and a cache miss give the same sets and labels.
    """
    model = model.to(device).eval()
    if wants_channels_last(model, device):
        model = model.to(memory_format=torch.channels_last)
    return model


def store_group(store: Store) -> Optional[DistInfo]:
    """The torchrun process group ``store`` coordinates its writes with, or None (one process)."""
    sync = getattr(store, "sync", None)
    return sync if isinstance(sync, DistInfo) else None


def get_teacher(split: Split, profile: Profile, store: Store, member: int = 0, *, seed: int,
                arch: str = "", checkpoint: Optional[str] = None,
                quiet: bool = True, dist: Optional[DistInfo] = None,
                engine: Union[Engine, str, None] = None) -> Tuple[nn.Module, Cost]:
    """Return teacher ``member`` of run seed ``seed`` (eval mode, on the split's device) and its cost.

    The cost is what training it spent (zero seconds for a user's checkpoint);
    callers charge it to the builds that use the teacher.  ``dist``: the
    process group to train it in (default :func:`store_group`); ``engine``: the
    step execution mode of its training (:func:`ddlib.engine.train.fit`).
    """
    split = split.without_test()  # a teacher never sees the test split
    cfg = teacher_config(split, profile, member, arch, seed=seed)
    device = split.train_x.device
    model = _build(split, cfg)
    if checkpoint:
        try:
            state = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as e:
            raise DDLibError(f"cannot load teacher checkpoint {checkpoint}: {e}") from None
        return _as_trained(model, device), Cost(device=device.type)
    key = config_hash(cfg)
    dist = dist if dist is not None else store_group(store)
    art = store.load_artifact("teachers", key)
    if art is None:
        log.info("training teacher %s (%s, %d epochs) -> %s", key, cfg["arch"], cfg["epochs"],
                 store.artifact_path("teachers", key))
        model = model.to(device)
        run_engine = teacher_engine(model, split, profile, engine)
        with Meter(device) as meter, store.worklog.work("teacher", member=member, seed=cfg["seed"]):
            res = fit(model, split.train_x, split.train_y, regime=create_regime("hl"), teachers=[],
                      budget=cfg["epochs"], pool_size=len(split.train_y),
                      protocol=PROTOCOLS.get(cfg["protocol"]), seed=cfg["seed"], quiet=quiet,
                      augment=aug.resolve(PROTOCOLS.get(cfg["protocol"]).augment, split.meta.name),
                      desc=f"teacher {member}", dist=dist, engine=run_engine)
            # counted by hand (every sample one forward and one backward, over all ranks):
            # a forward hook would split the compiled graph
            meter.forward(res.samples_seen)
            meter.backward(res.samples_seen)
        if isinstance(engine, Engine) and isinstance(run_engine, Engine) and run_engine.compile_failed:
            engine.compile_failed = True  # later fits sharing ``engine`` stop trying too
        val = evaluate(model, split.val_x, split.val_y)
        art = {"state": {k: v.cpu() for k, v in model.state_dict().items()},
               "cost": meter.cost.as_dict(), "val_accuracy": val, "config": cfg}
        store.save_artifact("teachers", key, art)
    else:
        model.load_state_dict(art["state"])
    return _as_trained(model, device), Cost(**art["cost"])


def get_teachers(split: Split, profile: Profile, store: Store, n: int, *, seed: int, quiet: bool = True,
                 checkpoint: Optional[str] = None, arch: str = "",
                 dist: Optional[DistInfo] = None,
                 engine: Union[Engine, str, None] = None) -> Tuple[List[nn.Module], Cost]:
    """The first ``n`` ensemble members of run seed ``seed`` (of ``arch``, default the profile's) and their costs."""
    models, total = [], Cost(device=split.train_x.device.type)
    for i in range(n):
        m, c = get_teacher(split, profile, store, i, seed=seed, quiet=quiet, arch=arch,
                           checkpoint=checkpoint if i == 0 else None, dist=dist, engine=engine)
        for p in m.parameters():
            p.requires_grad_(False)
        models.append(m)
        total = total + c
    return models, total
