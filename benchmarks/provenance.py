"""The fields every CPU ratio benchmark's JSON ends with: load averages, machine, versions, threads, date."""
from __future__ import annotations

import datetime as _dt
import os


def provenance(load_start) -> dict:
    """``load_start``: ``os.getloadavg()`` taken when the benchmark began (the end is read here)."""
    import torch

    from ddlib import __version__
    from ddlib.run.book import machine

    return {"load_avg_start": [round(v, 2) for v in load_start],
            "load_avg_end": [round(v, 2) for v in os.getloadavg()],
            "machine": machine(), "device": "cpu", "torch": torch.__version__, "ddlib": __version__,
            "threads": torch.get_num_threads(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
