"""``python -m ddlib`` without paying Python's start-up for every CLI test.

Each CLI test still runs the command line in its own process: this server
(started once per test session by ``conftest.ddlib_cli``, itself a fresh
``python`` that never runs a test) imports ddlib, torch and the chapters once,
then for every request forks a child that sets the request's environment,
working directory and ``sys.argv`` and executes ``ddlib/__main__.py`` as
``python -m ddlib`` would, with stdout and stderr going to files.  The exit
status is the child's.  Importing torch is ~1 s of every ~2 s CLI call on this
machine, and the CLI tests make dozens of calls.

ddlib reads its environment only in ``Settings.from_env()``, inside ``main``
(tests/test_settings.py holds that), so a forked child sees the request's
``DDLIB_*`` exactly as a fresh interpreter would.

Protocol: one JSON line in ``{"args", "env", "cwd", "out", "err"}``, one JSON
line out ``{"rc"}``.
"""
import json
import os
import runpy
import sys
import traceback

import ddlib.chapters.check  # noqa: F401  -- what `check` and `claims` import on demand
import ddlib.chapters.commands  # noqa: F401
import ddlib.run.cli  # noqa: F401  -- the parser and the run layer (torch, pandas)


def _child(req: dict) -> int:
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path in ((1, req["out"]), (2, req["err"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = [os.path.join(os.path.dirname(ddlib.run.cli.__file__), "..", "__main__.py"), *req["args"]]
    try:
        runpy.run_module("ddlib", run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as e:  # what `python -m ddlib` turns into its exit status
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 -- an uncaught error prints its traceback, exit 1, as Python does
        traceback.print_exc()
        return 1


def serve() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            # a normal interpreter exit, as `python -m ddlib` ends: finalisers and atexit handlers run
            # (SQLite's connection closes and checkpoints its write-ahead log, as after a real run)
            sys.exit(_child(req))
        _, status = os.waitpid(pid, 0)
        sys.__stdout__.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        sys.__stdout__.flush()


if __name__ == "__main__":
    serve()
