"""Teacher-based distillers (sre2l, rded, cim, ca2d) and the slkd_stored regime."""
import pytest
import torch
import torch.nn as nn

from ddlib.core.config import PROTOCOLS
from ddlib.core.cost import Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.engine import augment as aug
from ddlib.engine.models import create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.train import fit
from ddlib.methods.context import Context
from ddlib.methods.distill import distill
from ddlib.methods.distill.rded import auto_settings, decode_mosaics, select_crops, tile, untile
from ddlib.methods.distill.sre2l import batch_stats, bn_matching_loss


class Counting(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.samples = 0

    def forward(self, x):
        self.samples += len(x)
        return self.net(x)


def _teacher(seed=1):
    t = Counting(create_model("convnet_d3w16", 10, 1, 8, seed=seed)).eval()
    for p in t.parameters():
        p.requires_grad_(False)
    return t


def _set(digits, per_class=3):
    idx = torch.cat([digits.class_indices(c)[:per_class] for c in range(digits.num_classes)])
    return digits.train_x[idx], digits.train_y[idx]


def _fit(digits, profile, regime, teacher, budget=0.3, cache=None, seed=0):
    x, y = _set(digits)
    student = create_model(profile.model, 10, 1, 8, seed=seed)
    res = fit(student, x, y, regime=regime, teachers=[teacher], budget=budget,
              pool_size=len(digits.train_y), protocol=PROTOCOLS.get(profile.protocol),
              seed=seed, cache=cache)
    return x, res


# ---------------------------------------------------------------- slkd_stored
def test_mixed_ops_match_single_op_apply():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 8, 8)
    mp = aug.draw_mixed("color_crop_cutout_flip_scale_rotate", 40, g, 8)
    assert len(set(mp.op_ids.tolist())) > 3  # really mixed
    y = aug.apply_mixed(x, mp)
    for i in range(40):
        op = mp.ops[int(mp.op_ids[i])]
        one = aug.apply(x[i:i + 1], aug._unpack(op, mp.values[i:i + 1]))
        assert torch.allclose(one, y[i:i + 1], atol=1e-6)


