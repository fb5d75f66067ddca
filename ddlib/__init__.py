"""ddlib: the library behind the ddbook study of dataset distillation vs coresets.

``__version__`` is part of every result key: bump it when a change alters what a
stored run would compute, so old rows are not silently reused.
"""
__version__ = "0.6.0"

from ddlib.core.registry import DDLibError  # noqa: E402,F401
