"""The studies the claims ledger reads (:mod:`ddlib.analysis.claims` tests the claims on their rows)
and the measurements of their sets that some claims need (quality, DCS scores, a held-out teacher's view)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Optional, Sequence, Tuple

import pandas as pd

from ddlib.analysis.claims import HELD_OUT_TEACHER_SEED, chapter_claims, chapter_table, ledger_table, teacher_view_table
from ddlib.analysis.quality_study import set_quality_table
from ddlib.chapters.dcs import DCSStudy
from ddlib.chapters.grids import CHAPTERS
from ddlib.chapters.studies import dd2018_studies, study
from ddlib.core.config import PROFILES
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.run.measure import reference_teacher
from ddlib.run.settings import default_store
from ddlib.run.study import Study, full_pool_ipc, run_all

# the chapter grids whose runs the claims read (the dd2018 studies are added to them)
LEDGER_CHAPTERS = ("label_regimes", "cad_vs_el2n", "convergence", "distilled_vs_coresets", "teacher_based",
                   "transfer")
CROSS_ARCH = "cross_architecture"   # the frame's tag of stored rows trained with a non-default student


def _full_data(s: Study) -> Study:
    """Full-data runs with ``s``'s budgets and seeds (plain protocol, no builder hyper-parameters)."""
    return replace(s, methods=("random",), ipcs=(full_pool_ipc(s.profile, s.dataset),), regimes=("hl",),
                   eval_lr="protocol", hparams=())


