"""The Ray backend of the grid runner: ``python -m ddlib grid GRID.yaml --ray auto``.

Every missing run is one Ray task asking for ``num_cpus``, ``memory`` and, when
the cluster has GPUs, one GPU.  Tasks share condensed sets and teachers through
the artifact cache: the store's folder is passed to each task, which must see it
at the same path (``$DDLIB_HOME`` on one machine, or a shared filesystem), and
tasks write artifacts there atomically.  Rows are not written by tasks: a task
returns its row and the driver stores it, once (SQLite is never written from
several machines).  A run's exception is returned as its error and recorded in
the ``failures`` table like the local path; a crashed worker's error too.

So that the expensive shared pieces are built once, not by every task that
needs them at the same time, tasks are ordered by Ray dependencies
(:func:`plan`): the teachers of a (dataset, profile) are trained by one task
before the runs that need them, and the first run of each condensed set (its
*leader*) runs before the other runs of that set.

``ray`` is imported only here and only when a grid runs on Ray: ``ddlib``
imports without it.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ddlib.core.config import PROFILES, RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.engine.regimes import REGIMES
from ddlib.engine.teachers import get_teachers
from ddlib.methods.build import build_key
from ddlib.run.runner import error_text, run, validate
from ddlib.run.settings import load_data


@dataclass(frozen=True)
class RayOptions:
    """Where the grid runs and what each task asks for.

    Attributes:
        address: "auto" (the running cluster, e.g. after ``ray start --head``),
            "local" (a new local instance for this grid) or "host:port".
            Ignored when Ray is already initialised in this process.
        num_cpus: CPUs per task (also the task's torch thread count).
        memory_gb: memory per task in GiB (Ray's ``memory`` resource; 0 = none).
        num_gpus: GPUs per task; None = 1 when the cluster has GPUs, else 0.
    """

    address: str = "auto"
    num_cpus: float = 1.0
    memory_gb: float = 2.0
    num_gpus: Optional[float] = None


@dataclass(frozen=True)
class Step:
    """One run of the grid and what must finish before it starts.

    Attributes:
        cfg: the run.
        after_run: index (in the plan) of the run that builds this run's
            condensed set first, or None for a leader.
        teachers: (dataset, profile, seed, n, checkpoint) of the teacher task a
            leader waits for, or None.
    """

    cfg: RunConfig
    after_run: Optional[int]
    teachers: Optional[Tuple[str, str, int, int, str]]


def plan(cfgs: Sequence[RunConfig]) -> List[Step]:
    """Order runs so that shared teachers and condensed sets are built once.

    Runs whose build keys (:func:`ddlib.methods.build.build_key`) agree wait for the
    first of them; the leaders of a (dataset, profile, run seed, teacher
    checkpoint) group (every run seed has its own teachers) wait for one task that trains the most teachers any of the group's
    regimes needs (none when no regime needs one).
    """
    resolved = [validate(c) for c in cfgs]
    group = lambda r: (r.dataset, r.profile, r.seed, str(dict(r.hparams).get("teacher_ckpt") or ""))  # noqa: E731
    need: Dict[tuple, int] = {}
    for r in resolved:
        n = REGIMES.get(r.regime)().n_teachers(PROFILES.get(r.profile))
        need[group(r)] = max(need.get(group(r), 0), n)
    leaders: Dict[str, int] = {}
    steps = []
    for i, (c, r) in enumerate(zip(cfgs, resolved)):
        bk = build_key(r)
        if bk in leaders:
            steps.append(Step(c, leaders[bk], None))
            continue
        leaders[bk] = i
        g = group(r)
        steps.append(Step(c, None, (*g[:3], need[g], g[3]) if need[g] else None))
    return steps


class _TaskStore(Store):
    """The store as a task sees it: artifacts in the shared folder, no rows.

    ``get`` always misses (the driver skipped stored runs) and ``put`` drops the
    row, which the task returns to the driver instead; the SQLite file is
    never opened.
    """

    def __init__(self, root):  # not super().__init__: that opens the database
        self.root = Path(root)
        self.db_path = self.root / "results.sqlite"

    def get(self, key):
        return None

    def put(self, row):
        pass


def _setup(threads: float) -> None:
    torch.set_num_threads(max(1, int(threads)))


def _run_task(cfg: RunConfig, root: str, device: str, threads: float, *after):
    """Ray task: run ``cfg``; returns (key, row or None, error or None). ``after``: dependencies."""
    _setup(threads)
    try:
        row, _ = run(cfg, _TaskStore(root), device=device, quiet=True)
        return cfg.key(), row, None
    except Exception as e:  # returned, not raised: the driver records it
        return cfg.key(), None, error_text(e)


def _teachers_task(dataset: str, profile: str, seed: int, n: int, checkpoint: str, root: str, device: str,
                   threads: float) -> Optional[str]:
    """Ray task: train (or find) run seed ``seed``'s first ``n`` teachers; returns an error or None."""
    _setup(threads)
    try:
        prof = PROFILES.get(profile)
        get_teachers(load_data(dataset, prof, device), prof, _TaskStore(root), n, seed=seed, quiet=True,
                     checkpoint=checkpoint or None)
        return None
    except Exception as e:  # the runs that need the teachers report it again
        return error_text(e)


def _connect(opts: RayOptions):
    """Import and initialise Ray; returns (ray module, whether this call started it)."""
    try:
        import ray  # lazy: an optional dependency, needed only when a grid runs on Ray
    except ImportError:
        raise DDLibError("--ray needs the ray package: pip install -r requirements.txt") from None
    if ray.is_initialized():
        return ray, False
    _reachable(opts.address)
    kw = {"include_dashboard": False} if opts.address == "local" else {}
    try:
        ray.init(address=opts.address, **kw)
    except (ConnectionError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DDLibError(f"cannot reach a Ray cluster at {opts.address!r} ({msg}); start one with "
                         f"`ray start --head` or use --ray local") from None
    return ray, True


def _reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a host:port nobody listens on (ray.init would retry for minutes)."""
    if address in ("auto", "local") or "://" in address or ":" not in address:
        return
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise DDLibError(f"cannot reach a Ray cluster at {address!r} ({type(e).__name__}: {e}); start one "
                         f"with `ray start --head` or use --ray local") from None


def _runtime_env() -> dict:
    """Environment of the tasks: this ddlib checkout importable, the DDLIB_* settings."""
    repo = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k.startswith("DDLIB_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": env}


def _check_fits(ray, opts: RayOptions, gpus: float) -> None:
    """Refuse requests no node can satisfy (Ray would wait for them forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    want = {"CPU": (opts.num_cpus, 1, ""), "memory": (opts.memory_gb, 2**30, "GiB "), "GPU": (gpus, 1, "")}
    for res, (amount, unit, name) in want.items():
        have = max((n.get(res, 0.0) for n in nodes), default=0.0) / unit
        if amount > have:
            raise DDLibError(f"each Ray task asks for {amount:g} {name}{res} but the largest node "
                             f"has {have:.3g}")


def run_on_ray(todo: Sequence[RunConfig], store: Store, ray_opts) -> Iterator[Tuple[str, Optional[dict],
                                                                                   Optional[str]]]:
    """Run ``todo`` as Ray tasks; yields (key, row or None, error or None) as each finishes.

    Args:
        todo: the runs to do (none of them stored).
        store: the results store; tasks get its folder for the artifact cache.
        ray_opts: a :class:`RayOptions` or just its address.

    Closing the generator early (``fail_fast``) cancels the pending tasks.  Ray
    is shut down at the end when this call started it.
    """
    if not todo:
        return
    opts = ray_opts if isinstance(ray_opts, RayOptions) else RayOptions(str(ray_opts))
    steps = plan(todo)
    ray, started = _connect(opts)
    pending: List = []
    teacher_refs: Dict = {}
    try:
        gpus = opts.num_gpus if opts.num_gpus is not None else \
            (1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0)
        _check_fits(ray, opts, gpus)
        device = "cuda" if gpus > 0 else "cpu"
        res = {"num_cpus": opts.num_cpus, "num_gpus": gpus, "runtime_env": _runtime_env()}
        if opts.memory_gb > 0:
            res["memory"] = int(opts.memory_gb * 2**30)
        root = str(store.root.resolve())
        run_task = ray.remote(_run_task).options(**res)
        teach_task = ray.remote(_teachers_task).options(**res)
        teacher_refs = {t: teach_task.remote(*t, root, device, opts.num_cpus)
                        for t in dict.fromkeys(s.teachers for s in steps if s.teachers)}
        run_refs: List = []
        for s in steps:
            after = [run_refs[s.after_run]] if s.after_run is not None else []
            after += [teacher_refs[s.teachers]] if s.teachers else []
            run_refs.append(run_task.remote(s.cfg, root, device, opts.num_cpus, *after))
        key_of = {r: s.cfg.key() for r, s in zip(run_refs, steps)}
        pending = list(run_refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as e:  # a crashed worker, a failed dependency
                    msg = str(e).strip().splitlines()
                    out = key_of[ref], None, f"{type(e).__name__}: {msg[0] if msg else ''}"
                yield out
    finally:
        if pending:  # closed early (fail_fast) or interrupted: stop what is left
            for r in pending + list(teacher_refs.values()):
                try:
                    ray.cancel(r, force=True)
                except Exception:  # already finished or gone
                    pass
        if started:
            ray.shutdown()
