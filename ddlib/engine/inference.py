"""Forward passes without gradient (teacher labels, evaluation), compiled where the fits around them are.

A `default` SL+KD step runs the teacher on every slice of views, and every
stored run evaluates 3,000 images: on a CPU those passes are a third of an
SL+KD step and half a second of every run.  Where the student's step is
compiled (:class:`ddlib.engine.fastpath.StepPlan`), these passes run through
one compiled graph per architecture too (the network is an argument, so every
teacher and student of that architecture shares it): eager instance norm is
several unfused passes over each activation (benchmarks/results/engine_layout.json).
Only batches of the planned size run compiled, so one static shape is compiled;
other sizes (a remainder) run eager.  Compiled and eager passes compute the same
function; their outputs differ by float rounding (tests/test_inference.py).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ddlib.engine.fastpath import Engine, _compiled_call, arch_key, compile_failed


class Forward:
    """``model(x)`` for passes without gradient: ``forward(model, x) -> logits``.

    Args:
        rows: the batch size that runs compiled; 0 = never compiled (every call eager).
        engine: told when compilation fails (later calls, and fits sharing it, run eager).
    """

    def __init__(self, rows: int = 0, engine: Optional[Engine] = None):
        self.rows, self.engine = int(rows), engine

    @property
    def compiled(self) -> bool:
        return self.rows > 0 and not (self.engine is not None and self.engine.compile_failed)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self.compiled or len(x) != self.rows:
            return model(x)
        try:
            return _compiled_call(arch_key(model), "forward")(model, x)
        except Exception as e:  # noqa: BLE001 - any compiler failure: run eager instead
            compile_failed(self.engine or Engine(), e, "running passes without gradient eager")
            self.rows = 0
            return model(x)

    def __repr__(self) -> str:
        return f"Forward(rows={self.rows}, compiled={self.compiled})"


EAGER = Forward()  # every pass eager
