"""Declared hyper-parameters (issue 21): the declaration matches the code, and bad input is one line.

Generated from the registries, so every method, regime and protocol gets the
same contract: the declaration is the builder's signature (names, defaults,
types), its profile fields exist on every profile, and ``python -m ddlib run``
(the CLI's ``main``, in process: no training happens, validation fails first)
rejects an unknown key and a wrong type with one ``ddlib: error:`` line,
exit status 2 and the store's bytes unchanged.
"""
import dataclasses
import inspect
import sqlite3

import pytest

from ddlib.core.config import PROFILES, PROTOCOLS, Protocol, RunConfig
from ddlib.core.hparams import PROTOCOL_HPARAMS, HParam, check, profile_value
from ddlib.core.registry import DDLibError
from ddlib.engine.regimes import REGIMES, create_regime
from ddlib.methods.coresets import CORESETS
from ddlib.methods.describe import SHOWN_PROFILES, declared, describe_frame, describe_text, hparams_table
from ddlib.methods.distill import DISTILLERS
from ddlib.run import cli
from ddlib.run.runner import validate

METHODS = [(CORESETS, n) for n in CORESETS.names()] + [(DISTILLERS, n) for n in DISTILLERS.names()]
IDS = [n for _, n in METHODS]
PREFIX = "ddlib: error:"


# -- the declaration is the code --------------------------------------------------------
@pytest.mark.parametrize("reg,name", METHODS, ids=IDS)
def test_declaration_matches_the_builder_signature(reg, name):
    """Names, defaults and annotated types of the builder's keyword arguments, one for one."""
    params = inspect.signature(reg.get(name)).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), f"{name} takes **kwargs"
    takes = {k: p for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k not in ("seed", "ctx")}
    decl = {h.name: h for h in reg.hparams(name)}
    assert len(decl) == len(reg.hparams(name)), f"{name} declares a name twice"
    assert set(decl) == set(takes), f"{name}: declared {sorted(decl)}, builder takes {sorted(takes)}"
    for k, p in takes.items():
        h = decl[k]
        assert p.default == h.default and type(p.default) is type(h.default), (name, k, p.default, h.default)
        want = h.type.__name__ if h.default is not None else f"Optional[{h.type.__name__}]"
        assert str(p.annotation) == want, (name, k, p.annotation, want)
        assert not h.problem(h.default), f"{name}.{k}: its own default is not allowed: {h.problem(h.default)}"


def _every_declaration():
    for reg in (CORESETS, DISTILLERS, REGIMES):
        for n in reg.names():
            for h in reg.hparams(n):
                yield n, h


def test_profile_fields_exist_on_every_profile():
    """A profile path typed wrong would show nothing true: each resolves on every profile."""
    for n, h in _every_declaration():
        for prof in PROFILES.names():
            for path in h.profile:
                profile_value(PROFILES.get(prof), path)  # raises AttributeError on a typo


def test_protocol_declaration_matches_the_dataclass():
    fields = [f for f in dataclasses.fields(Protocol) if f.name != "name"]
    assert [h.name for h in PROTOCOL_HPARAMS] == [f.name for f in fields]
    for h, f in zip(PROTOCOL_HPARAMS, fields):
        assert (h.default, h.type.__name__) == (f.default, str(f.type)), h.name
    for p in PROTOCOLS.names():
        for h in PROTOCOL_HPARAMS:
            assert not h.problem(getattr(PROTOCOLS.get(p), h.name)), (p, h.name)


def test_regime_declarations_are_what_the_regimes_read():
    for prof in map(PROFILES.get, PROFILES.names()):
        mt = {h.name: h for h in REGIMES.hparams("mt")}
        assert create_regime("mt").n_teachers(prof) == profile_value(prof, mt["n_teachers"].profile[0])
        assert profile_value(prof, "protocol.temperature") == PROTOCOLS.get(prof.protocol).temperature
    assert REGIMES.hparams("hl") == ()


def test_describe_reads_each_profile_from_the_profile_objects():
    f = describe_frame("mtt")
    for p in SHOWN_PROFILES:
        assert f.loc["lr_img", p] == str(PROFILES.get(p).mtt.lr_img)
        assert f.loc["model", p] == repr(PROFILES.get(p).synth_model)
    # per-IPC rows of the profile (the authors' CIFAR-10 settings on paper)
    assert f.loc["lr_teacher", "paper"] == "ipc 1: 0.01, ipc 10: 0.001, ipc 50: 0.001"
    assert f.loc["expert_lr", "paper"] == "0.01"  # not profile-dependent: the code's default
    assert describe_frame("random").empty
    assert describe_frame("sgd_cos_v1").loc["lr", "code default"] == str(PROTOCOLS.get("sgd_cos_v1").lr)
    with pytest.raises(DDLibError, match="unknown method, regime or protocol 'nope'"):
        declared("nope")


