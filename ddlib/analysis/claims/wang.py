"""W1–W3: *Dataset Distillation* (Wang, Zhu, Torralba, Efros 2018, arXiv:1811.10959).

Tested on chapter 6's replayed DD sets (MNIST-5k, IPC 1, hard labels, each
set's learnt step sizes replayed: ``eval_lr="unrolled"``) and its full-data
runs (chapter tag ``dd2018_full``).
"""
from __future__ import annotations

import pandas as pd

from ddlib.analysis.claims.rules import (
    RULE,
    Claim,
    Measured,
    Verdict,
    by_seed,
    decide_each,
    fmt_paired,
    hparams,
    register,
    rows,
    tallied,
    threshold_cats,
    untested,
)
from ddlib.analysis.stats import MARGIN, paired

NEAR_FRACTION = 0.9   # "near full-data accuracy": 90% of it (chapter 2's threshold)
SOURCE = "Wang et al. 2018, Dataset Distillation (arXiv:1811.10959)"


# the paper's alternatives of the same size (images frozen, their own steps learnt): dd's ``images`` value, name
ALTERNATIVES = (("real", "random real images"), ("mean", "per-class means"), ("kmeans", "k-means centres"))


def _variants(frame: pd.DataFrame):
    """(fixed init, random init, {alternative: rows}) replayed dd rows of chapter 6; the alternatives are
    the sets whose images were frozen (``images`` in :data:`ALTERNATIVES`), keyed by ``images``."""
    df = rows(frame, ["dd2018"], method="dd", eval_lr="unrolled")
    if df.empty:
        return None
    images = hparams(df).map(lambda h: h.get("images", "noise"))
    init = hparams(df).map(lambda h: h.get("init", "fixed"))
    noise = images == "noise"
    alts = {key: df[images == key] for key, _ in ALTERNATIVES}
    return df[noise & (init == "fixed")], df[noise & (init == "random")], alts


def _pairs(a: pd.DataFrame, b: pd.DataFrame):
    """Paired (points) per (ipc, budget) of ``a`` found in ``b`` too: [(ipc, budget, Paired)]."""
    out = []
    for (ipc, budget), g in a.groupby(["ipc", "budget"], sort=True):
        h = b[(b["ipc"] == ipc) & (b["budget"] == budget)]
        p = paired(by_seed(g), by_seed(h)) if len(h) else None
        if p is not None:
            out.append((ipc, budget, p))
    return out


def near_full_data(frame: pd.DataFrame, measured: Measured) -> Verdict:
    v = _variants(frame)
    full = rows(frame, ["dd2018_full"], regime="hl")
    if v is None or v[0].empty or full.empty:
        return untested("needs chapter 6's replayed fixed-init DD sets and its full-data runs (dd2018 grid)")
    fixed = v[0]
    diffs, tols, parts = [], [], []
    for (ipc, budget), f in fixed.groupby(["ipc", "budget"], sort=True):
        ref = full[full["budget"] == full["budget"].min()]  # a few steps: against full data at its first budget
        p = paired(by_seed(ref), by_seed(f))
        if p is None:
            continue
        tol = (1 - NEAR_FRACTION) * p.a.mean()
        diffs.append(p.d)
        tols.append(tol)
        parts.append(f"IPC {ipc}: distilled {p.b.mean():.1f}% vs full data {p.a.mean():.1f}% (budget "
                     f"{ref['budget'].iloc[0]:g}); deficit {fmt_paired(p)} points, tolerance {tol:.1f}")
    if not diffs:
        return untested("no full-data run shares a seed with the fixed-init DD runs")
    return tallied(threshold_cats(diffs, tols, sign=-1), "; ".join(parts) + ".")


def random_init(frame: pd.DataFrame, measured: Measured) -> Verdict:
    v = _variants(frame)
    if v is None or v[1].empty or v[2]["real"].empty:
        return untested("needs chapter 6's replayed random-init DD sets and its real-image baseline")
    fixed, rnd, real = v[0], v[1], v[2]["real"]
    diffs, sup, ag, parts = [], [], [], []
    for ipc, budget, p in _pairs(rnd, real):
        diffs.append(p.d)
        sup.append("greater")
        ag.append("not_greater")
        parts.append(f"IPC {ipc}, budget {budget:g}: random-init distilled minus real images {fmt_paired(p)}")
    for ipc, budget, p in _pairs(fixed, rnd):
        diffs.append(p.d)
        sup.append("greater")
        ag.append("not_greater")
        parts.append(f"fixed-init minus random-init {fmt_paired(p)} (the smaller gain)")
    if not diffs:
        return untested("the random-init and real-image DD runs share no seed")
    return tallied(decide_each(diffs, sup, ag), "; ".join(parts) + " points.")