def test_slkd_stored_replays_stored_logits_exactly(digits, smoke_profile, tmp_path):
    teacher = _teacher()
    reg = create_regime("slkd_stored")
    x, res = _fit(digits, smoke_profile, reg, teacher, cache=(Store(tmp_path), "00ab12cd34ef5678"))
    n = len(x)
    e_count = -(-res.samples_seen // n)
    assert reg.stored_logits.shape == (e_count, n, 10)
    assert reg.stored_logits.dtype == torch.float16
    assert teacher.samples == e_count * n  # the relabel pass only: nothing online
    # replay: the teacher on the replayed view of (epoch, image) gives the stored logits
    for e in range(e_count):
        idx = torch.randperm(n)[:7]
        ep = torch.full((7,), e)
        batch = reg.batch(x, idx, ep, "unused", torch.Generator())
        assert torch.equal(batch.views, reg.views(x, idx, ep, "unused", torch.Generator()))
        with torch.no_grad():
            fresh = teacher(batch.views).half()
        assert torch.allclose(fresh.float(), batch.stored.float(), atol=2e-3, rtol=2e-3)
        assert torch.allclose(fresh.float(), reg.stored_logits[e, idx].float(), atol=2e-3, rtol=2e-3)
    # epochs get different views of the same image
    assert not torch.equal(reg.stored_logits[0], reg.stored_logits[1])


def test_slkd_stored_second_run_loads_cache(digits, smoke_profile, tmp_path):
    store = Store(tmp_path)
    t1 = _teacher()
    _fit(digits, smoke_profile, create_regime("slkd_stored"), t1, cache=(store, "1234abcd1234abcd"))
    assert t1.samples > 0
    keys = list(store.artifact_keys("relabel"))
    assert len(keys) == 1
    art = store.load_artifact("relabel", keys[0])
    assert art["logits"].dtype == torch.float16  # fp16 on disk
    t2 = _teacher()  # same weights, fresh counter; another student seed
    reg = create_regime("slkd_stored")
    _fit(digits, smoke_profile, reg, t2, cache=(store, "1234abcd1234abcd"), seed=3)
    assert t2.samples == 0  # teacher never called
    assert torch.equal(reg.stored_logits.cpu(), art["logits"])
    # another teacher is another relabel
    t3 = _teacher(seed=2)
    _fit(digits, smoke_profile, create_regime("slkd_stored"), t3, cache=(store, "1234abcd1234abcd"))
    assert t3.samples > 0 and len(list(store.artifact_keys("relabel"))) == 2


def test_slkd_stored_label_bytes(digits, smoke_profile, tmp_path):
    reg = create_regime("slkd_stored")
    x, res = _fit(digits, smoke_profile, reg, _teacher(), cache=(Store(tmp_path), "feedfeedfeedfeed"))
    n, e = len(x), len(reg.stored_logits)
    params = reg.op_ids.numel() * 1 + reg.values.numel() * 4
    assert reg.label_bytes(n, 10, res.samples_seen) == e * n * 10 * 2 + params
    assert reg.label_bytes(n, 10, res.samples_seen) == (
        reg.stored_logits.numel() * reg.stored_logits.element_size() + params)
    assert reg.relabel_cost.fwd == e * n


# ---------------------------------------------------------------- helpers
def test_bn_matching_loss_zero_iff_stats_match():
    bn = nn.BatchNorm2d(3)
    x = torch.randn(16, 3, 5, 5) * 2 + 1
    mu, var = batch_stats(x)
    bn.running_mean.copy_(mu)
    bn.running_var.copy_(var)
    assert float(bn_matching_loss([(mu, var)], [bn])) == pytest.approx(0.0, abs=1e-6)
    shifted = bn_matching_loss([(mu + 1.0, var)], [bn], first_bn_multiplier=10.0)
    assert float(shifted) == pytest.approx(10.0 * 3 ** 0.5, rel=1e-5)
    assert float(bn_matching_loss([(mu, var), (mu + 1.0, var)], [bn, bn], 10.0)) == pytest.approx(3 ** 0.5, rel=1e-5)


def test_tile_places_patches_and_untile_inverts():
    p = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 2, 2).clone()
    m = tile(p, 2)
    assert m.shape == (2, 1, 4, 4)
    # mosaic 0: patch 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
    assert m[0, 0, :2, :2].eq(0).all() and m[0, 0, :2, 2:].eq(1).all()
    assert m[0, 0, 2:, :2].eq(2).all() and m[0, 0, 2:, 2:].eq(3).all()
    assert m[1, 0, 2:, 2:].eq(7).all()
    q = torch.randn(18, 3, 4, 4)
    assert torch.equal(untile(tile(q, 3), 3), q)
    assert torch.equal(tile(q, 1), q)


def test_auto_patch_settings():
    assert auto_settings(8, 0, -1.0) == (1, 0.75)  # small images: whole crops, large ones
    assert auto_settings(32, 0, -1.0) == (1, 0.08)  # the reference's CIFAR / Tiny-ImageNet scripts
    assert auto_settings(128, 0, -1.0) == (2, 0.08)  # ... and its ImageNet-subset ones
    assert auto_settings(8, 2, 0.3) == (2, 0.3)  # explicit values win


def test_select_crops_lowest_first_one_per_image():
    losses = torch.tensor([[3.0, 0.5, 2.0], [0.1, 0.2, 9.0], [4.0, 5.0, 6.0]])
    i, j = select_crops(losses, 2)
    assert list(zip(i.tolist(), j.tolist())) == [(1, 0), (0, 1)]  # each image's best, lowest first
    i, j = select_crops(losses, 4)  # more than images: second-best crops after every best
    assert list(zip(i.tolist(), j.tolist())) == [(1, 0), (0, 1), (2, 0), (1, 1)]
    hard_i, hard_j = select_crops(losses, 2, target=1.0)
    assert losses[hard_i, hard_j].tolist() == [9.0, 6.0]


# ---------------------------------------------------------------- distillers
def _ctx(profile, tmp_path, budget=None):
    return Context(profile, Store(tmp_path), Meter(), quiet=True, budget=budget)


FAST = {"sre2l": {"iters": 3}, "rded": {"n_real": 20, "n_crops": 3}, "cim": {"iters": 3, "n_real": 12, "factor": 2},
        "ca2d": {"n_real": 20, "n_crops": 3, "budget": 2.0}}


