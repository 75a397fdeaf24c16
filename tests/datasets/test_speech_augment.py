"""Speech augmentation (time shift, background noise), the torch front end, and WAV input checks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile
import torch

from spikerobust.datasets.fsdd import fsdd_files
from spikerobust.datasets.speech import SpeechFeatures, TorchSpeechFeatures, load_wav, pad_or_crop
from spikerobust.datasets.speech_augment import (
    REFERENCE_AUGMENT,
    AugmentedSpeechBatches,
    SpeechAugment,
    synthetic_noise,
    synthetic_noise_bank,
    time_shift,
)

N = 16000


def _clicks(batch: int, at: int = 8000) -> torch.Tensor:
    x = torch.zeros(batch, N)
    x[:, at] = 0.5
    return x


def _speechlike(batch: int, seed: int = 0) -> torch.Tensor:
    """Decaying tones at different pitches, zero-padded like FSDD clips."""
    rng = np.random.default_rng(seed)
    t = np.arange(6000) / N
    out = np.zeros((batch, N), dtype=np.float32)
    for b in range(batch):
        f0 = rng.uniform(150, 400)
        y = 0.3 * np.exp(-3 * t) * (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 3 * f0 * t))
        out[b, 5000:11000] = y
    return torch.from_numpy(out)


def test_reference_settings():
    # the TensorFlow speech_commands defaults kept by the paper's reference code
    assert REFERENCE_AUGMENT == dict(background_frequency=0.8, background_volume=0.1, time_shift_ms=100.0)
    aug = SpeechAugment(synthetic_noise_bank(seconds=2.0))
    assert aug.max_shift == 1600  # 100 ms at 16 kHz
    assert (aug.background_frequency, aug.background_volume) == (0.8, 0.1)


def test_draws_are_seeded():
    aug = SpeechAugment(synthetic_noise_bank(seconds=2.0))
    x = _speechlike(16)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    da = aug.draw(16, torch.Generator().manual_seed(5))
    dc = aug.draw(16, torch.Generator().manual_seed(6))
    assert not torch.equal(da.shifts, dc.shifts)


def test_time_shift_moves_a_click_by_the_drawn_amount():
    aug = SpeechAugment([], background_frequency=0.0, time_shift_ms=100.0)
    draws = aug.draw(400, torch.Generator().manual_seed(0))
    out = aug.apply(_clicks(400), draws)
    for b in range(400):
        s = int(draws.shifts[b])
        assert -1600 <= s <= 1600
        nz = out[b].nonzero().flatten().tolist()
        assert nz == [8000 + s]  # the click at sample 8000 now sits at 8000 + shift, nothing else moved in
        assert out[b, 8000 + s] == 0.5
    # both directions occur and the draws spread over the range
    assert int(draws.shifts.min()) < -1200 and int(draws.shifts.max()) > 1200


def test_time_shift_by_hand():
    x = torch.arange(1.0, 6.0)[None].repeat(3, 1)  # [1 2 3 4 5]
    out = time_shift(x, torch.tensor([2, -1, 0]))
    assert out.tolist() == [[0, 0, 1, 2, 3], [2, 3, 4, 5, 0], [1, 2, 3, 4, 5]]


def test_noise_is_added_at_the_drawn_volume_and_clipped():
    noise = [np.full(N + 50, 0.5, dtype=np.float32), np.linspace(-1, 1, N + 10).astype(np.float32)]
    aug = SpeechAugment(noise, background_frequency=1.0, background_volume=0.1, time_shift_ms=0.0)
    x = _speechlike(8)
    d = aug.draw(8, torch.Generator().manual_seed(1))
    out = aug.apply(x, d)
    assert torch.all(d.shifts == 0) and torch.all((d.volume >= 0) & (d.volume <= 0.1))
    for b in range(8):
        i, o, v = int(d.noise_index[b]), int(d.noise_offset[b]), float(d.volume[b])
        want = np.clip(x[b].numpy() + v * noise[i][o:o + N], -1, 1)
        np.testing.assert_allclose(out[b].numpy(), want, atol=1e-7)
    loud = aug.apply(torch.full((1, N), 0.99), d._replace(volume=torch.tensor([0.1]), noise_index=torch.tensor([0]),
                                                           noise_offset=torch.tensor([0]), shifts=torch.tensor([0]),
                                                           silence=torch.tensor([False])))
    assert float(loud.max()) == 1.0  # 0.99 + 0.05 clipped as the reference does


def test_background_frequency_and_silence():
    aug = SpeechAugment(synthetic_noise_bank(seconds=2.0))
    silence = torch.zeros(4000, dtype=torch.bool)
    silence[:1000] = True
    d = aug.draw(4000, torch.Generator().manual_seed(0), silence)
    speech = d.volume[1000:]
    share = float((speech > 0).float().mean())
    assert abs(share - 0.8) < 0.03  # noise on 80 % of the clips
    assert float(speech.max()) <= 0.1
    assert float(d.volume[:1000].max()) > 0.5  # silence clips: volume uniform in [0, 1]
    out = aug.apply(torch.full((4, N), 0.3), d._replace(**{k: v[:4] for k, v in d._asdict().items()}))
    # silence clips lose their speech: only noise is left (mean near 0, not 0.3)
    assert float(out[:4].mean(1).abs().max()) < 0.1


def test_volume_zero_leaves_the_features_clean():
    feats = SpeechFeatures(align="center")
    x = _speechlike(6)
    aug = SpeechAugment(synthetic_noise_bank(seconds=2.0), background_frequency=1.0, background_volume=0.0,
                        time_shift_ms=0.0)
    loader = AugmentedSpeechBatches(x, torch.arange(6), augment=aug, front_end=TorchSpeechFeatures(feats),
                                    batch_size=4, seed=0, time_first=True)
    seen = 0
    for xb, yb in loader:
        for j, i in enumerate(yb.tolist()):  # the labels are the clip indices
            np.testing.assert_allclose(xb[:, j].numpy(), feats(x[i].numpy()), atol=1e-4, rtol=1e-5)
            seen += 1
    assert seen == 6 and len(loader) == 2


def test_loader_is_seeded_and_differs_between_epochs():
    aug = SpeechAugment(synthetic_noise_bank(seconds=2.0))
    x = _speechlike(6)

    def make(seed):
        return AugmentedSpeechBatches(x, torch.arange(6), augment=aug, front_end=TorchSpeechFeatures(), batch_size=3,
                                      seed=seed)

    a, b, c = make(1), make(1), make(2)
    ea, eb, ec = list(a), list(b), list(c)
    assert all(torch.equal(u[0], v[0]) and torch.equal(u[1], v[1]) for u, v in zip(ea, eb))
    assert not torch.equal(torch.cat([u[0] for u in ea], 1), torch.cat([u[0] for u in ec], 1))
    # a second epoch draws new augmentations (and the restored generator state repeats them)
    state = a.generator.get_state()
    e2 = list(a)
    b.generator.set_state(state)
    assert all(torch.equal(u[0], v[0]) for u, v in zip(e2, list(b)))
    assert not torch.equal(torch.cat([u[0] for u in ea], 1), torch.cat([u[0] for u in e2], 1))


def test_synthetic_noise_spectra():
    rng = np.random.default_rng(0)
    n = 2 ** 16
    for kind, slope in (("white", 0.0), ("pink", -1.0)):
        y = synthetic_noise(kind, n, rng)
        assert y.dtype == np.float32 and abs(float(np.abs(y).max()) - 1.0) < 1e-6
        power = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
        f = np.arange(len(power))
        band = (f > 50) & (f < n // 4)
        fit = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
        assert abs(fit - slope) < 0.1, (kind, fit)
    with pytest.raises(ValueError, match="white"):
        synthetic_noise("brown", 10, rng)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no noise clips"):
        SpeechAugment([])
    with pytest.raises(ValueError, match="at least 16000"):
        SpeechAugment([np.zeros(100)])
    with pytest.raises(ValueError, match="background_frequency"):
        SpeechAugment([np.zeros(N)], background_frequency=1.5)
    with pytest.raises(ValueError, match=r"\[B, 16000\]"):
        TorchSpeechFeatures()(torch.zeros(2, 100))


def test_torch_front_end_matches_librosa_on_a_real_recording(fsdd_dir):
    path = next(f.path for f in fsdd_files(fsdd_dir, "test") if f.speaker == "jackson" and f.digit == 7)
    feats = SpeechFeatures(align="center")
    y = pad_or_crop(load_wav(path, 16000), 16000, "center")
    ref = feats(y)  # the librosa/numpy path
    out64 = TorchSpeechFeatures(feats)(torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(out64, ref, rtol=1e-5, atol=1e-5)
    out32 = TorchSpeechFeatures(feats, dtype=torch.float32)(torch.from_numpy(y)[None])[0].numpy()
    np.testing.assert_allclose(out32, ref, rtol=1e-4, atol=5e-3)
    logmel = SpeechFeatures(kind="logmel", align="center")
    np.testing.assert_allclose(TorchSpeechFeatures(logmel)(torch.from_numpy(y)).numpy(), logmel(y),
                               rtol=1e-5, atol=1e-5)


def test_nan_sample_names_the_file(tmp_path):
    y = np.sin(np.arange(4000) / 10.0).astype(np.float32)
    y[1234] = np.nan
    path = tmp_path / "broken_clip.wav"
    soundfile.write(str(path), y, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"broken_clip\.wav.*NaN.*1234"):
        load_wav(path, 16000)


def test_antiphase_stereo_uses_the_first_channel(tmp_path, caplog):
    left = (0.4 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    path = tmp_path / "antiphase.wav"
    soundfile.write(str(path), np.stack([left, -left], axis=1), 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="spikerobust.datasets.speech"):
        y = load_wav(path, 16000)
    np.testing.assert_allclose(y, left, atol=1e-7)
    assert any("antiphase.wav" in r.getMessage() and "first channel" in r.getMessage() for r in caplog.records)
    # ordinary stereo is still averaged
    right = 0.5 * left
    path2 = tmp_path / "stereo.wav"
    soundfile.write(str(path2), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_wav(path2, 16000), 0.75 * left, atol=1e-7)


def test_docstring_examples():
    import doctest

    import spikerobust.datasets.speech_augment as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
