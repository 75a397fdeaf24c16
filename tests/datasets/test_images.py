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


# ----------------------------------------------------------------------------- hostile and broken files


class _Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_a_pickle_that_would_run_code(cifar_root, tmp_path):
    marker = tmp_path / "ran"
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Shell(marker), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match=r"test_batch .*global (posix|os)\.system is not part of the CIFAR-10"):
        CIFAR10(cifar_root, split="test")
    assert not marker.exists()
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "wb") as fh:  # protocol 2 spells bytes via _codecs
        pickle.dump(_cifar_batch(3, 100), fh, protocol=2)
    assert len(CIFAR10(cifar_root, split="test")) == 3


def test_labels_outside_the_classes_are_refused(cifar_root, tmp_path):
    raw = tmp_path / "fm"
    raw.mkdir()
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), dtype=np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.array([9, 200, 4], dtype=np.uint8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: label 200 of sample 1 is outside the 10 classes"):
        FashionMNIST(raw, split="test")
    batch = _cifar_batch(3, 100)
    batch[b"labels"][2] = -1
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump(batch, fh)
    with pytest.raises(ValueError, match="label -1 of sample 2 is outside the 10 classes"):
        CIFAR10(cifar_root, split="test")


def _tar(path, members):
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(target)
                tf.addfile(info, io.BytesIO(target))
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = target
                tf.addfile(info)


@pytest.mark.parametrize("members, message", [
    ([("link", "symlink", "../outside"), ("link/file", "file", b"x")], "link 'link' -> '../outside' points outside"),
    ([("link", "symlink", "sub"), ("link/file", "file", b"x")], "'link/file' passes through the link 'link'"),
    ([("/abs/file", "file", b"x")], "'/abs/file' is an absolute path"),
    ([("../up", "file", b"x")], "'../up' would be written outside"),
    ([("hard", "hardlink", "../../etc/passwd")], "link 'hard' -> '../../etc/passwd' points outside"),
    ([("abs", "symlink", "/etc")], "points to the absolute path '/etc'"),
])
def test_extraction_refuses_escaping_members(members, message, tmp_path):
    from spikerobust.datasets._download import download_and_extract, file_digest

    root = tmp_path / "root"
    root.mkdir()
    _tar(root / "a.tar.gz", members)
    sha = ("sha256", file_digest(root / "a.tar.gz"))
    with pytest.raises(ValueError, match=message):
        download_and_extract("file:///unused/a.tar.gz", root, checksum=sha)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.tar.gz", "root"]


def test_downloads_are_checked_against_their_checksum(tmp_path):
    from spikerobust.datasets._download import KNOWN_CHECKSUMS, download_and_extract, download_file, file_digest

    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    url = src.as_uri()
    with pytest.raises(ValueError, match=f"checksum mismatch for {url}.*expected md5 0+, got {file_digest(src, 'md5')}"):
        download_file(url, tmp_path / "out" / "f.bin", checksum=("md5", "0" * 32))
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written is kept
    assert download_file(url, tmp_path / "out" / "f.bin", checksum=("sha256", file_digest(src))).read_bytes() == b"payload"
    root = tmp_path / "r"
    _tar(tmp_path / "ok.tar.gz", [("d/f.txt", "file", b"hi")])
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_and_extract((tmp_path / "ok.tar.gz").as_uri(), root, checksum=("md5", "1" * 32))
    assert download_and_extract((tmp_path / "ok.tar.gz").as_uri(), root,
                                checksum=("md5", file_digest(tmp_path / "ok.tar.gz", "md5")))
    assert (root / "d" / "f.txt").read_text() == "hi"
    from spikerobust.datasets.images import CIFAR10_URL, FASHION_MNIST_URL

    assert CIFAR10_URL in KNOWN_CHECKSUMS and FASHION_MNIST_URL + "t10k-images-idx3-ubyte.gz" in KNOWN_CHECKSUMS
