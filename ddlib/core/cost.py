"""Construction-cost accounting: wall seconds, peak memory, network passes.

A :class:`Meter` wraps the building of a condensed set (or a teacher).  It
counts samples pushed forward through any network it was asked to watch
(``meter.watch(model)`` adds a forward hook) and samples back-propagated
(``meter.backward(n)``, called where ``loss.backward()`` is).  Peak memory is
the CUDA allocator's peak on GPU, and the peak resident-set growth sampled
every 10 ms on CPU.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass
from typing import List

import torch

# passes one back-propagated image counts, a forward pass counting 1: a backward pass
# costs about twice the forward's multiply-adds (Kaplan et al. 2020, Sec. 2.1)
BACKWARD_WEIGHT = 2.0


@dataclass(frozen=True)
class Cost:
    """What building something spent.

    Attributes:
        seconds: wall-clock seconds.
        peak_mem_mb: peak memory above the start, MiB (max, not summed, when added).
        fwd: samples forwarded through a network (teacher, scorer, embedder, student).
        bwd: samples back-propagated through a network.
        label_bytes: bytes of stored labels (soft labels are not free).
        device: where it ran.
    """

    seconds: float = 0.0
    peak_mem_mb: float = 0.0
    fwd: int = 0
    bwd: int = 0
    label_bytes: int = 0
    device: str = "cpu"

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.seconds + other.seconds, max(self.peak_mem_mb, other.peak_mem_mb),
                    self.fwd + other.fwd, self.bwd + other.bwd,
                    self.label_bytes + other.label_bytes, self.device)

    def as_dict(self) -> dict:
        return asdict(self)


def _rss() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:  # pragma: no cover - psutil ships with jupyter
        return 0


class Meter:
    """Context manager that measures one build; read ``.cost`` afterwards."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.fwd = 0
        self.bwd = 0
        self.label_bytes = 0
        self.extra = Cost(device=self.device.type)
        self.excluded_seconds = 0.0  # spent inside ``upstream()``, charged via ``charge``
        self._hooks: List = []
        self.cost = Cost(device=self.device.type)

    def watch(self, model: torch.nn.Module) -> torch.nn.Module:
        """Count every sample ``model`` forwards (``forward`` or ``embed``) while open.

        The hook sits on ``model.stem`` when the model has one: the first module
        that both ``forward`` and ``embed`` run through.
        """

        @torch.compiler.disable  # a counter, not part of a graph: traced, its value would be guarded on
        def hook(_m, inputs, _out):
            self.fwd += int(inputs[0].shape[0])

        self._hooks.append(getattr(model, "stem", model).register_forward_hook(hook))
        return model

    def forward(self, n: int) -> None:
        """Count ``n`` forwarded samples by hand: for a compiled function, which a hook would split."""
        self.fwd += int(n)

    def backward(self, n: int) -> None:
        self.bwd += int(n)

    @contextlib.contextmanager
    def upstream(self):
        """Leave the time spent inside off this build's own clock.

        For cached upstream work (a teacher, scores) computed during the build:
        the build is charged its recorded cost with :meth:`charge` instead, so a
        cache miss and a cache hit report the same cost, and nothing twice.
        """
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.excluded_seconds += time.perf_counter() - t0

    def charge(self, cost: Cost) -> None:
        """Add an upstream cost (a cached teacher, cached scores) to this build."""
        self.extra = self.extra + cost

    def __enter__(self) -> "Meter":
        self._t0 = time.perf_counter()
        self._peak = 0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = _rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, _rss() - self._base)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss() - self._base)
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        own = Cost(time.perf_counter() - self._t0 - self.excluded_seconds, max(peak, 0) / 2**20, self.fwd, self.bwd,
                   self.label_bytes, self.device.type)
        self.cost = own + self.extra
