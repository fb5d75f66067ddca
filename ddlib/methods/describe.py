"""What a method, regime or protocol takes: its declared hyper-parameters, checked and described.

Everything here reads the one declaration each plug-in hands its registry
(:class:`ddlib.core.hparams.HParam` tuples): :func:`check_hparams` validates a
run's ``hparams`` before anything is built (the runner's ``validate``),
:func:`describe_frame` / :func:`describe_text` are ``python -m ddlib describe
NAME``, and :func:`hparams_table` is the protocol chapter's table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

import pandas as pd

from ddlib.core.config import PROFILES, PROTOCOLS
from ddlib.core.hparams import PROTOCOL_HPARAMS, HParam, check, profile_value
from ddlib.core.registry import DDLibError
from ddlib.engine.regimes import REGIMES
from ddlib.methods.coresets import CORESETS
from ddlib.methods.distill import DISTILLERS

#: the profiles ``describe`` shows, in this order
SHOWN_PROFILES = ("smoke", "default", "paper")


@dataclass(frozen=True)
class Declared:
    """A plug-in's declaration: its family ("coreset", "distiller", "regime", "protocol"),
    the first line of its docstring, its hyper-parameters, and the object (for protocols: their values)."""

    name: str
    family: str
    summary: str
    hparams: Tuple[HParam, ...]
    obj: Any


def declared(name: str) -> Declared:
    """The declaration of method, regime or protocol ``name``; unknown names raise listing all of them."""
    for family, reg in (("coreset", CORESETS), ("distiller", DISTILLERS), ("regime", REGIMES)):
        if name in reg:
            doc = (reg.get(name).__dict__.get("__doc__") if family == "regime" else reg.get(name).__doc__) or ""
            lines = doc.strip().splitlines() or [f"a {family} (no docstring)"]
            return Declared(name, family, lines[0], reg.hparams(name), reg.get(name))
    if name in PROTOCOLS:
        return Declared(name, "protocol", "a frozen training recipe", PROTOCOL_HPARAMS, PROTOCOLS.get(name))
    raise DDLibError(f"unknown method, regime or protocol {name!r}; coresets: {', '.join(CORESETS.names())}; "
                     f"distillers: {', '.join(DISTILLERS.names())}; regimes: {', '.join(REGIMES.names())}; "
                     f"protocols: {', '.join(PROTOCOLS.names())}")


def check_hparams(method: str, hp: Mapping[str, Any]) -> None:
    """Raise one DDLibError line if ``hp`` names an undeclared hyper-parameter of ``method``
    or gives one a value of the wrong type or out of range (nothing is built before)."""
    reg = CORESETS if method in CORESETS else DISTILLERS
    check(method, reg.hparams(method), hp)


def _fmt(v: Any) -> str:
    if isinstance(v, tuple) and v and isinstance(v[0], tuple):  # a per-IPC table's column
        return ", ".join(f"ipc {i}: {x}" for i, x in v)
    return "unset" if v is None else repr(v) if isinstance(v, str) else str(v)


def _on_profile(d: Declared, h: HParam, profile: str) -> str:
    """The value ``h`` takes on ``profile`` where the profile supplies it, else its default."""
    if not h.profile:
        return _fmt(h.default)
    prof = PROFILES.get(profile)
    vals = [(p, profile_value(prof, p)) for p in h.profile]
    if len(vals) == 1:
        return _fmt(vals[0][1])
    return "; ".join(f"{p}={_fmt(v)}" for p, v in vals)


def describe_frame(name: str) -> pd.DataFrame:
    """One row per hyper-parameter of ``name``: type, unit, the code's default, the value on each
    of :data:`SHOWN_PROFILES` (read from the profile objects), allowed values, source, meaning.

    A protocol's "code default" is its own value (the same on every profile, which
    choose a protocol by name); a regime's values are read from the profile only."""
    d = declared(name)
    rows = []
    for h in d.hparams:
        row = {"hyper-parameter": h.name, "type": h.type.__name__, "unit": h.unit,
               "code default": _fmt(getattr(d.obj, h.name)) if d.family == "protocol" else
               "" if d.family == "regime" else _fmt(h.default)}
        row.update({p: "" if d.family == "protocol" else _on_profile(d, h, p) for p in SHOWN_PROFILES})
        row.update({"from profile": ", ".join(h.profile), "allowed": h.allowed(), "source": h.source,
                    "meaning": h.meaning})
        rows.append(row)
    cols = ["hyper-parameter", "type", "unit", "code default", *SHOWN_PROFILES, "from profile", "allowed",
            "source", "meaning"]
    return pd.DataFrame(rows, columns=cols).set_index("hyper-parameter")


def describe_text(name: str) -> str:
    """``python -m ddlib describe NAME``: a header line, then one block per hyper-parameter."""
    d = declared(name)
    lines = [f"{d.name} ({d.family}): {d.summary}"]
    if not d.hparams:
        lines.append("  no hyper-parameters")
    for h, (_, r) in zip(d.hparams, describe_frame(name).iterrows()):
        unit = f", {h.unit}" if h.unit else ""
        head = f"  {h.name} ({h.type.__name__}{unit})"
        lines.append(f"{head} (read from the profile, not settable)" if d.family == "regime" else
                     f"{head} = {r['code default']}")
        lines.append(f"      {h.meaning}")
        if d.family != "protocol":
            on = " | ".join(f"{p} {r[p]}" for p in SHOWN_PROFILES)
            lines.append(f"      on each profile: {on}" + (f"  [from {r['from profile']}]" if h.profile else ""))
        lines.append(f"      allowed: {r['allowed']}; source: {h.source}")
    if d.family in ("coreset", "distiller") and d.hparams:
        lines.append(f"  set with: python -m ddlib run --method {d.name} --hp NAME=VALUE ...")
    return "\n".join(lines)


def hparams_table(profile: Optional[str] = None) -> pd.DataFrame:
    """Every registered method's hyper-parameters (the protocol chapter's table): one row per
    (method, hyper-parameter) with :func:`describe_frame`'s columns, methods without any shown as "—".

    ``profile``: the reader's view for a page built on that profile — only the value on it (with its
    unit), then what it means with where it comes from, narrow enough to read without scrolling; the
    other columns are ``python -m ddlib describe METHOD``'s."""
    if profile is not None:
        t = hparams_table()
        value = (t[profile] + " " + t["unit"]).str.strip()
        meaning = [f"{m} (source: {src})" if m else "" for m, src in zip(t["meaning"], t["source"])]
        return pd.DataFrame({f"on {profile}": value, "meaning (source)": meaning}, index=t.index)
    frames = []
    for family, reg in (("coreset", CORESETS), ("distiller", DISTILLERS)):
        for n in reg.names():
            f = describe_frame(n).reset_index()
            if f.empty:
                f = pd.DataFrame([{c: "—" if c == "hyper-parameter" else "" for c in f.columns}])
            f.insert(0, "family", family)
            f.insert(0, "method", n)
            frames.append(f)
    return pd.concat(frames, ignore_index=True).set_index(["method", "hyper-parameter"])
