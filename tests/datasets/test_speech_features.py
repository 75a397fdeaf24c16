"""Speech front end against an independent numpy/scipy implementation written from docs/tasks.md."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.io.wavfile

from spikerobust.datasets.speech import SpeechFeatures, load_wav, pad_or_crop

SR, WIN, HOP, NFFT, NMEL, FMIN, FMAX = 16000, 480, 160, 512, 40, 125.0, 3800.0


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # HTK mel scale


def mel_to_hz(m):
    return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)


def reference_filterbank():
    """Triangles between n_mels + 2 mel-spaced edges, unit peaks, on the FFT bin frequencies."""
    edges = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), NMEL + 2))
    freqs = np.arange(NFFT // 2 + 1) * SR / NFFT
    fb = np.zeros((NMEL, len(freqs)))
    for m in range(NMEL):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / (c - lo)
        down = (hi - freqs) / (hi - c)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb, edges[1:-1]


def reference_logmel(y):
    n_frames = 1 + (len(y) - WIN) // HOP
    n = np.arange(WIN)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / WIN)  # periodic Hann
    frames = np.stack([y[t * HOP : t * HOP + WIN] * window for t in range(n_frames)])
    mag = np.abs(np.fft.rfft(frames, n=NFFT, axis=1))
    fb, _ = reference_filterbank()
    return np.log(mag @ fb.T + 1e-12)


def tone(freq, seconds=1.0, amp=0.5):
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_frame_count_is_98_and_shape_dtype():
    # 1 + (16000 - 480) // 160 = 1 + 97 = 98 frames (no centre padding)
    f = SpeechFeatures()
    assert f.n_frames == 98 and f.n_features == 40
    out = f(tone(440))
    assert out.shape == (98, 40) and out.dtype == np.float32
    assert SpeechFeatures(kind="logmel")(tone(440)).shape == (98, 40)


def test_logmel_matches_independent_implementation():
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(SR) + tone(700)).astype(np.float32)
    ours = SpeechFeatures(kind="logmel")(y)
    np.testing.assert_allclose(ours, reference_logmel(y.astype(np.float64)), rtol=1e-4, atol=1e-4)


def test_mfcc_is_orthonormal_dct_of_logmel():
    rng = np.random.default_rng(1)
    y = (0.1 * rng.standard_normal(SR) + tone(1500)).astype(np.float32)
    ref = scipy.fft.dct(reference_logmel(y.astype(np.float64)), type=2, norm="ortho", axis=1)[:, :40]
    np.testing.assert_allclose(SpeechFeatures()(y), ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0])
def test_tone_lands_in_the_nearest_mel_band(freq):
    _, centres = reference_filterbank()
    logmel = SpeechFeatures(kind="logmel")(tone(freq))
    band = int(np.argmax(logmel[40]))
    assert band == int(np.argmin(np.abs(centres - freq)))


def test_silence_gives_log_offset():
    out = SpeechFeatures(kind="logmel")(np.zeros(SR, dtype=np.float32))
    np.testing.assert_allclose(out, np.log(1e-12), rtol=1e-6)


def test_pad_or_crop():
    y = np.arange(1, 6, dtype=np.float32)
    assert pad_or_crop(y, 8).tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    assert pad_or_crop(y, 8, "center").tolist() == [0, 1, 2, 3, 4, 5, 0, 0]
    assert pad_or_crop(y, 3).tolist() == [1, 2, 3]
    assert pad_or_crop(y, 3, "center").tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match="1-D"):
        pad_or_crop(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="align"):
        pad_or_crop(y, 3, "end")


def test_load_wav_mono_resample_and_errors(tmp_path):
    # stereo 8 kHz int16: averaged to mono and resampled to 16 kHz (twice the samples)
    left = (np.sin(2 * np.pi * 200 * np.arange(8000) / 8000) * 10000).astype(np.int16)
    stereo = np.stack([left, left // 2], axis=1)
    scipy.io.wavfile.write(tmp_path / "s.wav", 8000, stereo)
    y = load_wav(tmp_path / "s.wav", 16000)
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) == 16000
    # the 200 Hz tone at amplitude (1 + 0.5) / 2 * 10000 / 32768 survives: check its amplitude
    assert np.abs(y[2000:14000]).max() == pytest.approx(0.75 * 10000 / 32768, rel=0.02)
    with pytest.raises(ValueError, match="not found"):
        load_wav(tmp_path / "missing.wav", 16000)
    scipy.io.wavfile.write(tmp_path / "empty.wav", 16000, np.zeros(0, dtype=np.int16))
    with pytest.raises(ValueError, match="empty.wav"):
        load_wav(tmp_path / "empty.wav", 16000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000garbage")
    with pytest.raises(ValueError, match="junk.wav"):
        load_wav(tmp_path / "junk.wav", 16000)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="kind"):
        SpeechFeatures(kind="spectrogram")
    with pytest.raises(ValueError, match="fmax"):
        SpeechFeatures(fmax=9000.0)
    with pytest.raises(ValueError, match="n_mfcc"):
        SpeechFeatures(n_mfcc=60)
