"""Known answers for the score-based and geometric coresets (k-center, EL2N,
forgetting, CCS, CAD-Prune) and the score cache."""
import dataclasses
import itertools
import math

import pytest
import torch

import ddlib.engine.train
from ddlib.core.config import PROTOCOLS, RunConfig
from ddlib.core.cost import Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.methods.build import build_key, uses_budget
from ddlib.methods.context import Context
from ddlib.methods.coresets import cad_prune as cad
from ddlib.methods.coresets import select
from ddlib.methods.coresets.ccs import ccs_select, default_beta, stratify
from ddlib.methods.coresets.kcenter import kcenter_greedy
from ddlib.methods.coresets.scores import EL2N_AT, el2n, forgetting_counts, get_scores


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny CPU networks run fastest on one thread (2-thread OpenMP stalls when the cores are
    shared with other processes, ~50x slower here); restored after each test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ctx(profile, store, budget=None):
    return Context(profile, store, Meter(), quiet=True, budget=budget)


# -- k-center greedy ---------------------------------------------------------------
def _radius(x, centres):
    return float(torch.cdist(x, x[list(centres)]).min(1).values.max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kcenter_greedy_is_a_2_approximation(seed):
    x = torch.rand(12, 2, generator=torch.Generator().manual_seed(seed))
    opt = min(_radius(x, c) for c in itertools.combinations(range(12), 3))
    for first in range(12):
        picks = kcenter_greedy(x, 3, first)
        assert picks.dtype == torch.long and picks.shape == (3,) and int(picks[0]) == first
        assert len(set(picks.tolist())) == 3
        assert _radius(x, picks.tolist()) <= 2 * opt + 1e-6


def test_kcenter_greedy_picks_the_farthest_point():
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [4.0]])
    assert kcenter_greedy(x, 3, 0).tolist() == [0, 3, 4]  # 10 is farthest from 0; then 4 (d=4)
    # duplicates: all distinct indices even when distances tie at zero
    assert sorted(kcenter_greedy(torch.zeros(5, 2), 5, 2).tolist()) == list(range(5))


# -- EL2N ---------------------------------------------------------------------------
def test_el2n_formula():
    k = 4
    y = torch.tensor([0, 1, 2])
    logits = torch.tensor([[50.0, 0, 0, 0],   # confidently right -> 0
                           [0.0, 0, 0, 0],    # uniform
                           [50.0, 0, 0, 0]])  # confidently wrong -> sqrt(2)
    s = el2n(logits, y)
    assert s.shape == (3,)
    assert s[0] == pytest.approx(0.0, abs=1e-6)
    assert s[1] == pytest.approx(math.sqrt((1 - 1 / k) ** 2 + (k - 1) / k ** 2))
    assert s[2] == pytest.approx(math.sqrt(2), abs=1e-6)


def test_el2n_ranks_flipped_labels_hardest(digits, smoke_profile, tmp_path):
    g = torch.Generator().manual_seed(0)
    flip = torch.randperm(len(digits.train_y), generator=g)[:10]
    y = digits.train_y.clone()
    y[flip] = (y[flip] + 1 + torch.randint(9, (10,), generator=g)) % 10
    noisy = dataclasses.replace(digits, train_y=y)
    # a 40-epoch run scored a tenth of the way in (4 epochs), as Data Diet's epoch 20 of 200
    s = get_scores("el2n", noisy, _ctx(smoke_profile, Store(tmp_path)), seed=0, epochs=40, n_models=2)
    assert s.shape == (len(y),) and torch.isfinite(s).all()
    top_decile = s >= s.quantile(0.9)
    assert int(top_decile[flip].sum()) >= 8
    rank = s.argsort().argsort().float() / (len(s) - 1)
    assert float(rank[flip].mean()) > 0.9


