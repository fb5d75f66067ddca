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

from ddlib.analysis.claims import CLAIMS, VERDICTS, claim_names, ledger_sentence, ledger_table, tally_verdict
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


def _verdict(name, frame, measured=None):
    v = CLAIMS.get(name).evaluate(frame, measured)
    assert v.verdict in VERDICTS and f"{v.n} settings pooled" in v.evidence or v.verdict == "untested"
    return v


def test_every_claim_is_untested_without_runs():
    empty = pd.DataFrame(columns=list(_rows("x", "random", "coreset", 1, "hl", 1.0, 0.0)[0]))
    table = ledger_table(empty)
    assert list(table["claim"]) == claim_names() and len(table) == 24
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
    v = _verdict("R0", _frame(_duel_spec({1: 60.0, 10: 61.0})))
    assert (v.verdict, v.support, v.against) == ("holds", 2, 0)
    assert "dm minus herding +5." in v.evidence and "(n=5)" in v.evidence
    v = _verdict("R0", _frame(_duel_spec({1: 48.0, 10: 49.0})))
    assert (v.verdict, v.support, v.against) == ("fails", 0, 2)
    # a true +1 point with 3 points of seed noise: five seeds decide nothing
    v = _verdict("R0", _frame(_duel_spec({1: 56.0, 10: 56.0}), noise=3.0))
    assert (v.verdict, v.unclear) == ("unclear", 2)


def test_comparable_or_worse_under_each_protocol():
    spec = []
    for regime in ("hl", "slkd", "mt"):
        spec += _duel_spec({1: 50.0, 10: 50.2}, regime=regime)   # dm within the margin of herding (55)? no: below
    v = _verdict("R2", _frame(spec, noise=0.2))
    assert (v.verdict, v.support, v.against) == ("holds", 6, 0)
    assert "several teachers: 2 of 2 shown comparable or worse" in v.evidence
    better = []
    for regime in ("hl", "slkd", "mt"):
        better += _duel_spec({1: 62.0, 10: 62.0}, regime=regime)
    assert _verdict("R2", _frame(better)).verdict == "fails"
    assert _verdict("R2", _frame([s for s in better], noise=6.0)).verdict == "unclear"


def test_cad_against_fixed_difficulty_counts_wins_losses_and_ties():
    spec = []
    for budget, cad in ((1.0, 60.0), (4.0, 60.0), (8.0, 40.0)):
        spec += [("cad_vs_el2n", "cad_prune", "coreset", 10, "hl", budget, cad),
                 ("cad_vs_el2n", "el2n_easy", "coreset", 10, "hl", budget, 50.0),
                 ("cad_vs_el2n", "el2n_hard", "coreset", 10, "hl", budget, 45.0)]
    v = _verdict("H7", _frame(spec))
    assert (v.support, v.against, v.unclear) == (2, 1, 0)
    assert v.verdict == "partly"   # 2/3 support but one loss
    assert "2 wins, 1 losses, 0 ties" in v.evidence
    tie = [(c, m, f, i, r, b, 50.0) for c, m, f, i, r, b, _ in spec]
    v = _verdict("H7", _frame(tie, noise=0.2))
    assert (v.verdict, v.against) == ("fails", 3) and "3 ties" in v.evidence


def _hl_spec(gains_by_method, chapter="label_regimes", regime="hl", ipcs=(10,)):
    return [s for ipc in ipcs for s in [(chapter, "random", "coreset", ipc, regime, 2.0, 50.0)] + [
        (chapter, m, "coreset", ipc, regime, 2.0, 50.0 + g) for m, g in gains_by_method.items()]]


