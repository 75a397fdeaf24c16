"""Cache keys, atomic writes, the cache folder rule, and the time-first collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikerobust.datasets import time_first_collate
from spikerobust.datasets.cache import cache_file, cache_root, load_arrays, save_arrays, settings_hash


def test_settings_hash_ignores_key_order_and_sees_every_value():
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
    base = settings_hash({"a": 1, "b": [1, 2]})
    assert settings_hash({"a": 1, "b": [2, 1]}) != base
    assert settings_hash({"a": 1.0000001, "b": [1, 2]}) != base
    assert settings_hash({"a": 1, "b": [1, 2], "c": None}) != base
    with pytest.raises(ValueError, match="JSON"):
        settings_hash({"a": object()})


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("SPIKEROBUST_CACHE", raising=False)
    assert cache_root() == cache_root(None)
    assert str(cache_root()).endswith(".cache/spikerobust")
    monkeypatch.setenv("SPIKEROBUST_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"  # the argument wins


def test_save_load_round_trip_without_pickle(tmp_path):
    path = cache_file("demo", settings_hash({"k": 1}), tmp_path)
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "names": np.asarray(["100", "114"])}
    save_arrays(path, arrays)
    out = load_arrays(path)
    np.testing.assert_array_equal(out["x"], arrays["x"])
    assert out["names"].tolist() == ["100", "114"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    with pytest.raises(ValueError, match="object"):
        save_arrays(path, {"bad": np.asarray([{"a": 1}], dtype=object)})
    np.testing.assert_array_equal(load_arrays(path)["x"], arrays["x"])  # the failed write left it intact


def test_corrupt_or_missing_cache_is_not_trusted(tmp_path):
    assert load_arrays(tmp_path / "none.npz") is None
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert load_arrays(bad) is None


def test_time_first_collate_stacks_to_T_B_F():
    batch = [(torch.full((5, 3), float(i)), i) for i in range(4)]
    x, y = time_first_collate(batch)
    assert x.shape == (5, 4, 3) and x.dtype == torch.float32 and y.dtype == torch.int64
    for i in range(4):
        assert torch.equal(x[:, i], batch[i][0])  # sample i is column i of the batch
    assert y.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="empty"):
        time_first_collate([])
    with pytest.raises(ValueError, match=r"\[T, F\]"):
        time_first_collate([(torch.zeros(5), 0)])
    with pytest.raises(ValueError, match="shape"):
        time_first_collate([(torch.zeros(5, 3), 0), (torch.zeros(6, 3), 1)])


def test_collate_feeds_a_dataloader():
    from torch.utils.data import DataLoader

    from spikerobust.datasets import SyntheticECG

    loader = DataLoader(SyntheticECG(beats_per_class=10), batch_size=6, collate_fn=time_first_collate)
    x, y = next(iter(loader))
    assert x.shape == (100, 6, 2) and y.shape == (6,)


def test_feature_standardize_gives_zero_mean_unit_std_per_feature():
    from spikerobust.datasets import FeatureStandardize, feature_stats

    rng = np.random.default_rng(0)
    data = rng.normal([-100.0, 0.0, 5.0], [20.0, 0.5, 2.0], size=(40, 10, 3))
    t = FeatureStandardize(*feature_stats(data))
    out = torch.stack([t(torch.as_tensor(d, dtype=torch.float32)) for d in data]).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1)), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match=r"\[T, 3\]"):
        t(torch.zeros(10, 4))
    with pytest.raises(ValueError, match="positive"):
        FeatureStandardize([0.0], [0.0])


def test_batch_standardize_matches_numpy_on_either_axis():
    from spikerobust.datasets import BatchStandardize

    rng = np.random.default_rng(1)
    images = rng.normal([[[-3.0]], [[40.0]]], [[[0.5]], [[9.0]]], size=(30, 2, 4, 5)).astype(np.float32)
    t = BatchStandardize.fit(torch.from_numpy(images), axis=1)  # channels of [N, C, H, W]
    d = images.astype(np.float64)
    mean, std = d.mean(axis=(0, 2, 3)), d.std(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(t.mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(t.std.numpy(), std, rtol=1e-12)
    out = t(torch.from_numpy(images[:3]))
    assert out.dtype == torch.float32 and out.shape == (3, 2, 4, 5)
    want = (d[:3] - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(out.numpy(), want, rtol=0, atol=1e-6)
    # time-first [T, N, F], feature axis last; a constant feature is scaled by 1 / min_std, not divided by 0
    x = torch.zeros(5, 6, 2)
    x[..., 0] = torch.arange(30.0).view(5, 6)
    f = BatchStandardize.fit(x, axis=-1, min_std=0.5)
    assert f.std[1].item() == 0.5 and torch.isfinite(f(x)).all()
    with pytest.raises(ValueError, match="axis -1 of size 2"):
        f(torch.zeros(5, 6, 3))


def test_to_time_first_and_batches_keep_every_sample_once():
    from spikerobust.datasets import ShuffledBatches, ordered_batches, take_samples, to_time_first

    x = torch.arange(5 * 3 * 2.0).view(5, 3, 2)  # [N, T, F]
    xt = to_time_first(x)
    assert xt.shape == (3, 5, 2) and xt.is_contiguous() and torch.equal(xt[:, 4], x[4])
    y = torch.arange(5)
    xb, yb = take_samples(xt, y, torch.tensor([3, 1]), time_first=True)
    assert torch.equal(xb, torch.stack([x[3], x[1]], 1)) and yb.tolist() == [3, 1]
    assert [b[1].tolist() for b in ordered_batches(x, y, 2)] == [[0, 1], [2, 3], [4]]
    loader = ShuffledBatches(xt, y, batch_size=2, seed=4, time_first=True)
    assert len(loader) == 3
    epochs = [[b for b in loader] for _ in range(2)]
    for epoch in epochs:  # each epoch: every sample once, x column j belongs to label j
        assert sorted(v for _, yb in epoch for v in yb.tolist()) == [0, 1, 2, 3, 4]
        assert all(torch.equal(xb, xt[:, yb]) for xb, yb in epoch)
    again = ShuffledBatches(xt, y, batch_size=2, seed=4, time_first=True)
    assert [yb.tolist() for _, yb in again] == [yb.tolist() for _, yb in epochs[0]]
    with pytest.raises(ValueError, match=r"\[N, T, F\]"):
        to_time_first(torch.zeros(2, 3))


def test_shuffled_batches_without_seed_follow_torch_global_generator():
    from spikerobust.datasets import ShuffledBatches

    x, y = torch.arange(2 * 7 * 3.0).view(2, 7, 3), torch.arange(7)  # [T, N, F]
    loader = ShuffledBatches(x, y, batch_size=3, seed=None, time_first=True)
    assert loader.generator is None
    torch.manual_seed(11)
    epochs = [[yb.tolist() for _, yb in loader] for _ in range(2)]
    torch.manual_seed(11)  # a hand-written loop: one torch.randperm(N) per epoch
    want = [torch.randperm(7).tolist() for _ in range(2)]
    assert epochs == [[p[:3], p[3:6], p[6:]] for p in want]
