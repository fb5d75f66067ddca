"""Bad input through the CLI: one ``ddlib: error:`` line, exit status 2, the store's bytes unchanged.

Complements tests/test_cli.py (unknown names, IPC larger than a class,
budget <= 0) and tests/test_grid_reliability.py (grid key typo, corrupt cache
bytes, truncated IDX into an empty store): missing data folders, unreadable
images, a truncated real artifact, bad grid values, each against a store
that already holds a run.
"""
from pathlib import Path

import numpy as np
import pytest

from ddlib.core.store import Store
from ddlib.data.idx import write_idx

PREFIX = "ddlib: error:"
RUN = ["run", "--dataset", "digits", "--method", "random", "--ipc", "1", "--regime", "hl",
       "--budget", "0.2", "--seed", "0", "--profile", "smoke", "--quiet"]


def _snapshot(root: Path):
    """The database file's bytes, its rows, and every file under artifacts/."""
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
             if p.is_file() and not p.name.startswith("results.sqlite")}
    return (root / "results.sqlite").read_bytes(), Store(root).rows(), files


@pytest.fixture(scope="module")
def cli(tmp_path_factory, child_env, repo_root, ddlib_cli):
    """A store holding one digits run; ``cli(*args, DDLIB_DATA=...)`` runs ``python -m ddlib``."""
    home = tmp_path_factory.mktemp("home")
    data = tmp_path_factory.mktemp("data")

    def call(*args, **env):
        return ddlib_cli(args, child_env(**{"DDLIB_HOME": home, "DDLIB_DATA": data, **env}), repo_root)

    p = call(*RUN)
    assert p.returncode == 0, p.stderr
    call.home, call.data = home, data
    return call


def _fails_cleanly(cli, needle, *args, **env):
    before = _snapshot(cli.home)
    proc = cli(*args, **env)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(PREFIX) and sum(x.startswith(PREFIX) for x in lines) == 1, proc.stderr
    assert needle in lines[-1], lines[-1]
    assert "Traceback" not in proc.stderr and "stored" not in proc.stdout
    assert _snapshot(cli.home) == before  # nothing stored changed, not even the database's bytes
    return lines[-1]


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_missing_data_folder(cli, tmp_path, dataset):
    missing = tmp_path / "no-such-folder"
    over = ["--dataset", dataset]
    _fails_cleanly(cli, f"$DDLIB_DATA={missing} does not exist", *RUN, *over, DDLIB_DATA=missing)
    assert not missing.exists()  # nothing created, nothing downloaded into it


def test_missing_imagefolder(cli, tmp_path):
    _fails_cleanly(cli, f"{tmp_path / 'nope'}/train/ does not exist",
                   *RUN, "--dataset", f"imagefolder:{tmp_path / 'nope'}")


def test_unreadable_image_in_imagefolder(cli, tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / "train" / c).mkdir(parents=True)
        (tmp_path / "train" / c / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _fails_cleanly(cli, "cannot read", *RUN, "--dataset", f"imagefolder:{tmp_path}")


def test_truncated_idx_file(cli):
    rng = np.random.default_rng(0)
    write_idx(cli.data / "train-images-idx3-ubyte", rng.integers(0, 255, (50, 28, 28), dtype=np.uint8))
    write_idx(cli.data / "train-labels-idx1-ubyte", (np.arange(50) % 10).astype(np.uint8))
    write_idx(cli.data / "t10k-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28), dtype=np.uint8))
    write_idx(cli.data / "t10k-labels-idx1-ubyte", (np.arange(20) % 10).astype(np.uint8))
    f = cli.data / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:5000])
    try:
        _fails_cleanly(cli, "corrupt IDX file", *RUN, "--dataset", "fashion_mnist")
    finally:
        for p in list(cli.data.iterdir()):
            p.unlink()


def test_truncated_artifact(cli):
    """The stored run's condensed set cut in half: another budget of it must not rebuild or load it."""
    (path,) = (cli.home / "artifacts" / "condensed").glob("*.pt")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    try:
        args = list(RUN)
        args[args.index("--budget") + 1] = "0.5"  # same condensed set, a new row
        line = _fails_cleanly(cli, "corrupt cache file", *args)
        assert str(path) in line and "delete it to rebuild" in line
    finally:
        path.write_bytes(whole)


@pytest.mark.parametrize("text,needle", [
    ("profile: smoke\nmethods: [random, bogusmethod]\nipcs: 1\nbudgets: 1\n", "unknown method 'bogusmethod'"),
    ("profile: smoke\nmethods: random\nipcs: 1\nbudgets: [1, 0]\n", "budget must be > 0"),
    ("profile: smoke\nmethods: random\nipcs: [1, -2]\nbudgets: 1\n", "ipc must be a positive integer"),
    ("profile: smoke\nmethods: random\nipcs: 1\nbudgets: 1\nregimes: [hl, slx]\n", "slx"),
    ("profile: smoke\nmethods: [random\n", "not valid YAML"),
    ("- random\n- herding\n", "must be a mapping"),
])
def test_bad_grid_values_stop_before_any_run(cli, tmp_path, text, needle):
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    _fails_cleanly(cli, needle, "grid", str(grid), "--quiet")


def test_unknown_model_in_grid(cli, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("profile: smoke\nmethods: random\nipcs: 1\nbudgets: 1\nmodel: convnet_typo\n")
    _fails_cleanly(cli, "convnet_typo", "grid", str(grid), "--quiet")



@pytest.mark.parametrize("method", ["dm", "herding"])
def test_unknown_hyperparameter(cli, method):
    """Issue 21: a typo'd --hp was a traceback (dm) or a silently stored new row (herding)."""
    line = _fails_cleanly(cli, f"{method}: unknown hyper-parameter(s) bogus; valid:",
                          *RUN[:4], method, *RUN[5:], "--hp", "bogus=3")
    assert "describe" in line


def test_wrong_hyperparameter_type(cli):
    _fails_cleanly(cli, "dm: iters='many' is not an int >= 0", *RUN[:4], "dm", *RUN[5:], "--hp", "iters=many")