def beats_alternatives(frame: pd.DataFrame, measured: Measured) -> Verdict:
    v = _variants(frame)
    if v is None or v[0].empty or all(a.empty for a in v[2].values()):
        return untested("needs chapter 6's replayed fixed-init DD sets and its baselines (random real images, "
                        "per-class means, k-means centres)")
    fixed, alts = v[0], v[2]
    # one cluster per class: the k-means centre is the class mean, the same set; counted once, as the means
    alts = {**alts, "kmeans": alts["kmeans"][alts["kmeans"]["ipc"] > 1]}
    diffs, parts, absent = [], [], []
    for key, name in ALTERNATIVES:
        pr = _pairs(fixed, alts[key])
        absent += [name] if not pr else []
        for ipc, budget, p in pr:
            diffs.append(p.d)
            parts.append(f"IPC {ipc}, budget {budget:g}: distilled minus {name} {fmt_paired(p)}")
    if not diffs:
        return untested("the fixed-init DD runs share no seed with a baseline's")
    cats = decide_each(diffs, ["greater"] * len(diffs), ["not_greater"] * len(diffs))
    tail = ""
    if absent:
        tail = (" Not compared (no paired runs): " + ", ".join(absent)
                + (" (k-means runs only above IPC 1: at IPC 1 its centre is the class mean, tested as per-class "
                   "means)" if "k-means centres" in absent else "") + ".")
    return tallied(cats, "; ".join(parts) + " points (each baseline's images frozen, its own step sizes learnt "
                   "from the same fixed initialisation)." + tail)


register(
    Claim("W1", "A few synthetic images and a fixed initialisation train a network to near full-data accuracy "
          "in a few gradient steps (MNIST: 10 images, 94% against 99% with full training).", SOURCE,
          "abstract; Sec. 1", ("dd2018",),
          "MNIST-5k, IPC 1, DD with a fixed initialisation, its learnt steps replayed, against full-data training "
          "(hard labels, the grid's first budget), paired by seed.",
          f"Settings: IPC x budget; deficit = full data - distilled, points per seed; support = deficit shown below "
          f"{1 - NEAR_FRACTION:.0%} of full-data accuracy (one-sided t-test, non-inferiority with that margin), "
          "against = shown above it. " + RULE, near_full_data),
    Claim("W2", "Distilled images also train networks from unknown random initialisations, with a smaller gain "
          "than for a fixed initialisation (MNIST: 100 images, about 80%).", SOURCE, "abstract; Sec. 1",
          ("dd2018",),
          "Chapter 6's DD sets learnt for random initialisations against real images with the same learnt steps, "
          "and against the fixed-init sets.",
          f"Settings: IPC x budget, two statements each: random-init - real images > 0, and fixed-init - random-init "
          f"> 0; against = shown below +{MARGIN:g} point (does not beat); Holm over all. " + RULE, random_init),
    Claim("W3", "Distilled sets beat the simple alternatives of the same size (random real images, per-class "
          "means, k-means centres).", SOURCE, "abstract ('advantage ... compared to alternative methods'); the "
          "baselines as defined by the reference code (utils/baselines.py: random_train, average_train, "
          "kmeans_train); the paper's baselines paragraph not verified", ("dd2018",),
          "Chapter 6: fixed-init DD against each baseline of the same size, trained with the same number of GD "
          "steps and its own learnt step sizes (images frozen, from the same fixed initialisation): random real "
          "images, the per-class mean image, the per-class k-means centres (k = IPC; above IPC 1 only, since one "
          "cluster's centre is the class mean).",
          f"Settings: baseline x IPC x budget; d = distilled - baseline; support = d > 0, against = d shown below "
          f"+{MARGIN:g} point (does not beat it); Holm over all settings. " + RULE, beats_alternatives),
)
