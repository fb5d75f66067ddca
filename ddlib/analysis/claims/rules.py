"""The ledger's machinery: a claim, its verdict, the rule that turns settings into a verdict.

A :class:`Claim` names the paper's statement, its source and where in the paper
it is made, the chapters whose runs test it here, our test at our scale and the
rule, written out in words, that its function applies to the study frame (a
``chapter`` column says which chapter's grid asked for each row;
:meth:`ddlib.chapters.ledger.Ledger.run` builds that frame) and to the
chapters' measurements (``measured``: quality, DCS correlations, teacher views).

Most rules count *settings* (e.g. one per regime, IPC and budget).  In each,
the per-seed paired differences are tested (:mod:`ddlib.analysis.stats`) for
the statement that supports the claim and for the one that contradicts it;
each family of p-values is Holm-adjusted over the claim's settings, so the
pooled statement "the claim is supported in k settings" is wrong with
probability at most 5%.  "Same", "saturates" and "does not beat" are
statements with the equivalence margin (TOST / non-superiority, ±
:data:`~ddlib.analysis.stats.MARGIN` point), never a failure to find a
difference.  Then :data:`RULE` (:func:`tally_verdict`) turns the counts into a
verdict: ``holds``, ``partly``, ``fails``, ``unclear`` or ``untested`` (the runs
or measurements are absent; the evidence says what would test it).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ddlib.analysis.stats import ALPHA, MARGIN, decide_p, holm, p_value
from ddlib.core.registry import Registry

CLAIMS = Registry("claim")
VERDICTS = ("holds", "partly", "fails", "unclear", "untested")
RULE = ("Over the n settings pooled: holds if at least 2/3 of them support the claim and none contradicts it; "
        "fails if at least 2/3 contradict it and none supports it; partly if some support and some contradict "
        "it and together they are at least 2/3 of the settings; unclear otherwise. Support and contradiction "
        "are one-sided paired t-tests at 5% over seeds (TOST for a margin), Holm-adjusted over the n settings.")
SOME_RULE = ("Existential claim ('some ...'): holds if at least one unit is shown to have the property (its own "
             "settings hold by the rule above, all Holm-adjusted together), fails if every unit is shown not to, "
             "unclear otherwise.")
Measured = Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict, the evidence behind it and its settings' tally (``n`` = settings pooled)."""

    verdict: str
    evidence: str
    support: int = 0
    against: int = 0
    unclear: int = 0

    @property
    def n(self) -> int:
        return self.support + self.against + self.unclear


@dataclass(frozen=True)
class Claim:
    """A headline claim of a seed paper and the rule that tests it here.

    Attributes:
        name: ledger id ("W1", "R0", "H4", "C5", ...).
        text: the paper's statement, in its own sense.
        source: the paper.
        where: where in the paper (only what was verified; otherwise says so).
        chapters: the book chapters (notebook names without number) whose runs test it; each
            chapter page ends with the verdicts of its claims.
        test: our test at our scale, in words.
        rule_text: the rule (threshold, margin, pooling).
        rule: ``(frame, measured) -> Verdict``.
    """

    name: str
    text: str
    source: str
    where: str
    chapters: Tuple[str, ...]
    test: str
    rule_text: str
    rule: Callable[[pd.DataFrame, Measured], Verdict] = field(repr=False)

    def evaluate(self, frame: pd.DataFrame, measured: Optional[Measured] = None) -> Verdict:
        return self.rule(frame, measured or {})


def register(*claims: Claim) -> None:
    for c in claims:
        CLAIMS.add(c.name, c)


def untested(reason: str) -> Verdict:
    return Verdict("untested", reason)


def tally_verdict(support: int, against: int, unclear: int) -> str:
    """:data:`RULE` applied to the counts of settings."""
    n = support + against + unclear
    if n == 0:
        return "untested"
    if support >= 2 * n / 3 and against == 0:
        return "holds"
    if against >= 2 * n / 3 and support == 0:
        return "fails"
    if support and against and support + against >= 2 * n / 3:
        return "partly"
    return "unclear"


def decide_each(diffs: Sequence[Sequence[float]], supports: Sequence[str], againsts: Sequence[str], *,
                margins: Optional[Sequence[float]] = None) -> list:
    """Per setting "support" / "against" / "unclear" with a statement pair of its own.

    As :func:`ddlib.analysis.stats.decide`, but each setting may have its own
    supporting and contradicting :data:`~ddlib.analysis.stats.STATEMENTS`
    (e.g. "RDED beats random" beside "SRe2L does not"); the supporting p-values
    are Holm-adjusted together, so are the contradicting ones.  When both are
    significant the statement with a margin decides (a significant difference
    smaller than the margin is none).
    """
    margins = margins if margins is not None else [MARGIN] * len(diffs)
    return decide_p([p_value(d, s, m) for d, s, m in zip(diffs, supports, margins)],
                    [p_value(d, a, m) for d, a, m in zip(diffs, againsts, margins)], supports)


