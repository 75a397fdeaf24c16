"""The vector building blocks of the event-driven LSNN kernels (``_event_primitives``), each
against an independent computation: the index scans against NumPy's ``flatnonzero``, the two-row
dot product against two one-row ones."""

import numpy as np
import pytest

pytest.importorskip("numba")

from spikerobust.functional import _event_primitives as prim  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_index_scans_match_numpy(dtype):
    # the kernels' index lists (spikes: x != 0; surrogate support: |s| < 1), vector-compressed
    # 16 at a time where the host has AVX-512 and one by one otherwise, against numpy's
    # flatnonzero, at lengths around the 16-lane steps and with NaN, infinities, +-0 and +-1
    rng = np.random.default_rng(0)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, np.nextafter(1.0, 0.0)], dtype)
    zero, one = np.array([0.0, 1.0], dtype)
    for n in (1, 15, 16, 17, 31, 32, 33, 64, 100, 256):
        for density in (0.0, 0.1, 0.5, 1.0):
            inside = rng.random(n) < density  # entries that pass both tests, the rest mostly fail them
            x = np.where(inside, rng.uniform(-0.99, 0.99, n), rng.choice([0.0, 3.0, -2.0], n)).astype(dtype)
            if density == 0.5:  # the special values at random places
                x[rng.choice(n, min(n, len(special)), replace=False)] = special[: min(n, len(special))]
            want_nz, want_gap = np.flatnonzero(x != 0), np.flatnonzero(np.abs(x) < 1)
            s = x[::-1].copy()
            want_gap_s = np.flatnonzero(np.abs(s) < 1)
            for vector in (False, True):  # both ways, whatever the host (LLVM lowers the compress anywhere)
                idx = np.full(n, -7, np.int32)
                m = prim.scan(x, idx, zero, False, vector)
                np.testing.assert_array_equal(idx[:m], want_nz)
                idx = np.full(n, -7, np.int32)
                m = prim.scan(x, idx, one, True, vector)
                np.testing.assert_array_equal(idx[:m], want_gap)
            for scan, ref, want in ((prim.support, zero, want_nz), (prim.gap_support, one, want_gap)):
                idx = np.full(n, -7, np.int32)
                m = scan(x, idx, ref)
                np.testing.assert_array_equal(idx[:m], want)
            ev, idx = np.full(n, -7, np.int32), np.full(n, -7, np.int32)
            n_ev, m = prim.spikes_and_gap_support(x, s, ev, idx, zero, one)
            np.testing.assert_array_equal(ev[:n_ev], want_nz)
            np.testing.assert_array_equal(idx[:m], want_gap_s)


def test_two_row_dot_product_has_the_bits_of_two_single_ones():
    # the backward kernel's masked product takes two rows per pass (dot2); it promises the sums
    # of the one-row dot, so that the pairing (which depends on the support's size) never shows
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        for n in (1, 37, 256, 300):
            for _ in range(20):
                a, b, v = (rng.standard_normal(n).astype(dtype) for _ in range(3))
                x0, x1 = (dtype(u) for u in rng.standard_normal(2))
                c0, c1 = prim.dot2(a, b, v, n, x0, x1)
                assert c0 == prim.dot(a, v, n, x0) and c1 == prim.dot(b, v, n, x1)
