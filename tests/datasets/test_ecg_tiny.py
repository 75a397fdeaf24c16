"""MIT-BIH pipeline on a tiny WFDB record written with wfdb.wrsamp/wrann, where every value is known.

The record (360 Hz, 3600 samples) stores its leads as ["V1", "MLII"] (swapped, like record 114).
MLII is zero except, for each beat with downsampled annotation a and segment length m, a spike of
100 at a + 4 and a larger late wave of 200 at a + m - 25 (outside the peak search radius). V1 is a ramp (its value is the
original sample index). Beats (original samples): N@400, V@1000, '+'@1700 (rhythm, not a beat),
L@2200, N@2900, R@3400 (last beat: no next beat, dropped).
"""

from __future__ import annotations

import numpy as np
import pytest

wfdb = pytest.importorskip("wfdb")

from spikerobust.datasets.ecg import MITBIH, extract_beats, read_record_beats, select_leads

ANN = [(400, "N"), (1000, "V"), (1700, "+"), (2200, "L"), (2900, "N"), (3400, "R")]
BEATS_DS = [200, 500, 1100, 1450, 1700]  # beat annotations // 2 (the '+' is not a beat)
L_ORIG = 3600


def _mlii_ds() -> np.ndarray:
    """The downsampled MLII lead, built directly at 180 Hz."""
    sig = np.zeros(L_ORIG // 2)
    for a, nxt in zip(BEATS_DS[:-1], BEATS_DS[1:]):
        sig[a + 4] = 100.0
        sig[nxt - 25] = 200.0
    return sig


def write_record(dirpath, name="900", lead_names=("V1", "MLII"), n_samples=L_ORIG, ann=ANN):
    mlii = np.repeat(_mlii_ds(), 2)  # every second sample is what downsampling keeps
    v1 = np.arange(L_ORIG, dtype=float)
    cols = {"MLII": mlii, "V1": v1}
    d = np.stack([cols[n] for n in lead_names], axis=1)[:n_samples].astype(np.int64)
    wfdb.wrsamp(name, fs=360, units=["mV", "mV"], sig_name=list(lead_names), d_signal=d,
                fmt=["16", "16"], adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(dirpath))
    samples = np.array([s for s, _ in ann], dtype=np.int64)
    wfdb.wrann(name, "atr", samples, symbol=[c for _, c in ann], write_dir=str(dirpath))
    return dirpath


def expected_window(a: int, nxt: int, crop_source: str, window: int = 100) -> np.ndarray:
    """The [window, 2] crop of the beat whose downsampled segment is [a, nxt), written out by hand."""
    mlii = _mlii_ds()
    ramp = 2.0 * np.arange(L_ORIG // 2)  # V1 after keeping every second sample
    seg = np.stack([mlii[a:nxt], ramp[a:nxt]], 1)
    mean, std = seg.mean(0), seg.std(0)
    peak = a + 4  # the beat's own spike; the larger late wave is outside the 18-sample search radius
    out = np.zeros((window, 2))
    for k in range(window):
        p = peak - window // 2 + k
        if crop_source == "segment" and not a <= p < nxt:
            continue
        p = min(max(p, 0), L_ORIG // 2 - 1)
        out[k] = (np.array([mlii[p], ramp[p]]) - mean) / std
    return out


@pytest.fixture
def tiny_root(tmp_path):
    return write_record(tmp_path)


def test_select_leads_by_name_not_position():
    assert select_leads(["V5", "MLII"], ("MLII", ("V1", "V5"))) == [1, 0]
    assert select_leads(["MLII", "V2"], ("MLII", ("V1", "V2"))) == [0, 1]
    with pytest.raises(ValueError, match="MLII"):
        select_leads(["V5", "V2"], ("MLII", "V1"))
    with pytest.raises(ValueError):  # one lead cannot serve twice
        select_leads(["MLII"], ("MLII", ("MLII", "V1")))


@pytest.mark.parametrize("crop_source", ["record", "segment"])
def test_windows_match_hand_construction(tiny_root, crop_source):
    x, y, pos = read_record_beats(tiny_root, "900", crop_source=crop_source)
    # beats N, V, L, N (the last beat R has no next beat; '+' is not a beat)
    assert y.tolist() == [0, 3, 1, 0]
    assert pos.tolist() == [400, 1000, 2200, 2900]
    assert x.shape == (4, 100, 2) and x.dtype == np.float32
    for i, (a, nxt) in enumerate(zip(BEATS_DS[:-1], BEATS_DS[1:])):
        np.testing.assert_allclose(x[i], expected_window(a, nxt, crop_source), rtol=1e-5, atol=1e-5)
        # centred on the main peak: the largest |lead 0| within the search radius sits at index 50
        assert np.argmax(np.abs(x[i, 50 - 18 : 50 + 19, 0])) == 18


def test_single_spike_z_score_closed_form():
    # one lead, one spike of height h in a segment of m samples: z(spike) = sqrt(m - 1),
    # z(elsewhere) = -1 / sqrt(m - 1)
    m = 60
    sig = np.zeros((400, 1))
    sig[2 * (100 + 3)] = 5.0
    x, y, _ = extract_beats(sig, [200, 200 + 2 * m], ["N", "N"], downsample=2, crop_source="segment")
    assert y.tolist() == [0]
    w = x[0, :, 0]
    assert w[50] == pytest.approx(np.sqrt(m - 1), rel=1e-6)
    # window starts at 103 - 50 = 53; segment is [100, 160): indices 47..106 of the window
    inside = np.r_[47:50, 51:100]
    np.testing.assert_allclose(w[inside], -1 / np.sqrt(m - 1), rtol=1e-6)
    np.testing.assert_array_equal(w[:47], 0.0)


def test_dataset_on_tiny_record_unbalanced(tiny_root, tmp_path):
    ds = MITBIH(tiny_root, split="all", records=["900"], beats_per_class=None, cache_dir=tmp_path / "c")
    assert ds.class_counts() == {"N": 2, "L": 1, "R": 0, "V": 1}
    x, label = ds[0]
    assert x.shape == (100, 2) and x.dtype.is_floating_point and isinstance(label, int)


def test_balancing_to_rarest_class(tiny_root, tmp_path):
    ds = MITBIH(tiny_root, split="all", records=["900"], classes=("N", "V"), beats_per_class=5,
                cache_dir=tmp_path / "c")
    assert ds.class_counts() == {"N": 1, "V": 1}  # V has one beat, so every class keeps one


def test_cache_key_changes_with_settings_and_files(tiny_root, tmp_path):
    kw = dict(split="all", records=["900"], beats_per_class=None, cache_dir=tmp_path / "c")
    a = MITBIH(tiny_root, **kw)
    assert a.cache_path.is_file()
    assert MITBIH(tiny_root, **kw).cache_path == a.cache_path  # same settings: same cache
    b = MITBIH(tiny_root, window=60, **kw)
    assert b.cache_path != a.cache_path and b.data.shape[1] == 60
    c = MITBIH(tiny_root, crop_source="segment", **kw)
    assert c.cache_path != a.cache_path
    # the annotation file changes (a beat relabelled V -> L): the cache is not reused
    write_record(tiny_root, ann=[(400, "N"), (1000, "L"), (1700, "+"), (2200, "L"), (2900, "N"), (3400, "R")])
    d = MITBIH(tiny_root, **kw)
    assert d.cache_path != a.cache_path
    assert d.class_counts() == {"N": 2, "L": 2, "R": 0, "V": 0}


def test_cache_can_be_disabled(tiny_root, tmp_path):
    ds = MITBIH(tiny_root, split="all", records=["900"], beats_per_class=None, cache_dir=tmp_path / "c",
                use_cache=False)
    assert not ds.cache_path.exists()


def test_cache_dir_from_environment(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEROBUST_CACHE", str(tmp_path / "envcache"))
    ds = MITBIH(tiny_root, split="all", records=["900"], beats_per_class=None)
    assert ds.cache_path.parent == tmp_path / "envcache"


def test_record_without_first_lead_is_skipped(tmp_path):
    root = write_record(tmp_path, name="901", lead_names=("V1", "MLII"))
    write_record(tmp_path, name="902", lead_names=("V1", "MLII"))
    # rewrite 902 with leads V5 + V2 only (like the paced 102/104)
    d = np.stack([np.arange(L_ORIG), np.arange(L_ORIG)], 1).astype(np.int64)
    wfdb.wrsamp("902", fs=360, units=["mV", "mV"], sig_name=["V5", "V2"], d_signal=d, fmt=["16", "16"],
                adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(root))
    ds = MITBIH(root, split="all", records=["901", "902"], beats_per_class=None, cache_dir=tmp_path / "c")
    assert ds.skipped_records == ["902"]
    assert set(ds.records.tolist()) == {"901"}


def test_bad_input_errors_name_the_file(tiny_root, tmp_path):
    with pytest.raises(ValueError, match="split"):
        MITBIH(tiny_root, split="training", records=["900"], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="split_mode"):
        MITBIH(tiny_root, records=["900"], split_mode="patient", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="fractions"):
        MITBIH(tiny_root, records=["900"], fractions=(0.8, 0.1, 0.2), cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"999\.hea"):
        MITBIH(tiny_root, records=["999"], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="no MIT-BIH records"):
        MITBIH(tmp_path / "empty", cache_dir=tmp_path)
    # an annotation file with no beat symbols
    wfdb.wrann("900", "atr", np.array([10, 20]), symbol=["+", "~"], write_dir=str(tiny_root))
    with pytest.raises(ValueError, match=r"900\.atr has no beat"):
        read_record_beats(tiny_root, "900")


def test_truncated_record_is_an_error(tiny_root):
    dat = tiny_root / "900.dat"
    dat.write_bytes(dat.read_bytes()[: 1000])
    with pytest.raises(ValueError, match="900"):
        read_record_beats(tiny_root, "900")


def test_extract_beats_argument_errors():
    with pytest.raises(ValueError, match="crop_source"):
        extract_beats(np.zeros((10, 2)), [1, 5], ["N", "N"], crop_source="middle")
    with pytest.raises(ValueError, match=r"\[L, C\]"):
        extract_beats(np.zeros(10), [1, 5], ["N", "N"])
