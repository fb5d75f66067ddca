"""The engine layer: networks, DSA augmentation, label regimes, the training engine and how its
steps execute, several models trained at once, teachers, and data-parallel training.

Imports only ``ddlib.core`` and ``ddlib.data``.
"""

from ddlib.engine import timm_models  # noqa: E402,F401  registers the timm students into models.MODELS
