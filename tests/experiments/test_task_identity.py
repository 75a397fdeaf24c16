"""The task loaders against an independent reference: the datasets' own arrays, split by the
documented seeded rule and standardised by hand with NumPy. Runs resume against
``data_fingerprint``, so the tensors, their order and the splits must not change.

The seeded rules (module docstring of :mod:`spikerobust.experiments.tasks`): a cap ``n`` keeps
``sort(randperm(N, seed)[:n])``; FSDD and Fashion-MNIST hold out ``round(0.1 N)`` samples,
``sort(randperm(N, seed + 1)[:n_val])``, as validation.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.io.wavfile
import torch

from spikerobust.datasets import FSDD, FashionMNIST, SyntheticECG
from spikerobust.experiments import load_task, make_config
from spikerobust.experiments import tasks as tasks_module
from spikerobust.experiments.tasks import TaskData, list_tasks, register_task


def _cap(n_total: int, n, seed: int) -> np.ndarray:
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].numpy())


def _held_out(n_total: int, seed: int):
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed + 1)).numpy()
    n_val = max(1, int(round(0.1 * n_total)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _equal(tensor: torch.Tensor, array: np.ndarray) -> None:
    assert tensor.dtype == torch.from_numpy(array).dtype and tuple(tensor.shape) == array.shape
    assert np.array_equal(tensor.numpy(), array)


def test_ecg_synthetic_equals_the_dataset_arrays_time_first():
    over = {"n_per_class": 30, "n_train": 50, "n_test": 10, "seed": 3}
    data = load_task(make_config("ecg", "quick", overrides=over))
    assert data.time_first
    for split, n in (("train", 50), ("val", None), ("test", 10)):
        ds = SyntheticECG(split=split, beats_per_class=30, seed=3)
        x, y = np.asarray(ds.data, dtype=np.float32), np.asarray(ds.targets, dtype=np.int64)
        idx = _cap(len(y), n, 3)
        _equal(data.__dict__[split][0], np.ascontiguousarray(x[idx].transpose(1, 0, 2)))  # [N, T, F] -> [T, N, F]
        _equal(data.__dict__[split][1], y[idx])
    # the training batches: the seeded shuffle of the training samples, columns of x
    x, y = data.train
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(7)).numpy()
    first = next(iter(data.loader(16, seed=7)))
    _equal(first[0], x.numpy()[:, perm[:16]])
    _equal(first[1], y.numpy()[perm[:16]])


def _write_idx(path, array: np.ndarray) -> None:
    code = {1: 0x0801, 3: 0x0803}[array.ndim]
    header = np.array([code, *array.shape], dtype=">u4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fmnist(tmp_path):
    """60 training and 20 test images of 28 x 28 random pixels, labels 0-9."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


def test_fmnist_like_equals_the_dataset_arrays_standardised_by_hand(tiny_fmnist):
    data = load_task(make_config("fmnist", "quick", overrides={"data_dir": str(tiny_fmnist), "n_train": 40,
                                                                 "n_test": 15, "seed": 2}))
    assert not data.time_first and data.sizes == {"train": 36, "val": 4, "test": 15}
    ds_train, ds_test = FashionMNIST(tiny_fmnist, split="train"), FashionMNIST(tiny_fmnist, split="test")
    capped = _cap(60, 40, 2)
    tr, va = _held_out(40, 2)
    raw = {"train": ds_train.data[capped[tr]], "val": ds_train.data[capped[va]],
           "test": ds_test.data[_cap(20, 15, 2)]}
    labels = {"train": ds_train.targets[capped[tr]], "val": ds_train.targets[capped[va]],
              "test": ds_test.targets[_cap(20, 15, 2)]}
    train64 = raw["train"].astype(np.float64)
    mean = train64.mean(axis=(0, 2, 3)).reshape(1, -1, 1, 1)
    std = train64.std(axis=(0, 2, 3), ddof=1).reshape(1, -1, 1, 1)  # sample std, per channel
    for split in ("train", "val", "test"):
        _equal(data.__dict__[split][1], labels[split].astype(np.int64))
        want = ((raw[split].astype(np.float64) - mean) / std).astype(np.float32)
        np.testing.assert_allclose(data.__dict__[split][0].numpy(), want, rtol=0, atol=1e-6)


