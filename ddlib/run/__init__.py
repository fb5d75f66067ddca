"""The run layer: one run (prepare, fit, finish), studies and grids (local workers, Ray, torchrun),
the command line and the book build; the environment is read here, once.

Imports only the methods layer and below.
"""
