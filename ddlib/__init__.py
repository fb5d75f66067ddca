"""ddlib: the library behind the ddbook study of dataset distillation vs coresets.

``__version__`` is part of every result key: bump it when a change alters what a
stored run would compute, so old rows are not silently reused.
"""
__version__ = "0.8.0"

from ddlib.core.registry import DDLibError  # noqa: E402,F401


def __getattr__(name: str):
    """``ddlib.create_model``: the engine's model factory, imported on first use.

    Lazy (PEP 562) so that ``import ddlib`` (which ``ddlib.core`` does for the
    version) neither pulls in torch nor creates an import cycle with the engine.
    """
    if name == "create_model":
        # imported by name at first use: the root package must not import the engine
        # statically, or every ``from ddlib import __version__`` in core would (layers)
        import importlib

        return importlib.import_module("ddlib.engine.models").create_model
    raise AttributeError(f"module 'ddlib' has no attribute {name!r}")
