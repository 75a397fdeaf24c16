"""Images: IDX parsing on hand-written files, the real Fashion-MNIST test set, CIFAR-10 fake pickles."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from spikerobust.datasets.images import CIFAR10, FashionMNIST, Standardize, channel_stats, read_idx


def write_idx(path, array, type_code=0x08, fmt=">u1"):
    data = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    data += b"".join(struct.pack(">I", d) for d in array.shape)
    data += np.asarray(array).astype(fmt).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def test_read_idx_known_values(tmp_path):
    img = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", img)
    out = read_idx(tmp_path / "a.idx")
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    assert out[1, 2, 3] == 23 and out[0, 0, 1] == 1
    write_idx(tmp_path / "b.idx.gz", img)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx.gz"), img)
    # big-endian int32 payload
    ints = np.array([1, -2, 70000], dtype=np.int32)
    write_idx(tmp_path / "c.idx", ints, type_code=0x0C, fmt=">i4")
    assert read_idx(tmp_path / "c.idx").tolist() == [1, -2, 70000]


def test_read_idx_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        read_idx(tmp_path / "none")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "t.idx", np.zeros((4, 2), dtype=np.uint8))
    (tmp_path / "t.idx").write_bytes((tmp_path / "t.idx").read_bytes()[:-1])
    with pytest.raises(ValueError, match="t.idx"):
        read_idx(tmp_path / "t.idx")


def test_fashion_mnist_from_torchvision_style_root(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    images[1, 5, 7] = 255
    write_idx(raw / "t10k-images-idx3-ubyte.gz", images)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.array([9, 0, 4], dtype=np.uint8))
    ds = FashionMNIST(tmp_path, split="test")
    assert len(ds) == 3 and ds.targets.tolist() == [9, 0, 4]
    x, y = ds[1]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y == 0
    assert x[0, 5, 7] == 1.0 and x.sum() == 1.0
    with pytest.raises(ValueError, match="train-images"):
        FashionMNIST(tmp_path, split="train")
    with pytest.raises(ValueError, match="split"):
        FashionMNIST(tmp_path, split="val")


def test_real_fashion_mnist_test_set(fmnist_dir):
    ds = FashionMNIST(fmnist_dir, split="test")
    assert len(ds) == 10000
    assert ds.class_counts() == {c: 1000 for c in ds.classes}
    assert ds.data.min() >= 0.0 and ds.data.max() <= 1.0


def _cifar_batch(n, offset):
    data = np.zeros((n, 3072), dtype=np.uint8)
    for i in range(n):
        data[i, :1024] = (offset + i) % 256  # red plane
        data[i, 1024:2048] = 1  # green plane
        data[i, 2048] = 200  # blue plane, pixel (0, 0)
    return {b"data": data, b"labels": [(offset + i) % 10 for i in range(n)], b"batch_label": b"fake"}


@pytest.fixture
def cifar_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for k in range(1, 6):
        with open(folder / f"data_batch_{k}", "wb") as fh:
            pickle.dump(_cifar_batch(4, 4 * (k - 1)), fh)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(_cifar_batch(3, 100), fh)
    return tmp_path


def test_cifar10_layout_from_pickles(cifar_root):
    train = CIFAR10(cifar_root, split="train")
    test = CIFAR10(cifar_root, split="test")
    assert len(train) == 20 and len(test) == 3
    assert train.targets.tolist() == [i % 10 for i in range(20)]
    x, y = train[13]
    assert x.shape == (3, 32, 32) and y == 3
    assert x[0, 31, 31] == pytest.approx(13 / 255)  # channel-major: first 1024 values are red
    assert x[1, 0, 0] == pytest.approx(1 / 255)
    assert x[2, 0, 0] == pytest.approx(200 / 255) and x[2, 0, 1] == 0


def test_cifar10_errors(cifar_root, tmp_path):
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="data_batch_3"):
        CIFAR10(cifar_root, split="train")
    with pytest.raises(ValueError, match="test_batch"):
        CIFAR10(tmp_path / "elsewhere", split="test")
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match="3072"):
        CIFAR10(cifar_root, split="test")


def test_standardize_per_channel():
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 1, (50, 3, 8, 8)) * np.array([1.0, 0.5, 0.1])[None, :, None, None]
    mean, std = channel_stats(data)
    np.testing.assert_allclose(mean, [0.5, 0.25, 0.05], rtol=0.05)  # uniform(0, s) has mean s / 2
    t = Standardize(mean, std)
    out = torch.stack([t(torch.as_tensor(d, dtype=torch.float32)) for d in data]).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="std"):
        Standardize([0.0], [0.0])
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        t(torch.zeros(1, 4, 4))
