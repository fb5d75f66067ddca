"""The claims ledger: each headline claim of the seed papers, tested on the store.

A :class:`Claim` names its statement, its source, the chapter whose runs test
it here and a rule, written out in ``rule_text``, that :meth:`Claim.evaluate`
applies to the study frames (a ``chapter`` column says which chapter's grid
asked for each row; :meth:`ddlib.chapters.ledger.Ledger.run` builds that
frame).  Nothing is typed by hand: a verdict is ``holds``, ``fails``,
``partly`` or ``untested`` (the runs are absent), with the evidence it rests on.

Most rules count *settings* (e.g. one per regime, IPC and budget) by what the
paired bootstrap 95% interval over seeds says about each:

* support: the interval lies on the claim's side of its threshold;
* weak: on the claim's side of zero but not of the threshold (claims with a margin);
* against: on the other side of zero;
* unclear: it straddles zero.

and then apply :data:`RULE`.  With one seed per setting the interval collapses
to the point estimate (the ``smoke`` profile): its verdicts are a dry run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Dict, Sequence

import altair as alt
import pandas as pd

from ddlib.analysis.compare import family_duel
from ddlib.analysis.saturation import gap_to_full
from ddlib.analysis.stats import paired
from ddlib.analysis.tables import gains, wins
from ddlib.core.registry import Registry

CLAIMS = Registry("claim")
VERDICTS = ("holds", "partly", "fails", "untested")
RULE = ("holds if the paired 95% CI supports the claim in at least 2/3 of the settings and contradicts it "
        "in none; fails if it supports it (even weakly) in none, or contradicts it in more settings than "
        "it supports it; partly otherwise.")
SMALL_IPC = 10        # "small IPC" of Rethinking DD: IPC 1 and 10
FAR_POINTS = 10.0     # "far above": at least 10 accuracy points
NEAR_FRACTION = 0.9   # "near full-data accuracy": 90% of it (chapter 2's threshold)
SOFT = ("sl", "slkd")
TEACHER = ("slkd", "mt")


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict, the evidence behind it and its settings' tally."""

    verdict: str
    evidence: str
    support: int = 0
    weak: int = 0
    against: int = 0
    unclear: int = 0


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


def tally_verdict(support: int, weak: int, against: int, unclear: int) -> str:
    """:data:`RULE` applied to the counts of settings."""
    n = support + weak + against + unclear
    if n == 0:
        return "untested"
    if support >= 2 * n / 3 and against == 0:
        return "holds"
    if support + weak == 0 or against > support + weak:
        return "fails"
    return "partly"


def classify(lo: float, hi: float, *, sign: int = 1, margin: float = 0.0) -> str:
    """Where a 95% interval [lo, hi] lies for a claim "the effect is ``sign`` x (> ``margin``)"."""
    lo, hi = (lo, hi) if sign > 0 else (-hi, -lo)
    if lo > margin:
        return "support"
    if lo > 0:
        return "weak"
    if hi < 0:
        return "against"
    return "unclear"


def _tallied(cats: Sequence[str], evidence: str) -> Verdict:
    c = {k: sum(1 for x in cats if x == k) for k in ("support", "weak", "against", "unclear")}
    counts = (f"{len(cats)} settings: {c['support']} support, " + (f"{c['weak']} weakly, " if c["weak"] else "")
              + f"{c['against']} contradict, {c['unclear']} inconclusive. ")
    return Verdict(tally_verdict(c["support"], c["weak"], c["against"], c["unclear"]), counts + evidence,
                   c["support"], c["weak"], c["against"], c["unclear"])


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


def _fmt(g: float, lo: float, hi: float) -> str:
    return f"{g:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def _fmt_paired(p) -> str:
    return _fmt(p.diff, p.ci_low, p.ci_high)


