"""Reader for the IDX format of MNIST / Fashion-MNIST (LeCun et al. 1998).

An IDX file is: 2 zero bytes, a type byte (0x08 = uint8), a rank byte, then
``rank`` big-endian uint32 dimensions, then the data.  Files may be gzipped.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ddlib.core.registry import DDLibError


def read_idx(path: Path) -> np.ndarray:
    """Read one (optionally gzipped) uint8 IDX file.

    Returns:
        array of shape given by the header, dtype uint8.

    Raises:
        DDLibError: the file is truncated, not IDX, or not uint8.
    """
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DDLibError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DDLibError(f"{path} is not an IDX file (bad magic)")
    if raw[2] != 0x08:
        raise DDLibError(f"{path}: only uint8 IDX data is supported (type byte {raw[2]:#x})")
    rank = raw[3]
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DDLibError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * rank, raw[4:header])
    count = int(np.prod(dims)) if dims else 0
    if len(raw) - header != count:
        raise DDLibError(
            f"{path}: corrupt IDX file, header promises {count} bytes but {len(raw) - header} follow")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (used by tests to make tiny fixture files)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = head + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
