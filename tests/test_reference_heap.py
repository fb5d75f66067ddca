"""benchmarks/distill_reference.py's heap_reuse: large blocks come from the heap inside it, from mmap after it."""
import ctypes
import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("distill_reference", REPO / "benchmarks" / "distill_reference.py")
dr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dr)
LIBC = dr.glibc()
pytestmark = pytest.mark.skipif(LIBC is None or not hasattr(LIBC, "mallinfo2"),
                                reason="heap_reuse acts on glibc's malloc only; mallinfo2 needs glibc 2.33")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo() -> _Mallinfo2:
    LIBC.mallinfo2.restype = _Mallinfo2
    return LIBC.mallinfo2()


def _new_mapped_blocks(nbytes: int = 64 << 20) -> int:
    """mmapped blocks (glibc's mallinfo2 ``hblks``) a live tensor of ``nbytes`` adds (never touched: no pages)."""
    before = _mallinfo().hblks
    t = torch.empty(nbytes // 4)
    after = _mallinfo().hblks
    del t
    return after - before


def _beyond_the_heap() -> int:
    """A size no free heap chunk can serve (the main arena's whole size + 64 MiB): glibc maps it when it may."""
    return _mallinfo().arena + (64 << 20)


def test_heap_reuse_keeps_large_blocks_off_mmap_and_is_undone():
    assert _new_mapped_blocks(_beyond_the_heap()) == 1
    with dr.heap_reuse(LIBC):
        assert _new_mapped_blocks() == 0
        assert _new_mapped_blocks() == 0
    assert _new_mapped_blocks(_beyond_the_heap()) == 1
    with pytest.raises(RuntimeError):
        with dr.heap_reuse(LIBC):
            raise RuntimeError("left on an exception too")
    assert _new_mapped_blocks(_beyond_the_heap()) == 1