# -- forgetting ---------------------------------------------------------------------
def test_forgetting_counts_scripted_history():
    T, F = True, False
    hist = torch.tensor([
        [T, F, T, F, T],
        [T, F, T, T, F],
        [F, F, T, F, F],
        [T, F, T, T, F],
        [F, F, T, F, F],
    ])  # one column per example, one row per record
    counts = forgetting_counts(hist)
    assert counts.dtype == torch.long and counts.shape == (5,)
    assert counts[0] == 2          # T,T,F,T,F
    assert counts[1] == 5          # never learned -> T records (the maximum)
    assert counts[2] == 0          # always correct
    assert counts[3] == 2          # F,T,F,T,F
    assert counts[4] == 1          # T,F,F,F,F: learned once, forgotten once
    assert int(counts[1]) > int(counts[[0, 2, 3, 4]].max())


def test_forgetting_counts_single_record():
    assert forgetting_counts(torch.tensor([[True, False]])).tolist() == [0, 1]


# -- CCS ------------------------------------------------------------------------------
def test_ccs_never_keeps_the_pruned_hard_tail():
    scores = torch.randperm(200, generator=torch.Generator().manual_seed(0)).float()
    for k, beta in [(10, 0.1), (50, 0.3), (150, 0.2)]:
        picks = ccs_select(scores, k, beta, 50, torch.Generator().manual_seed(1))
        assert len(picks) == k and len(set(picks.tolist())) == k
        assert float(scores[picks].max()) < 200 - int(beta * 200)  # hardest beta*n never kept


def test_ccs_cutoff_is_capped_to_leave_k():
    scores = torch.arange(20.0)
    picks = ccs_select(scores, 19, 0.5, 5, torch.Generator().manual_seed(0))
    assert sorted(picks.tolist()) == list(range(19))  # only the single hardest dropped


def test_ccs_draws_from_every_nonempty_stratum():
    g = torch.Generator().manual_seed(3)
    scores = torch.cat([torch.rand(300, generator=g) ** 3, torch.tensor([5.0])])  # skewed, sparse top
    strata, beta = 10, 0.0
    bins = stratify(scores, strata)
    nonempty = set(bins.tolist())
    assert len(nonempty) < strata  # some strata are empty
    for k in (strata, 25, 60):
        picks = ccs_select(scores, k, beta, strata, torch.Generator().manual_seed(k))
        assert set(bins[picks].tolist()) == nonempty
        assert len(set(picks.tolist())) == k


def test_ccs_allocation_known_answer():
    # strata sizes 1, 2, 10 (bins of width 1 over [0, 3)); k = 6:
    # smallest first: min(1, 6 // 3) = 1, min(2, 5 // 2) = 2, min(10, 3 // 1) = 3
    scores = torch.tensor([0.0] * 10 + [1.5] * 2 + [3.0])
    picks = ccs_select(scores, 6, 0.0, 3, torch.Generator().manual_seed(0))
    assert torch.bincount(stratify(scores, 3)[picks], minlength=3).tolist() == [3, 2, 1]


def test_ccs_default_beta_rule():
    assert default_beta(0.5) == pytest.approx(0.1)
    assert default_beta(0.8) == pytest.approx(0.2)
    assert default_beta(0.9) == pytest.approx(0.3)
    assert default_beta(0.999) == pytest.approx(0.3)


# -- CAD-Prune ---------------------------------------------------------------------------
def test_cad_target_is_monotone_and_clipped():
    es = [0, 1, 10, 100, 1000, 10000, 1e6]
    ts = [cad.cad_target(e) for e in es]
    assert ts == sorted(ts) and ts[0] == pytest.approx(0.1) and ts[-1] == pytest.approx(0.9)
    assert ts[2] < ts[3] < ts[4]
    assert cad.cad_target(10000) == pytest.approx(0.9)
    assert cad.cad_target(10, e0=10, e_max=10) == pytest.approx(0.9)
    assert cad.passes_per_sample(10, 1000, 10, 10) == pytest.approx(100)


def test_cad_selection_gets_harder_with_budget():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(500, generator=g)
    q = cad.difficulty_quantiles(scores)
    assert float(q.min()) == 0.0 and float(q.max()) == 1.0
    means = []
    for budget in (0.5, 5.0, 50.0, 5000.0):
        t = cad.cad_target(cad.passes_per_sample(budget, 5000, 10, 10))
        picks = cad.cad_select(q, 10, t, torch.Generator().manual_seed(1))
        assert len(set(picks.tolist())) == 10
        assert float((q[picks] - t).abs().max()) <= 10 / 500  # the 10 nearest
        means.append(float(scores[picks].mean()))
    assert means == sorted(means) and means[-1] > means[0] + 0.3


