"""How the engine executes a training step: cache-sized micro-batches and a compiled forward.

Neither changes what is computed.  A step's gradient is that of the batch-mean
loss ``L = (1/B) sum_b l_b``; split into slices ``S_j`` it is
``sum_j (|S_j|/B) grad mean_{b in S_j} l_b``, the same sum in another order
(float rounding only).  That holds only for networks whose training-mode output
for a sample does not depend on the other samples of the batch: instance / no
norm (ConvNet's ``GroupNorm(width, width)``), never batch norm, whose
statistics would change; :func:`per_sample` decides.

Why slices pay on a CPU: at batch 256 a ConvNet's first-block activations
(256 x W x 28 x 28 fp32: 26 MB at W=32, 103 MB at W=128) do not fit in the
caches, and the norm / ReLU / pooling passes that stream them forward and
backward are bound by memory bandwidth; a slice whose largest activation stays
near :data:`MICRO_BYTES` is streamed from cache (``benchmarks/train_throughput.py``).
On a GPU the whole batch runs at once.

``torch.compile`` (inductor) fuses those passes further but costs seconds of
compilation per architecture and input shape, once per process; ``auto`` uses
it only for fits large enough to repay that (:data:`COMPILE_MIN_TFLOP`), and
falls back to eager for the rest of the process if compilation fails.  Only
full slices of the planned size run compiled, so one static shape is compiled;
a remainder slice runs eager.

``fit(engine=...)`` picks the mode (the run layer passes ``$DDLIB_ENGINE``,
:mod:`ddlib.run.settings`); an :class:`Engine` also remembers a failed
compilation, so fits that share it stop trying:

* ``plain`` -- the whole batch eager (the engine before 0.4).
* ``eager`` -- micro-batched where allowed, no compilation.
* ``compiled`` -- micro-batched where allowed, forward compiled.
* ``auto`` (default) -- ``eager``, or ``compiled`` for sliced fits of at
  least :data:`COMPILE_MIN_TFLOP` training TFLOP.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn

from ddlib.core.registry import DDLibError
from ddlib.engine.regimes import Batch, slice_loss

log = logging.getLogger("ddlib")

MODES = ("auto", "plain", "eager", "compiled")
MICRO_BYTES = 8 * 2 ** 20  # bytes of a slice's largest activation (fp32), the CPU slice size target
MIN_MICRO = 32  # smallest slice (samples): below it per-op overhead outweighs locality
EVAL_BATCH = 1024  # images per evaluation forward off the CPU (the CPU slices are smaller)
COMPILE_MIN_TFLOP = 3.0  # training FLOPs (3 x forward x samples) from which `auto` compiles on CPU

_PROFILE: Dict[tuple, Tuple[float, int]] = {}  # a memo of pure measurements (profile), not state


@dataclass(frozen=True)
class StepPlan:
    """How each step runs.

    Attributes:
        micro_batch: samples per slice; 0 = the whole batch at once.
        compiled: whether full slices run through ``torch.compile(model)``.
        channels_last: whether the network's weights (so its activations) are
            channels-last (:func:`wants_channels_last`).
    """

    micro_batch: int = 0
    compiled: bool = False
    channels_last: bool = False

    def describe(self) -> str:
        """Short label stored with each run, e.g. ``"compiled/mb32"``, ``"plain"`` or ``"plain/cl"``."""
        mode = "compiled" if self.compiled else "eager"
        label = f"{mode}/mb{self.micro_batch}" if self.micro_batch else ("compiled" if self.compiled else "plain")
        return label + ("/cl" if self.channels_last else "")


def wants_channels_last(model: nn.Module, device: torch.device) -> bool:
    """Whether a CPU fit of ``model`` runs its convolutions channels-last: batch-norm networks.

    Measured per eager training step (batch 128, 28 px, one and two intra-op threads;
    benchmarks/results/engine_layout.json): channels-last is 1.9-2.0x for
    MobileNetV3-small (its depthwise convolutions' backward), 1.7-1.9x EfficientNet-B0,
    1.5-1.6x ConvNet-3-32-BN, 1.15x ResNet-18, 1.13x VGG-11-BN, and 0.74-0.82x for
    the instance-norm ConvNet-3-32 (``GroupNorm`` is slower channels-last), so
    instance-norm networks stay contiguous.  Layout changes float rounding, not what is computed.
    """
    return torch.device(device).type == "cpu" and not per_sample(model)


def per_sample(model: nn.Module) -> bool:
    """Whether the training-mode output of each sample is independent of the rest of the batch."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def profile(model: nn.Module, sample_shape: Tuple[int, ...]) -> Tuple[float, int]:
    """(forward FLOPs per image, bytes of the largest per-image activation) of ``model``.

    FLOPs count ``2 * Cin/groups * Cout * kh * kw * Hout * Wout`` per ``Conv2d``
    and ``2 * in * out`` per ``Linear`` and token (bias, norm, activations, attention's
    matrix products ignored).
    Measured once per (class, parameter shapes, input shape) with a one-image
    forward under ``no_grad`` through a hook-free copy in eval mode, so the
    model itself, its statistics and any pass counters attached to it
    (:class:`ddlib.core.cost.Meter`) are untouched.
    """
    key = (type(model), tuple((n, tuple(p.shape)) for n, p in model.named_parameters()), tuple(sample_shape))
    if key in _PROFILE:
        return _PROFILE[key]
    flops, largest = [0.0], [0]

    def hook(mod, inp, out):
        if isinstance(out, torch.Tensor):
            largest[0] = max(largest[0], out[0].numel() * 4)
            if isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1]
                flops[0] += 2 * mod.in_channels // mod.groups * mod.out_channels * k * out[0, 0].numel()
            elif isinstance(mod, nn.Linear):  # once per token of a (tokens, features) output (ViT)
                flops[0] += 2 * mod.in_features * mod.out_features * (out[0].numel() // mod.out_features)

    probe = copy.deepcopy(model).eval()
    for m in probe.modules():
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
    for m in probe.modules():
        if not list(m.children()):
            m.register_forward_hook(hook)
    p = next(probe.parameters())
    with torch.no_grad():
        probe(torch.zeros((1, *sample_shape), device=p.device, dtype=p.dtype))
    _PROFILE[key] = (flops[0], largest[0])
    return _PROFILE[key]


def engine_mode(mode: str | None = None) -> str:
    """``mode``, else ``auto``; an unknown name raises :class:`DDLibError` listing the valid ones."""
    mode = mode or "auto"
    if mode not in MODES:
        raise DDLibError(f"unknown engine mode {mode!r}; valid: {', '.join(MODES)}")
    return mode


class Engine:
    """A step execution mode and what running in it has taught (a failed compilation).

    One ``Engine`` shared by several fits (the run layer keeps one per entry
    point) compiles nothing more after a compilation failed once; a fit given
    only a mode name gets a fresh one.

    Attributes:
        mode: one of :data:`MODES` (validated).
        compile_failed: a ``torch.compile`` failed under this engine: plan eager from now on.
    """

    def __init__(self, mode: str | None = None):
        self.mode = engine_mode(mode)
        self.compile_failed = False

    @classmethod
    def of(cls, engine: Union["Engine", str, None]) -> "Engine":
        """``engine`` itself, or a fresh :class:`Engine` of mode name ``engine`` (None: ``auto``)."""
        return engine if isinstance(engine, Engine) else cls(engine)

    def __repr__(self) -> str:
        return f"Engine({self.mode!r}, compile_failed={self.compile_failed})"


def compiles(engine: Engine, work_flop: float) -> bool:
    """Whether a pass of ``work_flop`` FLOPs in all runs compiled under ``engine``: mode ``compiled``, or
    ``auto`` when the work repays compiling (:data:`COMPILE_MIN_TFLOP`); never after a failed compilation."""
    return not engine.compile_failed and (
        engine.mode == "compiled" or (engine.mode == "auto" and work_flop >= COMPILE_MIN_TFLOP * 1e12))


def compile_failed(engine: Engine, e: Exception, then: str) -> None:
    """Remember (on ``engine``) and log that ``torch.compile`` failed with ``e``; ``then``: what runs instead."""
    engine.compile_failed = True
    log.warning("torch.compile failed (%s: %s); %s from now on", type(e).__name__,
                str(e).splitlines()[0] if str(e) else "", then)


def arch_key(model: nn.Module) -> tuple:
    """What a compiled graph of ``model`` (passed as an argument) depends on: its class and parameter shapes."""
    return (type(model), tuple(tuple(p.shape) for p in model.parameters()))


_SHARED: Dict[tuple, object] = {}  # compiled functions by (function, architecture, backend)


def shared_compile(fn, model: nn.Module, backend: str = "inductor", options: Optional[Dict[str, object]] = None):
    """``torch.compile(fn)`` once per (``fn``, :func:`arch_key` of ``model``, ``backend``, ``options``).

    ``fn`` takes the network as an argument, so every fresh network of that
    architecture (DC's and MTT's per-iteration networks) reuses one graph.
    ``options``: inductor options of this graph (None: the defaults).
    """
    key = (fn, arch_key(model), backend, tuple(sorted((options or {}).items())))
    if key not in _SHARED:
        kw = {"options": dict(options)} if options and backend == "inductor" else {}
        _SHARED[key] = torch.compile(fn, dynamic=False, backend=backend, **kw)
    return _SHARED[key]


def slice_size(act: int, budget_bytes: int, cap: Optional[int] = None) -> int:
    """The CPU slice: the largest power of two from :data:`MIN_MICRO` (at most ``cap`` when given)
    whose largest activation, ``act`` bytes per sample, fits ``budget_bytes``."""
    mb = MIN_MICRO
    while mb * 2 * act <= budget_bytes and (cap is None or mb * 2 <= cap):
        mb *= 2
    return mb


def plan_step(model: nn.Module, sample_shape: Tuple[int, ...], batch_size: int, samples: int,
              device: torch.device, mode: Union[Engine, str, None] = None) -> StepPlan:
    """The :class:`StepPlan` of a fit of ``samples`` samples in batches of ``batch_size``.

    Slices only on CPU and for :func:`per_sample` networks: the largest power of
    two (>= :data:`MIN_MICRO`) whose largest activation fits :data:`MICRO_BYTES`,
    if smaller than the batch.  Compiles in mode ``compiled``, or in ``auto``
    where that was measured to pay: sliced (per-sample, CPU) fits whose
    ``3 * forward FLOPs * samples`` reaches :data:`COMPILE_MIN_TFLOP`.  Batch-norm
    networks on CPU train channels-last (:func:`wants_channels_last`; not in ``plain``).
    """
    engine = Engine.of(mode)
    mode = engine.mode
    if mode == "plain":
        return StepPlan()
    cl = wants_channels_last(model, device)
    fwd, act = profile(model, sample_shape)
    micro = 0
    if device.type == "cpu" and per_sample(model):
        mb = slice_size(act, MICRO_BYTES)
        micro = mb if mb < batch_size else 0
    compiled = mode == "compiled" or (mode == "auto" and micro > 0
                                      and 3 * fwd * samples >= COMPILE_MIN_TFLOP * 1e12)
    return StepPlan(micro, compiled and not engine.compile_failed, cl)


def eval_batch(model: nn.Module, sample_shape: Tuple[int, ...], device: torch.device) -> int:
    """Images per forward of an evaluation (eval mode, no gradient) on ``device``.

    On CPU the engine's cache rule (:data:`MICRO_BYTES`, as :func:`plan_step` slices a step):
    the largest power of two from :data:`MIN_MICRO` up to :data:`EVAL_BATCH` whose largest
    activation fits; whole 1,024-image batches spill the cache (2,000 test images on 28 px in
    64-image slices: 2.5x faster for ConvNet-3-32, 3.1x ConvNet-3-32-BN;
    benchmarks/results/engine_layout.json).
    Elsewhere :data:`EVAL_BATCH`.  Evaluation in eval mode is per sample, so the slice
    changes float rounding only.
    """
    if torch.device(device).type != "cpu" or next(model.parameters(), None) is None:
        return EVAL_BATCH  # (a parameter-free function has no activation profile)
    _, act = profile(model, sample_shape)
    return slice_size(act, MICRO_BYTES, EVAL_BATCH)


def group_engine(mode: Union[Engine, str, None], work_flop: float) -> Optional[Engine]:
    """One compiled :class:`Engine` for a group of sliced fits that together run ``work_flop`` training
    FLOPs, when ``mode`` is ``auto`` and that total repays the compilation, else None.

    A compiled graph is built once per architecture and input shape in a process and then
    reused by every fit of it, so what must repay the seconds of compiling is the work of all
    the fits that share it (:data:`COMPILE_MIN_TFLOP`, measured for one fit), not each fit's
    own: a book chapter's hundred 100-step students compile once and run 1.3x faster
    (benchmarks/README.md).  The engine is shared, so a failed compilation stops them all trying.
    """
    if Engine.of(mode).mode != "auto" or work_flop < COMPILE_MIN_TFLOP * 1e12:
        return None
    return Engine("compiled")


class Stepper:
    """Forward + backward of one batch under a :class:`StepPlan`.

    Args:
        model: the student (trained in place; the compiled forward shares its parameters).
        plan: the step plan.
        batch_size: the protocol's batch; without slices only batches of this
            size run compiled (one static shape), the remainder eager.
        engine: told when compilation fails (its later plans run eager), or None.
    """

    def __init__(self, model: nn.Module, plan: StepPlan, batch_size: int,
                 engine: Optional[Engine] = None):
        self.model, self.plan, self.engine = model, plan, engine
        self.compiled_n = plan.micro_batch or batch_size
        self.fast = torch.compile(model) if plan.compiled else model

    def describe(self) -> str:
        """The plan's label, as run (after a failed compilation: eager)."""
        return self.plan.describe()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast is self.model or len(x) != self.compiled_n:
            return self.model(x)
        try:
            return self.fast(x)
        except Exception as e:  # noqa: BLE001 - any compiler failure: train eager instead
            compile_failed(self.engine or Engine(), e, "training eager")
            self.fast, self.plan = self.model, dataclasses.replace(self.plan, compiled=False)
            return self.model(x)

    def backward(self, regime, batch: Batch) -> torch.Tensor:
        """Accumulate the gradient of the batch-mean ``regime.batch_loss`` on ``batch`` (:meth:`Regime.batch`).

        Returns:
            the batch-mean loss (detached scalar).
        """
        n, mb = len(batch), self.plan.micro_batch
        if not mb or n <= mb:
            loss = regime.batch_loss(self._forward(batch.views), batch)
            loss.backward()
            return loss.detach()
        total = torch.zeros((), device=batch.views.device)
        for s in range(0, n, mb):
            sl = slice(s, min(s + mb, n))
            loss = slice_loss(regime, self._forward, batch, sl) * ((sl.stop - sl.start) / n)
            loss.backward()
            total += loss.detach()
        return total


# ---- sliced forward passes of a distiller's real batch (DM's embeddings, DC's real gradients) ----

def batch_independent(model: nn.Module) -> bool:
    """Whether each sample's output is independent of the batch *now*: no batch norm in training mode.

    Unlike :func:`per_sample` (a property of the architecture, for training) this
    reads the current mode: DC's frozen (eval-mode) batch norm qualifies.
    """
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())


