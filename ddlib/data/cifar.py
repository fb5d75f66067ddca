"""Reader for CIFAR-10 / CIFAR-100's "python version" (Krizhevsky 2009): pickled batches.

The archives unpack to ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
``test_batch``, ``batches.meta``) and ``cifar-100-python/`` (``train``, ``test``,
``meta``).  Each batch is a pickled dict with ``data``, a (N, 3072) uint8 array of
row-major 32x32 R, G, B planes, and ``labels`` (CIFAR-10) or ``fine_labels``
(CIFAR-100).  torchvision reads the same files but insists on their published MD5
sums; this reader checks shapes and label ranges instead, so a copy the user made
(or a test's tiny fake) loads through the same code and a damaged one is named.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ddlib.core.registry import DDLibError

#: name -> (folder, train files, test files, label key, meta file, class-names key)
LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                "labels", "batches.meta", "label_names"),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels", "meta", "fine_label_names"),
}


def find(name: str, root: Path) -> Optional[Path]:
    """The folder of ``name``'s batches under ``root`` (``root`` itself or its standard subfolder), or None."""
    folder, train, *_ = LAYOUTS[name]
    for cand in (root / folder, root):
        if (cand / train[0]).is_file():
            return cand
    return None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise DDLibError(f"CIFAR batch {path} is missing") from None
    except Exception as e:  # truncated or not a pickle: one line naming the file
        raise DDLibError(f"corrupt CIFAR batch {path} ({type(e).__name__})") from None
    if not isinstance(d, dict):
        raise DDLibError(f"corrupt CIFAR batch {path}: not a pickled dict")
    return d


def _batches(folder: Path, files, label_key: str, k: int) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for f in files:
        d = _unpickle(folder / f)
        try:
            x = np.asarray(d["data"], dtype=np.uint8)
            y = np.asarray(d[label_key], dtype=np.int64)
        except KeyError as e:
            raise DDLibError(f"corrupt CIFAR batch {folder / f}: no {e.args[0]!r} entry") from None
        if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
            raise DDLibError(f"corrupt CIFAR batch {folder / f}: data {x.shape} and {len(y)} labels "
                             f"(expected (N, 3072) and N labels)")
        if len(y) and (y.min() < 0 or y.max() >= k):
            raise DDLibError(f"corrupt CIFAR batch {folder / f}: label out of range 0..{k - 1}")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs).reshape(-1, 3, 32, 32), np.concatenate(ys)


def read_cifar(name: str, folder: Path):
    """(train_x, train_y, test_x, test_y, classes) of ``name`` ("cifar10" | "cifar100") in ``folder``.

    Images come back as float32 (N, 3, 32, 32) in [0, 1]; labels int64 (N,).

    Raises:
        DDLibError: a batch is missing, truncated, of the wrong shape, or has a label
            outside the classes of ``meta``.
    """
    _, train, test, label_key, meta_file, names_key = LAYOUTS[name]
    k = 10 if name == "cifar10" else 100
    classes: Tuple[str, ...] = tuple(str(i) for i in range(k))
    if (folder / meta_file).is_file():
        names = _unpickle(folder / meta_file).get(names_key)
        if names is not None:
            if len(names) != k:
                raise DDLibError(f"corrupt CIFAR meta {folder / meta_file}: {len(names)} classes, expected {k}")
            classes = tuple(str(c) for c in names)
    tx, ty = _batches(folder, train, label_key, k)
    ex, ey = _batches(folder, test, label_key, k)
    conv = lambda a: a.astype(np.float32) / 255.0  # noqa: E731
    return conv(tx), ty, conv(ex), ey, classes


def write_cifar(name: str, root: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                test_y: np.ndarray, classes) -> Path:
    """Write uint8 (N, 3, 32, 32) images and labels as ``name``'s pickled batches under ``root`` (tests' fixtures).

    CIFAR-10's train images are split over its five batch files.  Returns the batches' folder.
    """
    folder_name, train, test, label_key, meta_file, names_key = LAYOUTS[name]
    folder = Path(root) / folder_name
    folder.mkdir(parents=True, exist_ok=True)

    def dump(path, x, y):
        with open(path, "wb") as f:
            pickle.dump({"data": np.ascontiguousarray(x, dtype=np.uint8).reshape(len(x), -1),
                         label_key: [int(v) for v in y]}, f)

    parts = np.array_split(np.arange(len(train_x)), len(train))
    for fname, idx in zip(train, parts):
        dump(folder / fname, train_x[idx], train_y[idx])
    dump(folder / test[0], test_x, test_y)
    with open(folder / meta_file, "wb") as f:
        pickle.dump({names_key: list(classes)}, f)
    return folder