def test_hl_quality_coresets_beat_random():
    # H4 is the corrected c5: under hard labels good coresets *do* beat random
    v = _verdict("H4", _frame(_hl_spec({"el2n_easy": 6.0, "herding": 3.0}, ipcs=(1, 10))))
    assert (v.verdict, v.support) == ("holds", 2) and "el2n_easy - random +6." in v.evidence
    v = _verdict("H4", _frame(_hl_spec({"el2n_easy": 0.0, "herding": -0.2}, ipcs=(1, 10)), noise=0.2))
    assert (v.verdict, v.against) == ("fails", 2)
    assert _verdict("H4", _frame(_hl_spec({"el2n_easy": 1.0}, ipcs=(1, 10)), noise=4.0)).verdict == "unclear"


def test_soft_coresets_do_not_beat_random_needs_a_margin():
    v = _verdict("H2", _frame(_hl_spec({"el2n_easy": 0.0, "cad_prune": 0.1}, regime="sl"), noise=0.2))
    assert (v.verdict, v.support) == ("holds", 2)
    # the same means with 3 points of noise: no setting is shown either way, so "no evidence" is not support
    v = _verdict("H2", _frame(_hl_spec({"el2n_easy": 0.0, "cad_prune": 0.1}, regime="slkd"), noise=3.0))
    assert (v.verdict, v.support) == ("unclear", 0)
    v = _verdict("H2", _frame(_hl_spec({"el2n_easy": 6.0, "cad_prune": 7.0}, regime="sl"), noise=0.2))
    assert (v.verdict, v.against) == ("fails", 2) and "el2n_easy SL IPC 10 (+6." in v.evidence


def test_soft_labels_explain_the_gain_only_where_there_is_one():
    def spec(rded_sl, rand_sl=58.0):
        return [("teacher_based", "random", "coreset", 10, "hl", 2.0, 50.0),
                ("teacher_based", "random", "coreset", 10, "sl", 2.0, rand_sl),
                ("teacher_based", "rded", "distill", 10, "sl", 2.0, rded_sl)]
    v = _verdict("H11", _frame(spec(60.0)))
    # label part +8, image part +2: the labels explain more
    assert (v.verdict, v.support) == ("holds", 1)
    assert "rded SL IPC 10: gain +10." in v.evidence and "labels +8." in v.evidence
    assert _verdict("H11", _frame(spec(75.0))).verdict == "fails"
    assert _verdict("H11", _frame(spec(66.0), noise=4.0)).verdict == "unclear"
    # sre2l-like: labels +0.3, images -20: no gain over random HL, so nothing to explain (was support in c8)
    v = _verdict("H11", _frame(spec(30.3, rand_sl=50.3)))
    assert (v.verdict, v.n) == ("unclear", 0) and "no gain to explain" in v.evidence


def test_dd_beats_real_images():
    def frame(fixed, real, noise=0.5):
        rows = []
        for hp, acc in (({"init": "fixed"}, fixed), ({"init": "fixed", "images": "real", "lr_img": 0.0}, real)):
            rows += _rows("dd2018", "dd", "distill", 1, "hl", 1.0, acc, noise=noise, eval_lr="unrolled", hparams=hp)
        return pd.DataFrame(rows)
    assert _verdict("W3", frame(80.0, 60.0)).verdict == "holds"
    v = _verdict("W3", frame(65.2, 65.0, noise=0.2))     # within the 1-point margin: does not beat
    assert (v.verdict, v.against) == ("fails", 1)
    assert _verdict("W3", frame(67.0, 65.0, noise=4.0)).verdict == "unclear"


def test_two_seeds_decide_nothing():
    two = _frame(_duel_spec({1: 60.0, 10: 61.0}))
    v = _verdict("R0", two[two["seed"] < 2])
    assert (v.verdict, v.unclear) == ("unclear", 2) and "no interval" in v.evidence


def test_ledger_reads_every_registered_chapter_grid():
    led = Ledger.from_params("smoke")
    names = [ch for ch, _ in led.studies]
    assert names[:2] == ["label_regimes", "full_data"] and "teacher_based" in names and "convergence" in names
    assert names[-2:] == ["dd2018", "dd2018_full"]
    assert led.missing == ()
    assert all(r.endswith("runs") for r in led.describe()["runs"])
