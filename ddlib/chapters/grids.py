"""The book's grids: one named grid per chapter and profile.

A chapter notebook's parameters default to empty lists; :func:`ddlib.chapters.study`
fills them from the chapter's grid for the profile (then from the profile
itself), so every page that needs the same runs — the cost, quality and
claims chapters read the comparison chapter's runs — asks for exactly the same
configs and finds them in the store instead of recomputing them.

The `default` grids are sized for the whole book to build on a 2-core CPU; the
`paper` grids are the seed papers' scale.  A grid field left out falls back to
the profile's own default (:class:`ddlib.core.config.Profile`).
"""
from __future__ import annotations

from typing import Dict

from ddlib.core.config import PROFILES
from ddlib.core.registry import DDLibError, Registry

CHAPTERS = Registry("chapter")

_CORESETS = ("random", "herding", "kcenter", "el2n_easy", "el2n_hard", "forgetting", "ccs", "cad_prune")
_MATCHING = ("dc", "dsa", "dm", "mtt")
_TEACHER = ("sre2l", "rded", "cim", "ca2d")

# Budgets are shared across chapters (smoke 1 / 4, default 6.4 / 32 full-pool epochs) so that a run
# two chapters need is computed once.  `default` (benchmarks/results/default_convergence.json, chosen on
# validation): 6.4 epochs of the 2,000-image pool is 100 SGD steps of 128 (the fewest the study allows a
# student), 32 epochs (500 steps) brings the full-pool student within 2 points of its converged accuracy.
# A 32-epoch run costs five 6.4-epoch ones, so only chapter 2's budget axis (the saturation and
# convergence claims) trains at 32; every other default grid trains at 6.4, at IPC 10, with the methods
# its claims compare (the `paper` grids keep every IPC, method and regime).  To fit five seeds and the
# converged budget in the 30-minute book (benchmarks/results/book_default.json), the default grids were
# trimmed by methods, never by budgets or regimes: chapter 3 keeps two coresets (random, herding: the
# strongest on validation) against two distiller families (DM, MTT; DSA and EL2N-easy cost ~3.5 min
# with their objective scores), chapter 8 drops the wider MTT probe (1.25 min).
_B_LO, _B_HI = (6.4,), (6.4, 32.0)
# Seeds: 5 on `default` (as on `paper`): the paired t-interval and the book's tests need n >= 3
# and have little power below 5 (ddlib.analysis.stats); `smoke` (CI) has 2, so it shows no interval.
_S2, _D5 = dict(seeds=(0, 1)), dict(seeds=(0, 1, 2, 3, 4))

# chapter 2 (Hard truths): coresets of different quality and size against the budget
CHAPTERS.add("label_regimes", {
    "smoke": dict(methods=("random", "el2n_easy", "cad_prune"), regimes=("hl", "sl", "slkd"),
                  ipcs=(1, 10), budgets=(1.0, 4.0), **_S2),
    "default": dict(methods=("random", "cad_prune"), regimes=("hl", "slkd"), ipcs=(10,), budgets=_B_HI, **_D5),
    "paper": dict(methods=("random", "el2n_easy", "el2n_hard", "ccs", "cad_prune"), regimes=("hl", "sl", "slkd")),
})
# chapter 2: compute-aware against fixed difficulty, hard labels
CHAPTERS.add("cad_vs_el2n", {
    "smoke": dict(methods=("cad_prune", "el2n_easy", "el2n_hard"), regimes=("hl",), ipcs=(1, 10),
                  budgets=(1.0, 4.0), **_S2),
    "default": dict(methods=("cad_prune", "el2n_easy", "el2n_hard"), regimes=("hl",), ipcs=(10,),
                    budgets=_B_LO, **_D5),
    "paper": dict(methods=("cad_prune", "el2n_easy", "el2n_hard"), regimes=("hl",)),
})
# chapter 2: the convergence view, distilled sets and coresets along the budget
CHAPTERS.add("convergence", {
    "smoke": dict(methods=("random", "herding", "dm"), regimes=("hl",), ipcs=(10,), budgets=(1.0, 4.0), **_S2),
    "default": dict(methods=("random", "dm"), regimes=("hl",), ipcs=(10,), budgets=_B_HI, **_D5),
    "paper": dict(methods=("random", "herding", "dm", "dc", "mtt"), regimes=("hl",), ipcs=(10,)),
})
# chapter 3 (Rethinking DD): distillers against coresets under the three protocols
# (plain ERM = hl, single teacher = slkd, multi-teacher = mt) at one budget
CHAPTERS.add("distilled_vs_coresets", {
    "smoke": dict(methods=("random", "herding", "el2n_easy", "dm", "dc", "rded"), regimes=("hl", "slkd", "mt"),
                  ipcs=(1, 10), budgets=(1.0,), **_S2),
    "default": dict(methods=("random", "herding", "dm", "mtt"), regimes=("hl", "slkd", "mt"), ipcs=(10,),
                    budgets=_B_LO, **_D5),
    "paper": dict(methods=_CORESETS + _MATCHING + _TEACHER, regimes=("hl", "slkd", "mt"),
                  ipcs=(1, 10, 50), budgets=(10.0,)),
})