def threshold_cats(diffs: Sequence[Sequence[float]], thresholds: Sequence[float], *, sign: int = 1) -> list:
    """Per setting, "support" when mean(d) is shown above its threshold (below it for ``sign`` -1),
    "against" when shown on the other side; one-sided t-tests, Holm-adjusted over the settings."""
    up = [p_value(np.asarray(d, float) - t, "greater") for d, t in zip(diffs, thresholds)]
    down = [p_value(np.asarray(d, float) - t, "less") for d, t in zip(diffs, thresholds)]
    ps, pa = (up, down) if sign > 0 else (down, up)
    return ["support" if s < ALPHA else "against" if a < ALPHA else "unclear"
            for s, a in zip(holm(ps), holm(pa))]


def counts(cats: Sequence[str]) -> Dict[str, int]:
    return {k: sum(1 for x in cats if x == k) for k in ("support", "against", "unclear")}


def tallied(cats: Sequence[str], evidence: str) -> Verdict:
    """:data:`RULE` on per-setting categories, the counts written before the evidence."""
    c = counts(cats)
    head = (f"{len(cats)} settings pooled (Holm): {c['support']} support, {c['against']} contradict, "
            f"{c['unclear']} unclear. ")
    return Verdict(tally_verdict(c["support"], c["against"], c["unclear"]), head + evidence,
                   c["support"], c["against"], c["unclear"])


def some_verdict(units: Mapping[str, Sequence[str]], evidence: str) -> Verdict:
    """:data:`SOME_RULE`: ``units`` maps each unit (e.g. a distiller) to its settings' categories
    (already Holm-adjusted over all settings of all units)."""
    per = {u: tally_verdict(*counts(c).values()) for u, c in units.items()}
    allc = counts([x for c in units.values() for x in c])
    shown = sorted(u for u, v in per.items() if v == "holds")
    verdict = ("untested" if not units else "holds" if shown else
               "fails" if all(v == "fails" for v in per.values()) else "unclear")
    head = (f"{sum(len(c) for c in units.values())} settings pooled (Holm) over {len(units)} units; per unit: "
            + ", ".join(f"{u} {v}" for u, v in sorted(per.items())) + ". ")
    return Verdict(verdict, head + evidence, allc["support"], allc["against"], allc["unclear"])


def combine(parts: Sequence[Tuple[str, Verdict]]) -> Verdict:
    """A claim made of several statements: their settings' categories pooled under :data:`RULE`;
    a part left untested is named in the evidence (and untested as a whole if all are)."""
    tested = [(n, v) for n, v in parts if v.verdict != "untested"]
    ev = " ".join(f"[{n}: {v.verdict}] {v.evidence}" for n, v in parts)
    if not tested:
        return Verdict("untested", ev)
    s, a, u = (sum(getattr(v, k) for _, v in tested) for k in ("support", "against", "unclear"))
    return Verdict(tally_verdict(s, a, u), ev, s, a, u)


# -- reading the frame ---------------------------------------------------------------------------
def rows(frame: pd.DataFrame, chapters: Sequence[str], **eq) -> pd.DataFrame:
    """Rows of ``chapters`` (one per run: duplicates by key dropped), filtered by ``column=value(s)``."""
    df = frame[frame["chapter"].isin(chapters)] if "chapter" in frame else frame.iloc[:0]
    df = df.drop_duplicates("key")
    for col, val in eq.items():
        df = df[df[col].isin(val if isinstance(val, (list, tuple, set)) else [val])]
    return df.reset_index(drop=True)


def hparams(df: pd.DataFrame) -> pd.Series:
    """The builder hyperparameters (dict) of every row, from its stored config."""
    return df["config_json"].map(lambda c: (json.loads(c) if isinstance(c, str) else c or {}).get("hparams", {}))


def by_seed(df: pd.DataFrame, value: str = "accuracy", scale: float = 100.0) -> pd.Series:
    """``value`` (points for accuracy) per seed of one method in one setting."""
    return df.groupby("seed")[value].mean() * scale


def fmt(g: float, lo: float, hi: float, n: int, f: str = "+.1f") -> str:
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{g:{f}} (n={n}: no interval)"
    return f"{g:{f}} [{lo:{f}}, {hi:{f}}] (n={n})"


def fmt_paired(p, f: str = "+.1f") -> str:
    return fmt(p.diff, p.ci_low, p.ci_high, p.n, f)


def best_on_validation(g: pd.DataFrame, methods: Sequence[str]) -> Optional[str]:
    """The method of ``methods`` with the highest mean validation accuracy in ``g`` (None if none ran)."""
    means = g[g["method"].isin(methods)].groupby("method")["val_accuracy"].mean().sort_index()
    return None if means.empty else str(means.idxmax())
