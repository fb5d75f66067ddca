"""R0–R4: *Rethinking Dataset Distillation for Classification: Do Distilled Sets Outperform Coresets?*
(Mittal, Mehra, Kimball 2026, arXiv:2606.18209), and the supervision table its authors promised.

R0 is the claim R1–R2 argue against, from earlier distillation papers; it is
listed so that the ledger says who claims what.  Tested on chapter 3's grid
(``distilled_vs_coresets``: plain ERM = ``hl``, one teacher = ``slkd``, several
teachers = ``mt``), chapter 4's costs (the same runs) and chapter 5's quality
measurements of the same sets (``measured["quality"]``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ddlib.analysis.claims.cost import PROJECTED_TO, with_costs
from ddlib.analysis.claims.rules import (
    RULE,
    SOME_RULE,
    Claim,
    Measured,
    Verdict,
    fmt,
    hparams,
    register,
    rows,
    some_verdict,
    tallied,
    threshold_cats,
    untested,
)
from ddlib.analysis.compare import family_duel
from ddlib.analysis.quality_study import ASPECT, family_contrast
from ddlib.analysis.stats import MARGIN, decide_table, paired
from ddlib.analysis.tables import gains
from ddlib.methods.build import method_family

SOURCE = "Mittal, Mehra, Kimball 2026, Rethinking DD for classification (arXiv:2606.18209)"
PROTOCOLS = {"hl": "ERM (hard labels)", "slkd": "one teacher (SL+KD)", "mt": "several teachers"}
SMALL_IPC = 10        # the earlier papers' claims are made at small IPC (1, 10)
COST_RATIO = 2.0      # "substantially more": at least twice the cost
CH3 = ["distilled_vs_coresets"]

# each distiller -> the supervision its own paper evaluated it with -> our regime that matches it
SUPERVISION = (
    ("dd", "Wang et al. 2018", "hard labels, the learnt step sizes replayed on a fixed or random init",
     "hl with eval_lr='unrolled' (chapter 6)"),
    ("dc", "Zhao, Mopuri, Bilen 2021", "hard labels, plain ERM", "hl"),
    ("dsa", "Zhao, Bilen 2021", "hard labels, plain ERM with DSA augmentation", "hl"),
    ("dm", "Zhao, Bilen 2023", "hard labels, plain ERM with DSA augmentation", "hl"),
    ("mtt", "Cazenavette et al. 2022", "hard labels, the learnt learning rate", "hl (eval_lr='learned' available)"),
    ("sre2l", "Yin, Xing, Shen 2023", "relabel: the teacher's soft labels of every crop, stored (FKD-style)",
     "slkd_stored"),
    ("rded", "Sun et al. 2024", "the observer teacher's soft labels of every augmented view (KD)", "slkd"),
    ("cim", "CIM 2026", "relabel with the teacher, as the squeeze-recover-relabel pipelines", "slkd_stored"),
    ("ca2d", "Dey et al. 2026 (Hard truths)", "hard labels (its compute-aligned HL evaluation)", "hl"),
)


def supervision_table() -> pd.DataFrame:
    """The table *Rethinking DD* promises: distiller -> supervision in its own paper -> our regime.

    Transcribed from each method's paper (what its evaluation trained the
    student with); not a result of this study."""
    return pd.DataFrame(SUPERVISION, columns=["distiller", "its paper", "its own supervision", "our regime"])


def distilled_beat_coresets(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, CH3, regime="hl")
    duel = family_duel(df[df["ipc"] <= SMALL_IPC])
    if duel.empty:
        return untested(f"no HL runs with both a distilled set and a coreset at IPC <= {SMALL_IPC}")
    cats = decide_table(duel, "greater", "not_greater")
    parts = [f"IPC {r.ipc}, budget {r.budget:g}: {r.best_distiller} minus {r.best_coreset} "
             f"{fmt(r.gain, r.ci_low, r.ci_high, r.pairs)}" for r in duel.itertuples()]
    return tallied(cats, "Best distilled set minus best coreset, each chosen on validation accuracy (test points): "
                   + "; ".join(parts) + ".")


def some_fail_random(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, CH3)
    keep = df["method"].map(lambda m: m == "random" or method_family(m) == "distill").astype(bool)
    g = gains(df[keep], baseline="random")
    if g.empty:
        return untested("no distilled set paired with random in chapter 3's grid")
    g = g.reset_index(drop=True)
    cats = decide_table(g, "not_greater", "greater")  # property: does not beat random (by the margin)
    units = {m: [cats[i] for i in idx] for m, idx in g.groupby("method").groups.items()}
    worst = g.loc[g.groupby("method")["gain"].idxmin()]
    return some_verdict(units, "Distilled minus random (points), the worst setting of each distiller: "
                        + "; ".join(f"{r.method} {r.regime.upper()} IPC {r.ipc}: "
                                    f"{fmt(r.gain, r.ci_low, r.ci_high, r.pairs)}" for r in worst.itertuples())
                        + f". A distiller 'fails to beat random' in a setting when its gain is shown below "
                          f"+{MARGIN:g} point.")


def comparable_or_worse(frame: pd.DataFrame, measured: Measured) -> Verdict:
    duel = family_duel(rows(frame, CH3))
    if duel.empty:
        return untested("no setting of chapter 3 has both a distilled set and a coreset")
    cats = decide_table(duel, "not_greater", "greater")
    per = []
    for regime, idx in duel.groupby("regime", sort=True).groups.items():
        c = [cats[i] for i in idx]
        per.append(f"{PROTOCOLS.get(regime, regime)}: {c.count('support')} of {len(c)} shown comparable or worse, "
                   f"{c.count('against')} distilled better")
    parts = [f"{r.regime.upper()} IPC {r.ipc}: {r.best_distiller} - {r.best_coreset} "
             f"{fmt(r.gain, r.ci_low, r.ci_high, r.pairs)}" for r in duel.itertuples()]
    return tallied(cats, "Per protocol: " + "; ".join(per) + ". Best distiller minus best coreset (each chosen "
                   "on validation; test points): " + "; ".join(parts) + ".")


def _per_set_cost(df: pd.DataFrame) -> pd.DataFrame:
    """One cost per built set (method, ipc, seed): build cost does not depend on regime or budget."""
    c = with_costs(df, hparams(df))
    return c.groupby(["method", "ipc", "seed"], as_index=False)[["cost_run", "cost_projected"]].mean()


def _log_ratio(c: pd.DataFrame, a: str, b: str, ipc, col: str):
    """log2(cost of a / cost of b) per seed at ``ipc``, paired (None if no shared seed)."""
    x = c[(c["method"] == a) & (c["ipc"] == ipc)].set_index("seed")[col]
    y = c[(c["method"] == b) & (c["ipc"] == ipc)].set_index("seed")[col]
    x, y = x[x > 0], y[y > 0]
    return paired(np.log2(x), np.log2(y))


def cost_claim(pairs, c: pd.DataFrame, what: str) -> Verdict:
    """Settings: (a, b, ipc); d = log2(cost a / cost b) per seed; support = shown above log2(COST_RATIO),
    against = shown below it; projected costs decide, costs as run are reported beside."""
    out = {}
    for col in ("cost_projected", "cost_run"):
        diffs, parts = [], []
        for a, b, ipc in pairs:
            p = _log_ratio(c, a, b, ipc, col)
            if p is None:
                continue
            diffs.append(p.d)
            parts.append(f"{a}/{b} IPC {ipc}: x{2 ** p.diff:.3g} [{2 ** p.ci_low:.3g}, {2 ** p.ci_high:.3g}] "
                         f"(n={p.n})" if not np.isnan(p.ci_low) else f"{a}/{b} IPC {ipc}: x{2 ** p.diff:.3g} "
                         f"(n={p.n}: no interval)")
        out[col] = (threshold_cats(diffs, [np.log2(COST_RATIO)] * len(diffs)), parts)
    cats, parts = out["cost_projected"]
    if not cats:
        return untested(f"no {what} with build costs paired by seed")
    run_cats, run_parts = out["cost_run"]
    v_run = tallied(run_cats, "")
    return tallied(cats, f"Verdict on costs projected to the '{PROJECTED_TO}' profile's lengths: "
                   + "; ".join(parts) + f". As run (build seconds): {v_run.verdict} ({v_run.support} support, "
                   f"{v_run.against} contradict of {v_run.n}): " + "; ".join(run_parts) + ".")


def costs_more(frame: pd.DataFrame, measured: Measured) -> Verdict:
    df = rows(frame, CH3)
    if df.empty:
        return untested("no chapter 3 runs")
    c = _per_set_cost(df)
    fam = {m: method_family(m) for m in c["method"].unique()}
    pairs = []
    for ipc, g in c.groupby("ipc", sort=True):
        core = g[g["method"].map(lambda m: fam[m] == "coreset" and m != "random").astype(bool)]
        if core.empty:
            continue
        dearest = core.groupby("method")["cost_projected"].mean().idxmax()  # the costliest coreset: conservative
        pairs += [(m, dearest, ipc) for m in sorted(g["method"].unique()) if fam[m] == "distill"]
    return cost_claim(pairs, c, "distiller and non-random coreset")


def coresets_more_representative(frame: pd.DataFrame, measured: Measured) -> Verdict:
    q = measured.get("quality")
    if q is None or q.empty:
        return untested("needs chapter 5's quality measurements of chapter 3's sets (the ledger page computes "
                        "them; python -m ddlib claims --measure)")
    con = family_contrast(q)
    con = con[con["metric"].map(lambda m: ASPECT.get(m) in ("representativeness", "diversity")).astype(bool)]
    if con.empty:
        return untested("no IPC has both coresets and distilled sets measured")
    cats = ["support" if w == "coreset" else "against" if w == "distill" else "unclear" for w in con["more"]]
    parts = [f"IPC {r.ipc} {r.metric} ({ASPECT[r.metric]}): distilled - coreset "
             f"{fmt(r.diff, r.low, r.high, r.n_coreset + r.n_distill, '+.3g')}" for r in con.itertuples()]
    return tallied(cats, "Family means over methods (Welch over methods, Holm over every (IPC, metric)); fd and "
                   "mmd2 lower = more representative: " + "; ".join(parts) + ".")


register(
    Claim("R0", "Distilled sets beat coresets, because restricting a condensed set to real samples limits its "
          "expressiveness (the earlier distillation papers' claim, which R1-R2 argue against).",
          "earlier DD papers, as stated in " + SOURCE, "abstract", ("distilled_vs_coresets",),
          f"Chapter 3, plain ERM (hard labels), IPC <= {SMALL_IPC}: the best distiller against the best coreset "
          "(random included), each chosen on validation accuracy.",
          f"Settings: IPC x budget; d = best distiller - best coreset (test points per seed); support = d > 0, "
          f"against = d shown below +{MARGIN:g} point (non-superiority). " + RULE, distilled_beat_coresets),
    Claim("R1", "Some distillers fail to outperform even simple random subsets.", SOURCE, "abstract",
          ("distilled_vs_coresets",), "Chapter 3, every distiller against random under each protocol.",
          f"Settings: distiller x protocol x IPC x budget; d = distiller - random; property 'fails to beat random' = "
          f"d shown below +{MARGIN:g} point, contradicted by d > 0. " + SOME_RULE, some_fail_random),
    Claim("R2", "State-of-the-art distillers are comparable to or worse than coresets, under each of the three "
          "protocols (ERM, one teacher, several teachers).", SOURCE, "abstract", ("distilled_vs_coresets",),
          "Chapter 3: the best distiller against the best coreset (each chosen on validation) under hl, slkd, mt.",
          f"Settings: protocol x IPC x budget; d = best distiller - best coreset; support = d shown below "
          f"+{MARGIN:g} point (comparable or worse), against = d > 0. " + RULE, comparable_or_worse),
    Claim("R3", "Distilled sets cost substantially more to build than coresets.", SOURCE, "abstract",
          ("cost",), "Chapter 4's build costs of chapter 3's sets: each distiller against the costliest non-random "
          "coreset of its IPC, as run and projected to each method's published length (cost per iteration x the "
          "paper's iterations; scoring epochs x networks for coresets).",
          f"Settings: distiller x IPC; d = log2(distiller cost / coreset cost) per seed; support = shown above "
          f"log2({COST_RATIO:g}) (at least {COST_RATIO:g}x), against = shown below it. The verdict uses the "
          "projected costs; the costs as run are reported beside. " + RULE, costs_more),
    Claim("R4", "Coresets achieve better representativeness, diversity and coverage of the original data than "
          "distilled sets.", SOURCE, "abstract", ("quality",),
          "Chapter 5's metrics of chapter 3's sets (teacher features): recall, coverage, FD, MMD² "
          "(representativeness), centred Vendi score, mean pairwise distance (diversity).",
          "Settings: IPC x metric; the families' method means compared by Welch's t (methods as units), Holm over "
          "every (IPC, metric); support = coresets shown ahead, against = distilled sets shown ahead. " + RULE,
          coresets_more_representative),
)
