"""``python -m ddlib check``: every chapter grid resolves on every profile; every method builds at a profile's shapes."""
from __future__ import annotations

import os

import pytest

import ddlib
from ddlib.__main__ import CHECK
from ddlib.chapters import check
from ddlib.chapters.check import check_profile, quick_profile, resolve_grids, synthetic_split
from ddlib.core.config import PROFILES
from ddlib.engine.models import MODELS
from ddlib.run import cli


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_every_chapter_grid_resolves(profile):
    plan = resolve_grids(profile)
    assert plan.studies >= 9
    dd_data = "mnist" if profile == "paper" else "mnist5k"  # chapter 6 on the paper's full MNIST on paper
    assert plan.methods[dd_data] == {"dd": 1}
    assert "hl" in plan.regimes[PROFILES.get(profile).dataset]


def test_paper_probe_of_chapter_8_is_wider_than_its_matching_network():
    width = dict(MODELS.get("convnet_d3w256").kwargs)["width"]
    assert width > dict(MODELS.get(PROFILES.get("paper").synth_model).kwargs)["width"]


def test_quick_profile_keeps_shapes_and_shortens_trainings():
    p = PROFILES.get("paper")
    q = quick_profile(p)
    assert (q.model, q.synth_model, q.synth_batch_real, q.protocol) == (p.model, p.synth_model, 256, p.protocol)
    assert q.teacher_epochs == 1 and q.mtt.n_experts == 1 and q.mtt.unroll == p.mtt.unroll


def test_synthetic_split_has_the_datasets_geometry():
    s = synthetic_split("cifar100", 3)
    assert s.train_x.shape == (300, 3, 32, 32) and s.num_classes == 100 and s.meta.name == "cifar100"
    assert ddlib.create_model("convnet", 10, 1, 28).feat_dim == 2048  # the reference's 4x4 maps on 28 px


def test_a_failing_build_is_reported_and_the_cli_exits_2(monkeypatch, capsys):
    def boom(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(check, "_student", boom)
    failures = check_profile("smoke", methods=("random",), log=lambda line: None)
    assert failures and all("RuntimeError: out of memory" in f for f in failures)
    assert cli.main(["check", "--profile", "smoke", "--method", "random"], commands=(CHECK,)) == 2
    assert "ddlib: error: check --profile smoke" in capsys.readouterr().err


# The full dry run of `paper` took 32 min on 2 loaded CPU cores (2026-11-30), far past the suite's
# 10-minute budget: it runs when DDLIB_TEST_PAPER_CHECK=1 (before a GPU run) until it is made faster.
@pytest.mark.skipif(os.environ.get("DDLIB_TEST_PAPER_CHECK") != "1",
                    reason="the paper dry run is opt-in (DDLIB_TEST_PAPER_CHECK=1): tens of CPU minutes")
def test_paper_profile_builds_every_method_and_trains_students():
    """The dry run of `paper`: what would crash a GPU run fails here first."""
    assert check_profile("paper", log=lambda line: None) == []
