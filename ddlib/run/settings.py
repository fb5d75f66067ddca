"""The environment, read once: ``$DDLIB_*`` and torchrun's variables as one :class:`Settings`.

This is the only module of ddlib that reads ``DDLIB_*`` variables.  The CLI
(:mod:`ddlib.run.cli`) and the notebook-facing entry points of the run layer
(:func:`ddlib.run.runner.run`, :class:`ddlib.run.study.Study`) call
:meth:`Settings.from_env` once and hand its values down as explicit
arguments: ``Store(settings.home)``, ``pick_device(settings.device)``,
``load(..., data_dir=settings.data)``, ``fit(..., engine=settings.engine)``.
Nothing below the run layer looks at the environment.

Two places pass the environment *on* without reading it: :mod:`ddlib.run.book`
gives papermill's kernels and jupyter-book the parent's environment, and
:mod:`ddlib.run.grid_ray` forwards the ``DDLIB_*`` variables to Ray workers,
whose tasks then read them here, once, in their own process.

Variables:

* ``DDLIB_HOME``   the results store's folder (default ``~/.cache/ddlib``).
* ``DDLIB_DATA``   the datasets' folder (default ``~/.cache/ddlib/data``); a
  folder that does not exist is an error when a dataset is looked up there
  (:func:`ddlib.data.sources.data_root`), not before.
* ``DDLIB_DEVICE`` the device (``cpu``, ``cuda``, ``cuda:1``); default CUDA when present.
* ``DDLIB_ENGINE`` the step execution mode (:data:`ddlib.engine.fastpath.MODES`).
* ``DDLIB_WORKLOG`` a file to append where the time goes (:mod:`ddlib.core.worklog`); unset: nothing.
* ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` set by ``torchrun`` (:class:`Torchrun`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import torch

from ddlib.core.seeding import pick_device
from ddlib.core.store import SINGLE_PROCESS, Store, Sync
from ddlib.data import Split, load
from ddlib.engine.fastpath import engine_mode


def default_home() -> Path:
    """The store's folder when ``$DDLIB_HOME`` is unset."""
    return Path.home() / ".cache" / "ddlib"


@dataclass(frozen=True)
class Torchrun:
    """This process's place among those ``torchrun`` started (its ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``)."""

    rank: int
    world: int
    local_rank: int


@dataclass(frozen=True)
class Settings:
    """What the environment says, read once.

    Attributes:
        home: the results store's folder (``$DDLIB_HOME``).
        data: the datasets' folder (``$DDLIB_DATA``), or None for the data
            layer's default search list.
        device: the device name (``$DDLIB_DEVICE``), or None: CUDA when present, else CPU.
        engine: the step execution mode (``$DDLIB_ENGINE``, default ``auto``), validated.
        torchrun: this process's ranks when ``torchrun`` started it as one of
            several processes, else None.
        worklog: the file the store's :class:`ddlib.core.worklog.WorkLog` appends to
            (``$DDLIB_WORKLOG``; ``benchmarks/book_time.py`` sets it), or None: nothing is logged.
    """

    home: Path
    data: Optional[Path] = None
    device: Optional[str] = None
    engine: str = "auto"
    torchrun: Optional[Torchrun] = None
    worklog: Optional[Path] = None

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """Read ``environ`` (default ``os.environ``): the one place ddlib reads ``DDLIB_*``.

        Raises:
            DDLibError: ``DDLIB_ENGINE`` names no engine mode (one line listing the valid ones).
        """
        env = os.environ if environ is None else environ
        data = env.get("DDLIB_DATA")
        torchrun = None
        if "RANK" in env and int(env.get("WORLD_SIZE", "1")) > 1:
            rank = int(env["RANK"])
            torchrun = Torchrun(rank, int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", rank)))
        wl = env.get("DDLIB_WORKLOG") or None
        return cls(home=Path(env.get("DDLIB_HOME", default_home())),
                   data=Path(data) if data else None,
                   device=env.get("DDLIB_DEVICE") or None,
                   engine=engine_mode(env.get("DDLIB_ENGINE") or None),
                   torchrun=torchrun, worklog=Path(wl) if wl else None)

    def store(self, sync: Sync = SINGLE_PROCESS) -> Store:
        """The results store under :attr:`home`, coordinated by ``sync`` (a process group, or none)."""
        return Store(self.home, sync=sync, worklog=self.worklog)


def resolve(settings: Optional[Settings]) -> Settings:
    """``settings``, else the environment's (for entry points called without them)."""
    return settings if settings is not None else Settings.from_env()


def default_store(settings: Optional[Settings] = None) -> Store:
    """The store a user means by "the store": ``$DDLIB_HOME``'s (or ``settings.home``)."""
    return resolve(settings).store()


def default_device(name: Optional[str] = None, settings: Optional[Settings] = None) -> torch.device:
    """``name``, else ``$DDLIB_DEVICE`` (or ``settings.device``), else CUDA when present, else CPU."""
    return pick_device(name or resolve(settings).device)


def load_data(name: str, profile=None, device="cpu", settings: Optional[Settings] = None) -> Split:
    """:func:`ddlib.data.load` from ``$DDLIB_DATA`` (or ``settings.data``), for callers without settings."""
    return load(name, profile, device, data_dir=resolve(settings).data)