@dataclass(frozen=True)
class Ledger:
    """The studies the claims read: each chapter grid registered for the profile, by chapter name."""

    profile: str
    studies: Tuple[Tuple[str, Tuple], ...]
    missing: Tuple[str, ...]
    dataset: str = ""  # "" = each grid's own (the profile's; chapter 6's MNIST)
    seeds: Tuple[int, ...] = ()  # () = each grid's own

    @classmethod
    def from_params(cls, profile: str = "default", dataset: str = "", seeds: Sequence[int] = ()) -> "Ledger":
        """Every :data:`LEDGER_CHAPTERS` grid of ``profile``, chapter 2's full-data runs, chapter 6's replayed
        DD sets and their full-data runs; chapters without a grid for it are listed as missing, and so are
        full-data runs whose data are absent (their claims are then untested).

        ``dataset`` / ``seeds``: every grid on that dataset (``-p dataset cifar10``) / with those seeds."""
        studies, missing, seeds = [], [], tuple(seeds)
        for ch in LEDGER_CHAPTERS:
            if ch in CHAPTERS and profile in CHAPTERS.get(ch):
                s = study(ch, profile, dataset=dataset, seeds=seeds)
                studies.append((ch, (s,)))
                if ch == "label_regimes":
                    studies.append(("full_data", (s.full_data(),)))
            else:
                missing.append(ch)
        dd = dd2018_studies(profile, dataset=dataset, seeds=seeds)
        studies.append(("dd2018", dd))
        try:  # the same full-data study as chapter 6's (its grid's budgets)
            studies.append(("dd2018_full", (_full_data(study("dd2018", profile, dataset=dataset, seeds=seeds,
                                                             methods=["random"])),)))
        except DDLibError:
            missing.append("dd2018_full")
        return cls(profile, tuple(studies), tuple(missing), dataset, seeds)

    def describe(self) -> pd.DataFrame:
        # chapter 6's replayed sets and their full-data runs are part of what its chapter trains: named as such
        label = {"dd2018": "dd2018 (the replayed sets)", "dd2018_full": "dd2018 (full data)"}
        d = {label.get(ch, ch): f"{sum(len(s.configs()) for s in ss)} runs" for ch, ss in self.studies}
        d.update({ch: "not registered: its claims are untested" for ch in self.missing})
        return pd.DataFrame({"runs": list(d.values())}, index=pd.Index(list(d), name="chapter grid"))

    def _cross_arch(self, store: Store) -> pd.DataFrame:
        """Stored rows of this profile trained with a student other than the profile's (the C5 claim)."""
        df = store.frame(profile=self.profile)
        df = df[df["dataset"] == (self.dataset or PROFILES.get(self.profile).dataset)]
        return df[df["model"].notna() & (df["model"] != "") & (df["model"] != PROFILES.get(self.profile).model)]

    def run(self, store: Optional[Store] = None, *, quiet: bool = True, stored_only: bool = False) -> pd.DataFrame:
        """Every study's rows (run or reused) with a ``chapter`` column, plus stored cross-architecture rows.

        ``stored_only``: :meth:`stored` (the rows the chapters left in the store; nothing is run)."""
        store = store or default_store()
        if stored_only:
            return self.stored(store)
        parts = [run_all(ss, store, quiet=quiet).assign(chapter=ch) for ch, ss in self.studies]
        return pd.concat(parts + [self._cross_arch(store).assign(chapter=CROSS_ARCH)], ignore_index=True)

    def stored(self, store: Store) -> pd.DataFrame:
        """The same frame from the rows already stored (nothing is run; absent runs are absent)."""
        df = store.frame(profile=self.profile)
        parts = [df[df["key"].isin({c.key() for s in ss for c in s.configs()})].assign(chapter=ch)
                 for ch, ss in self.studies]
        return pd.concat(parts + [self._cross_arch(store).assign(chapter=CROSS_ARCH)], ignore_index=True)

    def measure(self, frame: pd.DataFrame, store: Optional[Store] = None, *,
                run_missing: bool = True, objectives: Sequence[str] = ()) -> Dict[str, pd.DataFrame]:
        """The measurements some claims read, of the sets in ``frame`` (run the studies first).

        ``quality`` (chapter 5's metrics of chapter 3's sets), ``quality_teacher_based`` (chapter 7's),
        ``teacher_view`` (a held-out teacher on both) and ``dcs`` (chapter 8's objective scores).  May
        train the reference and held-out teachers and chapter 8's probes when they are not cached;
        ``run_missing=False`` scores only chapter 8's stored sets instead of running its missing runs;
        ``objectives``: chapter 8's objectives other than its grid's (``-p objectives``).
        """
        store = store or default_store()
        out: Dict[str, pd.DataFrame] = {}
        split, teacher = reference_teacher(self.profile, self.dataset, store=store)
        for ch, name in (("distilled_vs_coresets", "quality"), ("teacher_based", "quality_teacher_based")):
            sets = frame[(frame["chapter"] == ch) & (frame["regime"] == "hl")]
            if len(sets):  # one row per stored set (rows sharing a set give one)
                out[name] = set_quality_table(store, split, teacher, sets)
        sets = frame[frame["chapter"].isin(["distilled_vs_coresets", "teacher_based"]) & (frame["regime"] == "hl")]
        if len(sets):
            _, held_out = reference_teacher(self.profile, self.dataset, store=store, seed=HELD_OUT_TEACHER_SEED)
            out["teacher_view"] = teacher_view_table(store, held_out, sets)
        if "dcs" in CHAPTERS and self.profile in CHAPTERS.get("dcs"):
            d = DCSStudy.from_params(profile=self.profile, dataset=self.dataset, seeds=self.seeds,
                                     objectives=objectives)
            rows = d.run(store) if run_missing else d.stored(store)
            if len(rows):
                out["dcs"] = d.score(rows, store)
        return out


def chapter_verdicts(chapter: str, profile: str = "default", store: Optional[Store] = None,
                     dataset: str = "", measured: Optional[Dict[str, pd.DataFrame]] = None) -> pd.DataFrame:
    """The verdicts of the claims ``chapter`` tests, from the rows stored when the page is built.

    The same code as the ledger page (:func:`ddlib.analysis.claims.ledger_table`) on the ledger's
    stored rows; nothing is run.  ``measured``: the measurements the chapter itself made, under
    :meth:`Ledger.measure`'s names (chapter 5 passes ``quality``, chapter 8 ``dcs``), so that its own
    claims are judged on them.  A claim that also reads a later chapter's runs, or a measurement the
    chapter does not make, gets its final verdict on the ledger page.
    """
    names = chapter_claims(chapter)
    if not names:
        raise DDLibError(f"no claim is tested in chapter {chapter!r}")
    frame = Ledger.from_params(profile, dataset).stored(store or default_store())
    return chapter_table(ledger_table(frame, names, measured=measured or {}), chapter)
