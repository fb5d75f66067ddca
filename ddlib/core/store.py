"""The results store: one SQLite row per run, artifacts as files by hash.

Layout under the store's folder (the run layer's ``$DDLIB_HOME``, :mod:`ddlib.run.settings`)::

    results.sqlite          table ``runs``: one tidy row per run, keyed by config hash
    artifacts/<kind>/<hash>.pt   condensed sets, teachers (tensors only)

Rows are inserted in one SQLite transaction, so a crash leaves either the whole
row or none.  Artifacts are written to a temp file, fsync'ed, then renamed
into place, and loaded with ``weights_only=True`` (no arbitrary unpickling).
Under ``torchrun`` only rank 0 writes (rows and artifacts), then all ranks
meet at a barrier: the store asks the :class:`Sync` it was given (the run
layer passes :class:`ddlib.engine.distributed.DistInfo`; the default,
:data:`SINGLE_PROCESS`, is one process that always writes).
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Protocol

import torch

from ddlib.core.registry import DDLibError
from ddlib.core.worklog import WorkLog

COLUMNS = (
    "key", "dataset", "method", "family", "ipc", "regime", "budget", "seed", "profile", "model",
    "protocol", "accuracy", "val_accuracy", "steps", "samples_seen", "train_seconds",
    "build_seconds", "build_peak_mem_mb", "build_fwd", "build_bwd", "label_bytes",
    "device", "version", "git_commit", "created", "config_json",
    "teacher_model", "eval_lr", "lr", "engine", "teacher_seconds", "teacher_fwd", "teacher_bwd",
)
# added in 0.2.x / 0.4 / 0.6 (the regime's teachers' training cost); None when a row lacks them
OPTIONAL = ("teacher_model", "eval_lr", "lr", "engine", "teacher_seconds", "teacher_fwd", "teacher_bwd")
_TYPES = {"ipc": "INTEGER", "seed": "INTEGER", "steps": "INTEGER", "samples_seen": "INTEGER",
          "build_fwd": "INTEGER", "build_bwd": "INTEGER", "label_bytes": "INTEGER",
          "budget": "REAL", "accuracy": "REAL", "val_accuracy": "REAL", "train_seconds": "REAL",
          "build_seconds": "REAL", "build_peak_mem_mb": "REAL", "lr": "REAL",
          "teacher_seconds": "REAL", "teacher_fwd": "INTEGER", "teacher_bwd": "INTEGER"}


class Sync(Protocol):
    """How the processes sharing one store coordinate its writes.

    Under ``torchrun`` every rank runs the same program on the same store:
    one rank writes, the others wait for it, and whether a cache entry exists
    is decided once for all (a rank that looked for itself could see a file
    the writer has just made and skip the collective calls of a build).
    """

    def is_writer(self) -> bool:
        """Whether this process writes rows and artifacts."""

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def agree(self, flag: bool) -> bool:
        """The writer's ``flag``, on every process (a collective call)."""


class SingleProcess:
    """The :class:`Sync` of a store used by one process: it writes, waits for nobody, agrees with itself."""

    def is_writer(self) -> bool:
        return True

    def barrier(self) -> None:
        pass

    def agree(self, flag: bool) -> bool:
        return flag


SINGLE_PROCESS = SingleProcess()