@pytest.mark.parametrize("method", sorted(FAST))
def test_teacher_distillers_shape_determinism_cost(method, digits, fast_teacher_profile, tmp_path):
    a = distill(method, digits, 2, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), **FAST[method])
    b = distill(method, digits, 2, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), **FAST[method])
    c = distill(method, digits, 2, seed=1, ctx=_ctx(fast_teacher_profile, tmp_path), **FAST[method])
    assert a.images.shape == (20, 1, 8, 8) and torch.isfinite(a.images).all()
    assert torch.equal(a.labels, torch.arange(10).repeat_interleave(2))
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    # the teacher's training is charged and its passes are counted
    assert a.cost.fwd > 0 and a.cost.seconds > 0
    assert a.cost.fwd == b.cost.fwd


def test_rded_picks_lowest_loss_crops_with_hand_made_scorer(digits, fast_teacher_profile, tmp_path, monkeypatch):
    """A scorer whose CE is the crop's mean pixel: RDED keeps the darkest crops."""
    import ddlib.methods.distill.rded as rded

    seen = {}

    def fake_ce(teacher, x, y, batch=1024):
        ce = x.mean(dim=(1, 2, 3))
        seen.setdefault(int(y[0]), []).append(ce)
        return ce

    monkeypatch.setattr(rded, "true_class_ce", fake_ce)
    s = distill("rded", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), n_real=10, n_crops=4,
                factor=1)
    kept = s.extras["patch_loss"].view(10, 1)
    for c in range(10):
        per_image_best = seen[c][0].view(10, 4).min(1).values
        assert float(kept[c, 0]) == pytest.approx(float(per_image_best.min()))
        assert float(s.images[c].mean()) == pytest.approx(float(kept[c, 0]), abs=1e-5)


def test_rded_tiles_its_patches(digits, fast_teacher_profile, tmp_path):
    s = distill("rded", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), n_real=10, n_crops=2,
                factor=2)
    assert s.images.shape == (10, 1, 8, 8)
    assert s.extras["patch_loss"].shape == (10 * 4,)
    # patches are sorted easiest first within a class
    pl = s.extras["patch_loss"].view(10, 4)
    assert (pl[:, 1:] >= pl[:, :-1]).all()
    with pytest.raises(DDLibError):
        distill("rded", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), factor=3)


def test_ca2d_harder_patches_for_larger_budget(digits, fast_teacher_profile, tmp_path):
    lo = distill("ca2d", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path, budget=0.01),
                 n_real=30, n_crops=4)
    hi = distill("ca2d", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path, budget=500.0),
                 n_real=30, n_crops=4)
    assert hi.extras["target"] > lo.extras["target"]
    assert hi.extras["mean_patch_loss"] > lo.extras["mean_patch_loss"]
    from ddlib.methods.distill.ca2d import distill_ca2d
    assert distill_ca2d.uses_budget
    with pytest.raises(DDLibError):
        distill("ca2d", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path))


def test_cim_starts_at_anchor_mosaic_and_alignment_decreases(digits, fast_teacher_profile, tmp_path):
    s0 = distill("cim", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), iters=1, lr=0.0,
                 n_real=12, factor=2)
    assert torch.equal(s0.images, s0.extras["anchor_mosaic"])  # residual is zero before any update
    s = distill("cim", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), iters=25, lr=0.05,
                n_real=12, strategy="", factor=2)
    lc = s.extras["loss_curve"]
    assert lc[-3:].mean() < 0.9 * lc[:3].mean()
    assert not torch.equal(s.images, s.extras["anchor_mosaic"])


def test_sre2l_needs_bn_teacher(digits, fast_teacher_profile, tmp_path):
    with pytest.raises(DDLibError, match="batch-norm"):
        distill("sre2l", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), iters=1,
                teacher_arch="convnet_d3w16")
    s = distill("sre2l", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), iters=15)
    lc = s.extras["loss_curve"]
    assert lc[-3:].mean() < lc[:3].mean()


