"""Every on-disk format a user points the study at, written small into tmp folders and read by the user's code.

CIFAR-10 / CIFAR-100 pickled batches, MNIST IDX files and ImageFolder trees of
PNGs (with and without ``val/``) go through :func:`ddlib.data.load` (what a run
calls), a smoke run through :func:`ddlib.run.runner.run` per format, and the CLI
for damaged data: one ``ddlib: error:`` line, nothing stored changed.  Nothing
downloads.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import ddlib.data
from ddlib.core.config import RunConfig
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data.cifar import write_cifar
from ddlib.data.idx import write_idx
from ddlib.run.runner import run
from ddlib.run.settings import Settings

K, TRAIN_PER, TEST_PER = 10, 24, 4  # smoke's val split takes 15 per class from train


def _images(n, k, c, s, seed):
    """uint8 (n*k, c, s, s) images whose mean brightness encodes the class, and their labels."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n)
    x = rng.integers(0, 40, size=(len(y), c, s, s)) + (y * (200 // k))[:, None, None, None]
    return x.astype(np.uint8), y


def _load(name, data_dir):
    ddlib.data._load_cpu.cache_clear()  # each test's files are new: never the previous test's split
    return ddlib.data.load(name, "smoke", "cpu", data_dir=data_dir)


def _fake_cifar(root, name="cifar10", k=K):
    tx, ty = _images(TRAIN_PER, k, 3, 32, 0)
    ex, ey = _images(TEST_PER, k, 3, 32, 1)
    return write_cifar(name, root, tx, ty, ex, ey, [f"class{i}" for i in range(k)]), (tx, ty, ex, ey)


@pytest.mark.parametrize("name,k", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_batches_load_like_the_real_files(tmp_path, name, k):
    n_train = 16 if k == 100 else TRAIN_PER  # cifar100: 100 classes, 15 of each go to val
    tx, ty = _images(n_train, k, 3, 32, 0)
    ex, ey = _images(2, k, 3, 32, 1)
    write_cifar(name, tmp_path, tx, ty, ex, ey, [f"c{i}" for i in range(k)])
    s = _load(name, tmp_path)
    assert s.meta.in_chans == 3 and s.meta.img_size == 32 and s.meta.num_classes == k
    assert s.meta.classes[:2] == ("c0", "c1")
    assert len(s.train_x) + len(s.val_x) == len(tx) and len(s.test_x) == len(ex)
    assert len(s.meta.mean) == 3  # its own per-channel normalisation
    # the test split is exactly the test batch's pixels, in order, normalised
    mean, std = np.array(s.meta.mean), np.array(s.meta.std)
    want = (ex / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    assert np.allclose(s.test_x.numpy(), want, atol=1e-5) and (s.test_y.numpy() == ey).all()


def test_mnist_idx_files_load(tmp_path):
    tx, ty = _images(TRAIN_PER, K, 1, 28, 0)
    ex, ey = _images(TEST_PER, K, 1, 28, 1)
    folder = tmp_path / "MNIST" / "raw"  # torchvision's layout
    folder.mkdir(parents=True)
    for stem, a in (("train-images-idx3-ubyte", tx[:, 0]), ("train-labels-idx1-ubyte", ty),
                    ("t10k-images-idx3-ubyte", ex[:, 0]), ("t10k-labels-idx1-ubyte", ey)):
        write_idx(folder / (stem + ".gz"), a)
    s = _load("mnist", tmp_path)
    assert (s.meta.in_chans, s.meta.img_size, s.meta.num_classes) == (1, 28, 10)
    assert len(s.test_x) == len(ex) and (s.test_y.numpy() == ey).all()


def _png_tree(root, split, per, size=(40, 30), classes=("cat", "dog", "fox")):
    from PIL import Image

    for ci, c in enumerate(classes):
        (root / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(per):
            a = np.full((size[1], size[0], 3), 40 + 80 * ci, dtype=np.uint8)
            a[:, :, i % 3] = 10 * i
            Image.fromarray(a).save(root / split / c / f"{i}.png")


@pytest.mark.parametrize("with_val", [True, False])
def test_imagefolder_of_pngs_at_a_chosen_size_decoded_once(tmp_path, with_val, monkeypatch):
    tree, data = tmp_path / "nette", tmp_path / "data"
    data.mkdir()
    _png_tree(tree, "train", 25)
    if with_val:
        _png_tree(tree, "val", 4)
    s = _load(f"imagefolder:{tree}@16", data)
    assert s.train_x.shape[1:] == (3, 16, 16) and s.meta.classes == ("cat", "dog", "fox")
    assert len(s.test_x) == (12 if with_val else len(s.test_x)) and len(s.test_x) > 0
    assert len(list((data / "imagefolder-cache").glob("*.npz"))) == 1
    # the second load reads the cached arrays: no image is decoded again
    import ddlib.data.imagefolder as imf

    monkeypatch.setattr(imf, "_decode", lambda *a: pytest.fail("decoded again despite the cache"))
    again = _load(f"imagefolder:{tree}@16", data)
    assert torch.equal(again.train_x, s.train_x) and torch.equal(again.test_x, s.test_x)
    # another size is another cache entry (and decodes)
    monkeypatch.undo()
    assert _load(f"imagefolder:{tree}@8", data).train_x.shape[1:] == (3, 8, 8)
    assert len(list((data / "imagefolder-cache").glob("*.npz"))) == 2


def test_imagefolder_cache_follows_the_files(tmp_path):
    tree, data = tmp_path / "t", tmp_path / "d"
    data.mkdir()
    _png_tree(tree, "train", 25)
    a = _load(f"imagefolder:{tree}", data)
    _png_tree(tree, "train", 26)  # one more image per class
    b = _load(f"imagefolder:{tree}", data)
    assert len(b.train_x) + len(b.val_x) + len(b.test_x) == len(a.train_x) + len(a.val_x) + len(a.test_x) + 3


@pytest.mark.parametrize("damage,needle", [
    ("val_class", "that train/ does not have"),
    ("empty_class", "holds no images"),
    ("bad_size", "image size 4 out of range"),
])
def test_imagefolder_bad_trees_raise_one_line(tmp_path, damage, needle):
    tree = tmp_path / "t"
    _png_tree(tree, "train", 25)
    name = f"imagefolder:{tree}"
    if damage == "val_class":
        _png_tree(tree, "val", 2, classes=("cat", "wolf"))
    elif damage == "empty_class":
        (tree / "train" / "empty").mkdir()
    else:
        name += "@4"
    with pytest.raises(DDLibError, match=needle):
        _load(name, tmp_path)


@pytest.mark.parametrize("damage,needle", [
    ("truncated", "corrupt CIFAR batch"),
    ("label", "label out of range"),
    ("missing", "is missing"),
])
def test_cifar_damage_raises_one_line(tmp_path, damage, needle):
    folder, (tx, ty, ex, ey) = _fake_cifar(tmp_path)
    if damage == "truncated":
        b = (folder / "data_batch_2").read_bytes()
        (folder / "data_batch_2").write_bytes(b[: len(b) // 2])
    elif damage == "label":
        write_cifar("cifar10", tmp_path, tx, np.where(ty == 9, 10, ty), ex, ey, [f"c{i}" for i in range(K)])
    else:
        (folder / "data_batch_5").unlink()
    with pytest.raises(DDLibError, match=needle):
        _load("cifar10", tmp_path)


def _formats(root):
    """Name -> data folder of one tiny dataset per on-disk format (for the smoke runs)."""
    _fake_cifar(root / "cifar")
    _png_tree(root / "nette", "train", 25)
    _png_tree(root / "nette", "val", 3)
    _png_tree(root / "noval", "train", 25)
    return {"cifar10": root / "cifar", f"imagefolder:{root / 'nette'}@16": root / "cifar",
            f"imagefolder:{root / 'noval'}@8": root / "cifar"}


def test_a_smoke_run_per_format(tmp_path):
    """What `python -m ddlib run --dataset ...` does, on each format, with a timm student on one of them."""
    store = Store(tmp_path / "home")
    for i, (name, data) in enumerate(_formats(tmp_path).items()):
        ddlib.data._load_cpu.cache_clear()
        model = "mobilenetv3_small_100" if i == 1 else ""
        cfg = RunConfig(name, "random", 1, "hl", 0.2, 0, "smoke", model=model)
        row, hit = run(cfg, store, device="cpu", settings=Settings(home=tmp_path / "home", data=data))
        assert not hit and 0.0 <= row["accuracy"] <= 1.0 and row["dataset"] == name
        assert row["model"] == (model or "convnet_d3w16")


def test_damaged_cifar_through_the_cli_changes_nothing(tmp_path, child_env, repo_root, ddlib_cli):
    folder, _ = _fake_cifar(tmp_path / "data")
    home = tmp_path / "home"
    args = ["run", "--dataset", "cifar10", "--method", "random", "--ipc", "1", "--budget", "0.2", "--profile",
            "smoke", "--quiet"]
    env = child_env(DDLIB_HOME=home, DDLIB_DATA=tmp_path / "data")
    ok = ddlib_cli(args, env, repo_root)
    assert ok.returncode == 0, ok.stderr
    before = Store(home).rows()
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:100])
    ddlib.data._load_cpu.cache_clear()
    bad = ddlib_cli(args + ["--seed", "1"], env, repo_root)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and lines[-1].startswith("ddlib: error: corrupt CIFAR batch"), bad.stderr
    assert sum(x.startswith("ddlib: error:") for x in lines) == 1 and "Traceback" not in bad.stderr
    assert Store(home).rows() == before


# Every chapter notebook on a tiny fake CIFAR-10 (32-px RGB: three channels, the timm students' stems, its own
# normalisation), with its smallest grid through its papermill parameters: one seed, one budget, IPC 1 where
# the chapter takes IPCs, few methods.  The chapters share one store, so later ones reuse earlier ones' runs,
# as in the book build; the claims chapter reads the rows the others stored (stored_only) and scores chapter
# 8's objectives; the deviations chapter reads no data (it runs as it is).
_TINY = dict(profile="smoke", dataset="cifar10", seeds=[0], budgets=[1.0])
_FEW = dict(ipcs=[1], regimes=["hl", "slkd"])
CHAPTER_PARAMS = {
    "01_protocol": _TINY,
    "02_label_regimes": {**_TINY, **_FEW, "methods": ["random", "el2n_easy"]},
    "03_distilled_vs_coresets": {**_TINY, **_FEW, "methods": ["random", "dm"]},
    "04_cost": {**_TINY, **_FEW, "methods": ["random", "dm"]},
    "05_quality": {**_TINY, **_FEW, "methods": ["random", "dm"]},
    "06_dd2018": _TINY,  # DD's chapter on CIFAR instead of its MNIST
    "07_teacher_based": {**_TINY, "ipcs": [1], "regimes": ["hl"], "methods": ["random", "rded", "cim"]},
    "08_dcs": dict(profile="smoke", dataset="cifar10", seeds=[0], ipcs=[1], extra_seeds=[2], objectives=["dm"]),
    "09_transfer": {**_TINY, "ipcs": [1], "regimes": ["hl"], "methods": ["random", "dm"]},
    "10_claims": dict(profile="smoke", dataset="cifar10", seeds=[0], stored_only=True, objectives=["dm"]),
    "11_deviations": dict(profile="smoke"),
}


def test_every_chapter_notebook_is_run_here(repo_root):
    assert sorted(CHAPTER_PARAMS) == sorted(p.stem for p in (repo_root / "notebooks").glob("*.ipynb"))


def test_every_chapter_notebook_executes_on_a_tiny_fake_cifar(tmp_path, child_env, repo_root):
    """Each notebook's code cells, parameters injected as papermill injects them, in one IPython shell
    (tests/run_chapters.py: no kernel start per notebook) on the smoke profile shortened as
    `python -m ddlib check` shortens it."""
    tx, ty = _images(55, K, 3, 32, 0)  # 15 per class to validation, 40 to the pool (CIM's 4 x 10 anchors)
    ex, ey = _images(5, K, 3, 32, 1)
    write_cifar("cifar10", tmp_path / "data", tx, ty, ex, ey, [f"c{i}" for i in range(K)])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({str(repo_root / "notebooks" / f"{nb}.ipynb"): p for nb, p in CHAPTER_PARAMS.items()}))
    env = child_env(DDLIB_HOME=tmp_path / "home", DDLIB_DATA=tmp_path / "data")
    proc = subprocess.run([sys.executable, str(repo_root / "tests" / "run_chapters.py"), str(plan), "--quick"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    done = [ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("TIME ")]
    assert done == list(CHAPTER_PARAMS), proc.stderr[-2000:]
    rows = Store(tmp_path / "home").frame()
    assert len(rows) and set(rows["dataset"]) == {"cifar10"}
    assert {"mobilenetv3_small_100", "dd"} <= set(rows["model"]) | set(rows["method"])
