"""Where the time goes: one JSON line per piece of fresh work, when the store keeps a work log.

``benchmarks/book_time.py`` sets ``$DDLIB_WORKLOG``; :class:`ddlib.run.settings.Settings`
reads it at the boundary and opens the store with a :class:`WorkLog` on that
file.  Each ``store.worklog.work(kind)`` block appends ``{"at": unix seconds at
its end, "kind": ..., "seconds": ..., **info}`` where ``seconds`` is the block's
*own* wall time: blocks nested in it (a teacher trained inside a build, scores
computed for a coreset) are logged under their own kind and subtracted, so the
kinds of one process add up to at most its wall time.  A store opened without a
log file (the default) writes nothing.

Kinds used: ``build`` (a condensed set, MTT's experts included), ``scores``
(EL2N / forgetting / CCS scoring runs), ``teacher`` (one teacher trained),
``train`` (student fits: one run, or a group trained side by side).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Iterator, Optional


class WorkLog:
    """Appends timed blocks to ``path`` (nothing when ``path`` is None)."""

    def __init__(self, path: Optional[Path] = None):
        self.path = Path(path) if path else None
        self._local = threading.local()  # per thread: the open blocks' nested seconds

    @contextlib.contextmanager
    def work(self, kind: str, **info) -> Iterator[None]:
        """Time the block; log its own seconds (minus nested blocks') under ``kind``."""
        if self.path is None:
            yield
            return
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append(0.0)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            total = time.perf_counter() - t0
            nested = stack.pop()
            if stack:
                stack[-1] += total
            line = {"at": round(time.time(), 3), "kind": kind, "seconds": round(total - nested, 3),
                    "pid": os.getpid(), **info}
            with open(self.path, "a") as f:  # one short line per write: whole lines even from two processes
                f.write(json.dumps(line, default=str) + "\n")
