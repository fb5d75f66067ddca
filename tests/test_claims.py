"""The claims ledger: its rule on hand-made counts and intervals, and verdicts on hand-made runs."""
import json

import pandas as pd
import pytest

import ddlib.analysis.claims as claims
from ddlib.analysis.claims import CLAIMS, VERDICTS, classify, ledger_sentence, ledger_table, tally_verdict
from ddlib.chapters.ledger import Ledger

SEEDS = (0, 1, 2)
# per-seed noise (points) shared by every method, so paired differences are exact
NOISE = {0: 0.0, 1: 1.0, 2: -1.0}


@pytest.mark.parametrize("counts,verdict", [
    ((2, 0, 0, 1), "holds"),      # 2 of 3 support, none against
    ((3, 0, 1, 0), "partly"),     # one contradiction stops "holds"
    ((1, 0, 0, 2), "partly"),
    ((0, 1, 0, 0), "partly"),     # only weak support
    ((0, 0, 0, 3), "fails"),      # nothing supports it
    ((1, 0, 2, 0), "fails"),      # more against than for
    ((0, 0, 0, 0), "untested"),
])
def test_rule_on_counts(counts, verdict):
    assert tally_verdict(*counts) == verdict


@pytest.mark.parametrize("lo,hi,kw,where", [
    (1.0, 3.0, {}, "support"),
    (1.0, 3.0, {"margin": 2.0}, "weak"),
    (2.5, 3.0, {"margin": 2.0}, "support"),
    (-3.0, -1.0, {}, "against"),
    (-1.0, 1.0, {}, "unclear"),
    (-3.0, -1.0, {"sign": -1}, "support"),   # the claim is "the effect is negative"
    (1.0, 3.0, {"sign": -1}, "against"),
])
def test_where_an_interval_lies(lo, hi, kw, where):
    assert classify(lo, hi, **kw) == where


def _row(chapter, method, family, ipc, regime, budget, seed, acc_points, **extra):
    hp = extra.pop("hparams", {})
    return {"key": f"{chapter}-{method}-{ipc}-{regime}-{budget}-{seed}-{json.dumps(hp, sort_keys=True)}",
            "chapter": chapter, "method": method, "family": family, "ipc": ipc, "regime": regime,
            "budget": budget, "seed": seed, "accuracy": (acc_points + NOISE[seed]) / 100,
            "eval_lr": extra.pop("eval_lr", "protocol"), "config_json": json.dumps({"hparams": hp}), **extra}


def _frame(spec):
    """spec: (chapter, method, family, ipc, regime, budget, accuracy points) -> one row per seed."""
    return pd.DataFrame([_row(*s[:6], seed, s[6]) for s in spec for seed in SEEDS])


def test_every_claim_is_untested_without_runs():
    empty = pd.DataFrame(columns=list(_row("x", "random", "coreset", 1, "hl", 1.0, 0, 0.0)))
    table = ledger_table(empty)
    assert list(table["claim"]) == CLAIMS.names()
    assert set(table["verdict"]) == {"untested"}
    assert ledger_sentence(table).endswith(f"{len(table)} are untested on this profile.")


def test_distilled_beat_coresets_holds_and_fails_with_the_data():
    spec = []
    for ipc in (1, 10):
        spec += [("distilled_vs_coresets", "random", "coreset", ipc, "hl", 2.0, 50.0),
                 ("distilled_vs_coresets", "herding", "coreset", ipc, "hl", 2.0, 55.0),
                 ("distilled_vs_coresets", "dm", "distill", ipc, "hl", 2.0, 60.0)]
    v = CLAIMS.get("c2_distilled_beat_coresets_hl").evaluate(_frame(spec))
    assert (v.verdict, v.support, v.against) == ("holds", 2, 0)
    assert "dm minus herding +5.0 [+5.0, +5.0]" in v.evidence
    worse = [(c, m, f, i, r, b, 70.0 if m == "herding" else a) for c, m, f, i, r, b, a in spec]
    v = CLAIMS.get("c2_distilled_beat_coresets_hl").evaluate(_frame(worse))
    assert (v.verdict, v.support, v.against) == ("fails", 0, 2)


