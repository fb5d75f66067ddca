"""``python -m ddlib check --profile P``: a dry run of profile ``P`` that a CPU finishes in minutes.

What would make a long run on a GPU fail late fails here first:

1. every chapter's grid on ``P`` is resolved into its studies (every name,
   hyper-parameter, regime, model and protocol validated, as the notebooks do),
   chapter 6's replayed studies and chapter 8's objectives included;
2. every method the grids ask for is built on each grid dataset at ``P``'s
   real shapes (image size and channels, classes, networks, real batch sizes,
   the largest IPC asked) but for one or two iterations (:data:`QUICK_HP`,
   and a profile whose teachers, experts and scorers train one epoch), on a
   small synthetic slice with the dataset's geometry (no data on disk needed);
3. ``P``'s student trains a few steps on each set, under every label regime
   the grids ask for (their teachers included).

Nothing is stored in the results store: artifacts go to a temporary folder.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ddlib.chapters.grids import CHAPTERS, chapter_grid
from ddlib.chapters.studies import dd2018_studies, study
from ddlib.core.config import PROFILES, PROTOCOLS, Profile
from ddlib.core.cost import Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data import DatasetMeta, Split
from ddlib.data.zca import base_name
from ddlib.engine import augment as aug
from ddlib.engine.models import MODELS, create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.teachers import get_teachers
from ddlib.engine.train import fit
from ddlib.methods.build import method_family
from ddlib.methods.context import Context
from ddlib.methods.coresets import CORESETS, select
from ddlib.methods.distill import DISTILLERS, distill
from ddlib.methods.distill.rded import decode_mosaics
from ddlib.methods.objectives import OBJECTIVES

#: (channels, side, classes) of every registered dataset: the shapes a check builds at
SHAPES: Dict[str, Tuple[int, int, int]] = {
    "digits": (1, 8, 10), "mnist5k": (1, 28, 10), "mnist": (1, 28, 10), "fashion_mnist": (1, 28, 10),
    "cifar10": (3, 32, 10), "cifar100": (3, 32, 100)}
#: the iteration-like hyper-parameters a check shortens (each only where the method declares it)
QUICK_HP = {"iters": 1, "outer_loop": 2, "inner_loop": 1, "syn_steps": 2, "n_experts": 1,
            "expert_epochs_total": 2, "expert_epochs": 1, "max_start_epoch": 1, "epochs": 1, "n_models": 1}
STUDENT_STEPS = 3


def quick_profile(prof: Profile) -> Profile:
    """``prof`` with one-epoch teachers (at most two in an ensemble), one expert of two epochs, one
    scorer, two synthesis iterations.

    Networks, image sizes, real batches, protocols and per-IPC tables are kept.
    """
    return dataclasses.replace(
        prof, teacher_epochs=1, synth_iters=2, n_teachers=min(prof.n_teachers, 2),
        mtt=dataclasses.replace(prof.mtt, iters=1, n_experts=1, expert_epochs_total=2),
        gradient_matching=dataclasses.replace(prof.gradient_matching, iters=1),
        scores=dataclasses.replace(prof.scores, el2n_models=1, forgetting_models=1))


def synthetic_split(dataset: str, per_class: int, seed: int = 0) -> Split:
    """A random split with ``dataset``'s geometry: ``per_class`` train images per class, 4 val, 4 test."""
    dataset = base_name(dataset)  # a whitened dataset has its source's shapes
    if dataset not in SHAPES:
        raise DDLibError(f"check: no known shape for dataset {dataset!r}; known: {', '.join(SHAPES)}")
    c, s, k = SHAPES[dataset]
    g = torch.Generator().manual_seed(seed)

    def part(n):
        return torch.randn(n * k, c, s, s, generator=g), torch.arange(k).repeat_interleave(n)

    (tx, ty), (vx, vy), (ex, ey) = part(per_class), part(4), part(4)
    meta = DatasetMeta(dataset, k, c, s, tuple(str(i) for i in range(k)), (0.5,) * c, (0.25,) * c,
                       f"check-{dataset}")
    return Split(tx, ty, vx, vy, ex, ey, meta)


@dataclass
class Plan:
    """What the grids of one profile ask for: per dataset, methods with their largest IPC, and regimes."""

    studies: int = 0
    methods: Dict[str, Dict[str, int]] = field(default_factory=dict)
    regimes: Dict[str, set] = field(default_factory=dict)


def resolve_grids(profile: str) -> Plan:
    """Every chapter's studies on ``profile`` (validated), gathered into a :class:`Plan`."""
    plan = Plan()
    studies = []
    for chapter in CHAPTERS.names():
        if profile not in CHAPTERS.get(chapter):
            continue
        studies.append(study(chapter, profile))
        for obj in chapter_grid(chapter, profile).get("objectives", ()):
            name, _, arch = obj.partition(":")
            OBJECTIVES.get(name)
            if arch:
                MODELS.get(arch)
    studies += list(dd2018_studies(profile))
    for s in studies:
        plan.studies += 1
        per = plan.methods.setdefault(s.dataset, {})
        for m in s.methods:
            per[m] = max(per.get(m, 0), max(s.ipcs))
        plan.regimes.setdefault(s.dataset, set()).update(s.regimes)
    return plan


