"""The claims ledger: each headline claim of the seed papers, tested on the store.

A :class:`Claim` names its statement, its source, the chapter whose runs test
it here and a rule, written out in ``rule_text``, that :meth:`Claim.evaluate`
applies to the study frames (a ``chapter`` column says which chapter's grid
asked for each row; :meth:`ddlib.chapters.ledger.Ledger.run` builds that
frame).  Nothing is typed by hand: a verdict is ``holds``, ``fails``,
``partly``, ``unclear`` or ``untested`` (the runs are absent), with the
evidence it rests on and the number of settings it pooled.

Most rules count *settings* (e.g. one per regime, IPC and budget).  In each,
the per-seed paired differences are tested (paired t-tests,
:mod:`ddlib.analysis.stats`) for the statement that supports the claim and for
the one that contradicts it; each family of p-values is Holm-adjusted over the
claim's settings, so the pooled statement "the claim is supported in k
settings" is wrong with probability at most 5%:

* support: the supporting statement is significant;
* against: the contradicting statement is (a claim of sameness or of "does not
  beat" needs an equivalence test with a margin, never a failure to find a
  difference);
* unclear: neither (fewer than 3 paired seeds are always unclear).

and then apply :data:`RULE`.  The ``smoke`` profile has 2 seeds: its verdicts
are all unclear, a dry run of the code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Dict, Sequence

import altair as alt
import numpy as np
import pandas as pd

from ddlib.analysis.compare import family_duel
from ddlib.analysis.saturation import gap_to_full
from ddlib.analysis.stats import ALPHA, MARGIN, decide, decide_table, holm, p_value, paired
from ddlib.analysis.tables import gains, wins
from ddlib.core.registry import Registry

CLAIMS = Registry("claim")
VERDICTS = ("holds", "partly", "fails", "unclear", "untested")
RULE = ("Over the n settings pooled: holds if at least 2/3 of them support the claim and none contradicts it; "
        "fails if at least 2/3 contradict it and none supports it; partly if some support and some contradict "
        "it and together they are at least 2/3 of the settings; unclear otherwise. Support and contradiction "
        "are one-sided paired t-tests at 5% over seeds, Holm-adjusted over the n settings.")
SMALL_IPC = 10        # "small IPC" of Rethinking DD: IPC 1 and 10
FAR_POINTS = 10.0     # "far above": at least 10 accuracy points
NEAR_FRACTION = 0.9   # "near full-data accuracy": 90% of it (chapter 2's threshold)
SOFT = ("sl", "slkd")
TEACHER = ("slkd", "mt")


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
    """A headline claim and the rule that tests it on the ledger frame."""

    name: str
    text: str
    source: str
    chapter: str
    rule_text: str
    evaluate: Callable[[pd.DataFrame], Verdict]


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


def threshold_cats(diffs: Sequence[Sequence[float]], thresholds: Sequence[float], *, sign: int = 1) -> list:
    """Per setting, "support" when mean(d) is shown above its threshold (below it for ``sign`` -1),
    "against" when shown on the other side; one-sided t-tests, Holm-adjusted over the settings."""
    up = [p_value(np.asarray(d, float) - t, "greater") for d, t in zip(diffs, thresholds)]
    down = [p_value(np.asarray(d, float) - t, "less") for d, t in zip(diffs, thresholds)]
    ps, pa = (up, down) if sign > 0 else (down, up)
    return ["support" if s < ALPHA else "against" if a < ALPHA else "unclear"
            for s, a in zip(holm(ps), holm(pa))]


def _tallied(cats: Sequence[str], evidence: str) -> Verdict:
    c = {k: sum(1 for x in cats if x == k) for k in ("support", "against", "unclear")}
    counts = (f"{len(cats)} settings pooled (Holm): {c['support']} support, {c['against']} contradict, "
              f"{c['unclear']} unclear. ")
    return Verdict(tally_verdict(c["support"], c["against"], c["unclear"]), counts + evidence,
                   c["support"], c["against"], c["unclear"])


def rows(frame: pd.DataFrame, chapters: Sequence[str], **eq) -> pd.DataFrame:
    """Rows of ``chapters`` (one per run: duplicates by key dropped), filtered by ``column=value(s)``."""
    df = frame[frame["chapter"].isin(chapters)] if "chapter" in frame else frame.iloc[:0]
    df = df.drop_duplicates("key")
    for col, val in eq.items():
        df = df[df[col].isin(val if isinstance(val, (list, tuple, set)) else [val])]
    return df.reset_index(drop=True)


def hparams(df: pd.DataFrame) -> pd.Series:
    """The builder hyperparameters (dict) of every row, from its stored config."""
    return df["config_json"].map(lambda c: (json.loads(c) if isinstance(c, str) else c).get("hparams", {}))


def _by_seed(df: pd.DataFrame) -> pd.Series:
    """Accuracy (points) per seed of one method in one setting."""
    return df.groupby("seed")["accuracy"].mean() * 100


def _settings(df: pd.DataFrame):
    """(ipc, budget) groups of ``df``, sorted."""
    return df.groupby(["ipc", "budget"], sort=True)


def _fmt(g: float, lo: float, hi: float, n: int) -> str:
    if np.isnan(lo):
        return f"{g:+.1f} (n={n}: no interval)"
    return f"{g:+.1f} [{lo:+.1f}, {hi:+.1f}] (n={n})"


def _fmt_paired(p) -> str:
    return _fmt(p.diff, p.ci_low, p.ci_high, p.n)


# -- (1) Wang et al. 2018 ----------------------------------------------------------------
def dd_fixed_init(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["dd2018"], method="dd", eval_lr="unrolled")
    if df.empty:
        return untested("no replayed (eval_lr 'unrolled') dd runs of the dd2018 chapter in the store")
    hp = hparams(df)
    fixed = df[hp.map(lambda h: h.get("init") == "fixed" and h.get("images", "noise") != "real")]
    real = df[hp.map(lambda h: h.get("images") == "real")]
    diffs, parts = [], []
    for (ipc, budget), f in _settings(fixed):
        r = real[(real["ipc"] == ipc) & (real["budget"] == budget)]
        p = paired(_by_seed(f), _by_seed(r))
        if p is None:
            continue
        diffs.append(p.d)
        parts.append(f"IPC {ipc}, budget {budget:g}: {f['accuracy'].mean() * 100:.1f}% distilled vs "
                     f"{r['accuracy'].mean() * 100:.1f}% real, difference {_fmt_paired(p)} points")
    if not diffs:
        return untested("the dd2018 runs lack the fixed-init set or its real-image baseline for the same seeds")
    return _tallied(threshold_cats(diffs, [FAR_POINTS] * len(diffs)), "; ".join(parts) + ".")


# -- (2), (3) Rethinking DD ------------------------------------------------------------------
def distillers_beat_coresets_hl(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["distilled_vs_coresets"], regime="hl")
    duel = family_duel(df[df["ipc"] <= SMALL_IPC])
    if duel.empty:
        return untested(f"no HL runs with both a distilled set and a coreset at IPC <= {SMALL_IPC}")
    cats = decide_table(duel, "greater", "not_greater")
    parts = [f"IPC {r.ipc}, budget {r.budget:g}: {r.best_distiller} minus {r.best_coreset} "
             f"{_fmt(r.gain, r.ci_low, r.ci_high, r.pairs)}" for r in duel.itertuples()]
    return _tallied(cats, "Best distilled set minus best coreset, each chosen on validation accuracy (test "
                          "points): " + "; ".join(parts) + ".")


def _advantage(df: pd.DataFrame) -> Dict[tuple, pd.Series]:
    """{(ipc, budget): best distiller's minus best coreset's accuracy per seed (points)}, best on validation."""
    out = {}
    for r in family_duel(df).itertuples():
        g = df[(df["ipc"] == r.ipc) & (df["budget"] == r.budget)]
        out[(r.ipc, r.budget)] = (_by_seed(g[g["method"] == r.best_distiller])
                                  - _by_seed(g[g["method"] == r.best_coreset])).dropna()
    return out


def teacher_shrinks_advantage(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["distilled_vs_coresets"])
    hl = _advantage(df[df["regime"] == "hl"])
    if not hl:
        return untested("no HL duel of distilled sets and coresets")
    diffs, parts = [], []
    for regime in TEACHER:
        for setting, soft in sorted(_advantage(df[df["regime"] == regime]).items()):
            p = paired(hl[setting], soft) if setting in hl else None
            if p is None:
                continue
            diffs.append(p.d)
            parts.append(f"{regime.upper()} IPC {setting[0]}: {hl[setting].mean():+.1f} under HL, "
                         f"{soft.mean():+.1f} under {regime.upper()} (shrinks by {_fmt_paired(p)})")
    if not diffs:
        return untested("no teacher-supervised (slkd / mt) duel paired with an HL one")
    return _tallied(decide(diffs, "greater", "not_greater"),
                    "Best distilled minus best coreset (points): " + "; ".join(parts) + ".")


# -- (4), (5), (6), (8) Hard truths about soft labels ------------------------------------------
def slkd_saturates(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["label_regimes"], regime="slkd")
    full = rows(frame, ["full_data"], regime="hl")
    if df.empty or full.empty:
        return untested("needs the label_regimes SL+KD runs and the full-data HL runs")
    top = min(df["budget"].max(), full["budget"].max())
    gap = gap_to_full(df[df["budget"] == top], full[full["budget"] == top])
    if gap.empty:
        return untested("no SL+KD run shares a budget and seed with a full-data run")
    ref = full[full["budget"] == top]["accuracy"].mean() * 100
    tol = (1 - NEAR_FRACTION) * ref
    # the claim: deficit (full - subset, per seed) below tol; against: shown above it
    cats = threshold_cats(gap["d"], [tol] * len(gap), sign=-1)
    worst = gap.loc[gap["gap"].idxmax()]
    return _tallied(cats, f"At budget {top:g}, full data (HL) reaches {ref:.1f}%; a subset is near when "
                          f"its deficit is below {tol:.1f} points; the largest deficit is "
                          f"{_fmt(worst['gap'], worst['ci_low'], worst['ci_high'], worst['pairs'])} points "
                          f"({worst['method']} at IPC {worst['ipc']}).")


def hl_coresets_rarely_beat_random(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["label_regimes", "distilled_vs_coresets", "cad_vs_el2n"], regime="hl", family="coreset")
    g = gains(df, baseline="random")
    if g.empty:
        return untested("no HL coreset runs paired with random ones")
    # "does not beat": any gain over random is shown below the margin; "beats": shown above 0
    cats = decide_table(g, "not_greater", "greater")
    n, b, s = len(g), cats.count("against"), cats.count("support")
    verdict = "holds" if s >= 2 * n / 3 else "fails" if b > n / 3 else "unclear"
    who = ", ".join(sorted(f"{m} (IPC {i}, budget {x:g})" for m, i, x, c in
                           zip(g["method"], g["ipc"], g["budget"], cats) if c == "against")) or "none"
    return Verdict(verdict, f"{n} settings pooled (Holm; coreset x IPC x budget), {g['pairs'].min()}–"
                            f"{g['pairs'].max()} paired seeds: {s} shown not to beat random by {MARGIN:g} point "
                            f"or more, {b} beat random: {who}; {n - s - b} unclear.",
                   support=s, against=b, unclear=n - s - b)


def _wins_claim(frame: pd.DataFrame, chapters: Sequence[str], method: str, rivals: Sequence[str]) -> Verdict:
    df = rows(frame, chapters)
    present = [r for r in rivals if r in set(df["method"])]
    if method not in set(df["method"]) or not present:
        return untested(f"no {method} runs beside {' or '.join(rivals)} in the {' / '.join(chapters)} chapter(s)")
    w = wins(df, method, present)
    if w.empty:
        return untested(f"no {method} run paired by seed with {', '.join(present)}")
    # a tie (within the margin of every rival) or a loss contradicts "beats"
    cats = [{"win": "support", "loss": "against", "tie": "against", "unclear": "unclear"}[v] for v in w["verdict"]]
    c = w["verdict"].value_counts()
    return _tallied(cats, f"{method} against {', '.join(present)} per (regime, IPC, budget), "
                          f"{w['pairs'].min()}–{w['pairs'].max()} paired seeds: {c.get('win', 0)} wins, "
                          f"{c.get('loss', 0)} losses, {c.get('tie', 0)} ties (within ±{MARGIN:g} point), "
                          f"{c.get('unclear', 0)} unclear.")


def cad_beats_fixed_difficulty(frame: pd.DataFrame) -> Verdict:
    return _wins_claim(frame, ["label_regimes", "cad_vs_el2n"], "cad_prune", ["el2n_easy", "el2n_hard"])


def cim_beats_rded_sre2l(frame: pd.DataFrame) -> Verdict:
    return _wins_claim(frame, ["teacher_based"], "cim", ["rded", "sre2l"])


def soft_labels_explain_gain(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["label_regimes", "distilled_vs_coresets", "teacher_based"])
    diffs, parts = [], []
    for (ipc, budget), g in _settings(df):
        rand_hl = _by_seed(g[(g["method"] == "random") & (g["regime"] == "hl")])
        for regime in SOFT:
            sub = g[g["regime"] == regime]
            rand = _by_seed(sub[sub["method"] == "random"])
            label_part = (rand - rand_hl).dropna()
            for m in sorted(sub[sub["family"] == "distill"]["method"].unique()):
                image_part = (_by_seed(sub[sub["method"] == m]) - rand).dropna()
                p = paired(label_part, image_part)
                if p is None:
                    continue
                diffs.append(p.d)
                parts.append(f"{m} {regime.upper()} IPC {ipc}: labels {label_part.mean():+.1f}, "
                             f"images {image_part.mean():+.1f}")
    if not diffs:
        return untested("needs random under HL and a soft regime (sl / slkd) beside a distilled set")
    return _tallied(decide(diffs, "greater", "not_greater"),
                    "Gain over random HL split into its label part (random soft - random HL) and image part "
                    "(distilled soft - random soft), mean points: " + "; ".join(parts) + ".")


for _c in (
    Claim("c1_dd_fixed_init", "Ten distilled images learnt for a fixed initialisation train that network far "
          "above (>= 10 points) ten random real images given the same learnt steps.",
          "Wang et al. 2018", "6 (dd2018)",
          f"Settings: IPC x budget of the replayed runs; d = dd fixed init - real images (same learnt step "
          f"sizes), points per seed; support = d shown above +{FAR_POINTS:g}, against = shown below it. " + RULE,
          dd_fixed_init),
    Claim("c2_distilled_beat_coresets_hl", "Under plain ERM with hard labels, distilled sets beat coresets "
          "at small IPC.", "Rethinking DD (2026)", "3 (distilled_vs_coresets)",
          f"Settings: HL, IPC <= {SMALL_IPC}, each budget; d = best distiller - best coreset (each family's best "
          f"chosen on validation accuracy; d on test); support = d > 0, against = d < {MARGIN:g} point "
          "(non-superiority). " + RULE, distillers_beat_coresets_hl),
    Claim("c3_teacher_shrinks_advantage", "With teacher supervision (SL+KD, multi-teacher) the advantage of "
          "distilled sets over coresets shrinks or vanishes.", "Rethinking DD (2026)",
          "3 (distilled_vs_coresets)",
          "Settings: regime in {SLKD, MT} x IPC x budget; advantage = best distiller - best coreset per seed "
          f"(chosen on validation); d = HL advantage - teacher advantage; support = d > 0, against = "
          f"d < {MARGIN:g} point. " + RULE, teacher_shrinks_advantage),
    Claim("c4_slkd_saturates", "Under SL+KD every subset, random included, approaches full-data accuracy as "
          "the budget grows.", "Hard truths about soft labels (CVPR 2026)", "2 (label_regimes)",
          f"Settings: SL+KD sets (method x IPC) at the largest budget, paired by seed with the full-data HL "
          f"runs of that budget; tolerance = {1 - NEAR_FRACTION:.0%} of full-data accuracy; support = the "
          "deficit (full - subset) shown below the tolerance, against = shown above it. " + RULE, slkd_saturates),
    Claim("c5_hl_selection_rarely_beats_random", "With hard labels, only strong selection beats random: most "
          "coresets do not significantly beat random subsets.", "Hard truths about soft labels (CVPR 2026)",
          "2 (label_regimes), 3", f"Settings: HL coreset x IPC x budget; d = coreset - random; 'does not beat' = "
          f"d shown below +{MARGIN:g} point (a margin, not a failed test), 'beats' = d shown above 0; both "
          "Holm-adjusted over the settings. Holds if at least 2/3 of the settings are shown not to beat random, "
          "fails if more than 1/3 beat it, unclear otherwise.", hl_coresets_rarely_beat_random),
    Claim("c6_cad_beats_fixed_difficulty", "CAD-Prune, which matches difficulty to the budget, beats "
          "fixed-difficulty selection (EL2N easiest / hardest).", "Hard truths about soft labels (CVPR 2026)",
          "2 (label_regimes, cad_vs_el2n)", "Settings: regime x IPC x budget; support = a win over every EL2N "
          f"variant (tables.wins: greater than each, Holm per rival), against = a loss to one or a tie (within "
          f"±{MARGIN:g} point of every rival). " + RULE, cad_beats_fixed_difficulty),
    Claim("c7_cim_beats_rded_sre2l", "CIM beats RDED and SRe2L at equal compute.", "CIM (2026)",
          "7 (teacher_based)", "Settings: regime x IPC x budget (equal training budget); support = a win over "
          "both (tables.wins), against = a loss to one or a tie with both. " + RULE, cim_beats_rded_sre2l),
    Claim("c8_soft_labels_explain_gain", "Soft labels, not the images, account for most of what distilled "
          "sets gain over random real images.", "Hard truths about soft labels (CVPR 2026)", "2, 3, 7",
          "Settings: distiller x soft regime (SL, SL+KD) x IPC x budget; per seed, label part = random soft - "
          "random HL and image part = distilled soft - random soft; d = label part - image part; support = "
          f"d > 0, against = d < {MARGIN:g} point. " + RULE, soft_labels_explain_gain),
):
    CLAIMS.add(_c.name, _c)


def ledger_table(frame: pd.DataFrame, names: Sequence[str] = ()) -> pd.DataFrame:
    """One row per claim: statement, source, chapter, rule, verdict, evidence."""
    out = []
    for n in names or CLAIMS.names():
        c = CLAIMS.get(n)
        v = c.evaluate(frame)
        out.append({"claim": c.name, "statement": c.text, "source": c.source, "chapter": c.chapter,
                    "rule": c.rule_text, "verdict": v.verdict, "evidence": v.evidence,
                    "pooled": v.n, "support": v.support, "against": v.against, "unclear": v.unclear})
    return pd.DataFrame(out)


def ledger_sentence(table: pd.DataFrame) -> str:
    """How many claims hold, partly hold, fail, are unclear or are untested."""
    c = table["verdict"].value_counts()
    return (f"Of {len(table)} claims, {c.get('holds', 0)} hold, {c.get('partly', 0)} hold partly, "
            f"{c.get('fails', 0)} fail, {c.get('unclear', 0)} are unclear (the seeds decide too few settings) "
            f"and {c.get('untested', 0)} are untested on this profile.")


def settings_chart(table: pd.DataFrame, *, width: int = 380):
    """Per claim, its settings by what their Holm-adjusted tests say (stacked bars; untested: none)."""
    order = ["support", "unclear", "against"]
    long = table.melt(id_vars=["claim", "source", "verdict"], value_vars=order, var_name="interval",
                      value_name="settings")
    long["claim"] = [f"{c} ({v})" for c, v in zip(long["claim"], long["verdict"])]
    long["rank"] = long["interval"].map(order.index)
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("claim:N", title=None, sort=list(dict.fromkeys(long["claim"]))),
        x=alt.X("settings:Q", title="settings (paired t-tests, Holm-adjusted)"),
        color=alt.Color("interval:N", title="setting", sort=order,
                        scale=alt.Scale(domain=order, range=["#4c9a2a", "#bdbdbd", "#d7301f"])),
        order=alt.Order("rank:Q"),
        tooltip=["claim", "source", "interval", "settings"],
    ).properties(width=width)