class Store:
    """Results rows + hashed artifacts under one folder.

    Args:
        root: the folder (created if missing); the run layer's
            :func:`ddlib.run.settings.default_store` opens ``$DDLIB_HOME``'s.
        sync: how the processes sharing it coordinate (default: one process).
        worklog: a file to append where the time of fresh work goes (:mod:`ddlib.core.worklog`), or None.
    """

    sync: Sync = SINGLE_PROCESS  # also for subclasses that skip __init__ (grid_ray's task store)
    worklog: WorkLog = WorkLog()  # likewise: logs nothing

    def __init__(self, root: Path, sync: Sync = SINGLE_PROCESS, worklog: Optional[Path] = None):
        self.root = Path(root)
        self.sync = sync
        self.worklog = WorkLog(worklog)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "results.sqlite"
        cols = ", ".join(f"{c} {_TYPES.get(c, 'TEXT')}" + (" PRIMARY KEY" if c == "key" else "")
                         for c in COLUMNS)
        try:
            with self._connect() as con:
                con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
                have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
                for c in COLUMNS:  # a store written by an older ddlib gains the new columns
                    if c not in have:
                        con.execute(f"ALTER TABLE runs ADD COLUMN {c} {_TYPES.get(c, 'TEXT')}")
                con.execute("CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, config_json TEXT, "
                            "error TEXT, created TEXT)")
        except sqlite3.DatabaseError as e:
            raise DDLibError(f"results store {self.db_path} is unreadable: {e}") from None

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db_path, timeout=60)
        # Switching a new database to WAL fails at once with "database is locked"
        # (no busy wait) while another process does the same: retry for a while.
        for attempt in range(100):
            try:
                con.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 99:
                    con.close()
                    raise
                time.sleep(0.05 + 0.05 * (attempt % 4))
        con.execute("PRAGMA synchronous=FULL")
        return con

    # -- rows -------------------------------------------------------------
    def _row(self, key: str) -> Optional[sqlite3.Row]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return con.execute("SELECT * FROM runs WHERE key = ?", (key,)).fetchone()

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        """The stored row of ``key`` or None (under torchrun: as rank 0 sees it, on every rank)."""
        r = self._row(key)
        if not self.sync.agree(r is not None):
            return None
        # rank 0 saw a row this rank did not: it is committed by now, read again
        return dict(r if r is not None else self._row(key))

    def put(self, row: Dict[str, Any]) -> None:
        """Insert one complete row atomically (an existing key is kept, not overwritten)."""
        row = {**{c: None for c in OPTIONAL}, **row}
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"row lacks columns {missing}")
        vals = [json.dumps(row[c]) if isinstance(row[c], (dict, list)) else row[c] for c in COLUMNS]
        if self.sync.is_writer():  # under torchrun rank 0 alone writes; the others wait
            with self._connect() as con:
                con.execute(f"INSERT OR IGNORE INTO runs ({', '.join(COLUMNS)}) VALUES "
                            f"({', '.join('?' * len(COLUMNS))})", vals)
        self.sync.barrier()

    def put_failure(self, key: str, config_json: str, error: str) -> None:
        """Record (or replace) the error of a failed run; a later success clears it."""
        import datetime as _dt

        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO failures (key, config_json, error, created) VALUES (?, ?, ?, ?)",
                        (key, config_json, error, _dt.datetime.now(_dt.timezone.utc).isoformat()))

    def clear_failure(self, key: str) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM failures WHERE key = ?", (key,))

    def failures(self) -> list:
        """Failed runs without a stored row: dicts with key, config_json, error, created."""
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(
                "SELECT * FROM failures WHERE key NOT IN (SELECT key FROM runs) ORDER BY created")]

    def rows(self) -> list:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY created")]

    def frame(self, **where):
        """Rows as a pandas DataFrame, filtered by ``column=value`` or ``column=[values]``."""
        import pandas as pd

        df = pd.DataFrame(self.rows(), columns=list(COLUMNS))
        for col, val in where.items():
            if val is None:
                continue
            vals = list(val) if isinstance(val, (list, tuple, set)) else [val]
            df = df[df[col].isin(vals)]
        return df.reset_index(drop=True)

    # -- artifacts ---------------------------------------------------------
    def artifact_path(self, kind: str, key: str) -> Path:
        return self.root / "artifacts" / kind / f"{key}.pt"

    def save_artifact(self, kind: str, key: str, obj: Dict[str, Any]) -> Path:
        """Atomically write a dict of tensors / plain values (temp, fsync, rename)."""
        path = self.artifact_path(kind, key)
        if not self.sync.is_writer():  # torchrun: rank 0 writes, see Sync
            self.sync.barrier()
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.sync.barrier()
        return path

    def load_artifact(self, kind: str, key: str) -> Optional[Dict[str, Any]]:
        """Load an artifact, or None if absent; a corrupt file is an error, never code.

        Under torchrun rank 0 decides whether it is present (:meth:`Sync.agree`),
        so every rank calls this at the same point and all build or all load.
        """
        path = self.artifact_path(kind, key)
        if not self.sync.agree(path.exists()):
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise DDLibError(f"corrupt cache file {path} ({type(e).__name__}); delete it to rebuild") from None

    def artifact_keys(self, kind: str) -> Iterable[str]:
        folder = self.root / "artifacts" / kind
        return sorted(p.stem for p in folder.glob("*.pt")) if folder.exists() else []
