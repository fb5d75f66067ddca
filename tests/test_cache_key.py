"""Every setting that changes a condensed set or a row is in its cache key.

A profile enters the keys by its contents (``profile_digest``), not its name:
editing one of a method's defaults must rebuild the set, an untouched profile
must reuse it, and no module may branch on a profile's name.
"""
import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import ddlib
import ddlib.methods.build as build
from ddlib.core.config import (
    GRID_FIELDS,
    METHOD_DEFAULT_FIELDS,
    PROFILES,
    DDDefaults,
    Profile,
    RunConfig,
    profile_digest,
)
from ddlib.core.store import Store
from ddlib.methods.build import build_key, condensed_set

TMP = "cache_key_test"  # a profile registered only for these tests


def _register(monkeypatch, prof: Profile) -> None:
    monkeypatch.setitem(PROFILES._items, prof.name, prof)


def _config(**kw) -> RunConfig:
    base = dict(dataset="digits", method="dd", ipc=1, regime="hl", budget=1.0, seed=0, profile=TMP,
                hparams=(("iters", 2),))
    return RunConfig(**{**base, **kw}).resolved()


@pytest.fixture
def builds(monkeypatch):
    """Counts the distiller calls that ``condensed_set`` makes (cache misses)."""
    calls = []
    real = build.distill

    def counting(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(build, "distill", counting)
    return calls


def test_an_edited_method_default_rebuilds_the_set(digits, smoke_profile, tmp_path, monkeypatch, builds):
    store = Store(tmp_path)
    base = dataclasses.replace(smoke_profile, name=TMP)
    _register(monkeypatch, base)
    r = _config()
    first, _, _, _ = condensed_set(r, digits, store)
    again, _, _, _ = condensed_set(r, digits, store)
    assert builds == ["dd"] and torch.equal(first, again)  # unchanged profile: the set is reused
    old_set, old_row = build_key(r), r.key()

    # the same profile name, one method default edited: DD's initial step size
    edited = dataclasses.replace(base, dd=DDDefaults(lr_init=base.dd.lr_init * 2, adam_lr=base.dd.adam_lr))
    _register(monkeypatch, edited)
    assert build_key(r) != old_set and r.key() != old_row
    rebuilt, _, _, _ = condensed_set(r, digits, store)
    assert builds == ["dd", "dd"]  # a new build, not the stale set
    assert len(list(store.artifact_keys("condensed"))) == 2
    assert not torch.equal(rebuilt, first)

    # back to the original contents: the first set is found again
    _register(monkeypatch, base)
    assert build_key(r) == old_set and r.key() == old_row
    condensed_set(r, digits, store)
    assert builds == ["dd", "dd"]


def test_grid_defaults_and_the_name_do_not_enter_the_set_key(smoke_profile, monkeypatch):
    base = dataclasses.replace(smoke_profile, name=TMP)
    _register(monkeypatch, base)
    r = _config()
    keys = build_key(r), r.key()
    # the grid's defaults choose what runs; they change neither a set nor a row
    _register(monkeypatch, dataclasses.replace(base, seeds=(0, 1, 2), ipcs=(1,), budgets=(5.0,),
                                               methods=("dd",), regimes=("hl",), dataset="mnist5k"))
    assert (build_key(r), r.key()) == keys
    # a renamed profile with the same contents shares the sets (the row names its profile)
    twin = dataclasses.replace(base, name=TMP + "_twin")
    _register(monkeypatch, twin)
    assert build_key(dataclasses.replace(r, profile=twin.name)) == keys[0]


def _other(value):
    """A different value of the same kind (for a profile field)."""
    if dataclasses.is_dataclass(value):
        first = dataclasses.fields(value)[0].name
        return dataclasses.replace(value, **{first: _other(getattr(value, first))})
    if value is None:
        return 7
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, tuple):
        return value + value[:1]
    raise TypeError(f"no other value for {value!r}")


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Profile) if f.name not in GRID_FIELDS])
def test_every_setting_of_a_profile_changes_both_keys(field, smoke_profile, monkeypatch):
    base = dataclasses.replace(smoke_profile, name=TMP)
    _register(monkeypatch, base)
    r = _config()
    before = profile_digest(base), build_key(r), r.key()
    _register(monkeypatch, dataclasses.replace(base, **{field: _other(getattr(base, field))}))
    after = profile_digest(PROFILES.get(TMP)), build_key(r), r.key()
    assert all(a != b for a, b in zip(before, after)), field


def _name_comparisons(path: Path, names: set) -> list:
    """``file:line`` of every comparison in ``path`` with a profile name as a string operand."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        consts = [n for op in operands for n in ([op] if isinstance(op, ast.Constant)
                                                 else getattr(op, "elts", []))]
        if any(isinstance(c, ast.Constant) and c.value in names for c in consts):
            hits.append(node.lineno)
    return [f"{path}:{line}" for line in sorted(hits)]


def test_no_module_branches_on_a_profile_name():
    root = Path(ddlib.__file__).parent
    names = set(PROFILES.names())
    hits = [h for p in sorted(root.rglob("*.py")) for h in _name_comparisons(p, names)]
    assert not hits, f"compare a profile's settings, not its name: {hits}"


def test_the_name_check_finds_a_comparison(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('def f(prof):\n    return 3 if prof.name == "paper" else 1\n'
                   'def g(prof):\n    return prof.name in ("smoke", "x")\n')
    assert _name_comparisons(bad, {"paper", "smoke"}) == [f"{bad}:2", f"{bad}:4"]


def test_method_default_fields_are_listed(smoke_profile):
    held = {f.name for f in dataclasses.fields(Profile) if dataclasses.is_dataclass(getattr(smoke_profile, f.name))}
    assert held == set(METHOD_DEFAULT_FIELDS)
