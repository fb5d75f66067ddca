"""timm students: built by timm's names untrained, usable on 8-32-px images, routed through the engine's paths.

Also the model axis: a study, a grid and a chapter expand over students, every
row names the student it trained, and an unknown student is one clear error.
"""
from __future__ import annotations

import pytest
import torch

import ddlib.engine.fastpath as fp
from ddlib.core.config import PROTOCOLS, RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.engine.batched import can_batch, fit_many
from ddlib.engine.models import MODELS, create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.timm_models import TIMM_STUDENTS, TimmStudent, vit_patch
from ddlib.engine.train import fit
from ddlib.run.grid import configs
from ddlib.run.runner import run
from ddlib.run.study import Study

TIMM = sorted(TIMM_STUDENTS)
CPU = torch.device("cpu")


def test_the_issue_asks_for_these_families():
    assert {"resnet18", "vgg11_bn", "vit_tiny"} <= set(TIMM)
    assert {"mobilenetv3_small_100", "efficientnet_b0"} & set(TIMM)
    assert set(TIMM) <= set(MODELS.names())


@pytest.mark.parametrize("name", TIMM)
@pytest.mark.parametrize("c,s", [(1, 8), (3, 32)])
def test_builds_on_small_images_with_logits_and_features(name, c, s):
    m = create_model(name, 10, c, s, seed=0).eval()
    x = torch.randn(3, c, s, s)
    with torch.no_grad():
        out, emb = m(x), m.embed(x)
    assert out.shape == (3, 10) and emb.shape == (3, m.feat_dim)
    assert torch.isfinite(out).all() and torch.isfinite(emb).all()
    assert isinstance(m, TimmStudent) and isinstance(m.stem, torch.nn.Module)
    seen = []
    h = m.stem.register_forward_hook(lambda mod, inp, o: seen.append(len(inp[0])))
    with torch.no_grad():
        m(x)
    h.remove()
    assert seen == [3]  # the cost meter's hook sees every forward once


@pytest.mark.parametrize("name", TIMM)
def test_untrained_and_seeded(name):
    """Same seed, same weights; another seed, other weights: nothing pretrained was loaded."""
    a, b, c = (create_model(name, 10, 1, 8, seed=s) for s in (0, 0, 1))
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_small_image_adaptations():
    r = create_model("resnet18", 10, 3, 32)
    assert r.net.conv1.kernel_size == (3, 3) and r.net.conv1.stride == (1, 1)
    assert isinstance(r.net.maxpool, torch.nn.Identity)
    v = create_model("vgg11_bn", 10, 1, 8)  # 8 px: 3 max-pools reach 1 px, the last 2 are skipped
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in v.net.features) == 3
    assert v.feat_dim == 512 and sum(p.numel() for p in v.parameters()) < 10_000_000  # no 4096-wide head
    assert create_model("mobilenetv3_small_100", 10, 1, 28).net.conv_stem.stride == (1, 1)
    assert [vit_patch(s) for s in (8, 28, 32, 64, 128)] == [1, 4, 4, 8, 16]
    vt = create_model("vit_tiny", 10, 3, 32)
    assert vt.net.patch_embed.proj.kernel_size == (4, 4) and vt.net.patch_embed.num_patches == 64


@pytest.mark.parametrize("name", TIMM)
def test_engine_routes_each_student(name):
    """Batch-norm students: whole batches and never stacked; the ViT: micro-batched and stackable."""
    m = create_model(name, 10, 1, 28, seed=0)
    bn = dict(MODELS.get(name).kwargs)["norm"] == "batch"
    assert fp.per_sample(m) is not bn
    plan = fp.plan_step(m, (1, 28, 28), 256, 10_000, CPU, "eager")
    assert (plan.micro_batch == 0) is bn
    assert fp.plan_step(m, (1, 28, 28), 256, 10_000, torch.device("cuda"), "eager").micro_batch == 0
    assert can_batch([m, create_model(name, 10, 1, 28, seed=1)]) is not bn


