"""H1–H11: *Rethinking Dataset Distillation: Hard Truths about Soft Labels* (Dey et al., CVPR 2026,
arXiv:2604.18811).

Tested on chapter 2's grids (``label_regimes``, ``cad_vs_el2n``, ``convergence``
and the full-data runs), chapter 3's and chapter 7's runs, chapter 8's DCS
scores (``measured["dcs"]``) and the teacher's view of the sets
(``measured["teacher_view"]``).
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from ddlib.analysis.claims.rules import (
    RULE,
    Claim,
    Measured,
    Verdict,
    best_on_validation,
    by_seed,
    combine,
    decide_each,
    decide_p,
    fmt,
    fmt_paired,
    register,
    rows,
    tallied,
    threshold_cats,
    untested,
)
from ddlib.analysis.rank_correlation import FISHER_MIN_N, spearman_fisher
from ddlib.analysis.saturation import convergence, gap_to_full
from ddlib.analysis.stats import MARGIN, decide_table, direction, paired
from ddlib.analysis.tables import gains, wins
from ddlib.methods.build import method_family

SOURCE = "Dey et al. 2026, Hard truths about soft labels (CVPR 2026, arXiv:2604.18811)"
NEAR_FRACTION = 0.9     # "near full-data accuracy": 90% of it (chapter 2's threshold)
# An objective "predicts" accuracy when its rank correlation with accuracy is shown to be at least a *large*
# one in the predictive direction, |rho| >= 0.5: Cohen's (1988, Statistical Power Analysis, ch. 3) benchmarks
# for a correlation are 0.1 small, 0.3 medium, 0.5 large; "at most modest" is below large.
RHO_MARGIN = 0.5
# Every objective of ddlib.methods.objectives (dm, dc, mtt, sre2l; chapter 8's "DCS" probes) is a loss,
# lower = closer to the real data: a predictive one has a NEGATIVE rho between its value and accuracy.
PREDICTIVE_SIGN = -1
SOFT = ("sl", "slkd")
LARGE_SCALE = ("sre2l", "rded", "cim")   # the large-scale distillers in our registry (CA2D is the paper's own)
CH2 = ["label_regimes", "cad_vs_el2n"]
ALL_RUNS = ["label_regimes", "cad_vs_el2n", "distilled_vs_coresets", "teacher_based"]


def _is_coreset(m: str) -> bool:
    return method_family(m) == "coreset"


def slkd_saturates(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, ["label_regimes"], regime="slkd")
    full = rows(frame, ["full_data"], regime="hl")
    if df.empty or full.empty:
        return untested("needs chapter 2's SL+KD runs and its full-data HL runs")
    top = min(df["budget"].max(), full["budget"].max())
    gap = gap_to_full(df[df["budget"] == top], full[full["budget"] == top])
    if gap.empty:
        return untested("no SL+KD run shares a budget and seed with a full-data run")
    ref = full[full["budget"] == top]["accuracy"].mean() * 100
    tol = (1 - NEAR_FRACTION) * ref
    cats = threshold_cats(gap["d"], [tol] * len(gap), sign=-1)
    parts = [f"{r.method} IPC {r.ipc}: {fmt(r.gap, r.ci_low, r.ci_high, r.pairs)}" for r in gap.itertuples()]
    return tallied(cats, f"At budget {top:g} full data (HL) reaches {ref:.1f}%; near = deficit below {tol:.1f} "
                   "points; deficits (points): " + "; ".join(parts) + ".")


def _coreset_gains(frame: pd.DataFrame, chapters: Sequence[str], regimes: Sequence[str]) -> pd.DataFrame:
    df = rows(frame, chapters, regime=list(regimes))
    return gains(df[df["method"].map(_is_coreset).astype(bool)], baseline="random").reset_index(drop=True)


def soft_coresets_do_not_beat_random(frame: pd.DataFrame, measured: Measured) -> Verdict:
    g = _coreset_gains(frame, ALL_RUNS, SOFT)
    if g.empty:
        return untested("no SL / SL+KD coreset runs paired with random")
    cats = decide_table(g, "not_greater", "greater")
    beat = [f"{r.method} {r.regime.upper()} IPC {r.ipc} ({r.gain:+.1f})" for r, c in zip(g.itertuples(), cats)
            if c == "against"]
    return tallied(cats, f"Coreset - random per (coreset, regime, IPC, budget), {g['pairs'].min()}-"
                   f"{g['pairs'].max()} paired seeds; 'does not beat' = shown below +{MARGIN:g} point. Beat random: "
                   + (", ".join(beat) or "none") + ".")


def sl_size_and_budget(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, ["label_regimes"], regime="sl")
    if df.empty or df["ipc"].nunique() < 2 or df["budget"].nunique() < 2:
        return untested("needs chapter 2's SL runs at two IPCs and two budgets")
    ipcs, budgets = sorted(df["ipc"].unique()), sorted(df["budget"].unique())
    top, low = budgets[-1], budgets[0]
    conv, parts = [], []
    for ipc in ipcs[1:]:  # beyond the minimum IPC: EL2N-easy and random converge
        g = df[(df["ipc"] == ipc) & (df["budget"] == top)]
        p = paired(by_seed(g[g["method"] == "el2n_easy"]), by_seed(g[g["method"] == "random"]))
        if p is not None:
            conv.append(p.d)
            parts.append(f"IPC {ipc}, budget {top:g}: el2n_easy - random {fmt_paired(p)}")
    c1 = ["support" if o == "same" else "against" if o in ("greater", "less") else "unclear"
          for o in direction(conv)]
    inter = []
    for m in ("random", "el2n_easy"):
        g = df[df["method"] == m]
        cell = {(i, b): by_seed(g[(g["ipc"] == i) & (g["budget"] == b)])
                for i in (ipcs[0], ipcs[-1]) for b in (low, top)}
        d = (cell[(ipcs[-1], top)] - cell[(ipcs[0], top)]) - (cell[(ipcs[-1], low)] - cell[(ipcs[0], low)])
        d = d.dropna()
        if len(d):
            inter.append(d.to_numpy())
            p = paired(d, pd.Series(0.0, index=d.index))
            parts.append(f"{m}: gain of IPC {ipcs[-1]} over IPC {ipcs[0]} at budget {top:g} minus at {low:g} "
                         f"{fmt_paired(p)}")
    c2 = decide_each(inter, ["greater"] * len(inter), ["not_greater"] * len(inter))
    cats = c1 + c2
    if not cats:
        return untested("no paired SL runs")
    return tallied(cats, "; ".join(parts) + " (points).")


def hl_quality_beats_random(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, ALL_RUNS, regime="hl")
    df = df[df["method"].map(_is_coreset).astype(bool)]
    diffs, parts = [], []
    for (ipc, budget), g in df.groupby(["ipc", "budget"], sort=True):
        best = best_on_validation(g, [m for m in g["method"].unique() if m != "random"])
        p = paired(by_seed(g[g["method"] == best]), by_seed(g[g["method"] == "random"])) if best else None
        if p is None:
            continue
        diffs.append(p.d)
        parts.append(f"IPC {ipc}, budget {budget:g}: {best} - random {fmt_paired(p)}")
    if not diffs:
        return untested("no HL coreset run paired with random")
    cats = decide_each(diffs, ["greater"] * len(diffs), ["not_greater"] * len(diffs))
    return tallied(cats, "Best non-random coreset (chosen on validation) minus random, test points: "
                   + "; ".join(parts) + ".")


def only_rded_beats_random(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, ["teacher_based", "distilled_vs_coresets"], regime="hl",
              method=list(LARGE_SCALE) + ["random"])
    g = gains(df, baseline="random").reset_index(drop=True)
    if g.empty or "rded" not in set(g["method"]):
        return untested("needs HL runs of RDED and the other large-scale distillers beside random (chapter 7)")
    sup = ["greater" if m == "rded" else "not_greater" for m in g["method"]]
    ag = ["not_greater" if m == "rded" else "greater" for m in g["method"]]
    cats = decide_p([g.loc[i, f"p_{s}"] for i, s in enumerate(sup)], [g.loc[i, f"p_{a}"] for i, a in enumerate(ag)],
                    sup)
    parts = [f"{r.method} IPC {r.ipc}: {fmt(r.gain, r.ci_low, r.ci_high, r.pairs)}" for r in g.itertuples()]
    return tallied(cats, "Distiller - random under HL (points); RDED must beat random (d > 0), the others must "
                   f"not (d shown below +{MARGIN:g} point): " + "; ".join(parts) + ".")


def rded_easy_patches(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, ["teacher_based", "distilled_vs_coresets"], regime="hl")
    lag_d, lag_parts, rivals = [], [], {}
    for (ipc, budget), g in df.groupby(["ipc", "budget"], sort=True):
        core = [m for m in g["method"].unique() if _is_coreset(m) and m != "random"]
        best = best_on_validation(g, core)
        p = paired(by_seed(g[g["method"] == "rded"]), by_seed(g[g["method"] == best])) if best else None
        if p is None:
            continue
        rivals[ipc] = best
        lag_d.append(p.d)
        lag_parts.append(f"IPC {ipc}: rded - {best} {fmt_paired(p)}")
    if not lag_d:
        return untested("needs HL runs of RDED beside coresets (chapters 3, 7)")
    lag = tallied(decide_each(lag_d, ["less"] * len(lag_d), ["not_less"] * len(lag_d)),
                  "RDED minus the strongest coreset (chosen on validation), HL test points: " + "; ".join(lag_parts))
    tv = measured.get("teacher_view")
    if tv is None or tv.empty:
        easy = untested("the patches' difficulty needs the teacher's view of the sets (the ledger page measures "
                        "it; python -m ddlib claims --measure)")
    else:
        dd, parts = [], []
        for ipc, rival in sorted(rivals.items()):
            a = tv[(tv["method"] == "rded") & (tv["ipc"] == ipc)].set_index("seed")["loss"]
            b = tv[(tv["method"] == rival) & (tv["ipc"] == ipc)].set_index("seed")["loss"]
            p = paired(a, b)
            if p is not None:
                dd.append(p.d)
                parts.append(f"IPC {ipc}: rded - {rival} {fmt_paired(p, '+.3f')} nats")
        easy = (tallied(decide_each(dd, ["less"] * len(dd), ["greater"] * len(dd)),
                        "Difficulty = a held-out teacher's cross-entropy on the set's images and labels: "
                        + "; ".join(parts)) if dd else untested("no measured RDED set pairs with the coreset's"))
    return combine([("lags", lag), ("easier", easy)])


def _wins_claim(frame: pd.DataFrame, chapters: Sequence[str], method: str, rivals: Sequence[str]) -> Verdict:
    df = rows(frame, chapters)
    present = [r for r in rivals if r in set(df["method"])]
    if method not in set(df["method"]) or not present:
        return untested(f"no {method} runs beside {' or '.join(rivals)} in the {' / '.join(chapters)} runs")
    w = wins(df, method, present)
    if w.empty:
        return untested(f"no {method} run paired by seed with {', '.join(present)}")
    # a tie (within the margin of every rival) or a loss contradicts "beats"
    cats = [{"win": "support", "loss": "against", "tie": "against", "unclear": "unclear"}[v] for v in w["verdict"]]
    c = w["verdict"].value_counts()
    return tallied(cats, f"{method} against {', '.join(present)} per (regime, IPC, budget), {w['pairs'].min()}-"
                   f"{w['pairs'].max()} paired seeds: {c.get('win', 0)} wins, {c.get('loss', 0)} losses, "
                   f"{c.get('tie', 0)} ties (within ±{MARGIN:g} point), {c.get('unclear', 0)} unclear.")


def cad_beats_fixed_difficulty(frame: pd.DataFrame, measured: Measured) -> Verdict:
    return _wins_claim(frame, CH2, "cad_prune", ["el2n_easy", "el2n_hard"])


def ca2d_beats_distillers(frame: pd.DataFrame, measured: Measured) -> Verdict:
    return _wins_claim(frame, ["teacher_based"], "ca2d", ["sre2l", "rded", "cim"])


def objectives_do_not_predict(frame: pd.DataFrame, measured: Measured) -> Verdict:
    """H9 on chapter 8's scores: two statements, each per (objective, IPC), Holm over its settings.

    With ``r = PREDICTIVE_SIGN * rho`` (the correlation in the predictive direction) and ``m`` = :data:`RHO_MARGIN`:

    * *do not predict*, every objective: support = ``r`` shown below ``m`` (at most modest: the one-sided
      Fisher-z test of ``r < m``, non-superiority as "does not beat"), against = ``r`` shown above ``m``;
    * *a modest correlation for DM*: support = ``0 < r < m`` shown (both one-sided tests, the larger p, as
      TOST), against = ``r`` shown below 0 (no correlation in the predictive direction).  A DM ``r`` shown
      above ``m`` is the first statement's contradiction, not counted twice.

    Intervals and tests are :func:`~ddlib.analysis.rank_correlation.spearman_fisher` (Fisher z with Bonett & Wright's
    variance for Spearman), from :data:`~ddlib.analysis.rank_correlation.FISHER_MIN_N` sets; fewer: unclear.
    """
    s = measured.get("dcs")
    if s is None or s.empty:
        return untested("needs chapter 8's objective scores of the sets (the ledger page reads them; python -m "
                        "ddlib claims --measure)")
    up, down = ("less", "greater") if PREDICTIVE_SIGN < 0 else ("greater", "less")  # r > x  <=>  rho `up` -x
    m, sign = RHO_MARGIN, PREDICTIVE_SIGN
    ps, pa, parts, dm_ps, dm_pa, dm_parts = [], [], [], [], [], []
    for (probe, ipc), g in s.groupby(["probe", "ipc"], sort=True):
        c = spearman_fisher(g["value"].to_numpy(float), g["accuracy"].to_numpy(float))
        ps.append(c.p(down, sign * m))       # r < m
        pa.append(c.p(up, sign * m))         # r > m
        cell = fmt(c.rho, c.low, c.high, c.n, "+.2f").replace(f"(n={c.n}", f"({c.n} sets")
        parts.append(f"{probe} IPC {ipc}: rho {cell}")
        if str(probe).replace(":", " ").split()[0] == "dm":   # "dm (convnet_d3w32)", chapter 8's label
            dm_ps.append(max(c.p(up, 0.0), c.p(down, sign * m)))    # 0 < r < m
            dm_pa.append(c.p(down, 0.0))                             # r < 0
            dm_parts.append(f"IPC {ipc}: rho {cell}")
    head = (f"Spearman rho of objective value vs accuracy (every objective is a loss: a predictive one has rho < "
            f"0), Fisher-z 95% intervals (tests need {FISHER_MIN_N} sets or more)")
    none = tallied(decide_p(ps, pa, ["not_greater"] * len(ps)), head + ": " + "; ".join(parts) + ".")
    if not dm_ps:
        dm = untested("DM's objective was not scored (chapter 8's grid names it)")
    else:
        dm = tallied(decide_p(dm_ps, dm_pa, ["same"] * len(dm_ps)),
                     f"DM's rho shown between -{m:g} and 0 (a modest predictive correlation): " + "; ".join(dm_parts))
    return combine([("do not predict", none), ("modest for DM", dm)])


def distilled_keep_improving(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, ["convergence"])
    c = convergence(df)
    if c.empty:
        return untested("needs chapter 2's convergence runs at two budgets or more")
    last = c[c["to_budget"] == c["to_budget"].max()].reset_index(drop=True)
    dist = [method_family(m) == "distill" for m in last["method"]]
    sup = ["greater" if d else "same" for d in dist]
    ag = ["not_greater" if d else "greater" for d in dist]
    cats = decide_p([last.loc[i, f"p_{x}"] for i, x in enumerate(sup)],
                     [last.loc[i, f"p_{x}"] for i, x in enumerate(ag)], sup)
    parts = [f"{r.method} ({'distilled' if d else 'coreset'}) {r.from_budget:g}->{r.to_budget:g}: "
             f"{fmt(r.gain, r.ci_low, r.ci_high, r.pairs)}" for r, d in zip(last.itertuples(), dist)]
    return tallied(cats, f"Gain of the last budget step (points); distilled sets must still improve (> 0), "
                   f"coresets must have saturated (within ±{MARGIN:g} point, TOST): " + "; ".join(parts) + ".")


def soft_labels_explain_gain(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, ALL_RUNS)
    total, label, image, names = [], [], [], []
    for (ipc, budget), g in df.groupby(["ipc", "budget"], sort=True):
        rand_hl = by_seed(g[(g["method"] == "random") & (g["regime"] == "hl")])
        for regime in SOFT:
            sub = g[g["regime"] == regime]
            rand = by_seed(sub[sub["method"] == "random"])
            for m in sorted(sub[sub["family"] == "distill"]["method"].unique()):
                dist = by_seed(sub[sub["method"] == m])
                seeds = rand_hl.index.intersection(rand.index).intersection(dist.index)
                if len(seeds) == 0:
                    continue
                total.append((dist - rand_hl).loc[seeds].to_numpy())
                label.append((rand - rand_hl).loc[seeds].to_numpy())
                image.append((dist - rand).loc[seeds].to_numpy())
                names.append(f"{m} {regime.upper()} IPC {ipc}")
    if not total:
        return untested("needs random under HL and a soft regime (sl / slkd) beside a distilled set")
    # only a setting with a gain (distilled soft - random HL shown > 0) has a gain to explain
    has_gain = decide_each(total, ["greater"] * len(total), ["not_greater"] * len(total))
    keep = [i for i, c in enumerate(has_gain) if c == "support"]
    skipped = [names[i] for i, c in enumerate(has_gain) if c != "support"]
    tail = (f" Left out, no gain over random HL shown: {', '.join(skipped)}." if skipped else "")
    if not keep:
        return Verdict("unclear", f"0 settings pooled (Holm): none of the {len(total)} shows a gain of a distilled "
                       f"set over random HL, so there is no gain to explain.{tail}")
    d = [label[i] - image[i] for i in keep]
    cats = decide_each(d, ["greater"] * len(d), ["less"] * len(d))
    parts = [f"{names[i]}: gain {total[i].mean():+.1f} = labels {label[i].mean():+.1f} + images "
             f"{image[i].mean():+.1f}" for i in keep]
    return tallied(cats, "Gain over random HL split into its label part (random soft - random HL) and image part "
                   "(distilled soft - random soft), mean points; support = label part > image part (labels "
                   "explain most), against = label part < image part: " + "; ".join(parts) + "." + tail)


register(
    Claim("H1", "Under SL+KD, accuracy saturates near full-data accuracy whatever the subset's size or quality, at a "
          "fixed compute budget.", SOURCE, "abstract", ("label_regimes",),
          "Chapter 2: every SL+KD subset (random, EL2N-easy, CAD-Prune; each IPC) at the largest budget against "
          "full-data HL training of the same budget.",
          f"Settings: method x IPC; deficit = full - subset per seed; support = deficit shown below "
          f"{1 - NEAR_FRACTION:.0%} of full-data accuracy (non-inferiority with that margin), against = shown "
          "above it. " + RULE, slkd_saturates),
    Claim("H2", "Under SL and SL+KD, high-quality coresets fail to convincingly outperform random subsets.", SOURCE,
          "abstract", ("label_regimes", "distilled_vs_coresets", "teacher_based"),
          "Every non-random coreset under SL and SL+KD (chapters 2, 3, 7) against random of the same setting.",
          f"Settings: coreset x regime x IPC x budget; support = coreset - random shown below +{MARGIN:g} point "
          "(does not beat), against = shown above 0. " + RULE, soft_coresets_do_not_beat_random),
    Claim("H3", "With fixed soft labels (SL), subset size and budget matter together, and quality beyond a minimum "
          "IPC matters little (EL2N-easy and random converge).", SOURCE, "scalability analysis (section not "
          "verified; stated as in the issue)", ("label_regimes",),
          "Chapter 2, SL: EL2N-easy against random above the smallest IPC at the largest budget; and the "
          "interaction (gain of the largest over the smallest IPC at the largest budget minus at the smallest).",
          f"Settings: IPC (converge: support = TOST within ±{MARGIN:g} point, against = a difference shown) plus "
          f"method (interaction: support > 0, against = shown below +{MARGIN:g}). " + RULE, sl_size_and_budget),
    Claim("H4", "Under hard labels, high-quality coresets beat random subsets (as the coreset literature finds).",
          SOURCE, "abstract", ("label_regimes", "distilled_vs_coresets"),
          "Chapters 2, 3, 7, HL: the best non-random coreset of each setting, chosen on validation, against random.",
          f"Settings: IPC x budget; d = best coreset - random; support = d > 0, against = d shown below "
          f"+{MARGIN:g} point. " + RULE, hl_quality_beats_random),
    Claim("H5", "Under hard labels, among the large-scale distillers only RDED reliably beats random.", SOURCE,
          "abstract", ("teacher_based",),
          f"Chapter 7, HL: {', '.join(LARGE_SCALE)} against random (CA2D is the paper's own method, H8).",
          f"Settings: distiller x IPC x budget; RDED: support = d > 0, against = d shown below +{MARGIN:g}; the "
          f"others: support = d shown below +{MARGIN:g}, against = d > 0. " + RULE, only_rded_beats_random),
    Claim("H6", "RDED lags strong coresets under hard labels because it relies on easy patches.", SOURCE,
          "abstract", ("teacher_based",),
          "HL: RDED against the strongest coreset (chosen on validation), and the difficulty of RDED's patches "
          "against that coreset's images (a held-out teacher's cross-entropy on the set, paired by seed).",
          "Settings: IPC x {lags: support = RDED - coreset < 0, against = shown above -1 point; easier: support = "
          "RDED's loss lower, against = higher}. " + RULE, rded_easy_patches),
    Claim("H7", "Compute-aware difficulty (CAD-Prune) beats fixed-difficulty selection (EL2N easiest / hardest).",
          SOURCE, "abstract", ("label_regimes",), "Chapter 2: CAD-Prune against EL2N-easy and EL2N-hard.",
          f"Settings: regime x IPC x budget; support = a win over every rival (greater, Holm per rival), against = a "
          f"loss to one or a tie (within ±{MARGIN:g} point of every rival). " + RULE, cad_beats_fixed_difficulty),
    Claim("H8", "CA2D outperforms current distillers at every IPC.", SOURCE, "abstract", ("teacher_based",),
          "Chapter 7: CA2D against SRe2L, RDED and CIM under every regime and IPC.",
          "Settings: regime x IPC x budget; support = a win over all three, against = a loss to one or a tie. "
          + RULE, ca2d_beats_distillers),
    Claim("H9", "Distillation objectives do not predict generalisation (trajectory-matching loss and DCS; a modest "
          "correlation for DM).", SOURCE, "section not verified (the paper's text was not available; the claim is "
          "stated as in the issue)", ("dcs",),
          "Chapter 8: each distiller's objective evaluated on every HL set of chapter 3, chapter 2's CAD-Prune and "
          "EL2N sets of the same IPC and budget, and extra random subsets, against the sets' test accuracy; every "
          "objective is a loss, so predicting accuracy means a negative rho.",
          f"Two statements per objective x IPC: (1) every objective: support = its predictive correlation -rho "
          f"shown below {RHO_MARGIN:g} (at most modest; Cohen's 'large' starts at 0.5), against = shown above it; "
          f"(2) DM: support = -rho shown between 0 and {RHO_MARGIN:g} (a modest correlation), against = -rho shown "
          f"below 0. One-sided Fisher-z tests of Spearman's rho (Bonett-Wright variance, from {FISHER_MIN_N} sets), "
          "Holm over each statement's settings, pooled. " + RULE, objectives_do_not_predict),
    Claim("H10", "Distilled sets keep improving with longer training while coresets saturate.", SOURCE,
          "section not verified; stated as in the issue", ("label_regimes",),
          "Chapter 2's convergence grid (HL, IPC 10): the gain of the last budget step of each set.",
          f"Settings: method; distilled: support = gain > 0, against = gain shown below +{MARGIN:g}; coresets: "
          f"support = gain within ±{MARGIN:g} (TOST), against = gain > 0. " + RULE, distilled_keep_improving),
    Claim("H11", "Soft labels, not the images, explain most of what distilled sets gain over random real images.",
          SOURCE, "abstract (random baselines on par with SRe2L 'due to the use of soft labels')",
          ("label_regimes", "distilled_vs_coresets", "teacher_based"),
          "Chapters 2, 3, 7: each distilled set under SL / SL+KD; only settings where it is shown to gain over "
          "random HL count.",
          "Settings: distiller x soft regime x IPC x budget with a gain shown (distilled soft - random HL > 0, "
          "Holm); d = label part (random soft - random HL) - image part (distilled soft - random soft); support = "
          "d > 0, against = d < 0. " + RULE, soft_labels_explain_gain),
)

