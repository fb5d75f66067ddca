"""``python -m ddlib``: the run CLI plus the two commands that read the chapters' grids.

``check`` and ``claims`` belong to the chapters layer (above ``ddlib.run``), so they are
handed to :func:`ddlib.run.cli.main` here.  Their options are declared here and their
code is imported only when one of them is asked for: importing the chapters (altair,
scipy, the claims) costs about a second, which every other command would pay.
"""
import importlib
import sys

from ddlib.run.cli import Command, main


def _later(module: str, function: str):
    return lambda args, settings: getattr(importlib.import_module(module), function)(args, settings)


def _check_args(p) -> None:
    p.add_argument("--profile", default="paper")
    p.add_argument("--method", action="append", default=None, help="only these methods")


def _claims_args(p) -> None:
    p.add_argument("--profile", default="default", help="whose chapter grids the ledger reads")
    p.add_argument("--format", choices=("table", "csv"), default="table")
    p.add_argument("--list", action="store_true", help="claim ids and sources only, evaluating nothing")
    p.add_argument("--claim", action="append", default=None, help="only these claims (ids, e.g. H4)")
    p.add_argument("--measure", action="store_true",
                   help="also compute the measurements (quality, DCS, teacher view); may train teachers")


CHECK = Command("check", "dry-run a profile: every chapter grid resolved, every method built briefly at "
                "the profile's shapes, a few student steps", _check_args,
                _later("ddlib.chapters.check", "run_check"))
CLAIMS = Command("claims", "print the claims ledger from the results store (nothing is trained)",
                 _claims_args, _later("ddlib.chapters.commands", "cmd_claims"))

if __name__ == "__main__":
    sys.exit(main(commands=(CHECK, CLAIMS)))
