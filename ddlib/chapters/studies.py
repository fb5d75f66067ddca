"""A chapter's studies: its grid (:mod:`ddlib.chapters.grids`) filled in with the notebook's parameters.

Every page that needs the same runs asks for them through here — the cost,
quality, DCS and claims chapters read the comparison chapter's runs — so they
ask for exactly the same configs and find them in the store instead of
recomputing them.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import pandas as pd

from ddlib.chapters.grids import CHAPTERS, chapter_grid
from ddlib.run.study import Study, full_pool_ipc

# the replayed DD sets of chapter 6: fixed init, random init, then the paper's baselines of the same
# size, their images frozen (lr_img 0) and only their step sizes learnt, from the same fixed init:
# random real images, per-class means, per-class k-means centres (ddlib.methods.distill.dd)
DD_VARIANTS = ({"init": "fixed"}, {"init": "random"}, {"init": "fixed", "images": "real", "lr_img": 0.0},
               {"init": "fixed", "images": "mean", "lr_img": 0.0}, {"init": "fixed", "images": "kmeans", "lr_img": 0.0})


def study(chapter: str, profile: str = "default", *, dataset: str = "", methods: Sequence[str] = (),
          ipcs: Sequence[int] = (), regimes: Sequence[str] = (), budgets: Sequence[float] = (),
          seeds: Sequence[int] = (), eval_lr: str = "protocol", hparams: Optional[dict] = None,
          models: Sequence[str] = ()) -> Study:
    """The :class:`~ddlib.run.study.Study` of ``chapter`` on ``profile``.

    A parameter left empty (a notebook's default) is filled from the chapter's
    grid, then by :meth:`Study.from_params` from the profile itself.

    Raises:
        DDLibError: unknown chapter, a chapter without a grid for ``profile``, or a bad name.
    """
    g = chapter_grid(chapter, profile)
    return Study.from_params(profile=profile, dataset=dataset or g.get("dataset", ""),
                             methods=methods or g.get("methods", ()), ipcs=ipcs or g.get("ipcs", ()),
                             regimes=regimes or g.get("regimes", ()), budgets=budgets or g.get("budgets", ()),
                             seeds=seeds or g.get("seeds", ()), eval_lr=eval_lr, hparams=hparams,
                             models=models or g.get("models", ()))


def dd2018_studies(profile: str, *, dataset: str = "", ipcs: Sequence[int] = (),
                   seeds: Sequence[int] = ()) -> Tuple[Study, ...]:
    """The replayed DD studies of chapter 6, one per :data:`DD_VARIANTS` entry.

    The ``dd2018`` grid (its dataset, IPCs and seeds unless given), hard labels,
    the grid's first budget and ``eval_lr="unrolled"``: what the notebook shows
    and the claims ledger reads.  The k-means variant runs only at IPCs above 1
    (absent when there is none): with one cluster per class the k-means centre
    is the class mean, the same set as the per-class-mean variant.
    """
    g = chapter_grid("dd2018", profile)
    ipcs = tuple(ipcs) or tuple(g["ipcs"])
    out = []
    for h in DD_VARIANTS:
        own = tuple(i for i in ipcs if i > 1) if h.get("images") == "kmeans" else ipcs
        if own:
            out.append(study("dd2018", profile, dataset=dataset, ipcs=own, seeds=seeds, budgets=g["budgets"][:1],
                             eval_lr="unrolled", hparams=h))
    return tuple(out)


def dd2018_engine_studies(profile: str, *, dataset: str = "", ipcs: Sequence[int] = (), seeds: Sequence[int] = (),
                          budgets: Sequence[float] = (), full_ipc: Optional[int] = None) -> Tuple[Study, ...]:
    """Chapter 6's sets under the study's standard engine (hard labels, the profile's protocol, the
    grid's budgets unless given): random real images and class means, DD with a fixed and a random
    init, and the whole class-balanced pool (``full_ipc`` images per class; default: read from the
    data with :func:`~ddlib.run.study.full_pool_ipc`)."""
    dataset = dataset or chapter_grid("dd2018", profile)["dataset"]
    grid = dict(dataset=dataset, ipcs=ipcs, seeds=seeds, budgets=budgets)
    fixed, rand = DD_VARIANTS[:2]
    return (study("dd2018", profile, **grid, methods=["random", "class_mean"]),
            study("dd2018", profile, **grid, hparams=fixed),
            study("dd2018", profile, **grid, hparams=rand),
            study("dd2018", profile, **{**grid, "ipcs": [full_ipc or full_pool_ipc(profile, dataset)]}, methods=["random"]))


def chapter_runs(chapter: str, profile: str) -> int:
    """How many runs ``chapter``'s grid asks for on ``profile``: its study's configs (fields the grid
    leaves out fall back to the profile's defaults, as in :meth:`Study.from_params`); for ``dd2018``,
    every run chapter 6 trains (its replayed DD sets and their baselines, and the same sets under the
    standard engine)."""
    if chapter == "dd2018":
        studies = dd2018_studies(profile) + dd2018_engine_studies(profile, full_ipc=1)  # 1 stands for the pool
    else:
        studies = (study(chapter, profile),)
    return sum(len(s.configs()) for s in studies)


def chapters_table() -> pd.DataFrame:
    """:func:`chapter_runs` of every chapter (rows) on every profile it has a grid for (columns)."""
    rows = [{"chapter": ch, **{prof: chapter_runs(ch, prof) for prof in CHAPTERS.get(ch)}} for ch in CHAPTERS.names()]
    return pd.DataFrame(rows).set_index("chapter").fillna(0).astype(int)
