"""Speech Commands v0.02 on a tiny fake layout of real WAV files written in tmp_path."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import scipy.io.wavfile

from spikerobust.datasets.speech_commands import SpeechCommands, which_set

WORDS = ("yes", "no")
OTHER = ("bed", "cat")


def reference_split(name: str) -> str:
    """The README rule, written again: SHA-1 of the speaker id, mod 2**27, as a percentage."""
    speaker = re.sub(r"_nohash_.*$", "", name.split("/")[-1])
    value = int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % (2**27)
    pct = value * 100.0 / (2**27 - 1)
    return "validation" if pct < 10 else "testing" if pct < 20 else "training"


@pytest.fixture(scope="module")
def sc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_commands")
    rng = np.random.default_rng(0)
    speakers = [f"{v:08x}" for v in rng.integers(0, 2**32, 60)]
    for w in WORDS + OTHER:
        (root / w).mkdir()
        for s in speakers:
            n = int(rng.integers(8000, 16000))
            scipy.io.wavfile.write(root / w / f"{s}_nohash_0.wav", 16000,
                                   (rng.standard_normal(n) * 2000).astype(np.int16))
        scipy.io.wavfile.write(root / w / f"{speakers[0]}_nohash_1.wav", 16000,
                               (rng.standard_normal(12000) * 2000).astype(np.int16))
    (root / "_background_noise_").mkdir()
    scipy.io.wavfile.write(root / "_background_noise_" / "white.wav", 16000,
                           (rng.standard_normal(48000) * 5000).astype(np.int16))
    return root


def test_which_set_matches_reference_and_groups_speakers(sc_root):
    files = sorted(f"{p.parent.name}/{p.name}" for p in sc_root.glob("*/*.wav") if p.parent.name != "_background_noise_")
    for f in files:
        assert which_set(f) == reference_split(f)
    by_speaker = {}
    for f in files:
        by_speaker.setdefault(f.split("/")[1].split("_nohash_")[0], set()).add(which_set(f))
    assert all(len(s) == 1 for s in by_speaker.values())  # a speaker never straddles splits
    shares = np.mean([which_set(f"x/{i:08x}_nohash_0.wav") == "training" for i in range(3000)])
    assert 0.75 < shares < 0.85  # about 80 % training


def test_splits_class_mapping_and_sizes(sc_root, tmp_path):
    sets = {s: SpeechCommands(sc_root, split=s, words=WORDS, cache_dir=tmp_path, split_source="hash")
            for s in ("train", "val", "test")}
    assert sets["train"].classes == ("silence", "unknown", "yes", "no")
    for s, ds in sets.items():
        want = {"train": "training", "val": "validation", "test": "testing"}[s]
        words = [p for p in ds.paths if p and p.split("/")[0] in WORDS]
        n_words = sum(reference_split(f) == want for f in
                      (f"{w}/{p.name}" for w in WORDS for p in (sc_root / w).glob("*.wav")))
        assert len(words) == n_words
        for p, y in zip(ds.paths, ds.targets):
            if p == "":
                assert y == 0
            elif p.split("/")[0] in OTHER:
                assert y == 1 and reference_split(p) == want
            else:
                assert ds.classes[y] == p.split("/")[0] and reference_split(p) == want
        counts = ds.class_counts()
        assert counts["silence"] == round(0.1 * n_words) and counts["unknown"] == round(0.1 * n_words)
        x, y = ds[0]
        assert tuple(x.shape) == (98, 40) and isinstance(y, int)


def test_list_files_follow_the_same_rule(sc_root, tmp_path):
    files = sorted(f"{p.parent.name}/{p.name}" for p in sc_root.glob("*/*.wav") if p.parent.name != "_background_noise_")
    # the official lists, regenerated from the reference rule
    for name, which in (("validation_list.txt", "validation"), ("testing_list.txt", "testing")):
        (sc_root / name).write_text("\n".join(f for f in files if reference_split(f) == which) + "\n")
    try:
        a = SpeechCommands(sc_root, split="test", words=WORDS, cache_dir=tmp_path, split_source="lists", augment=False)
        b = SpeechCommands(sc_root, split="test", words=WORDS, cache_dir=tmp_path, split_source="hash", augment=False)
        assert a.paths == b.paths
        # a list that disagrees with the hash wins when lists are used
        moved = next(f for f in files if reference_split(f) == "training" and f.startswith("yes/"))
        (sc_root / "testing_list.txt").write_text((sc_root / "testing_list.txt").read_text() + moved + "\n")
        c = SpeechCommands(sc_root, split="test", words=WORDS, cache_dir=tmp_path, augment=False)
        assert moved in c.paths and moved not in b.paths
    finally:
        (sc_root / "validation_list.txt").unlink()
        (sc_root / "testing_list.txt").unlink()


def test_background_noise_augmentation(sc_root, tmp_path):
    clean = SpeechCommands(sc_root, split="train", words=WORDS, cache_dir=tmp_path, augment=False)
    noisy = SpeechCommands(sc_root, split="train", words=WORDS, cache_dir=tmp_path, augment=True,
                           noise_prob=1.0, noise_volume=0.5)
    assert clean.cache_path == noisy.cache_path  # augmentation does not change the cached clean features
    i = 0
    assert np.array_equal(clean[i][0].numpy(), clean.data[i])
    assert not np.array_equal(noisy[i][0].numpy(), clean.data[i])
    off = SpeechCommands(sc_root, split="train", words=WORDS, cache_dir=tmp_path, augment=True, noise_prob=0.0,
                         time_shift_ms=0.0)
    np.testing.assert_allclose(off[i][0].numpy(), clean.data[i], rtol=1e-5, atol=1e-5)
    # silence clips are scaled background noise, not zeros
    j = int(np.flatnonzero(clean.targets == 0)[0])
    assert clean.data[j].std() > 0


def test_time_shift_augmentation_moves_the_clip(sc_root, tmp_path):
    shifted = SpeechCommands(sc_root, split="train", words=WORDS, cache_dir=tmp_path, augment=True, noise_prob=0.0,
                             seed=3)
    assert shifted.max_shift == 1600
    rng = np.random.default_rng(0)
    y = shifted._waveform(0, rng, augment=False)
    moved = shifted._waveform(0, np.random.default_rng(0), augment=True)
    s = int(np.random.default_rng(0).integers(-1600, 1601))  # the first draw of the same stream
    if s >= 0:
        np.testing.assert_array_equal(moved[s:], y[: len(y) - s])
        assert np.all(moved[:s] == 0)
    else:
        np.testing.assert_array_equal(moved[: len(y) + s], y[-s:])
        assert np.all(moved[len(y) + s:] == 0)


def test_waveforms_and_noise_for_batch_augmentation(sc_root, tmp_path, caplog):
    from spikerobust.datasets.speech import load_clips

    ds = SpeechCommands(sc_root, split="train", words=WORDS, cache_dir=tmp_path, augment=False)
    w = ds.waveforms()
    assert w.shape == (len(ds), 16000) and w.dtype == np.float32
    silence = ds.targets == 0
    assert silence.any() and np.all(w[silence] == 0)  # filled with noise by the augmentation
    words = np.flatnonzero(~silence)[:3]
    np.testing.assert_array_equal(w[words], load_clips([sc_root / ds.paths[i] for i in words], ds.features))
    noise = ds.noise_clips()
    assert len(noise) == 1 and noise[0].shape == (48000,)  # the one _background_noise_ recording
    _, white = scipy.io.wavfile.read(sc_root / "_background_noise_" / "white.wav")
    np.testing.assert_allclose(noise[0], white / 32768.0, atol=1e-6)


def test_errors(sc_root, tmp_path):
    with pytest.raises(ValueError, match="split"):
        SpeechCommands(sc_root, split="dev", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="not found"):
        SpeechCommands(tmp_path / "nowhere", cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="recordings"):
        SpeechCommands(tmp_path / "empty", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="list"):
        SpeechCommands(sc_root, split="test", words=WORDS, split_source="lists", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="no recordings of"):
        SpeechCommands(sc_root, split="test", words=("seven",), cache_dir=tmp_path)
