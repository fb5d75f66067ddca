"""Declared hyper-parameters: what a method, regime or protocol takes, checked before anything runs.

Every plug-in states its hyper-parameters once, as a tuple of :class:`HParam`
handed to its registry (``@register("dm", hparams=DM_HPARAMS)``).  That one
declaration is what :func:`check` validates user input against (``--hp``, a
grid file's ``hparams``, a notebook's parameters), what ``python -m ddlib
describe`` prints and what the protocol chapter's table shows; a test compares
it with each builder's signature, so it cannot drift from the code that runs.

A default that depends on the profile is written as the builder's sentinel
(``0``, ``-1.0``, ``""`` or ``None``) plus ``profile``: the dotted paths of the
:class:`~ddlib.core.config.Profile` fields it is read from, so the per-profile
values are read from the profile objects, never typed twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from ddlib.core.config import PROTOCOLS
from ddlib.core.registry import DDLibError

#: where a default comes from (the ``source`` of an :class:`HParam`)
SOURCES = ("paper", "reference code", "scale-down", "tuned on the validation split", "ddlib")
#: hp keys every method accepts without declaring them: set by the runner, not by the builder
RESERVED = ("teacher_ckpt",)


@dataclass(frozen=True)
class HParam:
    """One declared hyper-parameter.

    Attributes:
        name: the keyword the builder takes.
        type: ``int``, ``float``, ``str`` or ``bool`` (a float also takes an int).
        default: the builder's default (a sentinel meaning "the profile's" when
            ``profile`` is set; ``None`` means "unset" and is then also allowed).
        unit: what the number counts ("iterations", "per SGD step", "" for names).
        meaning: one line: what it does, and how the sentinel resolves.
        source: where the default comes from: one of :data:`SOURCES`, then optionally
            a note ("paper on paper; scale-down elsewhere").
        profile: dotted paths of the Profile fields the default is read from.
        choices: the allowed values of a ``str`` (empty = any string).
        low, high: inclusive bounds of a number (None = unbounded).
        high_open: ``high`` itself is not allowed.
    """

    name: str
    type: type
    default: Any
    unit: str
    meaning: str
    source: str
    profile: Tuple[str, ...] = ()
    choices: Tuple[str, ...] = ()
    low: Optional[float] = None
    high: Optional[float] = None
    high_open: bool = False

    def __post_init__(self):
        if not self.source.startswith(SOURCES):
            raise ValueError(f"hparam {self.name}: source {self.source!r} starts with none of {SOURCES}")
        if self.type not in (int, float, str, bool):
            raise ValueError(f"hparam {self.name}: unsupported type {self.type!r}")

    def allowed(self) -> str:
        """The allowed values in words ("an int >= 0", "one of: fixed, random")."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        art = "an" if self.type is int else "a"
        text = f"{art} {self.type.__name__}"
        if self.low is not None and self.high is not None:
            text += f" in [{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text += f" >= {self.low:g}"
        elif self.high is not None:
            text += f" {'<' if self.high_open else '<='} {self.high:g}"
        return text

    def problem(self, value: Any) -> str:
        """'' when ``value`` is allowed, else why not (for the one-line error)."""
        if value is None and self.default is None:
            return ""
        t = self.type
        ok_type = (isinstance(value, bool) if t is bool else
                   isinstance(value, (int, float)) and not isinstance(value, bool) if t is float else
                   isinstance(value, int) and not isinstance(value, bool) if t is int else
                   isinstance(value, str))
        if not ok_type:
            return f"{self.name}={value!r} is not {self.allowed()}"
        if self.choices and value not in self.choices:
            return f"{self.name}={value!r} is not {self.allowed()}"
        if t in (int, float):
            too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
            if (self.low is not None and value < self.low) or too_high or value != value:
                return f"{self.name}={value!r} is out of range; allowed: {self.allowed()}"
        return ""


def check(owner: str, declared: Sequence[HParam], hp: Mapping[str, Any]) -> None:
    """Raise one :class:`DDLibError` line if ``hp`` has an undeclared key or a bad value.

    Args:
        owner: the plug-in's name, for the message ("dm").
        declared: its :class:`HParam` tuple.
        hp: the user's mapping; :data:`RESERVED` keys are skipped.
    """
    by_name: Dict[str, HParam] = {h.name: h for h in declared}
    unknown = sorted(k for k in hp if k not in by_name and k not in RESERVED)
    if unknown:
        valid = ", ".join(sorted(by_name)) if by_name else "none (it takes no hyper-parameters)"
        raise DDLibError(f"{owner}: unknown hyper-parameter(s) {', '.join(unknown)}; valid: {valid} "
                         f"(python -m ddlib describe {owner})")
    for k, v in sorted(hp.items()):
        why = by_name[k].problem(v) if k in by_name else ""
        if why:
            raise DDLibError(f"{owner}: {why}")


def profile_value(profile: Any, path: str) -> Any:
    """The value at dotted ``path`` of a profile ("mtt.lr_img").

    A per-IPC table ((ipc, row) pairs, such as ``mtt.unroll``) followed by a
    field name gives that field of every row, as ((1, 5), (10, 30)); a
    field naming a protocol followed by a field name reads that protocol's
    ("protocol.temperature").
    """
    obj: Any = profile
    for part in path.split("."):
        if isinstance(obj, tuple) and obj and isinstance(obj[0], tuple):
            obj = tuple((i, getattr(row, part)) for i, row in obj)
        elif isinstance(obj, str) and obj in PROTOCOLS:
            obj = getattr(PROTOCOLS.get(obj), part)
        else:
            obj = getattr(obj, part)
    return obj


#: the fields of :class:`~ddlib.core.config.Protocol` (a test holds them to the dataclass);
#: each protocol's own values are read from its object
PROTOCOL_HPARAMS = (
    HParam("lr", float, 0.01, "per SGD step", "initial SGD learning rate",
           "reference code (DC/DSA/DM evaluation: 0.01); tuned on the validation split for default (lr1_v2: "
           "benchmarks/results/protocol_tuning.json); scale-down for smoke (lr1, set by hand, no split read)"),
    HParam("momentum", float, 0.9, "", "SGD momentum", "reference code"),
    HParam("weight_decay", float, 5e-4, "per SGD step", "plain L2 coefficient", "reference code"),
    HParam("batch_size", int, 256, "images", "samples per optimisation step", "reference code"),
    HParam("schedule", str, "cosine", "", "'cosine' to zero, or 'step' (x0.1 at half, as DC/DM)",
           "reference code (step); ddlib (cosine)", choices=("cosine", "step")),
    HParam("augment", str, "color_crop_cutout_scale_rotate", "", "DSA ops on every training batch ('' = none; "
           "'dsa' = the reference's list for the dataset: flip except on digits; the _v2 protocols')",
           "reference code (DSA's lists per dataset)"),
    HParam("temperature", float, 4.0, "", "KD temperature T of the soft-label regimes",
           "paper (Hinton et al.); tuned on the validation split for default (T = 1: "
           "benchmarks/results/protocol_tuning.json); scale-down for smoke (T = 1, no split read)"),
)
