"""The sets the DCS chapter scores (:mod:`ddlib.analysis.dcs` correlates the scores with accuracy)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import pandas as pd

from ddlib.chapters.grids import chapter_grid
from ddlib.chapters.studies import study
from ddlib.core.config import PROFILES
from ddlib.core.store import Store
from ddlib.methods.objectives import Probe
from ddlib.run.measure import score_sets
from ddlib.run.study import Study, run_all


@dataclass(frozen=True)
class DCSStudy:
    """The sets scored by the chapter: every hard-label set at chapter 3's IPCs and first budget that the
    book trains anyway, plus random subsets.

    Attributes:
        sets: chapter 3's study (hl, its first budget), chapter 2's compute-aware and EL2N coresets
            (``cad_vs_el2n``, the same IPCs, budget and seeds) and the extra random-subset study.  The
            chapter-2 sets add methods to the ranking at no training cost (their runs are chapter 2's),
            so it rests on more than a handful of methods.
        probes: ``"name"`` / ``"name:arch"`` objective strings.
        eval_seed: the seed every objective is evaluated with.
    """

    sets: Tuple[Study, Study, Study]
    probes: Tuple[str, ...]
    eval_seed: int = 0

    @classmethod
    def from_params(cls, profile: str = "default", dataset: str = "", objectives: Sequence[str] = (),
                    extra_seeds: Sequence[int] = (), eval_seed: int = 0, seeds: Sequence[int] = (),
                    ipcs: Sequence[int] = ()) -> "DCSStudy":
        """Chapter 3's sets (``distilled_vs_coresets`` grid; ``seeds`` / ``ipcs``: other seeds / IPCs than its),
        chapter 2's ``cad_vs_el2n`` sets at the same IPCs, budget and seeds, and the ``dcs`` grid's random
        subsets."""
        budgets = chapter_grid("distilled_vs_coresets", profile).get("budgets") or PROFILES.get(profile).budgets
        main = study("distilled_vs_coresets", profile, dataset=dataset, regimes=["hl"], budgets=budgets[:1],
                     seeds=seeds, ipcs=ipcs)
        scored = study("cad_vs_el2n", profile, dataset=main.dataset, regimes=["hl"], budgets=main.budgets,
                       seeds=main.seeds, ipcs=main.ipcs)
        g = chapter_grid("dcs", profile)
        extra = Study.from_params(profile=profile, dataset=main.dataset, methods=g["methods"], ipcs=main.ipcs,
                                  regimes=["hl"], budgets=main.budgets, seeds=extra_seeds or g["seeds"])
        probes = tuple(objectives or g["objectives"])
        for p in probes:
            Probe.parse(p)
        return cls((main, scored, extra), probes, int(eval_seed))

    def describe(self) -> pd.DataFrame:
        main, scored, extra = self.sets
        d = {"profile": main.profile, "dataset": main.dataset, "regime": "hl", "budget": main.budgets[0],
             "ipcs": ", ".join(map(str, main.ipcs)), "chapter-3 methods": ", ".join(main.methods),
             "chapter-2 methods": ", ".join(m for m in scored.methods if m not in main.methods),
             "chapter-2 and 3 seeds": ", ".join(map(str, main.seeds)),
             "extra random-subset seeds": ", ".join(map(str, extra.seeds)),
             "objectives": ", ".join(Probe.parse(p).label(PROFILES.get(main.profile)) for p in self.probes),
             "evaluation seed": self.eval_seed}
        return pd.DataFrame({"value": [str(v) for v in d.values()]}, index=list(d))

    def run(self, store: Optional[Store] = None, *, quiet: bool = True) -> pd.DataFrame:
        """Run (or reuse) every set's training run; the rows, one per set."""
        return run_all(self.sets, store, quiet=quiet).drop_duplicates("key").reset_index(drop=True)

    def stored(self, store: Store) -> pd.DataFrame:
        """The rows of :meth:`run` already stored (nothing is run; absent runs are absent)."""
        df = store.frame()
        keys = {c.key() for s in self.sets for c in s.configs()}
        return df[df["key"].isin(keys)].drop_duplicates("key").reset_index(drop=True)

    def score(self, frame: pd.DataFrame, store: Optional[Store] = None) -> pd.DataFrame:
        """:func:`ddlib.run.measure.score_sets` of ``frame`` with this study's probes and seed."""
        return score_sets(frame, self.probes, eval_seed=self.eval_seed, store=store)
