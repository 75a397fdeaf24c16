"""espeak-ng keyword generator (skipped with the reason when no espeak-ng engine is available)."""

from __future__ import annotations

import numpy as np
import pytest

from spikerobust.datasets.keywords_tts import (
    DEFAULT_VOICES,
    UNKNOWN_WORDS,
    SyntheticKeywords,
    espeak_available,
    get_engine,
    voice_split,
)

OK, REASON = espeak_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"espeak-ng unavailable: {REASON}")


def _voices():
    by = {s: [v for v in DEFAULT_VOICES if voice_split(v) == s] for s in ("train", "val", "test")}
    return by["train"][:2] + by["val"][:1] + by["test"][:1]


def test_engine_speaks_and_rejects_unknown_voices():
    eng = get_engine()
    a = eng.synthesize("yes", "en-us+m1", rate=175, pitch=50)
    b = eng.synthesize("yes", "en-us+f2", rate=175, pitch=50)
    assert a.dtype == np.float32 and 0.05 < len(a) / eng.sample_rate < 2.0  # a word lasts well under 2 s
    assert np.abs(a).max() > 0.05 and not np.array_equal(a[: len(b)], b[: len(a)])
    np.testing.assert_array_equal(eng.synthesize("yes", "en-us+m1", rate=175, pitch=50), a)  # reproducible
    slow = eng.synthesize("yes", "en-us+m1", rate=100, pitch=50)
    assert len(slow) > len(a)  # a lower rate speaks longer
    with pytest.raises(ValueError, match="voice"):
        eng.synthesize("yes", "no-such-voice-xyz")


def test_voice_split_is_deterministic_and_covers_all_splits():
    splits = [voice_split(v) for v in DEFAULT_VOICES]
    assert splits == [voice_split(v) for v in DEFAULT_VOICES]
    assert set(splits) == {"train", "val", "test"}


def test_dataset_held_out_voices_classes_and_format(tmp_path):
    voices = _voices()
    sets = {s: SyntheticKeywords(split=s, voices=voices, clips_per_voice=1, cache_dir=tmp_path)
            for s in ("train", "val", "test")}
    used = {s: set(ds.clip_voices.tolist()) for s, ds in sets.items()}
    assert used["train"] == set(voices[:2]) and used["val"] == {voices[2]} and used["test"] == {voices[3]}
    tr = sets["train"]
    assert tr.classes == ("silence", "unknown", "yes", "no", "up", "down", "left", "right")
    assert tr.class_counts() == {c: 2 for c in tr.classes}  # one clip per class per voice
    for y, w in zip(tr.targets, tr.clip_words):
        if y == 0:
            assert w == ""
        elif y == 1:
            assert w in UNKNOWN_WORDS
        else:
            assert w == tr.classes[y]
    x, y = tr[0]
    assert tuple(x.shape) == (98, 40) and isinstance(y, int)
    # the loudest frame of a spoken word is louder than any frame of the (quiet) silence clips
    c0 = tr.data[:, :, 0].max(axis=1)
    assert c0[tr.targets >= 2].min() > c0[tr.targets == 0].max()


def test_seeded_generation(tmp_path):
    voices = _voices()
    a = SyntheticKeywords(split="test", voices=voices, clips_per_voice=1, use_cache=False)
    b = SyntheticKeywords(split="test", voices=voices, clips_per_voice=1, use_cache=False)
    c = SyntheticKeywords(split="test", voices=voices, clips_per_voice=1, seed=1, use_cache=False)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)


def test_no_voice_in_split_is_an_error():
    train_only = [v for v in DEFAULT_VOICES if voice_split(v) == "train"][:2]
    with pytest.raises(ValueError, match="split 'test'"):
        SyntheticKeywords(split="test", voices=train_only, use_cache=False)


def test_clips_kept_for_augmentation(tmp_path):
    from spikerobust.datasets.speech import SpeechFeatures

    ds = SyntheticKeywords(split="test", voices=_voices(), clips_per_voice=1, cache_dir=tmp_path)
    w = ds.waveforms()
    assert w.shape == (len(ds), 16000) and w.dtype == np.float32
    feats = SpeechFeatures()
    for i in (0, 3, len(ds) - 1):  # the cached features are those of the kept clip (float16 rounding aside)
        np.testing.assert_allclose(feats(w[i]), ds.data[i], atol=0.1, rtol=0.01)
    noise = ds.noise_clips()
    assert len(noise) == 4 and all(abs(float(np.abs(c).max()) - 1.0) < 1e-6 for c in noise)
    again = SyntheticKeywords(split="test", voices=_voices(), clips_per_voice=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.waveforms(), w)  # read back from the cache
