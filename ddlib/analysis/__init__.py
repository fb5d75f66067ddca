"""Analyses of stored runs (they train nothing): ``stats`` (paired t-intervals, tests, TOST, Holm), tables,
verdicts, claims, and condensed-set quality (``quality``)."""
