"""Command line: ``python -m ddlib {list,describe,run,results,book,grid,check,claims}``.

``check`` and ``claims`` live in the chapters layer (they resolve the chapters'
grids) and are handed in by ``ddlib/__main__.py`` as :class:`Command` objects.

``torchrun --nproc_per_node=N -m ddlib run ...`` trains data-parallel
(:mod:`ddlib.engine.distributed`); ``grid --ray ADDRESS`` runs a grid on Ray
(:mod:`ddlib.run.grid_ray`).

Every user error (unknown name, bad IPC, missing data, corrupt file) is one
line on stderr starting with ``ddlib: error:`` and exit status 2; nothing
stored is changed by a run that fails.

The environment (``$DDLIB_HOME``, ``$DDLIB_DATA``, ``$DDLIB_DEVICE``,
``$DDLIB_ENGINE``, torchrun's ranks) is read once, in :func:`main`, into a
:class:`ddlib.run.settings.Settings` that every command receives.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

from ddlib.core.config import PROFILES, PROTOCOLS, RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.store import COLUMNS
from ddlib.data import dataset_names
from ddlib.engine import distributed
from ddlib.engine.models import MODELS
from ddlib.engine.regimes import REGIMES
from ddlib.methods.coresets import CORESETS
from ddlib.methods.describe import describe_text
from ddlib.methods.distill import DISTILLERS
from ddlib.run.book import build_book
from ddlib.run.grid import run_grid
from ddlib.run.grid_ray import RayOptions
from ddlib.run.runner import run
from ddlib.run.settings import Settings


@dataclass(frozen=True)
class Command:
    """A subcommand contributed by a higher layer (``ddlib/__main__.py`` passes chapters' ``check``).

    ``add_args(parser)`` declares its options; ``run(args, settings)`` does it.
    """

    name: str
    help: str
    add_args: Callable[[Any], None]
    run: Callable[[Any, Any], None]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise DDLibError(message)


def _hp(items: List[str]):
    out = []
    for it in items or []:
        if "=" not in it:
            raise DDLibError(f"--hp expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        if v.lower() in ("true", "false"):  # a bool hyper-parameter (sre2l's flip)
            out.append((k, v.lower() == "true"))
            continue
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                pass
        out.append((k, v))
    return tuple(out)


def cmd_list(args, settings) -> None:
    for title, names in (("datasets", dataset_names()), ("models", MODELS.names()),
                         ("coresets", CORESETS.names()), ("distillers", DISTILLERS.names()),
                         ("regimes", REGIMES.names()), ("profiles", PROFILES.names()),
                         ("protocols", PROTOCOLS.names())):
        print(f"{title}: {', '.join(names)}")


def cmd_describe(args, settings) -> None:
    print(describe_text(args.name))


def cmd_run(args, settings) -> None:
    hp = _hp(args.hp)
    if args.teacher_checkpoint:
        hp = hp + (("teacher_ckpt", args.teacher_checkpoint),)
    cfg = RunConfig(dataset=args.dataset, method=args.method, ipc=args.ipc, regime=args.regime,
                    budget=args.budget, seed=args.seed, profile=args.profile, model=args.model,
                    protocol=args.protocol, hparams=hp, eval_lr=args.eval_lr)
    tr = settings.torchrun  # under torchrun: DDP teacher and student training, rank 0 writes
    info = distributed.init(tr.rank, tr.world, tr.local_rank, args.device) if tr is not None else None
    try:
        store = settings.store(sync=info) if info is not None else settings.store()
        if info is not None and not info.is_main:
            logging.getLogger("ddlib").setLevel(logging.WARNING)
        row, reused = run(cfg, store, device=info.device if info else args.device,
                          quiet=args.quiet or bool(info and not info.is_main), dist=info,
                          settings=settings)
    finally:
        distributed.shutdown(info)
    if info is not None and not info.is_main:
        return
    print(f"{'reused' if reused else 'stored'} {row['key']}: {row['dataset']} {row['method']} "
          f"ipc={row['ipc']} {row['regime']} budget={row['budget']:g} seed={row['seed']} "
          f"accuracy={row['accuracy']:.4f} -> {store.db_path}")


def cmd_results(args, settings) -> None:
    df = settings.store().frame(dataset=args.dataset, method=args.method, profile=args.profile)
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
        return
    cols = [c for c in COLUMNS if c not in ("config_json", "key", "created", "version", "git_commit")]
    print(df[cols].to_string(index=False) if len(df) else "no stored runs")


def cmd_book(args, settings) -> None:
    if args.no_execute and args.no_build:
        raise DDLibError("--no-execute and --no-build together leave nothing to do")
    build_book(profile=args.profile, only=args.notebook, skip_build=args.no_build, quiet=args.quiet,
               skip_execute=args.no_execute)


def cmd_grid(args, settings) -> None:
    if settings.torchrun is not None:
        raise DDLibError("grid does not run under torchrun; use --workers N or --ray ADDRESS "
                         "(torchrun is for one run: torchrun -m ddlib run ...)")
    ray = RayOptions(args.ray, args.ray_cpus, args.ray_memory_gb) if args.ray else None
    summary = run_grid(args.config, settings.store(), workers=args.workers, fail_fast=args.fail_fast,
                       quiet=args.quiet, ray=ray)
    print(summary.line())
    for key, err in summary.failed:
        print(f"failed {key}: {err}")
    if summary.failed:
        raise DDLibError(f"{len(summary.failed)} grid run(s) failed")


def main(argv: Optional[List[str]] = None, commands: Sequence[Command] = ()) -> int:
    """The command line; ``commands``: extra subcommands from the layers above (``check``)."""
    p = _Parser(prog="python -m ddlib", description="ddbook's dataset-distillation study")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    sub.add_parser("list", help="registered datasets, models, methods, regimes, profiles")
    d = sub.add_parser("describe", help="a method's, regime's or protocol's hyper-parameters on each profile")
    d.add_argument("name", help="a coreset, distiller, regime or protocol name")
    r = sub.add_parser("run", help="build, train, evaluate and store one run")
    r.add_argument("--dataset", default="", help="dataset (profile's when omitted)")
    r.add_argument("--method", required=True)
    r.add_argument("--ipc", type=int, required=True, help="images per class")
    r.add_argument("--regime", default="hl", help="hl | sl | slkd | mt")
    r.add_argument("--budget", type=float, required=True, help="full-train-set epochs")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--profile", default="default")
    r.add_argument("--model", default="", help="student architecture (profile's when omitted)")
    r.add_argument("--protocol", default="", help="training protocol (profile's when omitted)")
    r.add_argument("--eval-lr", default="protocol", help="protocol | learned (a distiller's learnt lr)")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (auto when omitted)")
    r.add_argument("--teacher-checkpoint", default=None, help="local teacher state_dict file")
    r.add_argument("--hp", nargs="*", default=[],
                   help="method hyperparameters key=value (python -m ddlib describe METHOD lists them)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    s = sub.add_parser("results", help="print stored rows")
    s.add_argument("--format", choices=("table", "csv"), default="table")
    s.add_argument("--dataset", default=None)
    s.add_argument("--method", default=None)
    s.add_argument("--profile", default=None)
    b = sub.add_parser("book", help="execute the notebooks with papermill and build the book")
    b.add_argument("--profile", default="default")
    b.add_argument("--notebook", action="append", default=None, help="only these notebooks")
    b.add_argument("--no-build", action="store_true", help="execute notebooks only")
    b.add_argument("--no-execute", action="store_true",
                   help="build the HTML from the executed notebooks already in book/ (the published edition)")
    b.add_argument("--quiet", action="store_true")
    g = sub.add_parser("grid", help="run every missing point of a YAML grid file")
    g.add_argument("config", help="YAML grid: dataset, methods, ipcs, regimes, budgets, seeds, profile, model")
    g.add_argument("--workers", type=int, default=1, help="local worker processes")
    g.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    g.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run on Ray: auto (the running cluster), local (a new local instance) or host:port")
    g.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs each Ray task asks for")
    g.add_argument("--ray-memory-gb", type=float, default=2.0, help="memory each Ray task asks for")
    g.add_argument("--quiet", action="store_true")
    for c in commands:
        c.add_args(sub.add_parser(c.name, help=c.help))
    logging.basicConfig(level=logging.INFO, format="ddlib: %(message)s", stream=sys.stderr)
    try:
        args = p.parse_args(argv)
        settings = Settings.from_env()  # the one read; a bad $DDLIB_ENGINE fails before anything is built
        {"list": cmd_list, "describe": cmd_describe, "run": cmd_run, "results": cmd_results, "book": cmd_book,
         "grid": cmd_grid, **{c.name: c.run for c in commands}}[args.cmd](args, settings)
    except DDLibError as e:
        print(f"ddlib: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ddlib: error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 141
    return 0
