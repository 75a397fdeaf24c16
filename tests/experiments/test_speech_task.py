"""The speech task in the pipeline: augmented training batches, clean evaluation, raw MFCCs by default."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io.wavfile
import torch

from spikerobust.datasets import AugmentedSpeechBatches, SpeechFeatures, load_wav, pad_or_crop
from spikerobust.experiments import load_task, make_config
from spikerobust.experiments.tasks import ShuffledBatches


@pytest.fixture
def fake_fsdd(tmp_path, monkeypatch):
    """3 digits x 10 recordings of one speaker (indices 0-4 test, 5-9 train), 8 kHz tones."""
    monkeypatch.setenv("SPIKEROBUST_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    t = np.arange(4000) / 8000
    for digit in range(3):
        for index in range(10):
            f0 = 200 + 150 * digit + 7 * index
            y = 0.3 * np.exp(-4 * t) * np.sin(2 * np.pi * f0 * t)
            scipy.io.wavfile.write(folder / f"{digit}_amy_{index}.wav", 8000, (y * 32767).astype(np.int16))
    return folder


def _clean(paths):
    feats = SpeechFeatures(align="center")
    return np.stack([feats(pad_or_crop(load_wav(p, 16000), 16000, "center")) for p in paths])


def _load(folder, **over):
    return load_task(make_config("speech", "quick", overrides={"data_dir": str(folder), **over}))


def test_training_is_augmented_and_evaluation_clean(fake_fsdd):
    data = _load(fake_fsdd)
    assert data.sizes == {"train": 13, "val": 2, "test": 15}
    assert "augmented" in data.description and "standardised" not in data.description
    # evaluation data: the clean, raw MFCCs of the test files (no augmentation, no standardisation)
    want = _clean(sorted(fake_fsdd.glob("?_amy_[0-4].wav")))
    np.testing.assert_allclose(data.test[0].permute(1, 0, 2).numpy(), want, rtol=1e-5, atol=1e-4)
    xb, yb = data.batches("test")[0]
    assert torch.equal(xb, data.test[0]) and torch.equal(yb, data.test[1])

    loader = data.loader(4, seed=0)
    assert isinstance(loader, AugmentedSpeechBatches) and len(loader) == 4
    epoch = list(loader)
    labels = torch.cat([y for _, y in epoch])
    assert sorted(labels.tolist()) == sorted(data.train[1].tolist())
    clean = data.train[0].permute(1, 0, 2)  # [N, T, F]
    for x, _ in epoch:
        assert x.shape[0] == 98 and x.shape[2] == 40
        for j in range(x.shape[1]):  # no augmented sample equals a clean training sample
            assert float((clean - x[:, j]).abs().amax((1, 2)).min()) > 1e-2
    again = list(data.loader(4, seed=0))
    other = list(data.loader(4, seed=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch, again))
    assert not torch.equal(epoch[0][0], other[0][0])


def test_augment_off_trains_on_the_clean_features(fake_fsdd):
    data = _load(fake_fsdd, augment=False)
    assert "no augmentation" in data.description
    loader = data.loader(5, seed=0)
    assert isinstance(loader, ShuffledBatches)
    clean = data.train[0].permute(1, 0, 2)
    for x, _ in loader:
        for j in range(x.shape[1]):
            assert float((clean - x[:, j]).abs().amax((1, 2)).min()) == 0.0


def test_standardize_is_an_option(fake_fsdd):
    raw = _load(fake_fsdd, augment=False)
    std = _load(fake_fsdd, augment=False, standardize=True)
    x = raw.train[0].double()
    mean, sd = x.mean((0, 1)), x.std((0, 1))
    torch.testing.assert_close(std.train[0].double(), (x - mean) / sd, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std.test[0].double(), (raw.test[0].double() - mean) / sd, atol=1e-4, rtol=1e-4)
    assert "standardised per feature" in std.description
    # with augmentation, the training batches are standardised with the same statistics
    aug = _load(fake_fsdd, standardize=True)
    xb, _ = next(iter(aug.loader(13, seed=0)))
    assert abs(float(xb[..., 0].mean())) < 3.0 and abs(float(x[..., 0].mean())) > 10.0


def test_augment_must_be_a_bool():
    with pytest.raises(ValueError, match="augment"):
        make_config("speech", "quick", overrides={"augment": "no"})


def test_speech_commands_silence_gets_the_noise_recordings(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEROBUST_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "sc"
    rng = np.random.default_rng(0)
    for word in ("yes", "no", "bed"):
        (root / word).mkdir(parents=True)
        for s in range(40):
            scipy.io.wavfile.write(root / word / f"{s:08x}_nohash_0.wav", 16000,
                                   (rng.standard_normal(12000) * 2000).astype(np.int16))
    (root / "_background_noise_").mkdir()
    scipy.io.wavfile.write(root / "_background_noise_" / "hum.wav", 16000,
                           (np.sin(np.arange(40000) * 0.05) * 20000).astype(np.int16))
    data = _load(root)
    factory = data.train_loader_factory
    assert factory.silence_label == 0 and len(factory.augment.noise) == 1
    assert "_background_noise_ recordings" in data.description
    silent = int((factory.labels == 0).sum())
    assert silent > 0 and torch.all(factory.waveforms[factory.labels == 0] == 0)
    # in a training batch every silence clip carries noise (its clean clip is all zeros)
    loader = data.loader(len(factory.labels), seed=0)
    x, y = next(iter(loader))
    zeros = SpeechFeatures()(np.zeros(16000, dtype=np.float32))
    for j in torch.nonzero(y == 0).flatten().tolist():
        assert float(np.abs(x[:, j].numpy() - zeros).max()) > 1.0


def test_resumed_training_draws_the_same_augmentation(fake_fsdd, tmp_path):
    from spikerobust.models import get_model
    from spikerobust.robust.trainer import fit

    data = _load(fake_fsdd)

    def train(epochs, folder, resume, loader_seed=0):
        torch.manual_seed(0)
        model = get_model(data.model, n_hidden=8, n_classes=3, d_in=40)
        fit(model, "standard", data.loader(4, seed=loader_seed), None, epochs=epochs, lr=1e-2,  # keep the last epoch
            checkpoint_dir=folder, resume=resume, seed=0, progress=False)
        return model.state_dict()

    whole = train(2, tmp_path / "a", False)
    train(1, tmp_path / "b", False)
    resumed = train(2, tmp_path / "b", True)  # a new loader: its generator state comes from the checkpoint
    other = train(2, tmp_path / "c", False, loader_seed=1)
    for k in whole:
        assert torch.equal(whole[k], resumed[k]), k
    assert any(not torch.equal(whole[k], other[k]) for k in whole)  # the draws matter
