"""torchrun / DDP (ddlib.engine.distributed): two gloo processes on CPU train what one process trains.

Run as a script under torchrun (``--worker OUT``), this file is also the
worker: it trains a teacher and two students data-parallel and rank 0 saves
what the test compares with the same training in one process.
"""
import dataclasses
import subprocess
import sys
from pathlib import Path

import torch

from ddlib.core.config import PROFILES, PROTOCOLS, RunConfig
from ddlib.core.store import Store
from ddlib.data import load
from ddlib.engine import distributed
from ddlib.engine.models import create_model
from ddlib.engine.regimes import create_regime
from ddlib.engine.teachers import get_teacher
from ddlib.engine.train import evaluate, fit
from ddlib.run.runner import run
from ddlib.run.settings import Settings

# Budget 0.3 (7 steps): this smoke training is chaotic -- a 1e-7 change of the
# initial weights moves them by 6e-4 after 7 steps and 1.2e-2 after 21 (budget 1),
# where DDP's different summation order (3e-8 after 7 steps) had flipped 7 of 360
# test predictions.  After 7 steps the two runs' weights agree to 3e-8, so equal
# accuracy is a check of the plumbing, not of luck; the weights' equivalence over
# longer fits is test_ddp_teacher_and_students_equal_single_process's job.
RUN = ["--dataset", "digits", "--method", "random", "--ipc", "10", "--regime", "hl", "--budget", "0.3",
       "--seed", "0", "--profile", "smoke", "--quiet"]
REGIMES = ("slkd", "slkd_stored")  # online KD, and stored per-view logits (sliced per rank)


def _torchrun(*args, env, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _train(root: Path, info=None) -> dict:
    """A one-epoch teacher, then a student per regime on 5 images per class; everything to compare.

    ``info``: the process group (the store coordinates with it, the teacher and students train in it).
    """
    prof = dataclasses.replace(PROFILES.get("smoke"), teacher_epochs=1)
    split = load("digits", prof)
    teacher, cost = get_teacher(split, prof, Store(root, sync=info) if info else Store(root), seed=0)
    out = {"teacher": teacher.state_dict(), "teacher_fwd": cost.fwd,
           "teacher_acc": evaluate(teacher, split.test_x, split.test_y)}
    idx = torch.cat([split.class_indices(c)[:5] for c in range(split.num_classes)])
    m = split.meta
    for name in REGIMES:
        student = create_model(prof.model, m.num_classes, m.in_chans, m.img_size, seed=7)
        res = fit(student, split.train_x[idx], split.train_y[idx], regime=create_regime(name),
                  teachers=[teacher], budget=0.5, pool_size=len(split.train_y),
                  protocol=PROTOCOLS.get(prof.protocol), seed=3, dist=info)
        out[name] = {"state": student.state_dict(), "loss": res.final_loss, "steps": res.steps,
                     "acc": evaluate(student, split.test_x, split.test_y)}
    return out


def _close(a: dict, b: dict, atol=1e-4):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=0), (k, float((a[k] - b[k]).abs().max()))


def test_torchrun_cli_run_equals_single_process(tmp_path, child_env, repo_root):
    env = child_env(DDLIB_HOME=tmp_path / "ddp", DDLIB_DATA=tmp_path / "data")
    p = _torchrun("-m", "ddlib", "run", *RUN, env=env, cwd=repo_root)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("stored ") == 1  # rank 0 alone reports and writes
    rows = Store(tmp_path / "ddp").rows()
    assert len(rows) == 1
    cfg = RunConfig("digits", "random", 10, "hl", 0.3, 0, "smoke")
    ref, _ = run(cfg, Store(tmp_path / "one"))
    for c in ("key", "accuracy", "val_accuracy", "steps", "samples_seen"):
        assert rows[0][c] == ref[c], c


def test_ddp_teacher_and_students_equal_single_process(tmp_path, child_env, repo_root):
    out = tmp_path / "ddp.pt"
    env = child_env(DDLIB_HOME=tmp_path / "ddp", DDLIB_DATA=tmp_path / "data")
    p = _torchrun(str(Path(__file__)), "--worker", str(out), env=env, cwd=repo_root)
    assert p.returncode == 0, p.stderr
    ddp = torch.load(out, weights_only=True)
    one = _train(tmp_path / "one")
    _close(ddp["teacher"], one["teacher"])
    assert ddp["teacher_acc"] == one["teacher_acc"]
    assert ddp["teacher_fwd"] == one["teacher_fwd"] > 0  # passes summed over the ranks
    for name in REGIMES:
        _close(ddp[name]["state"], one[name]["state"])
        assert ddp[name]["steps"] == one[name]["steps"] and ddp[name]["acc"] == one[name]["acc"]
        assert abs(ddp[name]["loss"] - one[name]["loss"]) < 1e-4
    # only rank 0 wrote the teacher: one artifact, the one the single process would write
    assert [p.name for p in (tmp_path / "ddp" / "artifacts" / "teachers").iterdir()] == \
        [p.name for p in (tmp_path / "one" / "artifacts" / "teachers").iterdir()]


def _race(root: Path, out: str, info: distributed.DistInfo) -> None:
    """Rank 1 looks for a cache entry only after rank 0 has built and written it.

    Every rank must still take rank 0's miss (and reach the save's barrier);
    a rank that trusted its own look would skip the barrier and hang rank 0.
    """
    import time

    store = Store(root, sync=info)
    if not info.is_main:
        time.sleep(3)  # rank 0 finds nothing and writes the entry meanwhile
    hit = store.load_artifact("condensed", "k")
    if hit is None:
        store.save_artifact("condensed", "k", {"x": torch.arange(3)})
    seen = store.get("no-such-key")
    Path(f"{out}.{info.rank}").write_text(f"{hit is None} {seen is None}")


def test_cache_misses_are_decided_by_rank_0(tmp_path, child_env, repo_root):
    out = tmp_path / "race.txt"
    env = child_env(DDLIB_HOME=tmp_path / "ddp")
    p = _torchrun(str(Path(__file__)), "--race", str(out), env=env, cwd=repo_root, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert [Path(f"{out}.{r}").read_text() for r in (0, 1)] == ["True True"] * 2


def test_shard_covers_the_batch_once():
    for world in (1, 2, 3, 5):
        for n in (1, 2, 7, 64, 65):
            parts = [distributed.DistInfo(r, world, r, "cpu", "gloo").shard(n) for r in range(world)]
            assert [i for s in parts for i in range(n)[s]] == list(range(n))


if __name__ == "__main__" and sys.argv[1:2] in (["--worker"], ["--race"]):
    settings = Settings.from_env()
    tr = settings.torchrun
    assert tr is not None and tr.world == 2
    info = distributed.init(tr.rank, tr.world, tr.local_rank, "cpu")
    assert info.world == 2 and info.backend == "gloo"
    try:
        if sys.argv[1] == "--race":
            _race(settings.home, sys.argv[2], info)
        else:
            result = _train(settings.home, info)
            if info.is_main:
                torch.save(result, sys.argv[2])
    finally:
        distributed.shutdown(info)
