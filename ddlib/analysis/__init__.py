"""Statistics over runs (``stats``: bootstrap CIs, Spearman CI) and condensed-set quality (``quality``)."""
