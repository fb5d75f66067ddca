"""A run in three parts (ddlib.run.runner: prepare -> fit_plan -> finish) and many runs at once (ddlib.run.many)."""
from __future__ import annotations

import logging
from collections import Counter

import pytest
import torch

import ddlib.run.many
import ddlib.run.runner as runner
from ddlib.core.config import PROFILES, RunConfig
from ddlib.core.store import Store
from ddlib.run.study import Study

# what two computations of one run may differ in: wall times and the moment
VARYING = ("train_seconds", "created")


@pytest.fixture
def fast_smoke(fast_teacher_profile, monkeypatch):
    """RunConfigs naming ``smoke`` get the 1-epoch-teacher profile (no 40-epoch teachers in tests)."""
    monkeypatch.setitem(PROFILES._items, "smoke", fast_teacher_profile)
    return fast_teacher_profile


def _shared_artifacts(tmp_path, *names):
    """Stores with their own rows but one artifact cache (the set and teachers are built once)."""
    stores = [Store(tmp_path / n) for n in names]
    (tmp_path / "artifacts").mkdir()
    for n in names:
        (tmp_path / n / "artifacts").symlink_to(tmp_path / "artifacts")
    return stores


def test_prepare_fit_finish_is_run(tmp_path, fast_smoke):
    cfg = RunConfig("digits", "random", 10, "slkd", 0.2, 1, "smoke")
    one, parts = _shared_artifacts(tmp_path, "one", "parts")
    row, reused = runner.run(cfg, one)
    assert not reused
    plan = runner.prepare(cfg, parts)
    assert plan.key == cfg.key() and plan.r == runner.validate(cfg) and len(plan.teachers) == 1
    assert parts.get(cfg.key()) is None  # prepare stores no row
    row2 = runner.finish(plan, runner.fit_plan(plan))
    assert parts.get(cfg.key()) is not None
    assert {k: v for k, v in row.items() if k not in VARYING} == \
        {k: v for k, v in row2.items() if k not in VARYING}
    assert runner.run(cfg, parts) == (parts.get(cfg.key()), True)  # now stored: reused, not recomputed


@pytest.mark.parametrize("cpu_threads", [True, False])
def test_study_prepares_every_missing_run_once(tmp_path, fast_smoke, monkeypatch, caplog, cpu_threads):
    """run_many prepares, trains and finishes each run once (no run replayed); the one-by-one
    loop does only what run_many left (slkd_stored); the study's counts are the real ones."""
    monkeypatch.setattr(ddlib.run.many, "CPU_THREADS", cpu_threads)  # False: fit_many on CPU too
    prepared, real = Counter(), runner.prepare
    monkeypatch.setattr(runner, "prepare", lambda cfg, *a, **k: prepared.update([cfg.regime]) or real(cfg, *a, **k))
    keys = Counter()
    real_finish = runner.finish
    monkeypatch.setattr(runner, "finish", lambda plan, res, acc=None: keys.update([plan.key]) or real_finish(plan, res, acc))
    s = Study.from_params("smoke", methods=["random"], ipcs=[10], regimes=["hl", "slkd_stored"], budgets=[0.2],
                          seeds=[0, 1])
    store = Store(tmp_path / "h")
    with caplog.at_level(logging.INFO, logger="ddlib"):
        df = s.run(store, quiet=True, batch_seeds=True)
    assert len(df) == 4
    assert prepared == {"hl": 2, "slkd_stored": 2}  # each run prepared once: no second call
    assert sorted(keys.values()) == [1, 1, 1, 1] and set(keys) == {c.key() for c in s.configs()}
    assert "study: 4 computed, 0 reused" in caplog.text
    # the seed pair of hl trained together (fit_many: one group time; CPU threads: each fit's own share);
    # slkd_stored one by one
    hl = df[df["regime"] == "hl"]
    assert hl["train_seconds"].nunique() == 1 if not cpu_threads else (hl["train_seconds"] > 0).all()
    assert set(hl["engine"]) == {"vmap"} if not cpu_threads else "vmap" not in set(hl["engine"])
    caplog.clear()
    prepared.clear()
    with caplog.at_level(logging.INFO, logger="ddlib"):
        s.run(store, quiet=True, batch_seeds=True)
    assert not prepared and "study: 0 computed, 4 reused" in caplog.text


