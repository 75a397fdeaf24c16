"""cached_arrays: the one read-or-build-then-write step every dataset goes through."""

from __future__ import annotations

import numpy as np

from spikerobust.datasets.cache import cache_file, cached_arrays, settings_hash


def _counting_build(calls):
    def build():
        calls.append(1)
        return {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.array([1, 0])}
    return build


def test_builds_once_then_reads_the_same_arrays_back(tmp_path):
    calls = []
    settings = {"version": 1, "n": 2}
    first, path = cached_arrays("demo", settings, _counting_build(calls), tmp_path)
    second, path2 = cached_arrays("demo", settings, _counting_build(calls), tmp_path)
    assert len(calls) == 1  # the second call found the file
    assert path == path2 == tmp_path / f"demo-{settings_hash(settings)}.npz" == cache_file("demo", settings_hash(settings), tmp_path)
    assert path.is_file()
    for k in ("x", "y"):
        assert second[k].dtype == first[k].dtype and np.array_equal(second[k], first[k])


def test_a_changed_setting_builds_again(tmp_path):
    calls = []
    _, p1 = cached_arrays("demo", {"n": 2}, _counting_build(calls), tmp_path)
    _, p2 = cached_arrays("demo", {"n": 3}, _counting_build(calls), tmp_path)
    assert len(calls) == 2 and p1 != p2


def test_use_cache_false_neither_reads_nor_writes(tmp_path):
    calls = []
    for _ in range(2):
        arrays, path = cached_arrays("demo", {"n": 2}, _counting_build(calls), tmp_path, use_cache=False)
        assert arrays["x"].shape == (2, 3)
    assert len(calls) == 2 and not path.exists() and list(tmp_path.iterdir()) == []


def test_an_unreadable_cache_file_is_rebuilt(tmp_path):
    calls = []
    path = cache_file("demo", settings_hash({"n": 2}), tmp_path)
    path.write_bytes(b"not an npz file")
    arrays, got = cached_arrays("demo", {"n": 2}, _counting_build(calls), tmp_path)
    assert got == path and len(calls) == 1 and arrays["y"].tolist() == [1, 0]
    assert np.load(path)["y"].tolist() == [1, 0]  # rewritten with the built arrays
