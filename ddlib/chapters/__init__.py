"""The book's chapters: the top layer, what the notebooks call.

* :mod:`~ddlib.chapters.grids`: one named grid of runs per chapter and profile.
* :mod:`~ddlib.chapters.studies`: a chapter's :class:`~ddlib.run.study.Study` from its
  grid and the notebook's parameters (:func:`study`), chapter 6's replayed DD studies.
* :mod:`~ddlib.chapters.ledger`: the studies the claims ledger reads; each chapter's verdicts.
* :mod:`~ddlib.chapters.commands`: ``python -m ddlib claims``.
* :mod:`~ddlib.chapters.dcs`: the sets the DCS chapter scores.
"""
from ddlib.chapters.dcs import DCSStudy
from ddlib.chapters.grids import CHAPTERS, chapter_grid
from ddlib.chapters.ledger import Ledger, chapter_verdicts
from ddlib.chapters.studies import DD_VARIANTS, chapter_runs, chapters_table, dd2018_engine_studies, dd2018_studies, study

__all__ = ["CHAPTERS", "DCSStudy", "DD_VARIANTS", "Ledger", "chapter_grid", "chapter_runs", "chapter_verdicts",
           "chapters_table", "dd2018_engine_studies", "dd2018_studies", "study"]