# -- (1) Wang et al. 2018 ----------------------------------------------------------------
def dd_fixed_init(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["dd2018"], method="dd", eval_lr="unrolled")
    if df.empty:
        return untested("no replayed (eval_lr 'unrolled') dd runs of the dd2018 chapter in the store")
    hp = hparams(df)
    fixed = df[hp.map(lambda h: h.get("init") == "fixed" and h.get("images", "noise") != "real")]
    real = df[hp.map(lambda h: h.get("images") == "real")]
    cats, parts = [], []
    for (ipc, budget), f in _settings(fixed):
        r = real[(real["ipc"] == ipc) & (real["budget"] == budget)]
        p = paired(_by_seed(f), _by_seed(r))
        if p is None:
            continue
        cats.append(classify(p.ci_low, p.ci_high, margin=FAR_POINTS))
        parts.append(f"IPC {ipc}: {f['accuracy'].mean() * 100:.1f}% distilled vs {r['accuracy'].mean() * 100:.1f}% "
                     f"real, difference {_fmt_paired(p)} points over {p.n} seeds")
    if not cats:
        return untested("the dd2018 runs lack the fixed-init set or its real-image baseline for the same seeds")
    return _tallied(cats, "; ".join(parts) + ".")


# -- (2), (3) Rethinking DD ------------------------------------------------------------------
def distillers_beat_coresets_hl(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["distilled_vs_coresets"], regime="hl")
    duel = family_duel(df[df["ipc"] <= SMALL_IPC])
    if duel.empty:
        return untested(f"no HL runs with both a distilled set and a coreset at IPC <= {SMALL_IPC}")
    cats = [classify(lo, hi) for lo, hi in zip(duel["ci_low"], duel["ci_high"])]
    parts = [f"IPC {r.ipc}, budget {r.budget:g}: {r.best_distiller} minus {r.best_coreset} "
             f"{_fmt(r.gain, r.ci_low, r.ci_high)}" for r in duel.itertuples()]
    return _tallied(cats, "Best distilled set minus best coreset (points): " + "; ".join(parts) + ".")


def _advantage(df: pd.DataFrame) -> Dict[tuple, pd.Series]:
    """{(ipc, budget): best distiller's minus best coreset's accuracy per seed (points)}, best by mean."""
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
    cats, parts = [], []
    for regime in TEACHER:
        for setting, soft in sorted(_advantage(df[df["regime"] == regime]).items()):
            p = paired(hl[setting], soft) if setting in hl else None
            if p is None:
                continue
            cats.append(classify(p.ci_low, p.ci_high))
            parts.append(f"{regime.upper()} IPC {setting[0]}: {hl[setting].mean():+.1f} under HL, "
                         f"{soft.mean():+.1f} under {regime.upper()} (shrinks by {_fmt_paired(p)})")
    if not cats:
        return untested("no teacher-supervised (slkd / mt) duel paired with an HL one")
    return _tallied(cats, "Best distilled minus best coreset (points): " + "; ".join(parts) + ".")


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
    # the claim: deficit (full - subset) < tol, i.e. (tol - deficit) > 0
    cats = [classify(tol - hi, tol - lo) for lo, hi in zip(gap["ci_low"], gap["ci_high"])]
    worst = gap.loc[gap["gap"].idxmax()]
    return _tallied(cats, f"At budget {top:g}, full data (HL) reaches {ref:.1f}%; a subset is near when "
                          f"its deficit is below {tol:.1f} points; the largest deficit is "
                          f"{_fmt(worst['gap'], worst['ci_low'], worst['ci_high'])} points "
                          f"({worst['method']} at IPC {worst['ipc']}).")