def test_rded_mosaic_holds_the_easiest_crops_in_order(digits, fast_teacher_profile, tmp_path, monkeypatch):
    """factor 2 with a hand-made scorer (CE = mean pixel): quadrant j holds the j-th darkest crop."""
    import ddlib.methods.distill.rded as rded

    seen = {}

    def fake_ce(teacher, x, y, batch=1024):
        seen[int(y[0])] = x.clone()
        return x.mean(dim=(1, 2, 3))

    monkeypatch.setattr(rded, "true_class_ce", fake_ce)
    s = distill("rded", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), n_real=8, n_crops=3,
                factor=2)
    for c in range(10):
        crops = seen[c]  # (8 * 3, C, 8, 8), image-major
        best = crops.mean(dim=(1, 2, 3)).view(8, 3).min(1)
        order = torch.argsort(best.values)[:4]
        want = [crops[int(i) * 3 + int(best.indices[i])] for i in order]
        got = s.images[c]
        quads = [got[:, :4, :4], got[:, :4, 4:], got[:, 4:, :4], got[:, 4:, 4:]]
        for q, w in zip(quads, want):
            assert torch.allclose(q, rded.downsample(w[None], 4)[0], atol=1e-6)


# ---------------------------------------------------------------- regressions
def _student_accuracy(digits, profile, images, labels, budget=2.0, seed=0):
    from ddlib.engine.train import evaluate

    student = create_model(profile.model, 10, 1, 8, seed=seed)
    fit(student, images, labels, regime=create_regime("hl"), teachers=[], budget=budget,
        pool_size=len(digits.train_y), protocol=PROTOCOLS.get(profile.protocol), seed=seed)
    return evaluate(student, digits.test_x, digits.test_y)


@pytest.mark.parametrize("ipc", [1, 10])
def test_cim_on_8px_digits_trains_students_above_chance(ipc, digits, fast_teacher_profile, tmp_path):
    """Regression: 2 x 2 mosaics trained on as whole images left students at chance (0.09) on digits;
    the reference's evaluation trains on the decoded patches (as the runner does), well above it."""
    s = distill("cim", digits, ipc, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path))
    assert s.extras["factor"] == s.extras["decode_factor"] == 2 and s.images.shape == (10 * ipc, 1, 8, 8)
    images, labels = decode_mosaics(s.images, s.labels, 2)
    assert images.shape == (40 * ipc, 1, 8, 8) and torch.equal(labels, s.labels.repeat_interleave(4))
    assert _student_accuracy(digits, fast_teacher_profile, images, labels) > 0.3  # chance: 0.1


def test_cim_residual_keeps_pixels_in_range(digits, fast_teacher_profile, tmp_path):
    s = distill("cim", digits, 1, seed=0, ctx=_ctx(fast_teacher_profile, tmp_path), iters=20, lr=5.0,
                n_real=12, factor=2)
    m = digits.meta
    lo, hi = (0 - m.mean[0]) / m.std[0], (1 - m.mean[0]) / m.std[0]
    assert float(s.images.min()) >= lo - 1e-5 and float(s.images.max()) <= hi + 1e-5
    assert not torch.equal(s.images, s.extras["anchor_mosaic"])


def test_sl_soft_labels_are_the_stored_fp16_and_charged(digits, smoke_profile):
    reg = create_regime("sl")
    x, y = _set(digits)
    teacher = _teacher()
    reg.prepare(x, y, [teacher], 1.0)
    assert torch.equal(reg.soft, reg.soft.half().float())  # trained on what label_bytes counts
    assert reg.label_bytes(len(x), 10) == len(x) * 10 * 2
    assert reg.label_cost(len(x)).fwd == len(x) and teacher.samples == len(x)
    assert create_regime("slkd").label_cost(len(x), 1000).fwd == 0  # online: paid during training


@pytest.fixture
def fast_smoke(fast_teacher_profile, monkeypatch):
    """RunConfigs naming ``smoke`` get the 1-epoch-teacher profile (no 40-epoch teachers in tests)."""
    from ddlib.core.config import PROFILES

    monkeypatch.setitem(PROFILES._items, "smoke", fast_teacher_profile)
    return fast_teacher_profile


