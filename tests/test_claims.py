"""The claims ledger: its rule on counts, and each claim's verdict on noisy hand-made runs.

Every run has five seeds; each (method, regime, IPC, budget, hyper-parameters)
gets its own per-seed noise from a generator seeded by its name, plus a noise
shared by all runs of a seed (which pairing removes), so paired differences are
noisy, as in the store.  Each claim is shown to hold, fail and stay unclear.
"""
import json
import zlib

import numpy as np
import pandas as pd
import pytest

from ddlib.analysis.claims import CLAIMS, VERDICTS, ledger_sentence, ledger_table, tally_verdict
from ddlib.chapters.ledger import Ledger

SEEDS = (0, 1, 2, 3, 4)
COMMON = {0: 0.0, 1: 1.5, 2: -1.0, 3: 2.0, 4: -2.5}   # shared by every run of a seed (points)


@pytest.mark.parametrize("counts,verdict", [
    ((2, 0, 1), "holds"),      # 2 of 3 support, none against
    ((3, 1, 0), "partly"),     # one contradiction stops "holds"
    ((1, 1, 1), "partly"),     # mixed, 2 of 3 decided
    ((1, 0, 2), "unclear"),    # too few settings decided: not "fails" for want of evidence
    ((0, 0, 3), "unclear"),
    ((0, 3, 0), "fails"),
    ((0, 2, 1), "fails"),
    ((1, 3, 0), "partly"),
    ((0, 0, 0), "untested"),
])
def test_rule_on_counts(counts, verdict):
    assert tally_verdict(*counts) == verdict


def _noise(name: str, scale: float) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(name.encode())).normal(0.0, scale, len(SEEDS))


def _rows(chapter, method, family, ipc, regime, budget, acc_points, noise=0.5, **extra):
    hp = extra.pop("hparams", {})
    name = f"{method}/{regime}/{ipc}/{budget}/{json.dumps(hp, sort_keys=True)}"
    own = _noise(name, noise)
    return [{"key": f"{chapter}-{name}-{seed}", "chapter": chapter, "method": method, "family": family,
             "ipc": ipc, "regime": regime, "budget": budget, "seed": seed,
             "accuracy": (acc_points + COMMON[seed] + own[seed]) / 100,
             "val_accuracy": (acc_points + COMMON[seed] - own[seed]) / 100,
             "eval_lr": extra.get("eval_lr", "protocol"), "config_json": json.dumps({"hparams": hp})}
            for seed in SEEDS]


def _frame(spec, noise=0.5):
    """spec: (chapter, method, family, ipc, regime, budget, accuracy points) -> five rows each."""
    return pd.DataFrame([r for s in spec for r in _rows(*s, noise=noise)])


def _verdict(name, frame):
    v = CLAIMS.get(name).evaluate(frame)
    assert v.verdict in VERDICTS and f"{v.n} settings pooled" in v.evidence or v.verdict == "untested"
    return v


def test_every_claim_is_untested_without_runs():
    empty = pd.DataFrame(columns=list(_rows("x", "random", "coreset", 1, "hl", 1.0, 0.0)[0]))
    table = ledger_table(empty)
    assert list(table["claim"]) == CLAIMS.names()
    assert set(table["verdict"]) == {"untested"}
    assert ledger_sentence(table).endswith(f"{len(table)} are untested on this profile.")


def _duel_spec(dm_by_ipc, herding=55.0, regime="hl"):
    spec = []
    for ipc, dm in dm_by_ipc.items():
        spec += [("distilled_vs_coresets", "random", "coreset", ipc, regime, 2.0, 50.0),
                 ("distilled_vs_coresets", "herding", "coreset", ipc, regime, 2.0, herding),
                 ("distilled_vs_coresets", "dm", "distill", ipc, regime, 2.0, dm)]
    return spec


def test_distilled_beat_coresets_holds_fails_and_stays_unclear():
    v = _verdict("c2_distilled_beat_coresets_hl", _frame(_duel_spec({1: 60.0, 10: 61.0})))
    assert (v.verdict, v.support, v.against) == ("holds", 2, 0)
    assert "dm minus herding +5." in v.evidence and "(n=5)" in v.evidence
    v = _verdict("c2_distilled_beat_coresets_hl", _frame(_duel_spec({1: 48.0, 10: 49.0})))
    assert (v.verdict, v.support, v.against) == ("fails", 0, 2)
    # a true +1 point with 3 points of seed noise: five seeds decide nothing
    v = _verdict("c2_distilled_beat_coresets_hl", _frame(_duel_spec({1: 56.0, 10: 56.0}), noise=3.0))
    assert (v.verdict, v.unclear) == ("unclear", 2)


def test_teacher_shrinks_the_advantage():
    spec = []
    for regime, dm in (("hl", 62.0), ("slkd", 57.0), ("mt", 56.0)):
        spec += _duel_spec({10: dm}, regime=regime)
    v = _verdict("c3_teacher_shrinks_advantage", _frame(spec))
    # advantage 7 under hl, 2 under slkd, 1 under mt: shrinks in both settings
    assert (v.verdict, v.support, v.against) == ("holds", 2, 0)
    same = []
    for regime in ("hl", "slkd", "mt"):
        same += _duel_spec({10: 62.0}, regime=regime)
    assert _verdict("c3_teacher_shrinks_advantage", _frame(same, noise=0.2)).verdict == "fails"