def hl_coresets_rarely_beat_random(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["label_regimes", "distilled_vs_coresets", "cad_vs_el2n"], regime="hl", family="coreset")
    g = gains(df, baseline="random")
    if g.empty:
        return untested("no HL coreset runs paired with random ones")
    beats = g[g["ci_low"] > 0]
    n, b = len(g), len(beats)
    verdict = "holds" if b <= n / 3 else "fails" if b > 2 * n / 3 else "partly"
    who = ", ".join(sorted(f"{m} (IPC {i}, budget {x:g})" for m, i, x in
                           zip(beats["method"], beats["ipc"], beats["budget"]))) or "none"
    return Verdict(verdict, f"{b} of {n} (coreset, IPC, budget) settings beat random with 95% confidence: {who}.",
                   support=n - b, against=b)


def _wins_claim(frame: pd.DataFrame, chapters: Sequence[str], method: str, rivals: Sequence[str]) -> Verdict:
    df = rows(frame, chapters)
    present = [r for r in rivals if r in set(df["method"])]
    if method not in set(df["method"]) or not present:
        return untested(f"no {method} runs beside {' or '.join(rivals)} in the {' / '.join(chapters)} chapter(s)")
    w = wins(df, method, present)
    if w.empty:
        return untested(f"no {method} run paired by seed with {', '.join(present)}")
    cats = [{"win": "support", "loss": "against", "tie": "unclear"}[v] for v in w["verdict"]]
    c = w["verdict"].value_counts()
    return _tallied(cats, f"{method} against {', '.join(present)} per (regime, IPC, budget): "
                          f"{c.get('win', 0)} wins, {c.get('loss', 0)} losses, {c.get('tie', 0)} ties.")


def cad_beats_fixed_difficulty(frame: pd.DataFrame) -> Verdict:
    return _wins_claim(frame, ["label_regimes", "cad_vs_el2n"], "cad_prune", ["el2n_easy", "el2n_hard"])


def cim_beats_rded_sre2l(frame: pd.DataFrame) -> Verdict:
    return _wins_claim(frame, ["teacher_based"], "cim", ["rded", "sre2l"])


def soft_labels_explain_gain(frame: pd.DataFrame) -> Verdict:
    df = rows(frame, ["label_regimes", "distilled_vs_coresets", "teacher_based"])
    cats, parts = [], []
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
                cats.append(classify(p.ci_low, p.ci_high))
                parts.append(f"{m} {regime.upper()} IPC {ipc}: labels {label_part.mean():+.1f}, "
                             f"images {image_part.mean():+.1f}")
    if not cats:
        return untested("needs random under HL and a soft regime (sl / slkd) beside a distilled set")
    return _tallied(cats, "Gain over random HL split into its label part (random soft - random HL) and image "
                          "part (distilled soft - random soft), mean points: " + "; ".join(parts) + ".")