# chapter 7 (CIM and CA2D): the teacher-based distillers against coresets under every label
# regime, at chapter 3's budget (its hl / slkd runs of random, herding, el2n_easy, rded are shared)
CHAPTERS.add("teacher_based", {
    "smoke": dict(methods=("random", "el2n_easy", "sre2l", "rded", "cim", "ca2d"),
                  regimes=("hl", "sl", "slkd", "slkd_stored"), ipcs=(10,), budgets=(1.0,), **_S2),
    "default": dict(methods=("random", "herding", "sre2l", "rded", "cim", "ca2d"),
                    regimes=("hl", "slkd"), ipcs=(10,), budgets=_B_LO, **_D5),
    "paper": dict(methods=("random", "herding", "el2n_easy", "cad_prune") + _TEACHER,
                  regimes=("hl", "sl", "slkd", "slkd_stored"), ipcs=(1, 10, 50), budgets=(10.0,)),
})

# chapter 8 (DCS): extra random subsets (seeds none of the chapters use: until 0.8.0 default's 3 and 4
# were chapter 3's own, so 4 of its 6 were extra) scored beside chapter 3's and chapter 2's HL sets (same
# IPCs and budget), and the distillers' objectives evaluated on every set ("name" or "name:arch";
# ddlib.methods.objectives): MTT's trajectory loss with the distiller's network and (smoke, paper) a
# wider one
_DVC = CHAPTERS.get("distilled_vs_coresets")
CHAPTERS.add("dcs", {
    prof: dict(methods=("random",), regimes=("hl",), ipcs=_DVC[prof]["ipcs"], budgets=_DVC[prof]["budgets"][:1],
               seeds=seeds, objectives=objectives)
    for prof, seeds, objectives in (
        ("smoke", (2, 3, 4, 5), ("dm", "dc", "mtt", "mtt:convnet_d3w64_bn", "sre2l")),
        ("default", (5, 6, 7, 8, 9, 10), ("dm", "dc", "mtt", "sre2l")),
        ("paper", (5, 6, 7, 8, 9), ("dm", "dc", "mtt", "mtt:convnet_d3w256", "sre2l")))
})
# chapter 6 (DD 2018), as notebooks/06_dd2018.ipynb runs it: IPC 1, hard labels, on MNIST-5k on the CPU
# profiles and on full MNIST on `paper` (the paper's data; a clear error when it is not on disk); the
# replayed ("unrolled") sets use the first budget (ddlib.chapters.studies.dd2018_studies: DD with a fixed and
# a random init, and the paper's baselines of the same size with their own learnt steps: random real images,
# class means, k-means centres above IPC 1); the standard engine also trains random and class_mean sets
# (`default`: one budget, 6.4 epochs of its 2,000-image pool = 100 SGD steps, the study's floor)
CHAPTERS.add("dd2018", {prof: dict(dataset=data, methods=("dd",), ipcs=(1,), regimes=("hl",), budgets=budgets)
                        for prof, data, budgets in (("smoke", "mnist5k", (1.0, 3.0)), ("default", "mnist5k", _B_LO),
                                                    ("paper", "mnist", (1.0, 3.0)))})

# chapter 9 (transfer): chapter 3's sets (same dataset, methods, IPC, seeds, profile: the same build
# keys) trained by other students; the profile's own student is the first column, and its runs
# are chapter 3's.  `default` adds one cheap timm network (MobileNetV3-small, channels-last: ~8.5 s a
# 100-step run beside another, three ConvNet runs) for the sets CIM's cross-architecture claim (C5)
# compares, from chapter 7: 15 new runs, ~2 min on 2 cores; `paper` trains every registered timm student.
_TIMM = ("resnet18", "vgg11_bn", "mobilenetv3_small_100", "efficientnet_b0", "vit_tiny")
CHAPTERS.add("transfer", {
    # smoke: hard labels only (a MobileNet run is most of the chapter's CI time; SL+KD runs on `default`)
    "smoke": dict(methods=("random", "herding", "dm"), regimes=("hl",), ipcs=(10,), budgets=(1.0,),
                  models=(PROFILES.get("smoke").model, "mobilenetv3_small_100"), **_S2),
    "default": dict(methods=("random", "rded", "cim"), regimes=("hl",), ipcs=(10,),
                    budgets=_B_LO, models=(PROFILES.get("default").model, "mobilenetv3_small_100"), **_D5),
    "paper": dict(methods=("random", "herding", "kcenter", "el2n_easy") + _MATCHING + _TEACHER,
                  regimes=("hl", "slkd"), ipcs=(1, 10, 50), budgets=(10.0,),
                  models=(PROFILES.get("paper").model,) + _TIMM),
})


def chapter_grid(chapter: str, profile: str) -> Dict[str, tuple]:
    """The grid fields (methods, ipcs, regimes, budgets, seeds, models; any subset) of ``chapter`` on ``profile``."""
    grids = CHAPTERS.get(chapter)
    if profile not in grids:
        raise DDLibError(f"chapter {chapter!r} has no grid for profile {profile!r}; "
                         f"it has: {', '.join(sorted(grids))}")
    return dict(grids[profile])
