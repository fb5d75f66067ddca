"""C1–C5: *CIM* — condensing large-scale datasets directly with minimal information loss (2026).

Tested on chapter 7's runs (``teacher_based``), the quality metrics of its sets
(``measured["quality_teacher_based"]``), a held-out teacher's view of them
(``measured["teacher_view"]``) and, for C5, rows trained with a student other
than the profile's (the cross-architecture evaluation).
"""
from __future__ import annotations

import pandas as pd

from ddlib.analysis.claims.hard_truths import _wins_claim
from ddlib.analysis.claims.rethinking import _per_set_cost, cost_claim
from ddlib.analysis.claims.rules import (
    RULE,
    Claim,
    Measured,
    Verdict,
    decide_each,
    fmt_paired,
    register,
    rows,
    tallied,
    untested,
)
from ddlib.analysis.stats import MARGIN, paired
from ddlib.analysis.tables import wins
from ddlib.core.config import PROFILES

SOURCE = "CIM 2026, Condensing large-scale datasets directly with minimal information loss"
WHERE = "abstract (section not verified; stated as in the issue)"
SRR = ("sre2l", "rded")   # the squeeze-recover-relabel pipelines in our registry
CROSS_ARCH = ("the cross-architecture evaluation issue (chapter grids with a non-default student `model`), "
              "being built in parallel")


def _measured_pairs(t: pd.DataFrame, value: str, rivals=SRR, base: str = "cim", scale: float = 1.0):
    """[(label, Paired)] of rival - base on ``value`` per IPC, paired by seed."""
    out = []
    for ipc in sorted(t["ipc"].unique()):
        b = t[(t["method"] == base) & (t["ipc"] == ipc)].set_index("seed")[value] * scale
        for r in rivals:
            a = t[(t["method"] == r) & (t["ipc"] == ipc)].set_index("seed")[value] * scale
            p = paired(a, b)
            if p is not None:
                out.append((f"{r} - {base} IPC {ipc} {value}", p))
    return out


def information_loss(frame: pd.DataFrame, measured: Measured) -> Verdict:
    q = measured.get("quality_teacher_based")
    if q is None or q.empty:
        return untested("needs the quality metrics (FD, MMD² to the real pool) of chapter 7's sets (the ledger page "
                        "computes them; python -m ddlib claims --measure)")
    pr = _measured_pairs(q, "mmd2") + _measured_pairs(q, "fd")
    if not pr:
        return untested("no measured SRe2L / RDED set pairs by seed with a CIM set")
    cats = decide_each([p.d for _, p in pr], ["greater"] * len(pr), ["less"] * len(pr))
    return tallied(cats, "Distance of each set's teacher features to the real pool's (higher = more information "
                   "lost): " + "; ".join(f"{n} {fmt_paired(p, '+.3g')}" for n, p in pr) + ".")


def relabel_unreliable(frame: pd.DataFrame, measured: Measured) -> Verdict:
    tv = measured.get("teacher_view")
    if tv is None or tv.empty:
        return untested("needs a held-out teacher's view of chapter 7's sets (the ledger page measures it; "
                        "python -m ddlib claims --measure)")
    diffs, sup, ag, names = [], [], [], []
    for value, s, a, scale in (("agreement", "less", "greater", 100.0), ("entropy", "greater", "less", 1.0)):
        for n, p in _measured_pairs(tv, value, rivals=SRR, base="random", scale=scale):
            diffs.append(p.d)
            sup.append(s)
            ag.append(a)
            names.append(f"{n} {fmt_paired(p, '+.3g')}")
    if not diffs:
        return untested("no measured SRe2L / RDED set pairs by seed with a random real subset")
    cats = decide_each(diffs, sup, ag)
    return tallied(cats, "A held-out teacher on the synthetic images against real images (random subset, same IPC "
                   "and seed): agreement with the intended class (points; lower = less reliable relabelling) and "
                   "mean predictive entropy (nats; higher = more shifted): " + "; ".join(names) + ".")


def cim_beats_distillers(frame: pd.DataFrame, measured: Measured) -> Verdict:
    return _wins_claim(frame, ["teacher_based"], "cim", list(SRR))


