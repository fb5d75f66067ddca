"""DCS: distillers' objectives as set scores; known answers on a toy pool, determinism, table shapes."""
import dataclasses
import json

import pandas as pd
import pytest
import torch

from ddlib.analysis import dcs
from ddlib.chapters.dcs import DCSStudy
from ddlib.chapters.studies import study
from ddlib.core.cost import Meter
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import generator, stream_seed
from ddlib.core.store import Store
from ddlib.data import Split
from ddlib.engine.models import create_model
from ddlib.methods import objectives as obj
from ddlib.methods.context import Context
from ddlib.methods.distill.dc import gradient_distance
from ddlib.methods.distill.dm import DSA_STRATEGY, dm_loss
from ddlib.run.measure import score_sets


@pytest.fixture(scope="module")
def toy(digits):
    """12 digits per class (120 images, 8x8): small enough that every objective runs in well under a second."""
    idx = torch.cat([digits.class_indices(c)[:12] for c in range(10)])
    meta = dataclasses.replace(digits.meta, fingerprint="toy-dcs-12")
    return Split(digits.train_x[idx], digits.train_y[idx], digits.val_x, digits.val_y, digits.test_x,
                 digits.test_y, meta)


@pytest.fixture
def ctx(smoke_profile, tmp_path):
    # a 1-epoch teacher is enough for the BN objective's tests
    return Context(dataclasses.replace(smoke_profile, teacher_epochs=1), Store(tmp_path), Meter(), quiet=True)


def _subset(toy, per_class, offset=0):
    idx = torch.cat([toy.class_indices(c)[offset:offset + per_class] for c in range(10)])
    return toy.train_x[idx], toy.train_y[idx]


def test_dm_objective_is_zero_for_the_pool_itself_and_grows_with_shuffled_labels(toy, ctx):
    same = obj.dm_objective(toy, toy.train_x, toy.train_y, seed=0, ctx=ctx)
    assert same == pytest.approx(0.0, abs=1e-8)
    shuffled = toy.train_y[torch.randperm(len(toy.train_y), generator=torch.Generator().manual_seed(0))]
    wrong = obj.dm_objective(toy, toy.train_x, shuffled, seed=0, ctx=ctx)
    sub = obj.dm_objective(toy, *_subset(toy, 2), seed=0, ctx=ctx)
    assert wrong > sub > same


def test_dm_objective_equals_the_distillers_loss_with_the_whole_pool(toy, ctx):
    """One network: the wrapper is DM's Eq. 4 (ddlib.methods.distill.dm.dm_loss) with R = the whole pool."""
    x, y = _subset(toy, 3)
    got = obj.dm_objective(toy, x, y, seed=5, ctx=ctx, n_nets=1)
    m = toy.meta
    net = create_model(ctx.profile.synth_model, 10, m.in_chans, m.img_size,
                       seed=stream_seed(5, "dcs-dm-net-0")).train()
    import ddlib.engine.augment as aug
    params = aug.draw_mixed(aug.resolve(DSA_STRATEGY, m.name), 10, generator(5, "dcs-dm-aug-0"), m.img_size)
    with torch.no_grad():
        want = float(dm_loss(net, toy.train_x, toy.train_y, x, y, 10, params))
    assert got == pytest.approx(want, rel=1e-5)


def test_soft_labels_are_scored_by_their_argmax(toy, ctx):
    x, y = _subset(toy, 2)
    soft = torch.nn.functional.one_hot(y, 10).float() * 0.7 + 0.03
    for name in ("dm", "dc"):
        f = obj.OBJECTIVES.get(name)
        assert f(toy, x, soft, seed=0, ctx=ctx) == f(toy, x, y, seed=0, ctx=ctx)


def test_dc_distance_is_zero_for_identical_gradients_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(8, 3, 3, 3, generator=g), torch.randn(8, generator=g), torch.randn(10, 32, generator=g)]
    assert float(gradient_distance(a, [t.clone() for t in a])) == pytest.approx(0.0, abs=1e-5)
    assert float(gradient_distance(a, [-t for t in a])) == pytest.approx(2 * (8 + 10), rel=1e-5)


