"""The studies the claims ledger reads (:mod:`ddlib.analysis.claims` tests the claims on their rows)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import pandas as pd

from ddlib.chapters.grids import CHAPTERS
from ddlib.chapters.studies import dd2018_studies, study
from ddlib.core.store import Store
from ddlib.run.study import run_all

# the chapter grids whose runs the claims read (the dd2018 studies are added to them)
LEDGER_CHAPTERS = ("label_regimes", "cad_vs_el2n", "distilled_vs_coresets", "teacher_based")


@dataclass(frozen=True)
class Ledger:
    """The studies the claims read: each chapter grid registered for the profile, by chapter name."""

    profile: str
    studies: Tuple[Tuple[str, Tuple], ...]
    missing: Tuple[str, ...]

    @classmethod
    def from_params(cls, profile: str = "default") -> "Ledger":
        """Every :data:`LEDGER_CHAPTERS` grid of ``profile`` (plus chapter 2's full-data runs and
        chapter 6's replayed DD sets); chapters without a grid for it are listed as missing."""
        studies, missing = [], []
        for ch in LEDGER_CHAPTERS:
            if ch in CHAPTERS and profile in CHAPTERS.get(ch):
                s = study(ch, profile)
                studies.append((ch, (s,)))
                if ch == "label_regimes":
                    studies.append(("full_data", (s.full_data(),)))
            else:
                missing.append(ch)
        studies.append(("dd2018", dd2018_studies(profile)))
        return cls(profile, tuple(studies), tuple(missing))

    def describe(self) -> pd.DataFrame:
        d = {ch: f"{sum(len(s.configs()) for s in ss)} runs" for ch, ss in self.studies}
        d.update({ch: "not registered: its claims are untested" for ch in self.missing})
        return pd.DataFrame({"runs": list(d.values())}, index=pd.Index(list(d), name="chapter grid"))

    def run(self, store: Optional[Store] = None, *, quiet: bool = True) -> pd.DataFrame:
        """Every study's rows (run or reused) with a ``chapter`` column."""
        return pd.concat([run_all(ss, store, quiet=quiet).assign(chapter=ch) for ch, ss in self.studies],
                         ignore_index=True)
