"""``python -m ddlib claims``: the claims ledger from the results store, in the terminal.

The command lives here, not in :mod:`ddlib.run.cli`, because the ledger's
studies are the chapters' (the layer above ``run``); ``ddlib/__main__.py``
declares its options and adds it to the command line.  It reads
the stored rows only (nothing is trained): a claim whose runs are not stored
is untested.  With ``--measure`` it also computes the measurements some claims
need (quality, DCS scores, a held-out teacher's view), training the measuring
teachers and chapter 8's probes when they are not cached.
"""
from __future__ import annotations

import sys

from ddlib.analysis.claims import claim_names, claims_list, ledger_csv, ledger_table, ledger_text, supervision_table
from ddlib.chapters.ledger import Ledger
from ddlib.core.config import PROFILES
from ddlib.core.registry import DDLibError


def cmd_claims(args, settings) -> None:
    names = args.claim or []
    unknown = [n for n in names if n not in claim_names()]
    if unknown:
        raise DDLibError(f"unknown claim {unknown[0]!r}; claims: {', '.join(claim_names())}")
    if args.list:
        t = claims_list()
        t = t[t["claim"].isin(names)] if names else t
        print(ledger_csv(t) if args.format == "csv" else t[["claim", "source", "where"]].to_string(index=False),
              end="" if args.format == "csv" else "\n")
        return
    PROFILES.get(args.profile)  # an unknown profile: one error line
    store = settings.store()
    led = Ledger.from_params(args.profile)
    frame = led.stored(store)
    measured = led.measure(frame, store) if args.measure else None
    table = ledger_table(frame, names, measured)
    if args.format == "csv":
        sys.stdout.write(ledger_csv(table))
        return
    print(f"claims ledger: profile {args.profile}, {frame['key'].nunique()} stored runs read from {store.db_path}"
          + ("" if args.measure else " (measurement claims untested: add --measure)"))
    print()
    print(ledger_text(table))
    print("Supervision each distiller was evaluated with in its own paper, and our matching regime:")
    print(supervision_table().to_string(index=False))
