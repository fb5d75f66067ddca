"""Statistics over runs (bootstrap CIs) and, later, condensed-set quality metrics."""
