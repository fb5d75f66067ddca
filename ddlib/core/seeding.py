"""Explicit seed streams and device choice.

Every random draw comes from a local ``torch.Generator`` seeded from the run's
integer seed and a stream name ("select", "synth", "init", "order", "augment"),
so that e.g. changing the data order never changes the model init.  The clock
is never used.
"""
from __future__ import annotations

import hashlib

import torch


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit integer derived from (seed, stream name); stable across runs and machines."""
    h = hashlib.sha256(f"{int(seed)}/{stream}".encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for ``stream`` of run ``seed`` (draw on CPU, move to device)."""
    g = torch.Generator()
    g.manual_seed(stream_seed(seed, stream))
    return g


def pick_device(name: str | None = None) -> torch.device:
    """``name``, else CUDA when available, else CPU.

    The run layer passes ``$DDLIB_DEVICE`` here (:mod:`ddlib.run.settings`).
    """
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