#: slice target of a compiled forward without gradient (DM's real batch): 128 ConvNet-128 images on 32 x 32
NO_GRAD_MICRO_BYTES = 8 * MICRO_BYTES
_CALLS: Dict[tuple, object] = {}  # one compiled ``model.<method>(x)`` per (architecture, method, precision)
#: precisions a slicer's passes may run in (:attr:`ddlib.core.config.Profile.real_precision`)
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}


def _call(model: nn.Module, x: torch.Tensor, method: str, precision: str) -> torch.Tensor:
    """``model.<method>(x)``, under bf16 autocast when asked; the output in float32."""
    if PRECISIONS[precision] is None:
        return getattr(model, method)(x)
    with torch.autocast(x.device.type, dtype=PRECISIONS[precision]):
        return getattr(model, method)(x).float()


def _compiled_call(arch: tuple, method: str, precision: str = "float32"):
    if (arch, method, precision) not in _CALLS:
        # the module is an argument, so a fresh network of the same architecture reuses the graph;
        # one function per architecture keeps each within dynamo's recompile limit
        _CALLS[arch, method, precision] = torch.compile(lambda model, x: _call(model, x, method, precision),
                                                        dynamic=False)
    return _CALLS[arch, method, precision]


class Slicer:
    """Forward passes of a large batch in cache-sized slices, compiled where that pays.

    Same reasoning as :class:`Stepper`: a slice whose largest activation stays near
    :data:`MICRO_BYTES` is streamed from cache, so a CPU forward of DM's 2,560 real
    images (or DC's 256 per class) in slices is faster than one batch.  Callers
    combine the slices' outputs (class sums, gradient sums): the same sums in
    another order.  Slices are used only on CPU and only while
    :func:`batch_independent` holds (checked at every call); otherwise one slice,
    the whole batch.

    Args:
        model: a network of the architecture the slices will run (sizes the slice).
        sample_shape: (C, H, W) of one sample.
        device: where the passes run.
        engine: mode or :class:`Engine`: ``plain`` never slices, ``eager`` slices,
            ``compiled`` slices and compiles full slices, ``auto`` compiles when
            ``work_flop`` reaches :data:`COMPILE_MIN_TFLOP`.
        work_flop: forward FLOPs the caller expects to run through the slicer in
            total (to decide ``auto``).
        micro_bytes: target bytes of a slice's largest activation; compiled passes without
            gradient keep no activations and take :data:`NO_GRAD_MICRO_BYTES`; eager
            passes are capped at :data:`MICRO_BYTES` (faster eager, measured for ConvNet-3-32 and -128 on 28 px).
        precision: a key of :data:`PRECISIONS`: "bfloat16" runs every pass under
            bf16 autocast (outputs float32); only for passes without gradient, whose
            callers state the error they accept (the profile's ``real_precision``).
    """

    def __init__(self, model: nn.Module, sample_shape: Tuple[int, ...], device: torch.device,
                 engine: Union[Engine, str, None] = None, work_flop: float = 0.0,
                 micro_bytes: int = MICRO_BYTES, precision: str = "float32"):
        if precision not in PRECISIONS:
            raise DDLibError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        self.precision = precision
        self.engine = Engine.of(engine)
        self.arch = arch_key(model)
        mode = self.engine.mode
        _, act = profile(model, sample_shape)
        slicing = mode != "plain" and torch.device(device).type == "cpu"
        self.compiled = slicing and compiles(self.engine, work_flop)
        if not self.compiled:  # eager passes run fastest in the cache-sized slice, with or without
            micro_bytes = min(micro_bytes, MICRO_BYTES)  # gradient (DM's `default` real half: 1.26x)
        micro = 0
        if slicing:
            micro = slice_size(act, micro_bytes)
        self.micro = micro

    def slices(self, model: nn.Module, n: int):
        """Consecutive slices covering ``range(n)`` (one when ``model`` is not batch-independent)."""
        step = self.micro if self.micro and batch_independent(model) else n
        return [slice(s, min(s + step, n)) for s in range(0, n, max(step, 1))]

    def __call__(self, model: nn.Module, x: torch.Tensor, method: str = "forward") -> torch.Tensor:
        """``model.<method>(x)`` in the slicer's precision; full slices compiled when planned (eager after a failure)."""
        if not self.compiled or len(x) != self.micro:
            return _call(model, x, method, self.precision)
        try:
            return _compiled_call(self.arch, method, self.precision)(model, x)
        except Exception as e:  # noqa: BLE001 - any compiler failure: run eager instead
            compile_failed(self.engine, e, "running eager")
            self.compiled = False
            return _call(model, x, method, self.precision)