def test_runner_relabels_sre2l_with_its_bn_teacher(home, fast_smoke, monkeypatch):
    """Regression: sre2l's sets were soft-labelled by the profile's instance-norm teacher, not by
    the BN teacher they were recovered from, and students collapsed to one class (0.10) under sl."""
    import ddlib.run.runner as runner
    from ddlib.core.config import RunConfig
    from ddlib.methods.distill.sre2l import default_bn_arch

    archs = []
    real = runner.get_teachers
    monkeypatch.setattr(runner, "get_teachers", lambda *a, **k: archs.append(k["arch"]) or real(*a, **k))
    bn = default_bn_arch(fast_smoke.teacher_model)
    assert bn != fast_smoke.teacher_model
    row, _ = runner.run(RunConfig("digits", "sre2l", 1, "sl", 0.2, 0, "smoke", hparams=(("iters", 2),)), home)
    assert archs == [bn] and row["teacher_model"] == bn
    row, _ = runner.run(RunConfig("digits", "rded", 1, "sl", 0.2, 0, "smoke",
                                  hparams=(("n_crops", 2), ("n_real", 10))), home)
    assert archs[-1] == fast_smoke.teacher_model and row["teacher_model"] == fast_smoke.teacher_model


def test_runner_charges_the_relabel_to_the_row(home, fast_smoke):
    """sl: one teacher pass per stored image; slkd_stored: one per view, and its seconds."""
    from ddlib.core.config import RunConfig
    from ddlib.run.runner import run

    hp = (("n_crops", 2), ("n_real", 10))
    rows = {r: run(RunConfig("digits", "rded", 2, r, 0.2, 0, "smoke", hparams=hp), home)[0]
            for r in ("hl", "sl", "slkd", "slkd_stored")}
    n = 20
    views = -(-rows["hl"]["samples_seen"] // n) * n
    assert rows["sl"]["build_fwd"] == rows["hl"]["build_fwd"] + n
    assert rows["slkd"]["build_fwd"] == rows["hl"]["build_fwd"]
    assert rows["slkd_stored"]["build_fwd"] == rows["hl"]["build_fwd"] + views
    assert rows["slkd_stored"]["build_seconds"] > rows["hl"]["build_seconds"]
    assert rows["sl"]["label_bytes"] == n * 10 * 2
    assert rows["slkd_stored"]["label_bytes"] == views * (10 * 2 + 1 + 4 * aug.PARAM_SLOTS)


@pytest.mark.parametrize("arch", ["convnet_d3w32", "convnet_d3w32_bn"])
def test_cim_sliced_alignment_gradient_is_the_whole_batch_one(arch):
    """CIM's step in cache-sized slices: the loss and residual gradient of L(R) on the whole batch (float64)."""
    from ddlib.engine.fastpath import eval_batch
    from ddlib.methods.distill.cim import alignment_backward, alignment_loss

    g = torch.Generator().manual_seed(0)
    teacher = create_model(arch, 10, 1, 28, seed=3).double().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    anchors = torch.randn(4 * 40, 1, 28, 28, generator=g, dtype=torch.float64)  # 40 mosaics of 2 x 2 patches
    assert eval_batch(teacher, (1, 28, 28), anchors.device) < len(anchors)  # several slices
    mosaics = tile(torch.nn.functional.avg_pool2d(anchors, 2), 2)
    params = aug.draw("crop_cutout_flip", len(anchors), g, 28)
    grads, values = [], []
    for sliced in (False, True):
        residual = (0.1 * torch.randn(mosaics.shape, generator=torch.Generator().manual_seed(1),
                                      dtype=torch.float64)).requires_grad_(True)
        if sliced:
            values.append(alignment_backward(teacher, residual, mosaics, anchors, params, 2))
        else:
            loss = alignment_loss(teacher, residual, mosaics, anchors, params, 2)
            loss.backward()
            values.append(float(loss))
        grads.append(residual.grad)
    assert values[1] == pytest.approx(values[0], rel=1e-12)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-14)
    assert grads[0].abs().sum() > 0


def test_a_cached_teacher_comes_back_in_its_training_layout(digits, fast_teacher_profile, tmp_path):
    """A batch-norm teacher trains channels-last; loaded from the store it is returned the same way,
    so its passes (and every set or label made with it) are bitwise those of the fresh one."""
    from dataclasses import replace

    from ddlib.engine.teachers import get_teacher

    prof = replace(fast_teacher_profile, teacher_model="convnet_d3w16_bn")
    store = Store(tmp_path)
    fresh, _ = get_teacher(digits, prof, store, seed=0)
    again, _ = get_teacher(digits, prof, store, seed=0)
    convs = [[m.weight for m in t.modules() if isinstance(m, nn.Conv2d)][-1] for t in (fresh, again)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)
    with torch.no_grad():
        assert torch.equal(fresh(digits.val_x), again(digits.val_x))