@pytest.mark.parametrize("name", CORESETS.names() + DISTILLERS.names() + REGIMES.names() + PROTOCOLS.names())
def test_describe_prints_every_registered_name(name, capsys):
    assert cli.main(["describe", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name} (") and all(f"  {h.name} (" in out for h in declared(name).hparams)


def test_chapter_table_has_every_method_and_hparam():
    t = hparams_table()
    for reg, n in METHODS:
        got = list(t.loc[n].index)
        assert got == ([h.name for h in reg.hparams(n)] or ["—"]), n


# -- checking -----------------------------------------------------------------------
def test_check_names_the_valid_keys_and_the_allowed_values():
    decl = (HParam("iters", int, 0, "iterations", "m", "ddlib", low=0),
            HParam("init", str, "fixed", "", "m", "paper", choices=("fixed", "random")),
            HParam("beta", float, None, "", "m", "paper", low=0.0, high=1.0, high_open=True))
    with pytest.raises(DDLibError, match=r"x: unknown hyper-parameter\(s\) itres; valid: beta, init, iters"):
        check("x", decl, {"itres": 3})
    for hp, msg in (({"iters": "3"}, "iters='3' is not an int >= 0"), ({"iters": 2.0}, "not an int"),
                    ({"iters": True}, "not an int"), ({"iters": -1}, "out of range; allowed: an int >= 0"),
                    ({"init": "rand"}, "one of: fixed, random"), ({"beta": 1.0}, r"in \[0, 1\)")):
        with pytest.raises(DDLibError, match=msg):
            check("x", decl, hp)
    check("x", decl, {"iters": 3, "init": "random", "beta": None, "teacher_ckpt": "/t.pt"})
    check("x", (HParam("lr", float, 0.1, "", "m", "ddlib"),), {"lr": 1})  # an int is a float


def test_validation_leaves_valid_runs_and_their_keys_alone():
    cfg = RunConfig("digits", "dd", 1, "hl", 1.0, 0, "smoke", hparams=(("lr_img", 0), ("init", "fixed")))
    key = cfg.key()
    assert validate(cfg).hparams == (("init", "fixed"), ("lr_img", 0)) and cfg.key() == key


def test_notebook_parameters_are_checked(tmp_path):
    from ddlib.run.study import Study

    with pytest.raises(DDLibError, match="dm: unknown hyper-parameter"):
        Study.from_params("smoke", methods=["dm"], ipcs=[1], hparams={"iter": 2})


# -- through the command line ---------------------------------------------------------
def _bad_values(h: HParam):
    """Values of the wrong type (and one out of range) for ``h``."""
    wrong = {int: "abc", float: "abc", str: 3, bool: "maybe"}[h.type]
    yield wrong
    if h.low is not None:
        yield h.low - 1


@pytest.fixture
def store_home(tmp_path, monkeypatch):
    """``$DDLIB_HOME`` with a results file holding one row; returns a snapshot function."""
    from ddlib.core.store import Store

    monkeypatch.setenv("DDLIB_HOME", str(tmp_path))
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path / "no-data"))  # nothing may be loaded, let alone downloaded
    s = Store(tmp_path)
    s.put_failure("k", "{}", "an earlier failure")  # the file holds something that must not change
    with sqlite3.connect(tmp_path / "results.sqlite") as con:  # into the main file, as a finished process leaves it
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def snapshot():  # as tests/test_bad_input.py: the database's bytes and rows, every other file
        files = {str(p.relative_to(tmp_path)): p.read_bytes() for p in sorted(tmp_path.rglob("*"))
                 if p.is_file() and not p.name.startswith("results.sqlite")}
        return (tmp_path / "results.sqlite").read_bytes(), s.rows(), s.failures(), files

    return snapshot


def _fails_cleanly(argv, snapshot, capsys, needle):
    before = snapshot()
    assert cli.main(argv) == 2
    err = capsys.readouterr()
    lines = err.err.strip().splitlines()
    assert sum(x.startswith(PREFIX) for x in lines) == 1 and lines[-1].startswith(PREFIX), err.err
    assert needle in lines[-1], lines[-1]
    assert "stored" not in err.out and snapshot() == before


def _run_argv(method, *hp):
    return ["run", "--dataset", "digits", "--method", method, "--ipc", "1", "--budget", "1", "--profile",
            "smoke", "--quiet", "--hp", *hp]


@pytest.mark.parametrize("reg,name", METHODS, ids=IDS)
def test_cli_rejects_an_unknown_key(reg, name, store_home, capsys):
    valid = ", ".join(sorted(h.name for h in reg.hparams(name))) or "none"
    _fails_cleanly(_run_argv(name, "bogus=3"), store_home, capsys, f"unknown hyper-parameter(s) bogus; valid: {valid}")


@pytest.mark.parametrize("reg,name", [m for m in METHODS if m[0].hparams(m[1])], ids=lambda x: x if isinstance(x, str) else "")
def test_cli_rejects_a_wrong_type_or_range(reg, name, store_home, capsys):
    for h in reg.hparams(name):
        for v in _bad_values(h):
            _fails_cleanly(_run_argv(name, f"{h.name}={v}"), store_home, capsys, f"{name}: {h.name}=")


def test_grid_rejects_a_methods_unknown_key(tmp_path, store_home, capsys):
    g = tmp_path / "grid.yaml"
    g.write_text("methods: [random, dm]\nipcs: 1\nbudgets: 1\nprofile: smoke\nhparams: {dm: {iter: 2}}\n")
    _fails_cleanly(["grid", str(g), "--quiet"], store_home, capsys, "dm: unknown hyper-parameter(s) iter")
    g.write_text("methods: [random]\nipcs: 1\nbudgets: 1\nprofile: smoke\nhparams: {dm: {iters: 2}}\n")
    _fails_cleanly(["grid", str(g), "--quiet"], store_home, capsys, "not in the grid's methods")


def test_the_readers_view_is_the_value_on_one_profile():
    full, view = hparams_table(), hparams_table("default")
    assert list(view.columns) == ["on default", "meaning (source)"] and view.index.equals(full.index)
    row = full.loc[("cad_prune", "epochs")]
    assert view.loc[("cad_prune", "epochs"), "on default"] == f"{row['default']} {row['unit']}".strip()