def test_cad_against_fixed_difficulty_counts_wins_losses_and_ties():
    spec = []
    for budget, cad in ((1.0, 60.0), (4.0, 60.0), (8.0, 40.0)):
        spec += [("cad_vs_el2n", "cad_prune", "coreset", 10, "hl", budget, cad),
                 ("cad_vs_el2n", "el2n_easy", "coreset", 10, "hl", budget, 50.0),
                 ("cad_vs_el2n", "el2n_hard", "coreset", 10, "hl", budget, 45.0)]
    v = _verdict("c6_cad_beats_fixed_difficulty", _frame(spec))
    assert (v.support, v.against, v.unclear) == (2, 1, 0)
    assert v.verdict == "partly"   # 2/3 support but one loss
    assert "2 wins, 1 losses, 0 ties" in v.evidence
    tie = [(c, m, f, i, r, b, 50.0) for c, m, f, i, r, b, _ in spec]
    v = _verdict("c6_cad_beats_fixed_difficulty", _frame(tie, noise=0.2))
    assert (v.verdict, v.against) == ("fails", 3) and "3 ties" in v.evidence


def _hl_spec(gains_by_method):
    return [("label_regimes", "random", "coreset", 10, "hl", 2.0, 50.0)] + [
        ("label_regimes", m, "coreset", 10, "hl", 2.0, 50.0 + g) for m, g in gains_by_method.items()]


def test_hl_selection_not_beating_random_needs_a_margin_not_a_failed_test():
    # three coresets shown within the 1-point margin of random, one clearly above it
    v = _verdict("c5_hl_selection_rarely_beats_random",
                 _frame(_hl_spec({"el2n_easy": 0.0, "cad_prune": 0.1, "kcenter": -0.1, "herding": 8.0}), noise=0.2))
    assert (v.verdict, v.support, v.against) == ("holds", 3, 1)
    assert "herding (IPC 10, budget 2)" in v.evidence
    # the same means with 3 points of noise: no setting is shown either way, so "no evidence" is not support
    v = _verdict("c5_hl_selection_rarely_beats_random",
                 _frame(_hl_spec({"el2n_easy": 0.0, "cad_prune": 0.1, "kcenter": -0.1}), noise=3.0))
    assert (v.verdict, v.support) == ("unclear", 0)
    v = _verdict("c5_hl_selection_rarely_beats_random",
                 _frame(_hl_spec({"el2n_easy": 6.0, "cad_prune": 7.0, "kcenter": 0.0}), noise=0.2))
    assert (v.verdict, v.against) == ("fails", 2)


def test_soft_labels_versus_images_split():
    def spec(rded_sl):
        return [("teacher_based", "random", "coreset", 10, "hl", 2.0, 50.0),
                ("teacher_based", "random", "coreset", 10, "sl", 2.0, 58.0),
                ("teacher_based", "rded", "distill", 10, "sl", 2.0, rded_sl)]
    v = _verdict("c8_soft_labels_explain_gain", _frame(spec(60.0)))
    # label part +8, image part +2: the labels explain more
    assert (v.verdict, v.support) == ("holds", 1)
    assert "rded SL IPC 10: labels +8." in v.evidence
    assert _verdict("c8_soft_labels_explain_gain", _frame(spec(75.0))).verdict == "fails"
    assert _verdict("c8_soft_labels_explain_gain", _frame(spec(66.0), noise=4.0)).verdict == "unclear"


def test_dd_fixed_init_needs_a_far_margin():
    def frame(fixed, real, noise=0.5):
        rows = []
        for hp, acc in (({"init": "fixed"}, fixed), ({"init": "fixed", "images": "real", "lr_img": 0.0}, real)):
            rows += _rows("dd2018", "dd", "distill", 1, "hl", 1.0, acc, noise=noise, eval_lr="unrolled", hparams=hp)
        return pd.DataFrame(rows)
    assert _verdict("c1_dd_fixed_init", frame(80.0, 60.0)).verdict == "holds"
    v = _verdict("c1_dd_fixed_init", frame(70.0, 65.0))     # +5 points: shown short of the 10-point margin
    assert (v.verdict, v.against) == ("fails", 1)
    assert _verdict("c1_dd_fixed_init", frame(75.0, 65.0, noise=4.0)).verdict == "unclear"


def test_two_seeds_decide_nothing():
    two = _frame(_duel_spec({1: 60.0, 10: 61.0}))
    v = _verdict("c2_distilled_beat_coresets_hl", two[two["seed"] < 2])
    assert (v.verdict, v.unclear) == ("unclear", 2) and "no interval" in v.evidence


def test_ledger_reads_every_registered_chapter_grid():
    led = Ledger.from_params("smoke")
    names = [ch for ch, _ in led.studies]
    assert names[:2] == ["label_regimes", "full_data"] and "teacher_based" in names and names[-1] == "dd2018"
    assert led.missing == ()
    assert all(r.endswith("runs") for r in led.describe()["runs"])
