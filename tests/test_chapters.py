"""The book's per-chapter grids: valid on every profile, shared budgets, honest run counts."""
import pytest

from ddlib.chapters.grids import CHAPTERS, chapter_grid, chapters_table
from ddlib.core.registry import DDLibError
from ddlib.run.study import Study


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
        s = Study.from_params(profile=profile, chapter=ch)
        assert len(s.configs()) == table.loc[ch, profile]
        # a parameter the notebook sets wins over the chapter's grid
        assert Study.from_params(profile=profile, chapter=ch, seeds=[7]).seeds == (7,)


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_chapter_two_and_three_share_their_budget(profile):
    """Chapter 3's budget is one of chapter 2's, so their HL runs are computed once."""
    b3 = set(chapter_grid("distilled_vs_coresets", profile)["budgets"])
    for ch in ("label_regimes", "cad_vs_el2n", "convergence"):
        assert b3 <= set(chapter_grid(ch, profile)["budgets"]), ch
    shared = set(Study.from_params(profile=profile, chapter="label_regimes").configs()) & \
        set(Study.from_params(profile=profile, chapter="distilled_vs_coresets").configs())
    assert shared, "no run is shared between chapters 2 and 3"


def test_full_data_study_keeps_every_image():
    s = Study.from_params(profile="smoke", chapter="label_regimes").full_data()
    assert s.methods == ("random",) and s.regimes == ("hl",)
    from ddlib.run.study import full_pool_ipc
    assert s.ipcs == (full_pool_ipc("smoke"),)
