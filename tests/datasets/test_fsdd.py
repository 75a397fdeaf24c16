"""FSDD: the authors' split on the real recordings, features for a handful, errors on fake folders."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import scipy.io.wavfile
import soundfile

from spikerobust.datasets.fsdd import FSDD, fsdd_files
from spikerobust.datasets.speech import SpeechFeatures, load_wav, pad_or_crop


def test_real_split_counts(fsdd_dir):
    test, train = fsdd_files(fsdd_dir, "test"), fsdd_files(fsdd_dir, "train")
    assert len(test) == 300 and len(train) == 2700  # SOURCES.md: 3000 files, indices 0-4 are test
    assert Counter(f.digit for f in test) == {d: 30 for d in range(10)}
    assert Counter(f.digit for f in train) == {d: 270 for d in range(10)}
    assert all(f.index < 5 for f in test) and all(5 <= f.index < 50 for f in train)
    assert len({f.speaker for f in test}) == 6
    assert not {f.path for f in test} & {f.path for f in train}
    # the name encodes the label
    assert all(f.path.name.startswith(f"{f.digit}_{f.speaker}_") for f in test)


def test_real_features_for_a_handful(fsdd_dir, tmp_path):
    picks = [f for f in fsdd_files(fsdd_dir, "test") if f.speaker == "george" and f.index == 0]
    assert len(picks) == 10
    folder = tmp_path / "recordings"
    folder.mkdir()
    for f in picks:
        (folder / f.path.name).symlink_to(f.path)
    ds = FSDD(folder, split="test", cache_dir=tmp_path / "cache")
    assert len(ds) == 10 and ds.class_counts() == {str(d): 1 for d in range(10)}
    assert ds.data.shape == (10, 98, 40) and ds.data.dtype == np.float32
    for i, f in enumerate(ds.files):
        assert ds.targets[i] == f.digit
        raw, sr = soundfile.read(str(f.path))
        assert sr == 8000
        y = load_wav(f.path, 16000)
        assert abs(len(y) - 2 * len(raw)) <= 2  # 8 kHz -> 16 kHz
        np.testing.assert_allclose(ds.data[i], SpeechFeatures(align="center")(y), rtol=1e-5, atol=1e-5)
    # a second construction reads the cache
    again = FSDD(folder, split="test", cache_dir=tmp_path / "cache")
    assert again.cache_path == ds.cache_path
    np.testing.assert_array_equal(again.data, ds.data)


def _fake(folder, names, sr=8000, n=3000):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        scipy.io.wavfile.write(folder / name, sr, (rng.standard_normal(n) * 3000).astype(np.int16))


def test_fake_folder_split_and_feature_alignment(tmp_path):
    _fake(tmp_path / "recordings", ["3_amy_0.wav", "3_amy_7.wav", "8_bob_4.wav", "8_bob_5.wav", "notes.wav"])
    test = FSDD(tmp_path, split="test", cache_dir=tmp_path / "c")  # a folder containing recordings/
    assert [f.path.name for f in test.files] == ["3_amy_0.wav", "8_bob_4.wav"]
    assert test.targets.tolist() == [3, 8]
    # a 3000-sample 8 kHz clip becomes 6000 samples at 16 kHz, centred in the 1 s clip
    y = pad_or_crop(load_wav(test.files[0].path, 16000), 16000, "center")
    assert np.all(y[:4900] == 0) and np.all(y[-4900:] == 0) and np.any(y[5100:10900] != 0)


def test_changed_feature_setting_changes_cache(tmp_path):
    _fake(tmp_path / "r", ["1_amy_0.wav", "2_amy_1.wav"])
    a = FSDD(tmp_path / "r", split="test", cache_dir=tmp_path / "c")
    b = FSDD(tmp_path / "r", split="test", cache_dir=tmp_path / "c", features=SpeechFeatures(kind="logmel", align="center"))
    assert a.cache_path != b.cache_path and not np.allclose(a.data, b.data)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        FSDD(tmp_path / "missing", cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no FSDD recordings"):
        FSDD(tmp_path / "empty", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="split"):
        FSDD(tmp_path / "empty", split="val", cache_dir=tmp_path)
