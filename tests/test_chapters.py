"""The book's per-chapter grids: valid on every profile, shared budgets, honest run counts."""
import pytest

from ddlib.chapters import dd2018_engine_studies, dd2018_studies, study
from ddlib.chapters.grids import CHAPTERS, chapter_grid
from ddlib.chapters.studies import chapters_table
from ddlib.core.config import PROFILES
from ddlib.core.registry import DDLibError
from ddlib.run.study import Study, full_pool_ipc


def test_unknown_chapter_or_profile_is_one_clear_error():
    with pytest.raises(DDLibError, match="unknown chapter 'nope'.*label_regimes"):
        chapter_grid("nope", "smoke")
    CHAPTERS.add("_probe", {"smoke": {}})
    try:
        with pytest.raises(DDLibError, match="no grid for profile 'default'; it has: smoke"):
            chapter_grid("_probe", "default")
    finally:
        CHAPTERS._items.pop("_probe")


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_every_chapter_grid_validates_and_counts_its_runs(profile):
    table = chapters_table()
    for ch in CHAPTERS.names():
        if profile not in CHAPTERS.get(ch):
            continue
        s = study(ch, profile)
        if ch == "dd2018":  # chapter 6 trains its replayed sets and the same sets under the standard engine
            expected = sum(len(x.configs()) for x in dd2018_studies(profile) + dd2018_engine_studies(profile))
        else:  # the product of the grid's lists, the profile's own where the grid names none
            g, p = CHAPTERS.get(ch)[profile], PROFILES.get(profile)
            expected = len(g.get("models") or (p.model,))
            for f in ("methods", "ipcs", "regimes", "budgets", "seeds"):
                expected *= len(g.get(f) or getattr(p, f))
        assert len(s.configs()) == expected or ch == "dd2018", ch
        assert table.loc[ch, profile] == expected, ch
        # a parameter the notebook sets wins over the chapter's grid
        assert study(ch, profile, seeds=[7]).seeds == (7,)


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_chapter_two_and_three_share_their_budget(profile):
    """Chapter 3's budget is one of chapter 2's, so their HL runs are computed once."""
    b3 = set(chapter_grid("distilled_vs_coresets", profile)["budgets"])
    for ch in ("label_regimes", "cad_vs_el2n", "convergence"):
        assert b3 <= set(chapter_grid(ch, profile)["budgets"]), ch
    shared = set(study("label_regimes", profile).configs()) & \
        set(study("distilled_vs_coresets", profile).configs())
    assert shared, "no run is shared between chapters 2 and 3"


def test_full_data_study_keeps_every_image():
    s = study("label_regimes", "smoke").full_data()
    assert s.methods == ("random",) and s.regimes == ("hl",)
    assert s.ipcs == (full_pool_ipc("smoke"),)


def test_a_chapter_study_fills_the_grid_then_the_profile():
    g = chapter_grid("label_regimes", "smoke")
    s = study("label_regimes", "smoke", ipcs=[5])
    assert (s.methods, s.regimes, s.budgets, s.ipcs) == (g["methods"], g["regimes"], g["budgets"], (5,))
    assert s == Study.from_params(profile="smoke", methods=g["methods"], ipcs=[5], regimes=g["regimes"],
                                  budgets=g["budgets"], seeds=g["seeds"])
    # a grid without seeds falls back to the profile's; its dataset is the grid's
    dd = study("dd2018", "smoke")
    assert dd.seeds == Study.from_params(profile="smoke").seeds and dd.dataset == "mnist5k"


def test_dd2018_studies_replay_the_grids_first_budget():
    """Chapter 6's notebook and the claims ledger read the same replayed sets."""
    studies = dd2018_studies("smoke")
    assert len(studies) == 4 and {s.eval_lr for s in studies} == {"unrolled"}
    assert {s.budgets for s in studies} == {(1.0,)} and {s.methods for s in studies} == {("dd",)}
    assert [dict(s.hparams)["init"] for s in studies] == ["fixed", "random", "fixed", "fixed"]
    # the baselines (images frozen, only their steps learnt): k-means only above IPC 1, where it is not the mean
    assert [dict(s.hparams).get("images") for s in studies] == [None, None, "real", "mean"]
    wider = dd2018_studies("smoke", ipcs=[1, 10])
    assert [dict(s.hparams).get("images") for s in wider][-1] == "kmeans" and wider[-1].ipcs == (10,)
    assert {dict(s.hparams).get("lr_img") for s in wider[2:]} == {0.0}
    assert dd2018_studies("smoke", seeds=[4])[0].seeds == (4,)
