"""Resumable grid runner: ``python -m ddlib grid CONFIG.yaml``.

A grid file is YAML whose keys are the ``run`` options (``dataset``,
``methods``, ``ipcs``, ``regimes``, ``budgets``, ``seeds``, ``profile``,
``model``: one student or a list of them); lists expand to their product (via :class:`ddlib.run.study.Study`).
``hparams`` maps a method of the grid to its hyper-parameters
(``hparams: {dm: {iters: 5}}``), each checked against the method's declaration.
Runs already stored are skipped; the rest run on local worker processes, each
row written by :meth:`ddlib.core.store.Store.put` as it finishes (SQLite WAL, one
transaction per row, so a killed grid leaves whole rows only and a restart
finishes exactly the missing ones).  A failing run is recorded in the store's
``failures`` table and does not stop the grid unless ``fail_fast``.
With ``ray=`` the runs are Ray tasks instead (:mod:`ddlib.run.grid_ray`).
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from tqdm.auto import tqdm

from ddlib.core.config import RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.run import runner
from ddlib.run.grid_ray import run_on_ray
from ddlib.run.runner import error_text, validate
from ddlib.run.settings import default_store
from ddlib.run.study import Study

KEYS = ("dataset", "methods", "ipcs", "regimes", "budgets", "seeds", "profile", "model", "hparams")
_ALIASES = {"method": "methods", "ipc": "ipcs", "regime": "regimes", "budget": "budgets", "seed": "seeds",
            "models": "model"}


@dataclass(frozen=True)
class GridSummary:
    """Outcome of a grid: counts and (key, error) of the failed runs."""

    done: int
    skipped: int
    failed: Tuple[Tuple[str, str], ...]

    def line(self) -> str:
        return f"grid: {self.done} done, {self.skipped} skipped, {len(self.failed)} failed"


def load_grid(path: str) -> Dict:
    """Read a grid file; an unknown key raises naming it and the valid ones."""
    import yaml  # lazy: only reading a grid file needs it (most ddlib users never do)

    p = Path(path)
    if not p.is_file():
        raise DDLibError(f"grid file {path} not found")
    try:
        spec = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise DDLibError(f"grid file {path} is not valid YAML ({type(e).__name__})") from None
    if not isinstance(spec, dict):
        raise DDLibError(f"grid file {path} must be a mapping of run options")
    return spec


def configs(spec: Dict) -> List[RunConfig]:
    """Expand a grid spec (scalars or lists) into its validated RunConfigs (as :class:`Study` does)."""
    norm = {}
    for k, v in spec.items():
        key = _ALIASES.get(k, k)
        if key not in KEYS:
            raise DDLibError(f"unknown grid key {k!r}; valid keys: {', '.join(KEYS)}")
        norm[key] = v
    as_list = lambda v: list(v) if isinstance(v, (list, tuple)) else ([] if v is None else [v])
    models = as_list(norm.pop("model", None))  # one student or a list: the study's model axis
    per_method = _method_hparams(norm.pop("hparams", None) or {}, as_list(norm.get("methods")))
    study = Study.from_params(profile=norm.get("profile", "default"), dataset=norm.get("dataset", "") or "",
                              models=[str(m) for m in models if m],
                              **{k: as_list(norm[k]) for k in KEYS[1:6] if k in norm})
    cfgs = study.configs()
    if per_method:  # each method's own hyper-parameters, checked against its declaration (validate)
        cfgs = [dataclasses.replace(c, hparams=tuple(sorted(per_method.get(c.method, {}).items())))
                for c in cfgs]
        for c in cfgs:
            validate(c)
    return cfgs


def _method_hparams(hp, methods: List[str]) -> Dict[str, Dict]:
    """A grid's ``hparams``: a mapping of method name -> {hyper-parameter: value}, methods of the grid only."""
    if not isinstance(hp, dict) or not all(isinstance(v, dict) for v in hp.values()):
        raise DDLibError("grid key 'hparams' must map method names to mappings of hyper-parameters, "
                         "e.g. hparams: {dm: {iters: 5}}")
    extra = sorted(set(hp) - set(methods))
    if extra:
        raise DDLibError(f"grid hparams name method(s) {', '.join(map(str, extra))} that are not in the grid's "
                         f"methods ({', '.join(map(str, methods)) or 'none given'})")
    return hp


def _worker(args) -> Tuple[str, Optional[str]]:
    """Run one config in a worker process; returns (key, error or None)."""
    cfg, root, device = args
    try:
        runner.run(cfg, Store(Path(root)), device=device, quiet=True)  # looked up here: tests replace it
        return cfg.key(), None
    except Exception as e:  # recorded, not raised: one bad run must not stop the grid
        return cfg.key(), error_text(e)


def _devices(workers: int) -> List[Optional[str]]:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i % n}" if n else None for i in range(workers)]


def run_grid(spec, store: Optional[Store] = None, *, workers: int = 1, fail_fast: bool = False,
             quiet: bool = False, ray=None) -> GridSummary:
    """Run every missing point of a grid (a dict, or a path to a YAML grid file).

    Args:
        spec: grid options (see :data:`KEYS`) or the path of a grid file.
        store: results store (default: ``$DDLIB_HOME``).
        workers: local worker processes (one CUDA device each, round robin, when present).
        fail_fast: stop at the first failed run.
        quiet: no progress bar.
        ray: run on Ray instead of local workers: a cluster address ("auto",
            "local", "host:port") or a :class:`ddlib.run.grid_ray.RayOptions`
            (``workers`` is then ignored; see :mod:`ddlib.run.grid_ray`).
    """
    store = store or default_store()
    if isinstance(spec, (str, Path)):
        spec = load_grid(str(spec))
    cfgs = configs(spec)
    todo, seen, skipped = [], set(), 0
    for c in cfgs:
        k = c.key()
        if k in seen or store.get(k) is not None:
            skipped += 1
        else:
            todo.append(c)
        seen.add(k)
    done, failed = 0, []
    devs = _devices(max(1, workers))
    jobs = [(c, str(store.root), devs[i % len(devs)]) for i, c in enumerate(todo)]
    bar = tqdm(total=len(jobs), desc="grid", disable=quiet)
    by_key = {c.key(): c for c in todo}

    def record(key, err):
        nonlocal done
        if err is None:
            done += 1
            store.clear_failure(key)
        else:
            failed.append((key, err))
            store.put_failure(key, json.dumps(by_key[key].as_dict(), sort_keys=True, default=str), err)
        bar.update(1)

    try:
        if ray is not None:
            results = run_on_ray(todo, store, ray)
            for key, row, err in results:
                if row is not None:
                    store.put(row)  # the driver writes every row, once
                record(key, err)
                if failed and fail_fast:
                    results.close()  # cancels the tasks still pending
                    break
        elif workers <= 1:
            for j in jobs:
                record(*_worker(j))
                if failed and fail_fast:
                    break
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for key, err in pool.imap_unordered(_worker, jobs):
                    record(key, err)
                    if failed and fail_fast:
                        pool.terminate()
                        break
    finally:
        bar.close()
    return GridSummary(done, skipped, tuple(failed))