def test_threads_take_every_missing_run_longest_budget_first(tmp_path, monkeypatch):
    """On CPU, the missing runs go to one streamed pool, longest budget first; duplicates count once and
    stored runs are skipped."""
    monkeypatch.setattr(ddlib.run.many, "CPU_THREADS", True)
    monkeypatch.setattr(ddlib.run.many, "pick_device", lambda *a: torch.device("cpu"))
    calls = []
    monkeypatch.setattr(ddlib.run.many, "_train_threads",
                        lambda cfgs, store, quiet, settings: calls.append([c.budget for c in cfgs]) or len(cfgs))
    s = Study.from_params("smoke", methods=["random"], ipcs=[10], regimes=["hl"], budgets=[0.2, 0.6, 0.4],
                          seeds=[0])
    store = Store(tmp_path / "h")
    assert ddlib.run.many.run_many(s.configs() + s.configs(), store) == 3  # duplicates count once
    assert calls == [[0.6, 0.4, 0.2]]


def test_a_grid_worth_compiling_shares_one_compiled_engine(tmp_path, monkeypatch):
    """On CPU, past COMPILE_MIN_TFLOP of the grid's sliced training work (here lowered to 0) every fit
    shares one compiled Engine, and the rows say they ran compiled."""
    import ddlib.engine.fastpath as fp
    monkeypatch.setattr(ddlib.run.many, "CPU_THREADS", True)
    monkeypatch.setattr(ddlib.run.many, "pick_device", lambda *a: torch.device("cpu"))
    monkeypatch.setattr(fp, "COMPILE_MIN_TFLOP", 0.0)
    engines = []
    monkeypatch.setattr(ddlib.run.many, "_fit_and_score", lambda job: engines.append(job[1].engine) or (
        ddlib.engine.train.FitResult(1, 1, 0.0, 0.0, "compiled/mb32"), (0.5, 0.5)))
    monkeypatch.setattr(ddlib.run.many.runner, "finish", lambda plan, res, acc=None: None)
    s = Study.from_params("smoke", methods=["random"], ipcs=[10], regimes=["hl"], budgets=[0.2], seeds=[0, 1, 2])
    assert ddlib.run.many.run_many(s.configs(), Store(tmp_path / "h")) == 3
    assert len(engines) == 3 and engines[0] is engines[1] is engines[2] and engines[0].mode == "compiled"
    assert fp.group_engine("auto", 1.0) is not None and fp.group_engine("eager", 1e30) is None
    monkeypatch.setattr(fp, "COMPILE_MIN_TFLOP", 3.0)
    assert fp.group_engine("auto", 2.9e12) is None and fp.group_engine("auto", 3.0e12).mode == "compiled"


def test_threads_store_rows_in_grid_order_whatever_order_the_fits_end(tmp_path, monkeypatch):
    """The store gets the runs in the grid's order (analyses must not depend on which fit ended first),
    and a failing fit leaves every run that ended stored."""
    import time as _time
    monkeypatch.setattr(ddlib.run.many, "CPU_THREADS", True)
    monkeypatch.setattr(ddlib.run.many, "pick_device", lambda *a: torch.device("cpu"))
    fake = ddlib.engine.train.FitResult(1, 1, 0.0, 0.0, "eager")

    def fit_and_score(job):
        seed = job[0].r.seed
        _time.sleep(0.3 if seed == 0 else 0.0)  # the first run ends last
        if seed == 3:
            raise RuntimeError("boom")
        return fake, (0.5, 0.5)

    monkeypatch.setattr(ddlib.run.many, "_fit_and_score", fit_and_score)
    stored = []
    monkeypatch.setattr(ddlib.run.many.runner, "finish", lambda plan, res, acc=None: stored.append(plan.r.seed))
    s = Study.from_params("smoke", methods=["random"], ipcs=[10], regimes=["hl"], budgets=[0.2], seeds=[0, 1, 2])
    assert ddlib.run.many.run_many(s.configs(), Store(tmp_path / "h")) == 3
    assert stored == [0, 1, 2]
    stored.clear()
    s4 = Study.from_params("smoke", methods=["random"], ipcs=[10], regimes=["hl"], budgets=[0.2], seeds=[0, 1, 2, 3])
    with pytest.raises(RuntimeError, match="boom"):
        ddlib.run.many.run_many(s4.configs(), Store(tmp_path / "h4"))
    assert stored == [0, 1, 2]  # seed 0 was still running when seed 3 failed: it ends and is kept
