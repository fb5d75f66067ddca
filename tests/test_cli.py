"""The command line, end to end in subprocesses on digits / smoke with a tmp store."""
import csv
import io
import subprocess
import sys

import pytest

from ddlib.core.store import Store

RUN = ["run", "--dataset", "digits", "--method", "random", "--ipc", "10", "--regime", "hl",
       "--budget", "1", "--seed", "0", "--profile", "smoke", "--quiet"]
PREFIX = "ddlib: error:"


@pytest.fixture(scope="module")
def cli(tmp_path_factory, child_env, repo_root, ddlib_cli):
    home = tmp_path_factory.mktemp("ddlib_home")
    env = child_env(DDLIB_HOME=home, DDLIB_DATA=home / "data")

    def call(*args):
        return ddlib_cli(args, env, repo_root)

    call.home = home
    return call


@pytest.fixture(scope="module")
def stored(cli):
    """One stored run: (its stdout, the store's rows right after)."""
    proc = cli(*RUN)
    assert proc.returncode == 0, proc.stderr
    return proc, Store(cli.home).rows()


def test_list_prints_every_family(cli):
    from ddlib.core.config import PROFILES, PROTOCOLS
    from ddlib.data import dataset_names
    from ddlib.engine.models import MODELS
    from ddlib.engine.regimes import REGIMES
    from ddlib.methods.coresets import CORESETS
    from ddlib.methods.distill import DISTILLERS

    proc = cli("list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    expected = {"datasets": dataset_names(), "models": MODELS.names(), "coresets": CORESETS.names(),
                "distillers": DISTILLERS.names(), "regimes": REGIMES.names(),
                "profiles": PROFILES.names(), "protocols": PROTOCOLS.names()}
    assert len(lines) == len(expected)
    for line, (title, names) in zip(lines, expected.items()):
        assert line == f"{title}: {', '.join(names)}"


def test_run_stores_one_row(stored):
    proc, rows = stored
    assert proc.stdout.startswith("stored ")
    assert len(rows) == 1
    row = rows[0]
    assert (row["dataset"], row["method"], row["family"], row["ipc"], row["regime"]) == \
        ("digits", "random", "coreset", 10, "hl")
    assert (row["budget"], row["seed"], row["profile"]) == (1.0, 0, "smoke")
    assert row["model"] == "convnet_d3w16" and row["protocol"] == "sgd_cos_b64_lr1_v2"
    assert row["samples_seen"] == 1287  # budget 1 x the 1,287-image pool
    assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["val_accuracy"] <= 1.0
    assert row["key"] in proc.stdout and f"accuracy={row['accuracy']:.4f}" in proc.stdout


def test_identical_run_is_reused(cli, stored):
    _, before = stored
    proc = cli(*RUN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("reused ") and before[0]["key"] in proc.stdout
    assert Store(cli.home).rows() == before


def test_results_csv(cli, stored):
    proc = cli("results", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("key,dataset,method")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 1 and rows[0]["key"] == stored[1][0]["key"]
    assert cli("results", "--format", "csv", "--method", "dm").stdout.strip().count("\n") == 0


BAD = {
    "unknown method": (["--method", "bogusmethod"], "bogusmethod"),
    "unknown dataset": (["--dataset", "bogusdata"], "bogusdata"),
    "unknown regime": (["--regime", "bogusregime"], "bogusregime"),
    "ipc 1000": (["--ipc", "1000"], "1000"),
    "budget 0": (["--budget", "0"], "budget"),
    "budget -1": (["--budget", "-1"], "budget"),
    "unknown profile": (["--profile", "bogusprofile"], "bogusprofile"),
}


def _with(over):
    args = list(RUN)
    for flag, val in zip(over[::2], over[1::2]):
        args[args.index(flag) + 1] = val
    return args


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_error_line(cli, stored, case):
    _, before = stored
    over, needle = BAD[case]
    proc = cli(*_with(over))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(PREFIX), proc.stderr
    assert sum(line.startswith(PREFIX) for line in lines) == 1, proc.stderr
    assert needle in lines[-1]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert Store(cli.home).rows() == before  # nothing stored changed


def test_argparse_errors_are_one_line(cli):
    proc = cli("run", "--method", "random")  # missing --ipc / --budget
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX)


def test_a_closed_pipe_ends_quietly(child_env, repo_root, tmp_path):
    """``python -m ddlib list | head -0``: the reader is gone before the first write (the child is still
    importing torch); one exit status, no traceback."""
    p = subprocess.Popen([sys.executable, "-m", "ddlib", "list"], env=child_env(DDLIB_HOME=tmp_path),
                         cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=300) == 141 and "Traceback" not in err and "Exception ignored" not in err, err