def test_teacher_shrinks_the_advantage():
    spec = []
    for regime, dm in (("hl", 60.0), ("slkd", 57.0), ("mt", 56.0)):
        spec += [("distilled_vs_coresets", "random", "coreset", 10, regime, 2.0, 50.0),
                 ("distilled_vs_coresets", "herding", "coreset", 10, regime, 2.0, 55.0),
                 ("distilled_vs_coresets", "dm", "distill", 10, regime, 2.0, dm)]
    v = CLAIMS.get("c3_teacher_shrinks_advantage").evaluate(_frame(spec))
    # advantage 5 under hl, 2 under slkd, 1 under mt: shrinks in both settings
    assert (v.verdict, v.support, v.against) == ("holds", 2, 0)


def test_cad_against_fixed_difficulty_counts_wins_and_losses():
    spec = []
    for budget, cad in ((1.0, 60.0), (4.0, 60.0), (8.0, 40.0)):
        spec += [("cad_vs_el2n", "cad_prune", "coreset", 10, "hl", budget, cad),
                 ("cad_vs_el2n", "el2n_easy", "coreset", 10, "hl", budget, 50.0),
                 ("cad_vs_el2n", "el2n_hard", "coreset", 10, "hl", budget, 45.0)]
    v = CLAIMS.get("c6_cad_beats_fixed_difficulty").evaluate(_frame(spec))
    assert (v.support, v.against, v.unclear) == (2, 1, 0)
    assert v.verdict == "partly"   # 2/3 support but one loss
    assert "2 wins, 1 losses, 0 ties" in v.evidence


def test_hl_selection_beating_random_is_counted():
    spec = [("label_regimes", "random", "coreset", 10, "hl", 2.0, 50.0),
            ("label_regimes", "el2n_easy", "coreset", 10, "hl", 2.0, 50.0),
            ("label_regimes", "cad_prune", "coreset", 10, "hl", 2.0, 50.0),
            ("label_regimes", "herding", "coreset", 10, "hl", 2.0, 58.0)]
    v = CLAIMS.get("c5_hl_selection_rarely_beats_random").evaluate(_frame(spec))
    # ties have a zero-width interval at 0, which does not lie above 0
    assert (v.verdict, v.against, v.support) == ("holds", 1, 2)
    assert "herding (IPC 10, budget 2)" in v.evidence


def test_soft_labels_versus_images_split():
    spec = [("teacher_based", "random", "coreset", 10, "hl", 2.0, 50.0),
            ("teacher_based", "random", "coreset", 10, "sl", 2.0, 58.0),
            ("teacher_based", "rded", "distill", 10, "sl", 2.0, 60.0)]
    v = CLAIMS.get("c8_soft_labels_explain_gain").evaluate(_frame(spec))
    # label part +8, image part +2: the labels explain more
    assert (v.verdict, v.support) == ("holds", 1)
    assert "rded SL IPC 10: labels +8.0, images +2.0" in v.evidence


def test_dd_fixed_init_needs_a_far_margin():
    spec = []
    for hp, acc in (({"init": "fixed"}, 70.0), ({"init": "fixed", "images": "real", "lr_img": 0.0}, 65.0)):
        spec += [_row("dd2018", "dd", "distill", 1, "hl", 1.0, s, acc, eval_lr="unrolled", hparams=hp) for s in SEEDS]
    v = CLAIMS.get("c1_dd_fixed_init").evaluate(pd.DataFrame(spec))
    assert (v.verdict, v.weak) == ("partly", 1)   # +5 points: above 0, short of the 10-point margin
    assert v.verdict in VERDICTS


def test_ledger_reads_every_registered_chapter_grid():
    led = Ledger.from_params("smoke")
    names = [ch for ch, _ in led.studies]
    assert names[:2] == ["label_regimes", "full_data"] and "teacher_based" in names and names[-1] == "dd2018"
    assert led.missing == ()
    assert all(r.endswith("runs") for r in led.describe()["runs"])
