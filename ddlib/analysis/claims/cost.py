"""Construction cost as run and projected to each method's published length (R3, C4).

The CPU profiles cut the distillers' iterations hundreds of times (DM: 60 on
``default`` against 20,000 in its paper) but the coresets' scoring runs far
less, so costs as run favour the distillers.  The projection scales each row's
measured ``build_seconds`` by the ratio of the method's length on the ``paper``
profile (its published setting where the method's :class:`~ddlib.core.hparams.HParam`
source says "paper on paper") to its length on the row's profile: the
*iterations* for a distiller (measured cost per iteration x the paper's
iteration count), *scoring epochs x scoring networks* for a score-based coreset.
Lengths are resolved from the profile fields exactly as the builders resolve
them (a row's own hyper-parameter wins).  Per-iteration work that the CPU
profiles also cut (DC's inner loops, MTT's expert buffer, batch sizes) is not
projected, so the projection is a lower bound for those distillers.  Methods
without a length (random, herding, kcenter, RDED, CA2D) are projected at their
cost as run.
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping

import pandas as pd

from ddlib.core.config import PROFILES, Profile
from ddlib.methods.coresets.scores import default_epochs, default_n_models

PROJECTED_TO = "paper"


def _scored(kind_default: str) -> Callable[[Profile, Mapping], float]:
    def length(p: Profile, hp: Mapping) -> float:
        kind = hp.get("score", kind_default)
        return (hp.get("epochs") or default_epochs(kind, p)) * (hp.get("n_models") or default_n_models(kind, p))
    return length


# each method's length on a profile, as its builder resolves it (docstrings of the builders)
LENGTH: Dict[str, Callable[[Profile, Mapping], float]] = {
    "dm": lambda p, hp: hp.get("iters") or p.synth_iters,
    "dd": lambda p, hp: hp.get("iters") or p.synth_iters,
    "sre2l": lambda p, hp: hp.get("iters") or min(p.synth_iters, 4000),
    "cim": lambda p, hp: hp.get("iters") or min(p.synth_iters, 200),
    "dc": lambda p, hp: hp.get("iters") or p.gradient_matching.iters or max(
        1, p.synth_iters // p.gradient_matching.loop_divisor),
    "dsa": lambda p, hp: hp.get("iters") or p.gradient_matching.iters or max(
        1, p.synth_iters // p.gradient_matching.loop_divisor),
    "mtt": lambda p, hp: hp.get("iters") or p.mtt.iters or max(2, p.synth_iters // p.mtt.iters_divisor),
    "el2n_easy": _scored("el2n"), "el2n_hard": _scored("el2n"), "forgetting": _scored("forgetting"),
    "ccs": _scored("el2n"), "cad_prune": _scored("el2n"),
}


def projection_factor(method: str, profile: str, hp: Mapping) -> float:
    """Length on :data:`PROJECTED_TO` / length as run (1 for a method without a length)."""
    f = LENGTH.get(method)
    if f is None or profile not in PROFILES:
        return 1.0
    run = float(f(PROFILES.get(profile), hp))
    # the paper length ignores the row's own override: it is the published setting
    paper = float(f(PROFILES.get(PROJECTED_TO), {k: v for k, v in hp.items() if k == "score"}))
    return paper / run if run > 0 else 1.0


def with_costs(df: pd.DataFrame, hps: pd.Series) -> pd.DataFrame:
    """``df`` plus ``cost_run`` (build seconds) and ``cost_projected`` (times :func:`projection_factor`)."""
    out = df.copy()
    out["cost_run"] = out["build_seconds"].astype(float)
    out["factor"] = [projection_factor(m, p, h) for m, p, h in zip(out["method"], out["profile"], hps)]
    out["cost_projected"] = out["cost_run"] * out["factor"]
    return out
