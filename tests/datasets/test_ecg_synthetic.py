"""Synthetic ECG: morphology by construction, separability, determinism, format of MIT-BIH."""

from __future__ import annotations

import numpy as np
import pytest

from spikerobust.datasets.ecg_synthetic import SyntheticECG, synthetic_ecg_strip

FS = 360.0


def _clean_strip(label, seed=0, n=8):
    rng = np.random.default_rng(seed)
    return synthetic_ecg_strip([label] * n, rng, noise_std=0.0, wander_amp=0.0, jitter=0.0)


def _half_max_width(sig, peak):
    """Full width (s) of the region around ``peak`` where |sig| stays above half the peak value."""
    a = np.abs(sig)
    half = a[peak] / 2
    lo = peak
    while lo > 0 and a[lo - 1] > half:
        lo -= 1
    hi = peak
    while hi < len(a) - 1 and a[hi + 1] > half:
        hi += 1
    return (hi - lo + 1) / FS


def _main_peak(sig, r):
    w = int(0.06 * FS)
    return r - w + int(np.argmax(np.abs(sig[r - w : r + w])))


def test_v_beats_have_wider_qrs_and_no_p_wave():
    sig_n, peaks_n, _ = _clean_strip("N")
    sig_v, peaks_v, _ = _clean_strip("V")
    width_n = np.median([_half_max_width(sig_n[:, 0], _main_peak(sig_n[:, 0], r)) for r in peaks_n])
    width_v = np.median([_half_max_width(sig_v[:, 0], _main_peak(sig_v[:, 0], r)) for r in peaks_v])
    assert width_v > 2.5 * width_n
    # a P wave 0.2 s before the R peak in N beats, none in V beats
    p_n = np.abs(sig_n[peaks_n - int(0.2 * FS), 0])
    p_v = np.abs(sig_v[peaks_v - int(0.2 * FS), 0])
    assert p_n.min() > 0.1 and p_v.max() < 0.02


def test_lbbb_qrs_is_notched_and_broad():
    sig_l, peaks_l, _ = _clean_strip("L")
    sig_n, peaks_n, _ = _clean_strip("N")
    r = peaks_l[3]
    seg = sig_l[r - int(0.06 * FS) : r + int(0.08 * FS), 0]
    interior_max = (seg[1:-1] > seg[:-2]) & (seg[1:-1] > seg[2:]) & (seg[1:-1] > 0.3)
    assert interior_max.sum() == 2  # two humps: the notch
    wl = _half_max_width(sig_l[:, 0], _main_peak(sig_l[:, 0], r))
    wn = _half_max_width(sig_n[:, 0], _main_peak(sig_n[:, 0], peaks_n[3]))
    assert wl > 2 * wn


def test_rbbb_lead_1_shows_rsr_prime():
    sig, peaks, _ = _clean_strip("R")
    r = peaks[3]
    seg = sig[r - int(0.05 * FS) : r + int(0.09 * FS), 1]
    maxima = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] > seg[2:]) & (seg[1:-1] > 0.1)) + 1
    assert len(maxima) == 2  # r and R'
    r_small, r_prime = seg[maxima[0]], seg[maxima[1]]
    assert r_prime > r_small  # R' taller than r
    assert seg[maxima[0] : maxima[1]].min() < 0  # the S between them


def test_format_like_mitbih_and_named_synthetic():
    ds = SyntheticECG(split="train", beats_per_class=40, seed=1)
    assert ds.data.shape[1:] == (100, 2) and ds.data.dtype == np.float32
    assert ds.class_counts() == {c: 32 for c in "NLRV"}
    x, y = ds[0]
    assert tuple(x.shape) == (100, 2) and isinstance(y, int)
    assert "synthetic" in repr(ds).lower() and "synthetic" in (SyntheticECG.__doc__ or "").lower()
    a = np.abs(ds.data[:, :, 0])
    assert (a[:, 50] >= a[:, 48:53].max(axis=1)).all()  # centred on the main peak


def test_classes_are_separable_by_a_linear_model():
    sklearn = pytest.importorskip("sklearn.linear_model")
    tr = SyntheticECG(split="train", beats_per_class=150, seed=0)
    te = SyntheticECG(split="test", beats_per_class=150, seed=0)
    clf = sklearn.LogisticRegression(max_iter=2000).fit(tr.data.reshape(len(tr), -1), tr.targets)
    assert clf.score(te.data.reshape(len(te), -1), te.targets) > 0.9  # chance is 0.25


def test_seeded_and_splits_disjoint():
    a = SyntheticECG(split="all", beats_per_class=30, seed=3, use_cache=False)
    b = SyntheticECG(split="all", beats_per_class=30, seed=3, use_cache=False)
    c = SyntheticECG(split="all", beats_per_class=30, seed=4, use_cache=False)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    parts = [SyntheticECG(split=s, beats_per_class=30, seed=3).data for s in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == len(a)
    rows = {p.tobytes() for part in parts for p in part}
    assert len(rows) == len(a)


def test_cache_round_trip_and_key(tmp_path):
    a = SyntheticECG(split="train", beats_per_class=20, seed=2, cache_dir=tmp_path)
    assert a.cache_path.is_file() and a.cache_path.parent == tmp_path
    b = SyntheticECG(split="train", beats_per_class=20, seed=2, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.data, b.data)
    fresh = SyntheticECG(split="train", beats_per_class=20, seed=2, use_cache=False)
    np.testing.assert_array_equal(a.data, fresh.data)  # the cache holds exactly what generation gives
    assert SyntheticECG(split="train", beats_per_class=20, seed=2, noise_std=0.1, cache_dir=tmp_path).cache_path != a.cache_path


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        SyntheticECG(split="dev")
    with pytest.raises(ValueError, match="labels"):
        synthetic_ecg_strip(["N", "X"], np.random.default_rng(0))
