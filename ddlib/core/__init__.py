"""The core layer: registries, frozen configuration (protocols, profiles, RunConfig), seed streams,
the results store and construction-cost accounting.

Imports nothing else of ddlib; every other layer builds on it.
"""