@pytest.fixture
def tiny_fsdd(tmp_path, monkeypatch):
    """3 digits x 10 recordings of one speaker (0-4 test, 5-9 train), 8 kHz tones of distinct pitch."""
    monkeypatch.setenv("SPIKEROBUST_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "recordings"
    folder.mkdir()
    t = np.arange(4000) / 8000
    for digit in range(3):
        for index in range(10):
            wave = 0.3 * np.exp(-4 * t) * np.sin(2 * np.pi * (200 + 150 * digit + 7 * index) * t)
            scipy.io.wavfile.write(folder / f"{digit}_amy_{index}.wav", 8000, (wave * 32767).astype(np.int16))
    return folder


@pytest.mark.parametrize("standardize", [False, True])
def test_speech_fsdd_equals_the_dataset_arrays(tiny_fsdd, standardize):
    data = load_task(make_config("speech", "quick", overrides={"data_dir": str(tiny_fsdd), "augment": False,
                                                                 "standardize": standardize, "n_test": 12}))
    assert data.time_first and data.sizes == {"train": 13, "val": 2, "test": 12}
    ds_train, ds_test = FSDD(tiny_fsdd, split="train"), FSDD(tiny_fsdd, split="test")
    tr, va = _held_out(15, 0)
    te = _cap(15, 12, 0)
    raw = {"train": ds_train.data[tr], "val": ds_train.data[va], "test": ds_test.data[te]}  # [N, T, F]
    labels = {"train": ds_train.targets[tr], "val": ds_train.targets[va], "test": ds_test.targets[te]}
    if standardize:  # per feature, sample std over every frame of every training clip
        train64 = raw["train"].astype(np.float64)
        mean, std = train64.mean(axis=(0, 1)), np.maximum(train64.std(axis=(0, 1), ddof=1), 1e-6)
    for split in ("train", "val", "test"):
        _equal(data.__dict__[split][1], np.asarray(labels[split], dtype=np.int64))
        want = raw[split].astype(np.float32)
        if standardize:
            want = ((want.astype(np.float64) - mean) / std).astype(np.float32)
            np.testing.assert_allclose(data.__dict__[split][0].numpy(), want.transpose(1, 0, 2), rtol=0, atol=1e-5)
        else:
            _equal(data.__dict__[split][0], np.ascontiguousarray(want.transpose(1, 0, 2)))


def test_a_registered_task_is_loaded_and_names_are_kept(monkeypatch):
    monkeypatch.setattr(tasks_module, "_TASKS", dict(tasks_module._TASKS))
    assert {"ecg", "speech", "fmnist"} <= set(list_tasks())
    pair = (torch.zeros(4, 3), torch.arange(4))

    @register_task("toy")
    def load_toy(cfg):
        return TaskData(pair, pair, pair, False, ["a", "b", "c", "d"], f"toy seed {cfg.seed}", "cnn_fmnist", {})

    assert "toy" in list_tasks()
    data = load_task(types.SimpleNamespace(task="toy", seed=5))
    assert data.description == "toy seed 5" and [y.tolist() for _, y in data.batches("test", 3)] == [[0, 1, 2], [3]]
    with pytest.raises(ValueError, match="registered already"):
        register_task("toy", load_toy)
    register_task("toy", lambda cfg: None, overwrite=True)
    assert load_task(types.SimpleNamespace(task="toy")) is None
    with pytest.raises(ValueError, match="task must be one of"):
        load_task(types.SimpleNamespace(task="nope"))


@pytest.fixture
def own_registries(monkeypatch):
    """Tasks, presets and betas registered by a test are gone after it (the preset tables are
    shared by reference with the config module, so their contents are restored in place)."""
    from spikerobust.experiments import presets as presets_module

    monkeypatch.setattr(tasks_module, "_TASKS", dict(tasks_module._TASKS))
    saved = [(table, dict(table)) for table in (presets_module.PRESETS, presets_module._BETA)]
    yield
    for table, contents in saved:
        table.clear()
        table.update(contents)


def test_a_registered_task_gets_presets_and_configs(own_registries):
    from spikerobust.experiments.config import paper_methods

    with pytest.raises(ValueError, match="task must be one of"):
        make_config("toy2", "quick")
    register_task("toy2", lambda cfg: None, presets={"quick": {"epochs": 3, "n_draws": 7}}, beta=(0.4, 0.2))
    cfg = make_config("toy2", "quick", overrides={"lr": 0.05})
    assert (cfg.task, cfg.epochs, cfg.n_draws, cfg.lr) == ("toy2", 3, 7, 0.05)
    methods = paper_methods("toy2", "quick")
    assert methods["beta"]["beta"] == 0.4 and methods["fn+beta"]["beta"] == 0.2
    assert methods["beta"]["n_steps"] == 3  # the quick presets' attack steps, as for the built-in tasks
    with pytest.raises(ValueError, match="preset must be one of"):
        make_config("toy2", "paper")
    register_task("toy3", lambda cfg: None)  # no presets given: quick and paper, evaluation settings only
    assert make_config("toy3", "paper").n_draws == 100 and make_config("toy3", "quick").n_draws == 30
    register_task("ecg", lambda cfg: None, overwrite=True)  # a new loader keeps the built-in presets
    assert make_config("ecg", "paper").n_per_class == 3350
    with pytest.raises(ValueError, match="beta must be"):
        register_task("toy4", lambda cfg: None, beta=(-0.1, 0.1))


def test_reproduce_runs_a_registered_task(own_registries, tmp_path):
    # a task of one's own goes through the whole command road: train, evaluate, report
    from spikerobust.experiments import run_reproduce

    def load_blobs(cfg):
        g = torch.Generator().manual_seed(cfg.seed)

        def pair(n):
            y = torch.arange(n) % 2
            return torch.randn(n, 1, 28, 28, generator=g) + 2.0 * y.view(-1, 1, 1, 1).float(), y

        return TaskData(pair(48), pair(16), pair(16), False, ["low", "high"], "two blobs", "cnn_fmnist",
                        {"n_classes": 2})

    quick = {"epochs": 1, "lr": 1e-3, "batch_size": 16, "n_draws": 3, "levels": [0.0, 0.5], "attack_eps": [0.0, 0.1],
             "zetas": [0.0], "landscape_points": 6, "landscape_directions": 1}
    register_task("blobs", load_blobs, presets={"quick": quick})
    cfg = make_config("blobs", "quick", overrides={"out_dir": str(tmp_path / "run"), "methods": "standard",
                                                   "progress": False})
    res = run_reproduce(cfg)
    std = res["methods"]["standard"]
    assert res["data"]["classes"] == ["low", "high"] and res["data"]["sizes"]["test"] == 16
    # no mismatch at m = 0: the clean network, whatever the draw
    assert set(std["mismatch"]["accuracies"]["0.0"]) == {std["test_accuracy"]}
    assert len(std["mismatch"]["accuracies"]["0.5"]) == 3
    report = (tmp_path / "run" / "report.md").read_text()
    assert "# spikerobust reproduce blobs" in report and "(paper" not in report
