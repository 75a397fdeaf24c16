"""MIT-BIH pipeline on the real records in ../shared/data/mitdb (skipped when absent).

Expected beat counts are the per-record figures of ../shared/data/SOURCES.md (PhysioNet's atr
annotations); the pipeline drops only the last beat of each record (it has no next beat).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

wfdb = pytest.importorskip("wfdb")

from spikerobust.datasets.ecg import MITBIH

# SOURCES.md, "Beat-symbol counts per record": record -> {class: count} for N, L, R, V
SOURCES_COUNTS = {
    "100": {"N": 2239, "L": 0, "R": 0, "V": 1},
    "106": {"N": 1507, "L": 0, "R": 0, "V": 520},
    "109": {"N": 0, "L": 2492, "R": 0, "V": 38},
    "114": {"N": 1820, "L": 0, "R": 0, "V": 43},
    "118": {"N": 0, "L": 0, "R": 2166, "V": 16},
}
RECORDS = sorted(SOURCES_COUNTS)
BEATS = set("N L R B A a J S V r F e j n E / f Q ?".split())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mitdb_cache")


@pytest.fixture(scope="module")
def all_beats(cache):
    # module-scoped twin of the mitdb_dir fixture (same location rule as tests/conftest.py)
    env = os.environ.get("SPIKEROBUST_SHARED_DATA")
    root = (Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data") / "mitdb"
    if not (root / "100.hea").exists():
        pytest.skip(f"MIT-BIH records not found at {root}")
    return MITBIH(root, split="all", records=RECORDS, beats_per_class=None, cache_dir=cache)


def _last_beat_symbol(mitdb_dir, record):
    ann = wfdb.rdann(str(mitdb_dir / record), "atr")
    return [s for s in ann.symbol if s in BEATS][-1]


def test_per_record_counts_match_sources(all_beats, mitdb_dir):
    for rec in RECORDS:
        y = all_beats.targets[all_beats.records == rec]
        got = dict(zip(all_beats.classes, np.bincount(y, minlength=4).tolist()))
        want = dict(SOURCES_COUNTS[rec])
        last = _last_beat_symbol(mitdb_dir, rec)
        if last in want:
            want[last] -= 1
        assert got == want, rec
    # the headline facts of the brief: 109 has 2492 L beats, 118 has 2166 R beats (minus a last beat)
    assert (all_beats.targets[all_beats.records == "109"] == 1).sum() in (2491, 2492)
    assert (all_beats.targets[all_beats.records == "118"] == 2).sum() in (2165, 2166)


def test_samples_are_time_first_float32_and_centred(all_beats):
    assert all_beats.data.shape[1:] == (100, 2)
    x, y = all_beats[0]
    assert x.shape == (100, 2) and str(x.dtype) == "torch.float32" and isinstance(y, int)
    assert np.isfinite(all_beats.data).all()
    # the main peak of lead 0 sits at index 50: a local maximum of |lead 0| for every beat, and the
    # largest within +-18 samples for nearly all (the search region is centred on the annotation,
    # not on the peak, so a larger value may sit just outside it)
    a = np.abs(all_beats.data[:, :, 0])
    assert (a[:, 50] >= a[:, 48:53].max(axis=1)).all()
    assert (a[:, 32:69].argmax(axis=1) == 18).mean() > 0.999


def _best_corr(window, raw_ds, centre):
    """Largest |correlation| of window with raw_ds[start:start+100] over starts near the annotation."""
    best = 0.0
    for start in range(centre - 18 - 50, centre + 18 - 50 + 1):
        seg = raw_ds[start : start + 100]
        best = max(best, abs(np.corrcoef(window, seg)[0, 1]))
    return best


def test_record_114_uses_mlii_as_lead_0(all_beats, mitdb_dir):
    rec = wfdb.rdrecord(str(mitdb_dir / "114"))
    assert rec.sig_name == ["V5", "MLII"]  # the swapped record
    raw = rec.p_signal[::2]  # downsampled by 2, like the pipeline
    idx = np.flatnonzero(all_beats.records == "114")[:20]
    for i in idx:
        centre = int(all_beats.positions[i]) // 2
        w = all_beats.data[i]
        # lead 0 is an affine image of the MLII channel (index 1), not of V5 (index 0)
        assert _best_corr(w[:, 0], raw[:, 1], centre) > 0.9999
        assert _best_corr(w[:, 1], raw[:, 0], centre) > 0.9999
    # and for an ordinary record lead 0 is channel 0
    rec100 = wfdb.rdrecord(str(mitdb_dir / "100"))
    assert rec100.sig_name[0] == "MLII"
    i = np.flatnonzero(all_beats.records == "100")[5]
    assert _best_corr(all_beats.data[i, :, 0], rec100.p_signal[::2, 0], int(all_beats.positions[i]) // 2) > 0.9999


def test_paper_style_balanced_random_split(mitdb_dir, cache):
    parts = {s: MITBIH(mitdb_dir, split=s, records=RECORDS, beats_per_class=200, cache_dir=cache)
             for s in ("train", "val", "test")}
    assert parts["train"].class_counts() == {c: 160 for c in "NLRV"}
    assert parts["val"].class_counts() == {c: 20 for c in "NLRV"}
    assert parts["test"].class_counts() == {c: 20 for c in "NLRV"}
    keys = [set(zip(p.records.tolist(), p.positions.tolist())) for p in parts.values()]
    assert sum(len(k) for k in keys) == 800 and len(set.union(*keys)) == 800  # disjoint beats
    # deterministic: the same settings give the same split
    again = MITBIH(mitdb_dir, split="test", records=RECORDS, beats_per_class=200, cache_dir=cache, use_cache=False)
    np.testing.assert_array_equal(again.positions, parts["test"].positions)
    np.testing.assert_array_equal(again.data, parts["test"].data)


def test_record_wise_split_is_disjoint_by_record(mitdb_dir, cache):
    records = ["106", "109", "111", "118", "119", "124", "200", "207", "212", "214", "231"]
    kw = dict(records=records, split_mode="record", fractions=(0.6, 0.2, 0.2), beats_per_class=1000, cache_dir=cache)
    parts = {s: MITBIH(mitdb_dir, split=s, **kw) for s in ("train", "val", "test")}
    recs = {s: set(p.split_records[s]) for s, p in parts.items()}
    assert not recs["train"] & recs["test"] and not recs["train"] & recs["val"] and not recs["val"] & recs["test"]
    assert recs["train"] | recs["val"] | recs["test"] == set(records)
    for s, p in parts.items():
        assert set(p.records.tolist()) <= recs[s]  # every beat comes from a record of its split
        counts = p.class_counts()
        assert len(set(counts.values())) == 1 and counts["N"] > 0  # balanced, every class present


def test_record_wise_split_impossible_is_a_clear_error(mitdb_dir, cache):
    # L occurs only in 109 and R only in 118: no record-wise split has every class in every split
    with pytest.raises(ValueError, match="record-wise"):
        MITBIH(mitdb_dir, records=RECORDS, split_mode="record", cache_dir=cache)


def test_paced_records_excluded_and_missing_mlii_skipped(mitdb_dir, cache):
    ds = MITBIH(mitdb_dir, split="all", records=["100", "102", "107"], beats_per_class=None, cache_dir=cache)
    assert set(ds.records.tolist()) == {"100"}
    ds = MITBIH(mitdb_dir, split="all", records=["100", "102", "107"], beats_per_class=None, exclude_paced=False,
                cache_dir=cache)
    assert ds.skipped_records == ["102"]  # V5 + V2 only: no MLII
    assert set(ds.records.tolist()) == {"100", "107"}
    assert (ds.targets[ds.records == "107"] == 3).sum() in (58, 59)  # SOURCES.md: 107 has 59 V beats