def test_vit_fit_many_matches_separate_fits():
    x, y = torch.randn(20, 1, 8, 8), torch.arange(20) % 10
    prot = PROTOCOLS.get("sgd_cos_b64_lr1_v1")
    kw = dict(teachers=[], budget=0.1, pool_size=200, protocol=prot)
    many = [create_model("vit_tiny", 10, 1, 8, seed=s) for s in (0, 1)]
    fit_many(many, [x, x], [y, y], regimes=[create_regime("hl") for _ in many], seeds=[0, 1], **kw)
    for s, m in enumerate(many):
        alone = create_model("vit_tiny", 10, 1, 8, seed=s)
        fit(alone, x, y, regime=create_regime("hl"), seed=s, **kw)
        for p, q in zip(m.parameters(), alone.parameters()):
            assert torch.allclose(p, q, atol=1e-5)


def test_batch_norm_students_are_refused_by_fit_many():
    ms = [create_model("mobilenetv3_small_100", 10, 1, 8, seed=s) for s in (0, 1)]
    with pytest.raises(DDLibError, match="without buffers"):
        fit_many(ms, [torch.randn(4, 1, 8, 8)] * 2, [torch.arange(4)] * 2,
                 regimes=[create_regime("hl")] * 2, teachers=[], budget=0.01, pool_size=100,
                 protocol=PROTOCOLS.get("sgd_cos_b64_lr1_v1"), seeds=[0, 1])


@pytest.mark.parametrize("name", ["mobilenetv3_small_100", "vit_tiny"])  # a batch-norm and a layer-norm student
def test_a_run_names_the_student_it_trained(name, tmp_path):
    store = Store(tmp_path)
    row, hit = run(RunConfig("digits", "random", 2, "hl", 0.05, 0, "smoke", model=name), store, device="cpu")
    assert not hit and row["model"] == name and 0.0 <= row["accuracy"] <= 1.0
    assert store.frame()["model"].tolist() == [name]


def test_study_and_grid_expand_over_students():
    s = Study.from_params(profile="smoke", methods=["random"], ipcs=[1], regimes=["hl"], budgets=[1.0],
                          seeds=[0, 1], models=["convnet_d3w16", "vit_tiny"])
    cfgs = s.configs()
    assert len(cfgs) == 4 and {c.resolved().model for c in cfgs} == {"convnet_d3w16", "vit_tiny"}
    assert len({c.key() for c in cfgs}) == 4
    # the profile's student named or left empty is the same run
    plain = Study.from_params(profile="smoke", methods=["random"], ipcs=[1], regimes=["hl"], budgets=[1.0],
                              seeds=[0, 1])
    assert {c.key() for c in plain.configs()} <= {c.key() for c in cfgs}
    assert "vit_tiny" in s.describe().loc["student", "value"]
    g = configs({"profile": "smoke", "methods": "random", "ipcs": 1, "budgets": 1.0, "seeds": 0, "regimes": "hl",
                 "model": ["resnet18", "vgg11_bn"]})
    assert [c.model for c in g] == ["resnet18", "vgg11_bn"]
    assert configs({"profile": "smoke", "methods": "random", "ipcs": 1, "budgets": 1.0, "seeds": 0,
                    "model": "vit_tiny"})[0].model == "vit_tiny"
    with pytest.raises(DDLibError, match="unknown model 'vit_huge'.*vit_tiny"):
        Study.from_params(profile="smoke", models=["vit_huge"])


def test_cli_lists_the_students_and_rejects_an_unknown_one(child_env, repo_root, tmp_path, ddlib_cli):
    env = child_env(DDLIB_HOME=tmp_path)
    out = ddlib_cli(["list"], env, repo_root)
    models = [ln for ln in out.stdout.splitlines() if ln.startswith("models:")][0]
    assert all(n in models for n in TIMM)
    bad = ddlib_cli(["run", "--method", "random", "--ipc", "1", "--budget", "0.1", "--profile", "smoke",
                     "--model", "resnet181"], env, repo_root)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "ddlib: error: unknown model 'resnet181'")