def cim_cheaper(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, ["teacher_based"], method=["cim", *SRR])
    if df.empty:
        return untested("no chapter 7 runs of CIM, SRe2L or RDED")
    c = _per_set_cost(df)
    pairs = [(r, "cim", ipc) for ipc in sorted(c["ipc"].unique()) for r in SRR]
    return cost_claim(pairs, c, "CIM set paired with an SRe2L or RDED set")


def _non_default_model(df: pd.DataFrame) -> pd.Series:
    default = df["profile"].map(lambda p: PROFILES.get(p).model if p in PROFILES else "")
    return df["model"].notna() & (df["model"] != "") & (df["model"] != default)


def transfers_across_architectures(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = frame.drop_duplicates("key") if "key" in frame else frame
    if df.empty or "model" not in df:
        return untested(f"not testable until cross-architecture runs exist: needs {CROSS_ARCH}")
    df = df[_non_default_model(df) & df["method"].isin(["cim", *SRR])]
    cats, parts = [], []
    for model, g in df.groupby("model", sort=True):
        present = [r for r in SRR if r in set(g["method"])]
        w = wins(g, "cim", present) if "cim" in set(g["method"]) and present else pd.DataFrame()
        if w.empty:
            continue
        cats += [{"win": "support", "loss": "against", "tie": "against", "unclear": "unclear"}[v]
                 for v in w["verdict"]]
        c = w["verdict"].value_counts()
        parts.append(f"student {model}: {c.get('win', 0)} wins, {c.get('loss', 0)} losses, {c.get('tie', 0)} ties, "
                     f"{c.get('unclear', 0)} unclear against {', '.join(present)}")
    if not cats:
        return untested(f"no run of CIM beside SRe2L / RDED with a student other than the profile's; needs "
                        f"{CROSS_ARCH}")
    return tallied(cats, "; ".join(parts) + f" (ties within ±{MARGIN:g} point).")


register(
    Claim("C1", "Squeeze-recover-relabel pipelines (SRe2L, RDED) lose information about the real data; CIM keeps "
          "more of it.", SOURCE, WHERE, ("teacher_based",),
          "Chapter 7's sets: feature-space MMD² and Fréchet distance (reference-teacher features) to the real "
          "pool, SRe2L and RDED against CIM, paired by seed.",
          "Settings: rival x IPC x {MMD², FD}; support = rival farther from the real data than CIM (d > 0), "
          "against = closer (d < 0). " + RULE, information_loss),
    Claim("C2", "That information loss shifts the distribution and makes relabelling unreliable.", SOURCE, WHERE,
          ("teacher_based",),
          "A held-out teacher (not the one the sets were built with) on SRe2L's and RDED's images against real "
          "images of the same IPC and seed: agreement with the intended class and predictive entropy.",
          "Settings: rival x IPC x {agreement: support = lower than on real images, against = higher; entropy: "
          "support = higher, against = lower}. " + RULE, relabel_unreliable),
    Claim("C3", "CIM beats prior distillers at equal budget.", SOURCE, WHERE, ("teacher_based",),
          "Chapter 7: CIM against SRe2L and RDED under every regime and IPC, equal training budget.",
          f"Settings: regime x IPC x budget; support = a win over both, against = a loss to one or a tie (within "
          f"±{MARGIN:g} point of both). " + RULE, cim_beats_distillers),
    Claim("C4", "CIM is much cheaper to build than squeeze-recover-relabel methods.", SOURCE, WHERE,
          ("teacher_based", "cost"),
          "Chapter 7's build costs: SRe2L and RDED against CIM, as run and projected to each method's published "
          "length.",
          "Settings: rival x IPC; d = log2(rival cost / CIM cost) per seed; support = shown above log2(2) (at least "
          "twice as costly), against = shown below it; the verdict uses the projected costs. " + RULE, cim_cheaper),
    Claim("C5", "CIM's sets transfer better across architectures.", SOURCE, WHERE, ("transfer",),
          "Rows trained with a student other than the profile's (the transfer chapter's timm students, and any "
          "other stored run): CIM against SRe2L and RDED per student, paired by seed.",
          "Settings: student x regime x IPC x budget; support = a win over both, against = a loss or a tie. "
          + RULE, transfers_across_architectures),
)
