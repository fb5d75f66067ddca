"""benchmarks/reproduce.py in its tiny mode: the curve file it writes and the validation-chosen checkpoint."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("reproduce", REPO / "benchmarks" / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_checkpoints_double_and_start_at_the_real_images():
    assert _module().checkpoints(120) == [0, 1, 2, 5, 10, 20, 50, 100]


def test_smoke_run_writes_curves_and_a_choice_made_on_validation(tmp_path):
    mod = _module()
    out = tmp_path / "r.json"
    assert mod.main(["--smoke", "--methods", "dm", "--ipcs", "1", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    curve = d["curves"]
    assert [r["iters"] for r in curve] == [0, 1, 2] and all(r["method"] == "dm" for r in curve)
    assert all(0 <= a <= 1 for r in curve for a in r["val_acc"] + r["test_acc"])
    (c,) = d["chosen"]
    best = max(curve, key=lambda r: (r["val_mean"], -r["iters"]))
    assert c["iters_chosen_on_val"] == best["iters"] and c["test_mean"] == round(best["test_mean"], 2)
