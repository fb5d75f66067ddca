"""DD: Dataset Distillation (Wang, Zhu, Torralba & Efros, arXiv:1811.10959, 2018).

The synthetic images ``x~`` *and* the per-step learning rates ``eta~`` are
learnt by back-propagating through the training of the learner itself
(the paper's Algorithm 1, with several steps and epochs as in its Sec. 3)::

    theta_{t+1} = theta_t - eta~_t * grad_theta l(x~_{t mod S}, theta_t),  t = 0 .. S*E - 1
    min_{x~, eta~}  E_{theta_0} [ l(x_real, theta_{S*E}) ]

with ``S = steps`` batches of distilled images (``distill_steps`` of the
reference code, github.com/SsnL/dataset-distillation), each used once per
*epoch* of ``E = epochs`` passes (``distill_epochs``), so ``S * E`` gradient
steps and as many learning rates.  Each step's batch holds
``ipc / S`` images of every class (``distilled_images_per_class_per_step``);
the stored set keeps the steps in order: rows ``[s*K*ipc/S, (s+1)*K*ipc/S)``
are step ``s``'s batch, class-major inside.  ``l`` is the cross-entropy.

As the reference code: images start from N(0, 1) noise (the data are
normalised to zero mean, unit variance), learning rates are softplus-
parameterised (always positive) and start at 0.02, and both are updated by
Adam (lr 0.01, betas (0.5, 0.999)) halved ten times over the run (the
reference's StepLR of 0.5 every 40 of 400 epochs) on the ``paper`` profile;
the CPU profiles, ~100x shorter, use a 10x larger Adam lr and start the step
sizes at 0.05 (the profile's ``dd``, :class:`ddlib.core.config.DDDefaults`).  The real batch of each iteration
holds ``batch_real`` images of every class.

The paper's baselines of the same size (random real images, k-means centres,
average images) are trained with the same number of GD steps (S batches x E
epochs).  Their step sizes: the reference evaluates them with either the
step sizes a distillation run learnt (``--test_distilled_lrs loaded``) or one
fixed, hand-set rate (``fix <lr>``).  Here (chapter 6) each baseline's images
are frozen (``images="real" | "kmeans" | "mean"``, ``lr_img=0``) and only its own
step sizes are learnt by this same loop, from the same fixed ``theta_0``: the
steps are as good as DD can make them for those images, so a gap is the images'.

Two settings of the paper: ``init="fixed"`` learns the set for one
network initialisation ``theta_0``, seeded by
``stream_seed(seed, "dd-init")`` and returned in ``extras["init_state"]`` so
that the evaluation can replay it; ``init="random"`` draws a fresh
``theta_0`` every iteration (the paper's "unknown random init").

Initialisation: on ``paper`` as the reference's default ``--init xavier``
(gain 1), every conv and linear weight Xavier-normal and its bias zero, norm
layers weight 1 and bias 0 (:func:`xavier_init`), for the fixed ``theta_0`` and
for every fresh one; the evaluation of a random-init set draws its network the
same way (``extras["weight_init"]``).  The CPU profiles keep PyTorch's default
init, with which their step sizes were tuned (profile field ``dd.weight_init``).

Network: the student architecture of the profile (``profile.model``, a
ConvNet; the paper uses LeNet on MNIST) unless ``model`` is given, because the
paper's evaluation replays the learnt steps on the very architecture (and,
for a fixed init, the very weights) the set was learnt for.  The unroll uses
``torch.func.functional_call``: parameters are never updated in place.
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm import tqdm

from ddlib.core.hparams import HParam
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import generator, stream_seed
from ddlib.engine.models import create_model
from ddlib.methods.distill import register
from ddlib.methods.distill.class_mean import class_mean_images
from ddlib.methods.distill.kmeans import kmeans_centres

PAPER_STEPS = 10   # distill_steps of the reference code
PAPER_EPOCHS = 3   # distill_epochs
ADAM_BETAS = (0.5, 0.999)
DECAYS = 10        # halvings of the outer lr over the run (400 epochs / 40)
# initial images: the paper's N(0, 1) noise, or (with lr_img=0: images frozen, only the step sizes
# learnt) its baselines of the same size: random real images, k-means centres, per-class means
IMAGES = ("noise", "real", "kmeans", "mean")
# The initial step size and the outer Adam lr differ between profiles: they are the
# profile's ``dd`` (:class:`ddlib.core.config.DDDefaults`, part of the cache keys):
# the reference's 0.02 and 0.01 on ``paper``; 0.05 and 0.1 on the CPU profiles, whose
# runs are ~100x shorter than the reference's 400 epochs (a documented deviation).


def default_steps(ipc: int) -> int:
    """``gcd(ipc, 10)``: the reference's 10 steps when they divide ``ipc``, else fewer.

    IPC 1 -> 1 step (the paper's 10-image fixed-init MNIST run), 10 or 50 -> 10.
    """
    return math.gcd(int(ipc), PAPER_STEPS)


def step_chunks(n: int, steps: int) -> List[slice]:
    """The ``steps`` contiguous equal row ranges of ``n`` stored images, one per step."""
    if steps < 1 or n % steps:
        raise DDLibError(f"dd: {n} stored images do not split into {steps} equal steps")
    m = n // steps
    return [slice(s * m, (s + 1) * m) for s in range(steps)]


def unroll(net: torch.nn.Module, theta: Dict[str, torch.Tensor], buffers: Dict[str, torch.Tensor],
           images: torch.Tensor, labels: torch.Tensor, lrs: torch.Tensor, steps: int,
           create_graph: bool = True) -> Dict[str, torch.Tensor]:
    """Run ``len(lrs)`` differentiable GD steps from ``theta`` (the inner loop of Algorithm 1).

    Args:
        net: the module whose ``forward`` is called with substituted tensors.
        theta: parameter name -> tensor (requires grad), the start ``theta_0``.
        buffers: buffer name -> tensor (batch-norm statistics), or empty.
        images: (S*B, C, H, W) stored images, step-major (see module doc).
        labels: (S*B,) class ids.
        lrs: (S*E,) positive step sizes; step ``t`` uses batch ``t mod S``.
        steps: S.
        create_graph: keep the graph so the result is differentiable in
            ``images``, ``lrs`` and ``theta``.

    Returns:
        parameter name -> tensor after the last step.
    """
    names = list(theta)
    chunks = step_chunks(len(images), steps)
    for t in range(len(lrs)):
        sl = chunks[t % steps]
        out = functional_call(net, {**theta, **buffers}, (images[sl],))
        loss = F.cross_entropy(out, labels[sl])
        grads = torch.autograd.grad(loss, [theta[n] for n in names], create_graph=create_graph)
        theta = {n: theta[n] - lrs[t] * g for n, g in zip(names, grads)}
    return theta


def xavier_init(net: torch.nn.Module) -> torch.nn.Module:
    """The reference's ``init_weights(init='xavier', init_param=1)``, in place (uses the global RNG).

    Conv and linear weights ``~ N(0, 2 / (fan_in + fan_out))`` (Xavier-normal,
    gain 1), their biases 0; norm layers' weight 1 and bias 0.
    """
    for mod in net.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.xavier_normal_(mod.weight, gain=1.0)
            if mod.bias is not None:
                torch.nn.init.zeros_(mod.bias)
        elif isinstance(mod, (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm)):
            if mod.weight is not None:
                torch.nn.init.ones_(mod.weight)
                torch.nn.init.zeros_(mod.bias)
    return net


def seeded_xavier(arch: str, k: int, m, seed: int, init: str = "xavier") -> torch.nn.Module:
    """Architecture ``arch`` for ``m`` (DatasetMeta) with :func:`xavier_init` weights drawn from ``seed``
    (``init="pytorch"``: PyTorch's own initialisation, from the same seed)."""
    if init == "pytorch":
        return create_model(arch, k, m.in_chans, m.img_size, seed=seed)
    net = create_model(arch, k, m.in_chans, m.img_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return xavier_init(net)


def _start(net: torch.nn.Module) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in net.named_buffers()}
    return theta, buffers


@register("dd", hparams=(
    HParam("iters", int, 0, "iterations", "outer iterations; 0 = the profile's synth_iters",
           "scale-down of the reference's 400 epochs", profile=("synth_iters",), low=0),
    HParam("steps", int, 0, "batches", "S, batches of distilled images; must divide ipc; 0 = gcd(ipc, 10)",
           "reference code (10 steps)", low=0),
    HParam("epochs", int, PAPER_EPOCHS, "passes", "E, passes over the S batches", "reference code", low=1),
    HParam("init", str, "fixed", "", "one seeded theta_0, or a fresh one per iteration", "paper",
           choices=("fixed", "random")),
    HParam("images", str, "noise", "", "initial images: N(0, 1) noise, random real images, the per-class "
           "k-means centres or the class means (the paper's baselines, with lr_img=0)", "paper",
           choices=IMAGES),
    HParam("lr_init", float, 0.0, "per SGD step", "initial value of every learnt step size; 0 = the "
           "profile's dd.lr_init", "reference code on paper (0.02); scale-down elsewhere",
           profile=("dd.lr_init",), low=0.0),
    HParam("lr_img", float, -1.0, "per Adam step", "Adam lr on the images; negative = the profile's "
           "dd.adam_lr, 0 = images fixed (only the step sizes learnt)",
           "reference code on paper (0.01); scale-down elsewhere", profile=("dd.adam_lr",)),
    HParam("lr_lr", float, 0.0, "per Adam step", "Adam lr on the raw step sizes; 0 = the profile's dd.adam_lr",
           "reference code on paper (0.01); scale-down elsewhere", profile=("dd.adam_lr",), low=0.0),
    HParam("batch_real", int, 0, "images per class", "real images per class in each objective; "
           "0 = the profile's dd.batch_real, or when that is 0 max(8, synth_batch_real // 8)",
           "reference code on paper (1,024 images: 102 per class); scale-down elsewhere",
           profile=("dd.batch_real", "synth_batch_real"), low=0),
    HParam("model", str, "", "", "learner architecture; '' = the profile's student model", "ddlib",
           profile=("model",)),
    HParam("weight_init", str, "", "", "learner init: 'xavier' (gain 1, zero biases) or 'pytorch' (its default); "
           "'' = the profile's dd.weight_init", "reference code on paper (xavier); tuned elsewhere (PyTorch's "
           "default, with which the CPU step sizes were tuned)", profile=("dd.weight_init",),
           choices=("", "xavier", "pytorch"))))
def distill_dd(train, ipc: int, *, seed: int, ctx, iters: int = 0, steps: int = 0,
               epochs: int = PAPER_EPOCHS, init: str = "fixed", images: str = "noise",
               lr_init: float = 0.0, lr_img: float = -1.0, lr_lr: float = 0.0, batch_real: int = 0,
               model: str = "", weight_init: str = ""):
    """Distil ``ipc`` images per class and ``steps * epochs`` learning rates.

    Args:
        iters: outer iterations (profile's ``synth_iters`` when 0).
        steps: S, batches of distilled images; must divide ``ipc`` (0 =
            :func:`default_steps`).
        epochs: E, passes over the S batches (3 as the reference).
        init: "fixed" (one seeded ``theta_0``) or "random" (a fresh one per iteration).
        images: "noise" (N(0, 1), as the paper), "real" (random real images of
            each class, drawn with the ``synth`` stream), "kmeans" (the per-class
            k-means centres, :func:`~ddlib.methods.distill.kmeans.kmeans_centres`) or
            "mean" (``ipc`` copies of each class mean,
            :func:`~ddlib.methods.distill.class_mean.class_mean_images`).
        lr_init: initial value of every step size (0 = the profile's
            ``dd.lr_init``: 0.02 on ``paper``, as the reference, else 0.05).
        lr_img: Adam lr on the images (negative = the profile's ``dd.adam_lr``:
            0.01 on ``paper``, else 0.1); 0 keeps them fixed and learns only the step
            sizes (the paper's real-image baselines with learnt lrs).
        lr_lr: Adam lr on the raw (pre-softplus) step sizes (0 = as ``lr_img``'s default).
        batch_real: real images per class in each iteration's objective (0 =
            the profile's ``synth_batch_real // 8``, at least 8: every real
            image is back-propagated through the whole unroll; on the default
            profile 8 instead of 16 costs 0.2 points of the fixed-init
            accuracy and a third of the time).
        model: learner architecture (profile's student ``model`` when empty).
        weight_init: "xavier" or "pytorch" ("" = the profile's ``dd.weight_init``).

    Returns:
        images (K*ipc, C, H, W) step-major, hard labels (K*ipc,), extras:
        ``lrs`` (S*E,), ``steps``, ``epochs``, ``init``, ``images``,
        ``init_state`` (fixed init: the parameters and buffers of ``theta_0``),
        ``loss_curve`` (iters,), ``final_loss``.
    """
    prof, m = ctx.profile, train.meta
    if init not in ("fixed", "random"):
        raise DDLibError(f"dd: init must be 'fixed' or 'random', got {init!r}")
    if images not in IMAGES:
        raise DDLibError(f"dd: images must be one of {', '.join(IMAGES)}, got {images!r}")
    steps = steps or default_steps(ipc)
    if ipc % steps:
        raise DDLibError(f"dd: steps={steps} must divide ipc={ipc}")
    if epochs < 1:
        raise DDLibError(f"dd: epochs must be >= 1, got {epochs}")
    iters = iters or prof.synth_iters
    lr_init = lr_init or prof.dd.lr_init
    lr_img = lr_img if lr_img >= 0 else prof.dd.adam_lr
    lr_lr = lr_lr or prof.dd.adam_lr
    batch_real = batch_real or prof.dd.batch_real or max(8, prof.synth_batch_real // 8)
    arch = model or prof.model
    weight_init = weight_init or prof.dd.weight_init
    k, device = train.num_classes, train.train_x.device
    per = ipc // steps
    g = generator(seed, "synth")
    pools = [train.class_indices(c).cpu() for c in range(k)]
    # step-major: step s holds `per` images of class 0, then class 1, ...
    labels = torch.arange(k, device=device).repeat_interleave(per).repeat(steps)
    if images == "noise":
        syn = torch.randn(len(labels), m.in_chans, m.img_size, m.img_size, generator=g).to(device)
    elif images == "real":
        draw = [ix[torch.randperm(len(ix), generator=g)[:ipc]] for ix in pools]
        rows = torch.stack([d.view(steps, per) for d in draw], 1).reshape(-1)  # (steps, k, per)
        syn = train.train_x[rows.to(device)].clone()
    else:  # the paper's k-means / average-image baselines: class-major (k, ipc) rows put step-major
        base = (kmeans_centres(train, ipc, seed=seed) if images == "kmeans" else class_mean_images(train, ipc))
        syn = base.view(k, steps, per, *base.shape[1:]).transpose(0, 1).reshape(base.shape).to(device).clone()
    syn.requires_grad_(lr_img > 0)
    raw_lrs = torch.full((steps * epochs,), math.log(math.expm1(lr_init)), device=device,
                         requires_grad=True)
    groups = [{"params": [raw_lrs], "lr": lr_lr}] + ([{"params": [syn], "lr": lr_img}] if lr_img > 0 else [])
    opt = torch.optim.Adam(groups, betas=ADAM_BETAS)
    decay_every = max(1, iters // DECAYS)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=decay_every, gamma=0.5)

    net = seeded_xavier(arch, k, m, stream_seed(seed, "dd-init"), weight_init).to(device)
    init_state = {n: t.detach().cpu().clone() for n, t in net.state_dict().items()}
    net.train()
    ctx.meter.watch(net)
    losses = []
    for it in tqdm(range(iters), desc=f"dd ipc={ipc} {init}", disable=ctx.quiet, leave=False):
        if init == "random":
            fresh = seeded_xavier(arch, k, m, stream_seed(seed, f"dd-net-{it}"), weight_init)
            net.load_state_dict(fresh.state_dict())
        theta, buffers = _start(net)
        real_idx = torch.cat([ix[torch.randint(len(ix), (batch_real,), generator=g)] for ix in pools])
        real, real_y = train.train_x[real_idx.to(device)], train.train_y[real_idx.to(device)]
        lrs = F.softplus(raw_lrs)
        final = unroll(net, theta, buffers, syn, labels, lrs, steps)
        loss = F.cross_entropy(functional_call(net, {**final, **buffers}, (real,)), real_y)
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[raw_lrs] + ([syn] if lr_img > 0 else []))
        opt.step()
        sched.step()
        # backward samples: the real batch, and every unrolled step twice (its
        # inner gradient, then the back-propagation through that gradient)
        ctx.meter.backward(len(real) + 2 * len(lrs) * per * k)
        losses.append(float(loss.detach()))
    extras = {"lrs": F.softplus(raw_lrs).detach().cpu(), "steps": steps, "epochs": epochs,
              "init": init, "images": images, "weight_init": weight_init, "loss_curve": torch.tensor(losses),
              "final_loss": losses[-1] if losses else float("nan")}
    if init == "fixed":
        extras["init_state"] = init_state
    return syn.detach(), labels, extras
