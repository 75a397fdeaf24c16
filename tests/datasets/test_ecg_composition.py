"""The "paper" composition of MITBIH on a tiny record set written with wfdb in tmp_path.

Each beat's lead 0 holds one narrow positive bump placed, by construction, ``k`` downsampled
samples after the start of the beat's segment (which starts ``lead_in`` samples before the
annotation). The authors' rule keeps a beat iff 30 <= k <= 70, its class is N/L/R/V, it is not an
N beat followed by an ``x`` annotation and not inside an atrial-fibrillation period (counting from
the beat before the rhythm annotation); then every class keeps its first beats in record order. The
expected selection below is written down from that rule, not from the code.
"""

from __future__ import annotations

import numpy as np
import pytest

wfdb = pytest.importorskip("wfdb")

from spikerobust.datasets.ecg import MITBIH, REFERENCE_LEAD_IN, reference_beats

FS = 360
RR = 300  # samples between annotations
LEAD_IN = REFERENCE_LEAD_IN


def _record(tmp_path, name, beats, lead_names, extra=()):
    """Write record ``name``: ``beats`` = [(symbol, k)], one every RR samples from sample 400.

    ``extra``: [(sample, symbol, aux)] non-beat annotations. Returns the annotation samples.
    """
    n = 400 + RR * (len(beats) + 1)
    t = np.arange(n)
    lead0 = np.zeros(n)
    samples = []
    for i, (sym, k) in enumerate(beats):
        a = 400 + RR * i
        samples.append(a)
        centre = a - LEAD_IN + 2 * k  # downsampled index k of the segment
        lead0 += np.exp(-(((t - centre) / 6.0) ** 2))
    lead1 = 0.3 * np.sin(2 * np.pi * t / 97.0)
    sig = np.stack([lead0, lead1], axis=1)
    wfdb.wrsamp(name, fs=FS, units=["mV", "mV"], sig_name=list(lead_names), p_signal=sig, fmt=["16", "16"],
                write_dir=str(tmp_path))
    ann = [(a, s, "") for a, (s, _) in zip(samples, beats)] + list(extra)
    ann.sort(key=lambda r: r[0])
    wfdb.wrann(name, "atr", np.array([r[0] for r in ann]), symbol=[r[1] for r in ann],
               aux_note=[r[2] for r in ann], write_dir=str(tmp_path))
    return samples


@pytest.fixture()
def records(tmp_path):
    beats_100 = [("N", 40), ("N", 10), ("V", 50), ("N", 45), ("N", 65), ("V", 75), ("L", 30), ("N", 50)]
    s100 = _record(tmp_path, "100", beats_100, ["MLII", "V1"],
                   # 'x' inside the 4th beat's segment (it opens a segment of its own, ending the N's)
                   extra=[(400 + RR * 3 + 100, "x", "")])
    beats_101 = [("R", 35), ("N", 55), ("V", 60), ("L", 70), ("R", 71), ("R", 50), ("L", 52), ("V", 33), ("N", 40)]
    # atrial fibrillation from between beats 2 and 3 until the '(N' between beats 4 and 5: beats 2-4
    s101 = _record(tmp_path, "101", beats_101, ["V5", "MLII"],  # stored order: V5 first, and it is lead 0
                   extra=[(400 + RR * 2 + 150, "+", "(AFIB"), (400 + RR * 4 + 150, "+", "(N")])
    return tmp_path, s100, s101


def test_paper_composition_selects_the_rule_s_beats(records):
    root, s100, s101 = records
    # by the rule: record 100 keeps N@0 (k=40), V@2, N@4 (k=65), L@6, N@7 (N@3 is followed by 'x',
    # N@1 has k=10, V@5 has k=75); record 101 keeps R@0, N@1, R@5, L@6, V@7, N@8 (beats 2-4 are in
    # the AFIB period, which starts at the beat before the rhythm annotation).
    kept = {"N": [("100", s100[0]), ("100", s100[4]), ("100", s100[7]), ("101", s101[1]), ("101", s101[8])],
            "L": [("100", s100[6]), ("101", s101[6])],
            "R": [("101", s101[0]), ("101", s101[5])],
            "V": [("100", s100[2]), ("101", s101[7])]}
    n = min(len(v) for v in kept.values())  # balancing: the rarest class (2), first beats in record order
    want = {(c, r, p) for c, beats in kept.items() for r, p in beats[:n]}

    ds = MITBIH(root, split="all", composition="paper", beats_per_class=None, use_cache=False)
    got = {(ds.classes[y], str(r), int(p)) for y, r, p in zip(ds.targets, ds.records, ds.positions)}
    assert got == want
    assert len(ds) == 4 * n
    # every kept beat is centred on its bump: lead 0 peaks at index 50 of the 100-sample window
    assert (ds.data[:, :, 0].argmax(axis=1) == 50).all()


def test_paper_composition_caps_at_beats_per_class(records):
    root, s100, s101 = records
    ds = MITBIH(root, split="all", composition="paper", beats_per_class=1, use_cache=False)
    got = sorted((ds.classes[y], str(r), int(p)) for y, r, p in zip(ds.targets, ds.records, ds.positions))
    assert got == sorted([("N", "100", s100[0]), ("L", "100", s100[6]), ("R", "101", s101[0]),
                          ("V", "100", s100[2])])


def test_reference_beats_without_lead_in_is_the_published_rule():
    # lead_in=0: a peak at the annotation itself (offset 0) is rejected, one 40 samples later kept
    n = 2000
    t = np.arange(n)
    sig = np.stack([np.exp(-(((t - 500) / 6.0) ** 2)) + np.exp(-(((t - 880) / 6.0) ** 2)),
                    np.sin(t / 20.0)], axis=1)
    x, y, pos = reference_beats(sig, np.array([500, 800, 1100]), ["N", "N", "N"], None, lead_in=0)
    assert pos.tolist() == [800] and y.tolist() == [0]
    assert x.shape == (1, 100, 2) and x[0, :, 0].argmax() == 50


def test_unknown_composition_is_a_clear_error(records):
    root, _, _ = records
    with pytest.raises(ValueError, match="composition"):
        MITBIH(root, split="all", composition="first", use_cache=False)


def test_report_composition_counts_beats_and_records(records):
    from spikerobust.experiments.tasks import _ecg_composition

    root, s100, s101 = records
    sets = {s: MITBIH(root, split=s, composition="paper", beats_per_class=None, use_cache=False)
            for s in ("train", "val", "test")}
    comp = _ecg_composition(sets, "paper")
    assert comp["composition"] == "paper" and comp["lead_in"] == REFERENCE_LEAD_IN
    # from the rule (see the first test), two beats per class: N both from 100, L from 100 and 101,
    # R both from 101, V from 100 and 101
    want = {"N": (2, 1), "L": (2, 2), "R": (2, 1), "V": (2, 2)}
    assert {c: (r["beats"], r["records"]) for c, r in comp["per_class"].items()} == want
    assert comp["per_class"]["N"]["largest"] == [["100", 2]]
    assert sum(comp["per_class"]["L"]["per_split"].values()) == 2