def _build(method: str, split: Split, ipc: int, ctx: Context):
    reg = CORESETS if method_family(method) == "coreset" else DISTILLERS
    declared = {h.name for h in reg.hparams(method)}
    hp = {k: v for k, v in QUICK_HP.items() if k in declared}
    if method_family(method) == "coreset":
        sel = select(method, split, ipc, seed=0, ctx=ctx, **hp)
        idx = sel.indices.to(split.train_x.device)
        return split.train_x[idx], split.train_y[idx], {}
    syn = distill(method, split, ipc, seed=0, ctx=ctx, **hp)
    return syn.images, syn.labels, syn.extras


def _student(prof: Profile, split: Split, images, labels, regime: str, teachers) -> float:
    """A few steps of ``prof``'s student on the set under ``regime``: the final loss."""
    m = split.meta
    protocol = PROTOCOLS.get(prof.protocol)
    model = create_model(prof.model, m.num_classes, m.in_chans, m.img_size, seed=0)
    pool = len(split.train_y)
    res = fit(model, images, labels, regime=create_regime(regime), teachers=teachers,
              budget=STUDENT_STEPS * protocol.batch_size / pool, pool_size=pool, protocol=protocol, seed=0,
              augment=aug.resolve(protocol.augment, m.name))
    return res.final_loss


def check_profile(profile: str, *, methods: Sequence[str] = (), root: Optional[Path] = None,
                  log=print) -> List[str]:
    """Run the check (module docstring) on ``profile``; returns the failures ("" when none).

    Args:
        methods: only these methods (default every method the grids ask for).
        root: artifact folder (default a temporary one, removed after).
        log: where each line goes.
    """
    prof = PROFILES.get(profile)
    t0 = time.perf_counter()
    plan = resolve_grids(profile)
    log(f"{profile}: {plan.studies} studies resolved over datasets {', '.join(sorted(plan.methods))}")
    quick = quick_profile(prof)
    failures: List[str] = []
    with tempfile.TemporaryDirectory(prefix="ddlib-check-") as tmp:
        store = Store(Path(root) if root else Path(tmp))
        for dataset, wanted in sorted(plan.methods.items()):
            chosen = {m: i for m, i in wanted.items() if not methods or m in methods}
            # CIM tiles 2 x 2 anchors per image: it needs 4 * IPC real images of a class
            need = max([4 * i for m, i in chosen.items() if m == "cim"] + [i for i in chosen.values()] + [0])
            split = synthetic_split(dataset, per_class=max(16, need + 8))
            regimes = sorted(plan.regimes[dataset])
            first = True
            for method, ipc in sorted(chosen.items()):
                t = time.perf_counter()
                try:
                    ctx = Context(quick, store, Meter(), True, budget=1.0)
                    with Meter() as meter:
                        ctx.meter = meter
                        images, labels, extras = _build(method, split.without_test(), ipc, ctx)
                    factor = int(extras.get("decode_factor", 1))
                    if factor > 1:
                        images, labels = decode_mosaics(images, labels, factor)
                    todo = regimes if first else ["hl"]  # every regime once per dataset, on its first set
                    for regime in todo:
                        n = create_regime(regime).n_teachers(quick)
                        teachers, _ = get_teachers(split, quick, store, n, seed=0,
                                                   arch=str(extras.get("teacher_arch", "")))
                        _student(quick, split, images.detach(), labels, regime, teachers)
                    first = False
                    log(f"ok   {dataset} {method} ipc={ipc}: set {tuple(images.shape)}, student "
                        f"{STUDENT_STEPS} steps under {', '.join(todo)} ({time.perf_counter() - t:.1f} s)")
                except Exception as e:  # noqa: BLE001 -- every failure is reported, then the check fails
                    why = str(e) if isinstance(e, DDLibError) else f"{type(e).__name__}: {e}"
                    failures.append(f"{dataset} {method} ipc={ipc}: {why}")
                    log(f"FAIL {dataset} {method} ipc={ipc}: {why}")
    log(f"{profile}: {len(failures)} failure(s) in {time.perf_counter() - t0:.0f} s")
    return failures


def run_check(args, settings) -> None:
    """``python -m ddlib check`` (its arguments are declared in ``ddlib/__main__.py``)."""
    failures = check_profile(args.profile, methods=args.method or ())
    if failures:
        raise DDLibError(f"check --profile {args.profile}: {len(failures)} failure(s): {failures[0]}")
