"""Name -> object registries, one per family (timm's ``register_model`` pattern).

Every plug-in family (datasets, models, coresets, distillers, label regimes,
profiles, training protocols) owns one :class:`Registry`.  Members register
themselves with a decorator; lookups of unknown names raise :class:`DDLibError`
naming the valid choices, so a typo never becomes a silent default.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple


class DDLibError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 2."""


class Registry:
    """A named dictionary of plug-ins.

    Args:
        family: human-readable family name used in error messages ("coreset").
    """

    def __init__(self, family: str):
        self.family = family
        self._items: Dict[str, Any] = {}
        self._hparams: Dict[str, Tuple[Any, ...]] = {}

    def register(self, name: str, hparams: Tuple[Any, ...] = ()) -> Callable[[Any], Any]:
        """Decorator: ``@REG.register("herding")`` stores the object under ``name``.

        ``hparams``: the member's declared hyper-parameters
        (:class:`ddlib.core.hparams.HParam` tuple), read back by :meth:`hparams`.
        """

        def deco(obj: Any) -> Any:
            if name in self._items:
                raise ValueError(f"{self.family} {name!r} registered twice")
            self._items[name] = obj
            self._hparams[name] = tuple(hparams)
            return obj

        return deco

    def add(self, name: str, obj: Any) -> Any:
        """Register ``obj`` under ``name`` without a decorator."""
        return self.register(name)(obj)

    def get(self, name: str) -> Any:
        """Return the member called ``name`` or raise with the list of valid names."""
        try:
            return self._items[name]
        except KeyError:
            raise DDLibError(
                f"unknown {self.family} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def hparams(self, name: str) -> Tuple[Any, ...]:
        """The hyper-parameters ``name`` declared when it registered (unknown names raise)."""
        self.get(name)
        return self._hparams.get(name, ())

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