def test_cad_band_and_ties():
    q = cad.difficulty_quantiles(torch.tensor([1.0, 1.0, 2.0, 3.0]))
    assert q.tolist() == pytest.approx([1 / 6, 1 / 6, 2 / 3, 1.0])  # mid-ranks
    q = torch.linspace(0, 1, 101)
    picks = cad.cad_select(q, 5, 0.5, torch.Generator().manual_seed(0), width=0.2)
    assert ((q[picks] - 0.5).abs() <= 0.1 + 1e-6).all()
    narrow = cad.cad_select(q, 5, 0.5, torch.Generator().manual_seed(0), width=0.01)
    assert sorted(narrow.tolist()) == [48, 49, 50, 51, 52]  # band too small -> nearest 5


def test_cad_prune_selector_follows_the_budget(digits, smoke_profile, tmp_path, monkeypatch):
    assert uses_budget("cad_prune") and not uses_budget("random")
    a = RunConfig("digits", "cad_prune", 10, "hl", 2.0, 0, "smoke").resolved()
    assert build_key(a) != build_key(dataclasses.replace(a, budget=20.0))
    r = RunConfig("digits", "random", 10, "hl", 2.0, 0, "smoke").resolved()
    assert build_key(r) == build_key(dataclasses.replace(r, budget=20.0))
    synthetic = torch.rand(len(digits.train_y), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(cad, "selector_scores", lambda kind, train, ctx, seed, hp: (synthetic, hp))
    store, means = Store(tmp_path), []
    for budget in (0.1, 1000.0):
        sel = select("cad_prune", digits, 3, seed=0, ctx=_ctx(smoke_profile, store, budget))
        assert torch.bincount(digits.train_y[sel.indices], minlength=10).tolist() == [3] * 10
        means.append(float(synthetic[sel.indices].mean()))
    assert means[1] > means[0] + 0.3
    with pytest.raises(DDLibError, match="t_mn"):
        select("cad_prune", digits, 3, seed=0, ctx=_ctx(smoke_profile, store, 1.0), t_mn=0.2)


# -- score cache ---------------------------------------------------------------------
def test_scores_are_cached_and_still_charged(digits, smoke_profile, tmp_path, monkeypatch):
    store = Store(tmp_path)
    cfg = dict(epochs=1, n_models=1)
    with Meter() as m1:
        ctx = _ctx(smoke_profile, store)
        ctx.meter = m1
        first = get_scores("el2n", digits, ctx, seed=0, **cfg)
    assert len(list(store.artifact_keys("scores"))) == 1
    # EL2N's run of 1 epoch stops a tenth of the way in: ~ EL2N_AT of the pool, to a batch
    batch = PROTOCOLS.get(smoke_profile.protocol).batch_size
    assert abs(m1.extra.bwd - EL2N_AT * len(digits.train_y)) <= batch and m1.extra.seconds > 0

    def boom(*a, **k):
        raise AssertionError("scores were recomputed instead of loaded")

    monkeypatch.setattr(ddlib.engine.train, "fit", boom)
    with Meter() as m2:
        ctx = _ctx(smoke_profile, store)
        ctx.meter = m2
        again = get_scores("el2n", digits, ctx, seed=0, **cfg)
    assert torch.equal(first, again)
    assert m2.extra == m1.extra  # the same recorded cost is charged on a hit
    assert m2.cost.bwd == m1.cost.bwd and m2.cost.fwd == m1.cost.fwd
    # another seed is another cache entry (and would train: fit is patched to raise)
    with pytest.raises(AssertionError, match="recomputed"):
        get_scores("el2n", digits, _ctx(smoke_profile, store), seed=1, **cfg)
    with pytest.raises(DDLibError, match="unknown score kind"):
        get_scores("aum", digits, _ctx(smoke_profile, store), seed=0)
    with pytest.raises(DDLibError, match="epoch"):
        get_scores("el2n", digits, _ctx(smoke_profile, store), seed=0, epoch=3)