for _c in (
    Claim("c1_dd_fixed_init", "Ten distilled images learnt for a fixed initialisation train that network far "
          "above (>= 10 points) ten random real images given the same learnt steps.",
          "Wang et al. 2018", "6 (dd2018)",
          f"Settings: IPC x budget of the replayed runs; support = CI of (dd fixed init - real images, "
          f"same learnt step sizes) above +{FAR_POINTS:g} points, weak = above 0. " + RULE, dd_fixed_init),
    Claim("c2_distilled_beat_coresets_hl", "Under plain ERM with hard labels, distilled sets beat coresets "
          "at small IPC.", "Rethinking DD (2026)", "3 (distilled_vs_coresets)",
          f"Settings: HL, IPC <= {SMALL_IPC}, each budget; support = CI of (best distiller - best coreset, by "
          "mean) above 0. " + RULE, distillers_beat_coresets_hl),
    Claim("c3_teacher_shrinks_advantage", "With teacher supervision (SL+KD, multi-teacher) the advantage of "
          "distilled sets over coresets shrinks or vanishes.", "Rethinking DD (2026)",
          "3 (distilled_vs_coresets)",
          "Settings: regime in {SLKD, MT} x IPC x budget; advantage = best distiller - best coreset per seed; "
          "support = CI of (HL advantage - teacher advantage) above 0. " + RULE, teacher_shrinks_advantage),
    Claim("c4_slkd_saturates", "Under SL+KD every subset, random included, approaches full-data accuracy as "
          "the budget grows.", "Hard truths about soft labels (CVPR 2026)", "2 (label_regimes)",
          f"Settings: SL+KD sets (method x IPC) at the largest budget, paired by seed with the full-data HL "
          f"runs of that budget; tolerance = {1 - NEAR_FRACTION:.0%} of full-data accuracy; support = CI of the "
          "deficit (full - subset) entirely below the tolerance, against = entirely above it. " + RULE, slkd_saturates),
    Claim("c5_hl_selection_rarely_beats_random", "With hard labels, only strong selection beats random: most "
          "coresets do not significantly beat random subsets.", "Hard truths about soft labels (CVPR 2026)",
          "2 (label_regimes), 3", "Settings: HL coreset x IPC x budget; beats = CI of the gain over random "
          "above 0.  Holds if at most 1/3 of settings beat random, fails if more than 2/3 do, partly otherwise.",
          hl_coresets_rarely_beat_random),
    Claim("c6_cad_beats_fixed_difficulty", "CAD-Prune, which matches difficulty to the budget, beats "
          "fixed-difficulty selection (EL2N easiest / hardest).", "Hard truths about soft labels (CVPR 2026)",
          "2 (label_regimes, cad_vs_el2n)", "Settings: regime x IPC x budget; support = a win over every EL2N "
          "variant (study.wins: every paired CI above 0), against = a loss to one. " + RULE,
          cad_beats_fixed_difficulty),
    Claim("c7_cim_beats_rded_sre2l", "CIM beats RDED and SRe2L at equal compute.", "CIM (2026)",
          "7 (teacher_based)", "Settings: regime x IPC x budget (equal training budget); support = a win over "
          "both (study.wins), against = a loss to one. " + RULE, cim_beats_rded_sre2l),
    Claim("c8_soft_labels_explain_gain", "Soft labels, not the images, account for most of what distilled "
          "sets gain over random real images.", "Hard truths about soft labels (CVPR 2026)", "2, 3, 7",
          "Settings: distiller x soft regime (SL, SL+KD) x IPC x budget; per seed, label part = random soft - "
          "random HL and image part = distilled soft - random soft; support = CI of (label part - image part) "
          "above 0. " + RULE, soft_labels_explain_gain),
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
                    "support": v.support, "weak": v.weak, "against": v.against, "unclear": v.unclear})
    return pd.DataFrame(out)


def ledger_sentence(table: pd.DataFrame) -> str:
    """How many claims hold, partly hold, fail or are untested."""
    c = table["verdict"].value_counts()
    return (f"Of {len(table)} claims, {c.get('holds', 0)} hold, {c.get('partly', 0)} hold partly, "
            f"{c.get('fails', 0)} fail and {c.get('untested', 0)} are untested on this profile.")


def settings_chart(table: pd.DataFrame, *, width: int = 380):
    """Per claim, its settings by what their 95% interval says (stacked bars; untested: none)."""
    order = ["support", "weak", "unclear", "against"]
    long = table.melt(id_vars=["claim", "source", "verdict"], value_vars=order, var_name="interval",
                      value_name="settings")
    long["claim"] = [f"{c} ({v})" for c, v in zip(long["claim"], long["verdict"])]
    long["rank"] = long["interval"].map(order.index)
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("claim:N", title=None, sort=list(dict.fromkeys(long["claim"]))),
        x=alt.X("settings:Q", title="settings (what the paired 95% CI says)"),
        color=alt.Color("interval:N", title="95% CI", sort=order,
                        scale=alt.Scale(domain=order, range=["#4c9a2a", "#a6d96a", "#bdbdbd", "#d7301f"])),
        order=alt.Order("rank:Q"),
        tooltip=["claim", "source", "interval", "settings"],
    ).properties(width=width)
