"""The methods layer: coreset selectors (``coresets/``) and distillers (``distill/``), one file per
method behind one signature per family, and the build of a condensed set with its cache key.

Imports only the engine, data and core layers.
"""