def test_dc_objective_zero_for_the_pool_and_larger_for_shuffled_labels(toy, ctx):
    # not exactly 0: DC's eps in the cosine's denominator counts near-zero gradient rows
    same = obj.dc_objective(toy, toy.train_x, toy.train_y, seed=0, ctx=ctx, n_nets=2)
    shuffled = toy.train_y[torch.randperm(len(toy.train_y), generator=torch.Generator().manual_seed(0))]
    wrong = obj.dc_objective(toy, toy.train_x, shuffled, seed=0, ctx=ctx, n_nets=2)
    sub = obj.dc_objective(toy, *_subset(toy, 2), seed=0, ctx=ctx, n_nets=2)
    assert 0 <= same < 0.01 * sub and wrong > sub


@pytest.mark.parametrize("name", ["dm", "dc", "mtt"])
def test_objectives_are_deterministic_for_a_seed(toy, ctx, name):
    x, y = _subset(toy, 2, offset=3)
    f = obj.OBJECTIVES.get(name)
    cache = obj.ReferenceCache()
    first = f(toy, x, y, seed=1, ctx=ctx, cache=cache)
    assert cache.entries  # the real-data side was kept for the next set
    assert f(toy, x, y, seed=1, ctx=ctx, cache=cache) == first
    # recomputed from scratch: the same real statistics, networks and draws
    assert f(toy, x, y, seed=1, ctx=ctx, cache=obj.ReferenceCache()) == first
    assert f(toy, x, y, seed=2, ctx=ctx, cache=cache) != first


def test_mtt_objective_is_one_without_a_step_and_the_best_of_its_step_sizes(toy, ctx):
    x, y = _subset(toy, 5)
    assert obj.mtt_objective(toy, x, y, seed=0, ctx=ctx, lrs=[0.0]) == pytest.approx(1.0, abs=1e-6)
    each = [obj.mtt_objective(toy, x, y, seed=0, ctx=ctx, lrs=[lr]) for lr in (0.001, 0.004)]
    assert obj.mtt_objective(toy, x, y, seed=0, ctx=ctx, lrs=[0.001, 0.004]) == min(each)
    assert each[0] != each[1]


def test_mtt_objective_reuses_the_distillers_cached_experts(toy, ctx):
    x, y = _subset(toy, 1)
    obj.mtt_objective(toy, x, y, seed=0, ctx=ctx)
    assert len(list(ctx.store.artifact_keys("experts"))) == 1
    obj.mtt_objective(toy, x, y, seed=0, ctx=ctx, arch="convnet_d3w32_bn")  # a second architecture
    assert len(list(ctx.store.artifact_keys("experts"))) == 2


def test_sre2l_objective_prefers_real_images_to_noise(toy, ctx):
    x, y = _subset(toy, 4)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * 3
    real = obj.sre2l_objective(toy, x, y, seed=0, ctx=ctx)
    assert 0 < real < obj.sre2l_objective(toy, noise, y, seed=0, ctx=ctx)


def test_probe_parsing_and_labels(smoke_profile):
    assert obj.Probe.parse("mtt:convnet") == obj.Probe("mtt", "convnet")
    assert obj.Probe.parse("dm").label(smoke_profile) == f"dm ({smoke_profile.synth_model})"
    assert obj.Probe.parse("sre2l").label(smoke_profile) == "sre2l (convnet_d3w32_bn)"
    with pytest.raises(DDLibError, match="unknown DCS objective 'kip'.*dc, dm, mtt, sre2l"):
        obj.Probe.parse("kip")
    with pytest.raises(DDLibError, match="unknown model"):
        obj.Probe.parse("mtt:lenet9")


