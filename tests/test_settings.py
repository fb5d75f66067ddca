"""The environment is read once (ddlib.run.settings) and no module keeps mutable state in globals."""
import ast
from pathlib import Path

import pytest

from ddlib.core.registry import DDLibError
from ddlib.core.store import SINGLE_PROCESS, Store
from ddlib.run.settings import Settings, Torchrun, default_home

PKG = Path(__file__).resolve().parents[1] / "ddlib"
SETTINGS = PKG / "run" / "settings.py"


def test_defaults_from_an_empty_environment():
    s = Settings.from_env({})
    assert s == Settings(home=default_home(), data=None, device=None, engine="auto", torchrun=None)


def test_every_variable_is_read():
    s = Settings.from_env({"DDLIB_HOME": "/h", "DDLIB_DATA": "/d", "DDLIB_DEVICE": "cpu",
                           "DDLIB_ENGINE": "eager", "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert s == Settings(Path("/h"), Path("/d"), "cpu", "eager", Torchrun(1, 2, 1))
    # empty values mean unset; one process is not a torchrun group
    s = Settings.from_env({"DDLIB_DATA": "", "DDLIB_DEVICE": "", "DDLIB_ENGINE": "", "RANK": "0",
                           "WORLD_SIZE": "1"})
    assert (s.data, s.device, s.engine, s.torchrun) == (None, None, "auto", None)


def test_bad_engine_is_one_line_listing_the_modes():
    with pytest.raises(DDLibError) as e:
        Settings.from_env({"DDLIB_ENGINE": "turbo"})
    assert str(e.value) == "unknown engine mode 'turbo'; valid: auto, plain, eager, compiled"


def test_store_under_home_single_process(tmp_path):
    s = Settings.from_env({"DDLIB_HOME": str(tmp_path / "h")})
    store = s.store()
    assert store.root == tmp_path / "h" and store.sync is SINGLE_PROCESS
    with pytest.raises(TypeError):
        Store()  # the core has no default folder: the run layer names it


def _modules():
    return sorted(p for p in PKG.rglob("*.py"))


def _reads_environment(tree: ast.AST):
    """(line, text) of every read of a ``DDLIB_*`` variable: ``X["DDLIB_.."]``, ``X.get("DDLIB_..")``,
    ``os.getenv("DDLIB_..")`` (any mapping: aliases of ``os.environ`` too), and of ``os.environ``
    under a computed name."""
    found = []
    for node in ast.walk(tree):
        key, environ = None, False
        if isinstance(node, ast.Subscript):
            key, environ = node.slice, _is_environ(node.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and \
                node.func.attr in ("get", "pop", "setdefault", "getenv"):
            key, environ = node.args[0], _is_environ(node.func.value) or node.func.attr == "getenv"
        if key is None:
            continue
        named = isinstance(key, ast.Constant) and isinstance(key.value, str)
        if (named and key.value.startswith("DDLIB_")) or (environ and not named):
            found.append((node.lineno, ast.unparse(node)))
    return found


def _is_environ(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def test_ddlib_variables_are_read_only_in_settings():
    offenders = []
    for path in _modules():
        if path == SETTINGS:
            continue
        for line, text in _reads_environment(ast.parse(path.read_text())):
            offenders.append(f"{path.relative_to(PKG.parent)}:{line}: {text}")
    assert not offenders, "environment read outside ddlib/run/settings.py:\n" + "\n".join(offenders)
    assert _reads_environment(ast.parse(SETTINGS.read_text()))  # the check sees the reads it looks for


def test_no_module_rebinds_a_global():
    offenders = [f"{p.relative_to(PKG.parent)}:{n.lineno}: global {', '.join(n.names)}"
                 for p in _modules() for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Global)]
    assert not offenders, "module-level mutable state (use an explicit object):\n" + "\n".join(offenders)
    assert any(isinstance(n, ast.Global) for n in ast.walk(ast.parse("def f():\n    global x\n    x = 1\n")))
