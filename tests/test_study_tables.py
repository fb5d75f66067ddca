"""The construction-cost table on hand-made rows: known means, per-regime label bytes."""
import pandas as pd

import ddlib.analysis.tables as tables


def _rows():
    rows = []
    # relabel forward samples and stored bytes per regime; hl has neither
    for regime, relabel, stored in (("hl", 0, 10), ("sl", 10, 200), ("slkd_stored", 500, 9000)):
        for seed in (0, 1):
            rows.append(dict(method="rded", ipc=1, regime=regime, seed=seed, build_seconds=1.0 + relabel / 1000,
                             build_peak_mem_mb=5.0, build_fwd=100 + relabel + 2 * seed, build_bwd=50,
                             label_bytes=stored))
    return pd.DataFrame(rows)


def test_cost_table_per_method_shows_the_shared_build_and_label_bytes_per_regime():
    t = tables.cost_table(_rows())
    row = t.loc[("rded", 1)]
    assert row["forward samples"] == 101 and row["backward samples"] == 50 and row["build s"] == 1.0
    assert "label bytes" not in t.columns and row["seeds"] == 2
    assert (row["label bytes (hl)"], row["label bytes (sl)"], row["label bytes (slkd_stored)"]) == (10, 200, 9000)


def test_cost_table_by_regime_charges_the_relabel():
    t = tables.cost_table(_rows(), by=("regime", "method", "ipc"))
    assert list(t["forward samples"]) == [101, 111, 601]
    assert list(t["label bytes"]) == [10, 200, 9000]
    one = tables.cost_table(_rows().query("regime == 'sl'"))
    assert one.loc[("rded", 1), "label bytes"] == 200 and one.loc[("rded", 1), "forward samples"] == 111
