"""The deviations page's table is held to the declarations both ways, so it cannot drift.

* every method it names is registered and every hyper-parameter it names is declared
  by each of its methods;
* every declared hyper-parameter whose source says it is scaled down, tuned or
  reconstructed on some profile has a row (nothing that differs goes unstated);
* the table's per-profile values are the declarations' (read, not typed).
"""
from __future__ import annotations

from ddlib.methods.coresets import CORESETS
from ddlib.methods.describe import SHOWN_PROFILES, describe_frame
from ddlib.methods.deviations import ALL, DEVIATIONS, deviations_table, is_hparam, needs_row
from ddlib.methods.distill import DISTILLERS


def _methods():
    return [(n, CORESETS) for n in CORESETS.names()] + [(n, DISTILLERS) for n in DISTILLERS.names()]


def test_rows_name_registered_methods_and_declared_hparams():
    for dev in DEVIATIONS:
        assert dev.reference and dev.why, dev
        for m in dev.methods:
            assert m == ALL or m in CORESETS or m in DISTILLERS, f"unknown method {m!r}"
            if not dev.ours:  # read from the declaration: it must exist
                for s in dev.settings:
                    assert is_hparam(m, s), f"{m}.{s} is not a declared hyper-parameter"
            else:
                assert len(dev.settings) == 1, dev


def test_every_scaled_down_tuned_or_reconstructed_hparam_has_a_row():
    covered = {(m, s) for dev in DEVIATIONS if not dev.ours for m in dev.methods for s in dev.settings}
    missing = [(n, h.name, h.source) for n, reg in _methods() for h in reg.hparams(n)
               if needs_row(h.source) and (n, h.name) not in covered]
    assert not missing, f"declared as differing from the reference but absent from DEVIATIONS: {missing}"


def test_table_reads_each_profile_from_the_declaration():
    t = deviations_table()
    assert not t.isna().any().any()
    assert t.loc[("dm", "iters"), "paper"] == describe_frame("dm").loc["iters", "paper"] == "20000"
    assert t.loc[("dc", "init"), "paper"] == "'noise'" and t.loc[("dc", "init"), "default"] == "'real'"
    for (m, s), row in t.iterrows():
        if m != ALL and is_hparam(m, s) and "〃" not in row.values:
            assert [row[p] for p in SHOWN_PROFILES] == [describe_frame(m).loc[s, p] for p in SHOWN_PROFILES]
