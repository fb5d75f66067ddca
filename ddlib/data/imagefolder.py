"""ImageFolder trees (ImageNette, ImageNet subsets) at a chosen size, decoded once into a cached file.

A tree is ``ROOT/train/<class>/<image>`` and, optionally, ``ROOT/val/<class>/<image>``
(ImageNette's and ImageNet's layout; a tree without ``val/`` gets a test split
carved from train by :func:`ddlib.data.load`).  The dataset's name is
``imagefolder:ROOT`` (32 px) or ``imagefolder:ROOT@SIZE`` (``@64``, ``@128``).
Each image is converted to RGB, centre-cropped to a square and resized to SIZE
(``PIL.ImageOps.fit``, bilinear: the shorter side fills the square, as the
resize-then-centre-crop of the ImageNette/ImageNet distillation references).

Decoding thousands of JPEGs takes minutes, so the decoded uint8 arrays are kept
in ``<data folder>/imagefolder-cache/<digest>.npz``, written atomically; the digest
covers the tree's absolute path, SIZE and every image's relative path, byte size
and modification time, so adding, removing or replacing an image decodes again.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ddlib.core.registry import DDLibError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DEFAULT_SIZE = 32
SIZES = range(8, 513)  # accepted image sizes (px)


def parse_name(name: str) -> Tuple[Path, int]:
    """``imagefolder:ROOT[@SIZE]`` -> (ROOT, SIZE); a bad SIZE raises :class:`DDLibError`."""
    spec = name.split(":", 1)[1]
    root, size = spec, DEFAULT_SIZE
    if "@" in spec:
        head, tail = spec.rsplit("@", 1)
        if tail.isdigit():
            root, size = head, int(tail)
            if size not in SIZES:
                raise DDLibError(f"imagefolder: image size {size} out of range {SIZES.start}..{SIZES.stop - 1}")
    if not root:
        raise DDLibError("imagefolder: no folder given; use imagefolder:PATH or imagefolder:PATH@64")
    return Path(root).expanduser(), size


def _listing(root: Path, split: str, classes: Tuple[str, ...]) -> List[Tuple[Path, int]]:
    """(image path, class index) of ``root/split``, sorted; unknown or empty class folders raise."""
    folder = root / split
    present = sorted(p.name for p in folder.iterdir() if p.is_dir())
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise DDLibError(f"imagefolder: {folder} has class folder(s) {', '.join(unknown[:5])} that train/ "
                         f"does not have (mislabelled split?)")
    out = []
    for ci, c in enumerate(classes):
        files = sorted(f for f in (folder / c).glob("*") if f.suffix.lower() in EXTENSIONS) \
            if (folder / c).is_dir() else []
        if not files and split == "train":
            raise DDLibError(f"imagefolder: class folder {folder / c} holds no images ({', '.join(EXTENSIONS)})")
        out += [(f, ci) for f in files]
    return out


def _digest(root: Path, size: int, items: List[Tuple[Path, int]]) -> str:
    h = hashlib.sha256(f"{root.resolve()}|{size}".encode())
    for f, c in items:
        st = f.stat()
        h.update(f"{f.relative_to(root)}|{c}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _decode(items: List[Tuple[Path, int]], size: int) -> Tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageOps

    x = np.empty((len(items), 3, size, size), dtype=np.uint8)
    for i, (f, _) in enumerate(items):
        try:
            with Image.open(f) as im:
                im = ImageOps.fit(im.convert("RGB"), (size, size), Image.BILINEAR)
        except (OSError, ValueError, SyntaxError) as e:  # truncated or not an image
            raise DDLibError(f"imagefolder: cannot read image {f}: {type(e).__name__}: {e}") from None
        x[i] = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    return x, np.asarray([c for _, c in items], dtype=np.int64)


def _save_atomic(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_imagefolder(root: Path, size: int = DEFAULT_SIZE, cache_dir: Optional[Path] = None):
    """(train_x, train_y, test_x or None, test_y or None, classes) of the tree at ``root``.

    Images float32 (N, 3, size, size) in [0, 1]; ``val/`` is the test split when present.
    ``cache_dir``: where the decoded arrays are kept (None: decode every time).

    Raises:
        DDLibError: no ``train/`` or no class folders, an empty class, a ``val/`` class
            that ``train/`` lacks, or an unreadable image.
    """
    root = Path(root)
    if not (root / "train").is_dir():
        raise DDLibError(f"imagefolder: {root}/train/ does not exist (expected ROOT/train/<class>/<image>)")
    classes = tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir()))
    if not classes:
        raise DDLibError(f"imagefolder: no class folders under {root}/train/")
    train = _listing(root, "train", classes)
    val = _listing(root, "val", classes) if (root / "val").is_dir() else []
    if (root / "val").is_dir() and not val:
        raise DDLibError(f"imagefolder: {root}/val/ holds no images")
    cache = Path(cache_dir) / "imagefolder-cache" / f"{_digest(root, size, train + val)}.npz" if cache_dir else None
    arrays = None
    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):  # a damaged cache is decoded again, not trusted
            arrays = None
    if arrays is None:
        tx, ty = _decode(train, size)
        arrays = {"train_x": tx, "train_y": ty}
        if val:
            arrays["test_x"], arrays["test_y"] = _decode(val, size)
        if cache is not None:
            _save_atomic(cache, **arrays)
    conv = lambda a: a.astype(np.float32) / 255.0  # noqa: E731
    ex = conv(arrays["test_x"]) if "test_x" in arrays else None
    return conv(arrays["train_x"]), arrays["train_y"], ex, arrays.get("test_y"), classes