def _scores():
    rows = []
    for probe, sign in (("dm (a)", -1), ("dc (a)", 1)):
        for ipc in (1, 10):
            for i in range(8):
                rows.append({"probe": probe, "method": "random", "kind": "random subset", "ipc": ipc,
                             "seed": i, "accuracy": 50.0 + i + ipc, "value": sign * float(i)})
    return pd.DataFrame(rows)


def test_correlation_table_has_one_row_per_probe_and_one_column_per_ipc():
    corr = dcs.correlations(_scores(), n_boot=200)
    assert corr.shape[0] == 4 and set(corr["sets"]) == {8}
    dm = corr[corr["probe"] == "dm (a)"]
    assert (dm["rho"] == -1.0).all() and dm["predicts"].all()  # lower loss, higher accuracy: predicts
    dc = corr[corr["probe"] == "dc (a)"]
    assert not dc["predicts"].any() and dc["inverse"].all()  # the wrong sign never "predicts"
    table = dcs.objective_table(corr)
    assert table.shape == (2, 2) and list(table.columns) == ["IPC 1", "IPC 10"]
    assert table.loc["dm (a)", "IPC 1"].startswith("-1.00 [")
    text = dcs.sentences(corr)
    # rho = +1 with its interval above 0 is a prediction the wrong way round, never "does not predict"
    assert "**dm (a)** predicts accuracy at IPC 1" in text
    assert "**dc (a)** ranks the sets the wrong way round at IPC 1" in text and "does not predict" not in text
    flat = corr.assign(rho=0.1, ci_low=-0.3, ci_high=0.5, predicts=False, inverse=False)
    assert dcs.sentences(flat).count("does not predict accuracy") == 4


def test_score_sets_reads_stored_sets_and_caches_values(digits, home, monkeypatch):
    from ddlib.core.config import RunConfig
    from ddlib.methods.build import build_key
    from ddlib.run.runner import validate

    rows = []
    for seed in (0, 1):
        cfg = validate(RunConfig("digits", "random", 1, "hl", 2.0, seed, "smoke"))
        idx = torch.cat([digits.class_indices(c)[seed:seed + 1] for c in range(10)])
        home.save_artifact("condensed", build_key(cfg), {"images": digits.train_x[idx], "labels": digits.train_y[idx]})
        rows.append({"key": f"k{seed}", "profile": "smoke", "dataset": "digits", "method": "random",
                     "family": "coreset", "ipc": 1, "seed": seed, "accuracy": 0.5 + seed / 10,
                     "config_json": json.dumps(cfg.as_dict())})
    frame = pd.DataFrame(rows)
    first = score_sets(frame, ["dm"], store=home)
    assert list(first["probe"]) == ["dm (convnet_d3w16_bn)"] * 2 and first["value"].nunique() == 2
    monkeypatch.setitem(obj.OBJECTIVES._items, "dm", lambda *a, **k: pytest.fail("not read from the store"))
    pd.testing.assert_frame_equal(score_sets(frame, ["dm"], store=home), first)


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_dcs_study_scores_chapter_three_and_two_sets_plus_random_subsets(profile):
    s = DCSStudy.from_params(profile=profile)
    main, scored, extra = s.sets
    assert main.regimes == scored.regimes == extra.regimes == ("hl",)
    assert main.budgets == scored.budgets == extra.budgets and len(main.budgets) == 1
    assert main.ipcs == scored.ipcs == extra.ipcs and main.seeds == scored.seeds
    assert not set(main.seeds) & set(extra.seeds)
    assert set(scored.methods) == {"cad_prune", "el2n_easy", "el2n_hard"}
    assert extra.methods == ("random",) and "mtt" in s.probes
    assert {"objectives", "chapter-2 methods"} <= set(s.describe().index)
    # chapter 2's sets are the very runs its cad_vs_el2n grid trains (same keys: nothing trained twice)
    ch2 = {c.key() for c in study("cad_vs_el2n", profile, ipcs=main.ipcs, seeds=main.seeds).configs()}
    assert {c.key() for c in scored.configs()} <= ch2
