"""Task loaders: shapes, standardisation with training statistics, splits, and data-dir errors."""

import pytest
import torch

from spikerobust.experiments import load_task, make_config


def test_speech_on_fsdd(fsdd_dir):
    data = load_task(make_config("speech", "quick", overrides={"data_dir": str(fsdd_dir), "standardize": True,
                                                                 "augment": False}))
    # FSDD: 2700 training recordings (10 % kept for validation), 300 test; 98 frames x 40 MFCCs, time first
    assert data.sizes == {"train": 2430, "val": 270, "test": 300}
    assert data.train[0].shape == (98, 2430, 40) and data.time_first
    assert data.model == "lsnn_speech" and data.model_kwargs["n_classes"] == 10 and data.model_kwargs["d_in"] == 40
    # standardize=True: per feature with the statistics of the training split (validation held out)
    x = data.train[0].double()
    torch.testing.assert_close(x.mean((0, 1)), torch.zeros(40, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std((0, 1)), torch.ones(40, dtype=torch.float64), atol=1e-3, rtol=0)
    assert sorted(data.train[1].unique().tolist()) == list(range(10))


def test_fmnist_subset_and_standardisation(fmnist_dir):
    data = load_task(make_config("fmnist", "quick", overrides={"data_dir": str(fmnist_dir), "n_train": 500, "n_test": 200}))
    assert data.sizes == {"train": 450, "val": 50, "test": 200} and not data.time_first
    assert data.train[0].shape == (450, 1, 28, 28)
    assert abs(float(data.train[0].mean())) < 1e-4 and abs(float(data.train[0].std()) - 1) < 1e-3
    xb, yb = data.batches("test", 64)[-1]
    assert xb.shape == (200 - 3 * 64, 1, 28, 28) and yb.shape == (8,)


def test_ecg_record_split_and_subsets(mitdb_dir):
    data = load_task(make_config("ecg", "quick", overrides={"data_dir": str(mitdb_dir), "n_per_class": 50,
                                                              "split": "record", "n_test": 20}))
    assert data.train[0].shape[0] == 100 and data.train[0].shape[2] == 2
    assert data.sizes["test"] == 20 and "patient-wise" in data.description


def test_loader_is_seeded_and_covers_every_sample():
    data = load_task(make_config("ecg", "quick", overrides={"n_per_class": 10}))
    a = [y for _, y in data.loader(7, seed=3)]
    b = [y for _, y in data.loader(7, seed=3)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == sorted(data.train[1].tolist())


@pytest.mark.parametrize("task", ["ecg", "speech"])
def test_bad_data_dir(task, tmp_path):
    with pytest.raises(ValueError, match=f"data_dir for task '{task}'"):
        load_task(make_config(task, "quick", overrides={"data_dir": str(tmp_path)}))


def test_fmnist_missing(tmp_path):
    with pytest.raises(ValueError, match="Fashion-MNIST"):
        load_task(make_config("fmnist", "quick", overrides={"data_dir": str(tmp_path)}))


def test_speech_without_espeak_says_what_to_install(monkeypatch):
    import spikerobust.datasets as datasets

    monkeypatch.setattr(datasets, "espeak_available", lambda: (False, "RuntimeError: espeak-ng not found"))
    with pytest.raises(ValueError, match=r"spikerobust\[tts\]"):
        load_task(make_config("speech", "quick"))
