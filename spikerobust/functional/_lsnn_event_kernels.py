"""numba kernels of the event-driven LSNN backend (imported lazily by :mod:`.lsnn_event`).

Every kernel works on NumPy views of contiguous CPU tensors and is specialised by numba for
float32 and float64; all arithmetic stays in the arrays' dtype (constants arrive as arrays of
that dtype, never as Python floats, which numba would promote to float64). Compiled code is
cached on disk (``cache=True``), next to this file or in numba's cache directory. The index
scans, the row prefetch and the dot products they share are in :mod:`._event_primitives`.

Determinism: the forward kernel is parallel over samples, which never interact. The backward
kernel is parallel over a fixed number of batch chunks (a function of ``B`` only); each chunk
accumulates its own partial weight and constant gradients, reduced afterwards in chunk order.
The result is the same bits for any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._event_primitives import (
    LANES, VECTOR_SCAN, dot, dot2, gap_support, prefetch_row, spikes_and_gap_support, support,
)

__all__ = [
    "forward", "backward", "reduce_chunks", "project_rows", "recurrent_rows", "n_chunks", "GAP_BLOCKED", "VECTOR_SCAN",
]

#: The relative gap ``s`` a triangular-surrogate trace holds where no spike is allowed (refractory
#: or masked): outside the support ``|s| < 1``, so the derivative there is zero.
GAP_BLOCKED = 2.0

#: Number of batch chunks of the backward pass: fixed by the batch size only (determinism).
MAX_CHUNKS = 8


def n_chunks(batch: int) -> int:
    """Chunks the backward pass splits a batch of ``batch`` samples into."""
    return max(1, min(batch, MAX_CHUNKS))


@njit(cache=True)
def _threshold(b0, beta, b):  # pragma: no cover - compiled
    """``A = b0 + beta b``, as the forward kernel computes it. Its own function, compiled without
    fast-math flags: inlined by LLVM into the backward kernel it keeps them (no contraction into
    a fused multiply-add), so the recomputed threshold has the forward pass's bits."""
    return b0 + beta * b


@njit(cache=True)
def _b_trace(out, b_init, z_all, z0, bi, rho, omr):  # pragma: no cover - compiled
    """``out[t] = b_t`` of sample ``bi`` for every step, recomputed from its initial value and the
    spikes (``b_t = rho b_{t-1} + (1 - rho) z_{t-1}``) with the forward kernel's operations (no
    fast-math flags: no contraction into a fused multiply-add), so the same bits."""
    t_steps, n = out.shape
    prev = b_init
    for t in range(min(t_steps - 1, 3)):  # the rows of steps 1..3, then 4 steps ahead (each
        prefetch_row(z_all[t, bi])  # step's work is too short to hide a row's latency)
    for t in range(t_steps):
        zp = z_all[t - 1, bi] if t > 0 else z0[bi]
        if t + 4 < t_steps:
            prefetch_row(z_all[t + 3, bi])
        row = out[t]
        for k in range(n):
            row[k] = rho[k] * prev[k] + omr[k] * zp[k]
        prev = row


@njit(cache=True)
def _triangle_slope(gamma, s, a, one, zero):  # pragma: no cover - compiled
    """The triangular surrogate's derivative ``gamma max(1 - |s|, 0) / A`` where a spike is
    allowed (the caller divides by ``dt`` unless it is 1: exact), with the forward kernel's
    operations (no fast-math: the same bits)."""
    return gamma * max(one - abs(s), zero) / a


@njit(cache=True, inline="always")
def _threshold_adjoint(k, q, p_t, beta, gq, gbe, bt, need_q, need_beta):  # pragma: no cover - compiled
    """Add ``-dL/dA_t = q`` at neuron ``k``: into ``p_t`` (through ``beta``) and the sums of
    ``dL/db0`` and ``dL/dbeta`` (as ``-q`` and ``-q b_t``) when they are needed."""
    p_t[k] -= q * beta[k]
    if need_q:
        gq[k] -= q
    if need_beta:
        gbe[k] -= q * bt[k]


@njit(cache=True, inline="always")
def _add_rows(idx, lo, hi, z, w, acc):  # pragma: no cover - compiled
    """``acc += z[j] w[j]`` for ``j = idx[lo:hi]`` in that (ascending) order, four rows per pass
    over ``acc`` (each element still adds them one by one: the same bits), then one by one."""
    n = acc.shape[0]
    e = lo
    while e + 4 <= hi:
        j0, j1, j2, j3 = idx[e], idx[e + 1], idx[e + 2], idx[e + 3]
        z0_, z1_, z2_, z3_ = z[j0], z[j1], z[j2], z[j3]
        w0_, w1_, w2_, w3_ = w[j0], w[j1], w[j2], w[j3]
        for k in range(n):
            acc[k] = (((acc[k] + z0_ * w0_[k]) + z1_ * w1_[k]) + z2_ * w2_[k]) + z3_ * w3_[k]
        e += 4
    while e < hi:
        j = idx[e]
        zj = z[j]
        wj = w[j]
        for k in range(n):
            acc[k] += zj * wj[k]
        e += 1


@njit(cache=True, inline="always")
def _recurrent(idx, ne, z, w, kb, rec, part, zero):  # pragma: no cover - compiled
    """``rec = z @ w`` from the ``ne`` spiking neurons ``idx`` (ascending), summed the way the
    machine's BLAS sums a product with a 0/1 left operand: the rows of each block of ``kb``
    neurons (``[0, kb)``, ``[kb, 2 kb)``, ...) added one by one from zero, ascending, and the
    blocks' sums added in order (``kb >= N``: one block, the plain ascending sum). A block
    without spikes adds nothing (its sum would be zero)."""
    n = rec.shape[0]
    for k in range(n):
        rec[k] = zero
    if kb >= n:
        _add_rows(idx, 0, ne, z, w, rec)
        return
    first = True
    e = 0
    while e < ne:
        end = (idx[e] // kb + 1) * kb  # the end of the block of the next spike
        hi = e
        while hi < ne and idx[hi] < end:
            hi += 1
        if first:
            _add_rows(idx, e, hi, z, w, rec)
            first = False
        else:
            for k in range(n):
                part[k] = zero
            _add_rows(idx, e, hi, z, w, part)
            for k in range(n):
                rec[k] = rec[k] + part[k]
        e = hi


@njit(cache=True)
def recurrent_rows(z, w, kb, out):  # pragma: no cover - compiled
    """``out[b] = z[b] @ w`` for every row of ``z`` ``[B, N]`` as :func:`forward` computes the
    recurrent current (:func:`_recurrent` with block size ``kb``); for the run-time check of
    which ``kb`` reproduces torch's product."""
    n = w.shape[0]
    zero = np.zeros(1, w.dtype)[0]
    idx = np.empty(n + LANES, np.int32)
    part = np.empty(w.shape[1], w.dtype)
    for b in range(z.shape[0]):
        ne = support(z[b], idx, zero)
        _recurrent(idx, ne, z[b], w, kb, out[b], part, zero)


@njit(cache=True, parallel=True)
def forward(
    c, w, alpha, oma, rho, omr, b0, beta, v0, z0, bs0, r0, mask, consts,
    z_out, v_out, b_out, i_out, a_out, s_out, al_out, v_last, b_last, r_last,
    record_vb, record_i, keep, tri_gamma, kb,
):  # pragma: no cover - compiled
    """The whole forward time loop, one sample per parallel iteration.

    The recurrent current is summed over blocks of ``kb`` neurons (:func:`_recurrent`), the
    order in which the machine's BLAS sums the reference's ``z_{t-1} @ W_rec`` (found at run
    time, :mod:`.lsnn_event`).

    ``consts = [dt, n_refr, 1, 0, GAP_BLOCKED]`` in the arrays' dtype; ``mask`` ``[N]`` (0/1) multiplies the
    spikes (and so the surrogate's derivative) of every step. ``z_out`` receives the spikes. The
    traces are written only when asked (else they may have a zero-length time axis): ``v_out``
    and ``b_out`` (``record_vb``), ``i_out`` (``record_i``) and, with ``keep``, what
    the backward pass needs of the surrogate:

    * triangular surrogate (``tri_gamma[0] > 0``): ``s_out`` only, the relative gap
      ``s_t = (v_t - A_t) / A_t`` where a spike is allowed and ``GAP_BLOCKED`` (outside the
      support ``|s| < 1``) where it is not (refractory or masked). With the spikes this is all
      the backward kernel needs: it recomputes ``b_t`` (unless ``b_out`` holds it), ``A_t`` and
      the derivative. One ``[T, B, N]`` trace instead of four (``b_t``, ``A_t``, ``s_t``, the
      derivative).
    * any other surrogate: ``a_out``, ``s_out`` and the ``al_out`` mask of allowed steps (the
      derivative is then evaluated by torch).

    The element-wise loop is branch-free (it vectorises); multiplying or dividing by ``dt = 1``
    is exact, so one code path serves every ``dt``.
    """
    t_steps, batch, n = c.shape
    dt, n_refr, one, zero = consts[0], consts[1], consts[2], consts[3]
    gamma = tri_gamma[0]
    tri = gamma > zero
    blocked = consts[4]
    for bi in prange(batch):
        v = v0[bi].copy()
        z = z0[bi].copy()
        b = bs0[bi].copy()
        r = r0[bi].copy()
        rec = np.empty(n, c.dtype)
        a = np.empty(n, c.dtype)
        s = np.empty(n, c.dtype)
        al = np.empty(n, c.dtype)
        cur = np.empty(n, c.dtype)
        part = np.empty(n, c.dtype)
        idx = np.empty(n, np.int32)
        ne = support(z, idx, zero)
        for t in range(t_steps):
            # z_{t-1} @ W_rec: the rows of the neurons that spiked, ascending, block by block
            _recurrent(idx, ne, z, w, kb, rec, part, zero)
            if t + 1 < t_steps:  # the rows of the next step (see prefetch_row)
                prefetch_row(c[t + 1, bi])
                prefetch_row(z_out[t + 1, bi])
                if keep:
                    prefetch_row(s_out[t + 1, bi])
                    if not tri:
                        prefetch_row(a_out[t + 1, bi])
                        prefetch_row(al_out[t + 1, bi])
                if record_vb:
                    prefetch_row(v_out[t + 1, bi])
                    prefetch_row(b_out[t + 1, bi])
                if record_i:
                    prefetch_row(i_out[t + 1, bi])
            ct = c[t, bi]
            zo = z_out[t, bi]
            for k in range(n):
                zk = z[k]
                bk = rho[k] * b[k] + omr[k] * zk
                ak = b0[k] + beta[k] * bk
                ck = ct[k] + rec[k]
                vk = alpha[k] * v[k] + oma[k] * ck - zk * ak * dt
                allowed = (one if r[k] <= zero else zero) * mask[k]
                sk = (vk - ak) / ak
                zn = (one if sk > zero else zero) * allowed / dt
                rk = r[k] + n_refr * zn - one
                r[k] = min(max(rk, zero), n_refr)
                v[k] = vk
                b[k] = bk
                z[k] = zn
                a[k] = ak
                s[k] = sk
                al[k] = allowed
                cur[k] = ck
            zo[:] = z  # after the loop: z_out may be c itself (the no-grad path reuses it)
            if keep:
                if tri:  # the relative gap, blocked where no spike is allowed
                    so = s_out[t, bi]
                    for k in range(n):
                        so[k] = s[k] if al[k] > zero else blocked
                else:
                    a_out[t, bi] = a
                    s_out[t, bi] = s
                    al_out[t, bi] = al
            if record_vb:
                v_out[t, bi] = v
                b_out[t, bi] = b
            if record_i:
                i_out[t, bi] = cur
            ne = support(z, idx, zero)
        v_last[bi] = v
        b_last[bi] = b
        r_last[bi] = r


#: Steps of ``x_t^T dL/dI_t`` the backward kernel adds into ``dL/dW_in`` in one pass.
_WIN = 8


@njit(cache=True, fastmath={"contract"})
def _add_window(gwin, xw, g0, g1, g2, g3, g4, g5, g6, g7):  # pragma: no cover - compiled
    """``gwin[i] += sum_s xw[s, i] g_s`` over the eight steps of a window, one pass per row of
    ``gwin`` (each row is read and written once per window instead of once per step). Rows of
    ``xw`` past the window's end are zero and their ``g_s`` a zero row. The sum is a tree of
    depth four as written (contraction into fused multiply-adds only: with reassociation LLVM
    turned it into a chain of eight dependent ones, measured 0.6 ms slower per pass at d_in 40)."""
    n = gwin.shape[1]
    for i in range(gwin.shape[0]):
        row = gwin[i]
        a0, a1, a2, a3 = xw[0, i], xw[1, i], xw[2, i], xw[3, i]
        a4, a5, a6, a7 = xw[4, i], xw[5, i], xw[6, i], xw[7, i]
        for k in range(n):
            row[k] += ((a0 * g0[k] + a1 * g1[k]) + (a2 * g2[k] + a3 * g3[k])) + (
                (a4 * g4[k] + a5 * g5[k]) + (a6 * g6[k] + a7 * g7[k])
            )


@njit(cache=True)
def _flush_window(gwin, xw, win, zero_row, slots):  # pragma: no cover - compiled
    """Add the ``slots`` filled steps of the window (``win[s]``: the ``dL/dI`` of slot ``s``)."""
    for s in range(slots, _WIN):
        for i in range(xw.shape[1]):
            xw[s, i] = 0
    _add_window(
        gwin, xw, win[0], win[1] if slots > 1 else zero_row, win[2] if slots > 2 else zero_row,
        win[3] if slots > 3 else zero_row, win[4] if slots > 4 else zero_row, win[5] if slots > 5 else zero_row,
        win[6] if slots > 6 else zero_row, win[7] if slots > 7 else zero_row,
    )


#: The backward kernel takes the vectorised pass over every neuron at a step whose surrogate
#: support holds more than ``1 / _DENSE_SUPPORT`` of them (12.5 %): measured on captured
#: arguments, faster from about that density (fresh layers, 20-35 %), slower below (trained
#: ECG layers, 7-8 %).
_DENSE_SUPPORT = 8


@njit(cache=True, fastmath={"contract"})
def _add_spike_rows(gw, evflat, ev_off, total, gbuf, zflat, cnt_j, t_list, z_list):  # pragma: no cover - compiled
    """``gw[j] += sum_t z_{t-1, j} gbuf[t]`` over one sample's spikes, neuron by neuron.

    ``evflat[:total]`` holds the spiking neurons of every step (step ``t``'s list from
    ``ev_off[t]`` up to ``ev_off[t - 1]``, steps stored from ``T - 1`` down to 0), ``zflat`` their
    spike values, ``gbuf[t]`` the step's ``dL/dI``. The lists are regrouped by neuron (a counting
    sort into ``t_list``/``z_list``, steps still descending), then each spiking neuron's row of
    ``gw`` takes its steps' rows, four per pass: ``(((row + z0 g0) + z1 g1) + z2 g2) + z3 g3``,
    the same chain of multiply-adds, in the same order, as adding them one step at a time (so the
    same bits).
    A row is loaded and stored once per four steps instead of once per spike; measured on captured
    arguments at 10 % spikes, 1.5-2 ms faster per backward pass than adding each step's spikes
    as the step is reached.
    """
    t_steps, n = gbuf.shape
    for j in range(n + 1):
        cnt_j[j] = 0
    for p in range(total):
        cnt_j[evflat[p] + 1] += 1
    for j in range(n):
        cnt_j[j + 1] += cnt_j[j]
    # cnt_j[j]: where neuron j's entries start; advanced while filling, it ends where they end
    for t in range(t_steps - 1, -1, -1):
        hi = ev_off[t - 1] if t > 0 else total
        for p in range(ev_off[t], hi):
            j = evflat[p]
            t_list[cnt_j[j]] = t
            z_list[cnt_j[j]] = zflat[p]
            cnt_j[j] += 1
    start = 0
    for j in range(n):
        end = cnt_j[j]
        row = gw[j]
        e = start
        while e + 4 <= end:
            z0_, z1_, z2_, z3_ = z_list[e], z_list[e + 1], z_list[e + 2], z_list[e + 3]
            g0, g1, g2, g3 = gbuf[t_list[e]], gbuf[t_list[e + 1]], gbuf[t_list[e + 2]], gbuf[t_list[e + 3]]
            for k in range(n):
                row[k] = row[k] + z0_ * g0[k] + z1_ * g1[k] + z2_ * g2[k] + z3_ * g3[k]
            e += 4
        while e < end:
            z0_ = z_list[e]
            g0 = gbuf[t_list[e]]
            for k in range(n):
                row[k] += z0_ * g0[k]
            e += 1
        start = end


@njit(cache=True, parallel=True)
def backward(
    w, z0, v0, bs0, z_all, a_all, da_all, s_all, v_all, b_all, i_all,
    alpha, oma, rho, omr, beta, b0v, consts, tri_gamma, g_z_out, g_v_out, g_b_out,
    gi_all, g_w, g_alpha, g_rho, g_b0, g_beta, g_v0, g_z0, g_bs0, x_all, g_win,
    need_w, need_alpha, need_rho, need_q, need_beta, need_z0, need_win,
):  # pragma: no cover - compiled
    """The whole reverse-time pass (the adjoint recursion of :mod:`.lsnn_fused`), per chunk.

    With the triangular surrogate (``da_all`` with no time steps) ``s_all`` is the forward
    kernel's gap trace and ``a_all`` is empty: the support of step ``t`` is ``|s_t| < 1``, and
    ``A_t`` (from ``b_t`` and ``b0v``) is recomputed for every neuron of the step in one
    vectorised loop and the derivative (``tri_gamma[0]``) on the support only, with the forward
    kernel's operations. ``b_t`` is read from ``b_all``, or, when that has no time steps,
    recomputed for the whole sample before its reverse-time loop (:func:`_b_trace`: a
    thread-local ``[T, N]`` trace, read from cache, in place of a ``[T, B, N]`` one the forward
    kernel would write and this one read back from memory).
    ``g_z_out`` has ``T`` steps, 1 (the same gradient at every step: a time average's) or 0;
    ``g_v_out``/``g_b_out`` ``T`` (traces), 1 (last value
    only) or 0 (no gradient). ``g_w`` ``[C, N, N]`` (``[1, N, N]``, unused, without ``need_w``) and
    ``g_alpha``.. ``g_beta`` ``[C, N]`` get one partial sum per chunk (set to zero here first: they
    may arrive uninitialised). ``gi_all`` (``dL/dI``, the gradient of the input currents) is
    written only when it has ``T`` steps; with ``need_win`` the gradient of ``W_in`` is summed
    here instead, ``g_win[C, d_in, N] += x_t^T dL/dI_t`` from ``x_all`` ``[T, B, d_in]``, eight
    steps per pass over ``g_win`` (:func:`_add_window`; windows end at ``t = 0``, the same for
    every sample: a fixed order).

    Sparsity: ``u = dL/dz_t * D_t`` lives on the support ``S_t`` of ``D_t``; ``-dL/dA_t`` on
    ``S_t`` and the spikes of ``t - 1``; ``dL/dz_{t-1}`` (the masked product with ``W_rec^T``)
    is formed only on ``S_{t-1}``, the only place it is used (all of it at ``t = 0`` when
    ``need_z0``). Only the leaky adjoints of ``v`` and ``b`` and ``g_I`` are dense (and ``u`` at
    a step whose support is wide, where one vectorised pass over all neurons is cheaper than the
    indexed loop: :data:`_DENSE_SUPPORT`). ``dL/dW_rec = sum_t z_{t-1}^T g_I,t`` touches only the
    rows of neurons that spiked: each sample keeps its steps' spike lists and ``g_I`` rows and adds
    them after its reverse-time loop, neuron by neuron (:func:`_add_spike_rows`). Contraction
    and reassociation are allowed here (a fixed order once compiled: the same bits for any
    thread count).
    """
    t_steps, batch, n = z_all.shape
    dt, zero = consts[0], consts[3]
    n_chunk = g_alpha.shape[0]
    tz, tv, tb = g_z_out.shape[0], g_v_out.shape[0], g_b_out.shape[0]
    keep_gi = gi_all.shape[0] == t_steps
    recompute = da_all.shape[0] == 0
    one = consts[2]
    gamma = tri_gamma[0]
    d_in = x_all.shape[2]
    own_b = recompute and b_all.shape[0] == 0  # b recomputed here (_b_trace)
    # the vectorised pass over a wide support covers the common case only: triangle, dt = 1, an
    # outer gradient of the spikes, no gradient of b0 or beta
    dense_support = recompute and dt == one and tz > 0 and not need_q and not need_beta
    for ch in prange(n_chunk):
        lo = (ch * batch) // n_chunk
        hi = ((ch + 1) * batch) // n_chunk
        gw = g_w[ch] if need_w else g_w[0]  # one unused [N, N] block without need_w
        ga, gr, gq, gbe = g_alpha[ch], g_rho[ch], g_b0[ch], g_beta[ch]
        # the chunk's partial sums start from zero here, on the thread that adds into them
        # (the caller allocates them uninitialised)
        if need_w:
            for i in range(n):
                for k in range(n):
                    gw[i, k] = zero
        for k in range(n):
            ga[k] = zero
            gr[k] = zero
            gq[k] = zero
            gbe[k] = zero
        for i in range(g_win.shape[1]):
            for k in range(n):
                g_win[ch, i, k] = zero
        carry = np.empty(n, z_all.dtype)
        g_next = np.empty(n, z_all.dtype)
        p_next = np.empty(n, z_all.dtype)
        g_t = np.empty(n, z_all.dtype)
        p_t = np.empty(n, z_all.dtype)
        # dL/dI of the steps of the current dL/dW_in window (slot 0 only without one)
        gi_win = np.empty((_WIN, n), z_all.dtype)
        xw = np.zeros((_WIN, d_in), z_all.dtype)
        zero_row = np.zeros(n, z_all.dtype)
        gwin = g_win[ch]
        s_cur = np.empty(n, np.int32)
        s_prev = np.empty(n, np.int32)
        # the spikes of every step of the sample, packed (step t's list from ev_off[t]), with
        # their values and the step's g_I row: dL/dW_rec is summed from them after the sample's
        # reverse-time loop (_add_spike_rows); without need_w only one step's list is kept
        evflat = np.empty((t_steps * n if need_w else n) + LANES, np.int32)
        ev_off = np.empty(t_steps + 1, np.int64)
        zflat = np.empty(t_steps * n if need_w else 0, z_all.dtype)
        gbuf = np.empty((t_steps if need_w else 0, n), z_all.dtype)
        cnt_j = np.empty(n + 1, np.int64)
        t_list = np.empty(t_steps * n if need_w else 0, np.int32)
        z_list = np.empty(t_steps * n if need_w else 0, z_all.dtype)
        a_own = np.empty(n, z_all.dtype)
        b_own = np.empty((t_steps if own_b else 0, n), z_all.dtype)
        for bi in range(lo, hi):
            slot = 0
            if own_b:
                _b_trace(b_own, bs0[bi], z_all, z0, bi, rho, omr)
            for k in range(n):
                carry[k] = zero
                g_next[k] = zero
                p_next[k] = zero
            if recompute:
                n_cur = gap_support(s_all[t_steps - 1, bi], s_cur, one)
            else:
                n_cur = support(da_all[t_steps - 1, bi], s_cur, zero)
            off = 0
            for t in range(t_steps - 1, -1, -1):
                zp = z_all[t - 1, bi] if t > 0 else z0[bi]
                ev = evflat[off:]
                if t > 1:  # the rows step t - 1 reads that this step does not (see prefetch_row)
                    prefetch_row(z_all[t - 2, bi])
                    if recompute:
                        prefetch_row(s_all[t - 2, bi])
                        if not own_b:
                            prefetch_row(b_all[t - 1, bi])
                    else:
                        prefetch_row(da_all[t - 2, bi])
                        prefetch_row(a_all[t - 1, bi])
                        prefetch_row(s_all[t - 1, bi])
                    if tz == t_steps:
                        prefetch_row(g_z_out[t - 1, bi])
                    if tv == t_steps:
                        prefetch_row(g_v_out[t - 1, bi])
                    if tb == t_steps:
                        prefetch_row(g_b_out[t - 1, bi])
                    if keep_gi:
                        prefetch_row(gi_all[t - 1, bi])
                    if need_win:
                        prefetch_row(x_all[t - 1, bi])
                    if need_beta and not recompute:
                        prefetch_row(b_all[t - 1, bi])
                    if need_alpha:
                        prefetch_row(v_all[t - 2, bi])
                        prefetch_row(i_all[t - 1, bi])
                    if need_rho:
                        prefetch_row(b_all[t - 2, bi])
                s = s_all[t, bi]
                gi = gi_win[slot] if need_win or not keep_gi else gi_all[t, bi]
                # one dense pass: A_t (recomputed for every neuron: S_{t-1} below needs it too; da
                # is then not read), alpha g_{t+1} and rho p_{t+1}
                if recompute:
                    a, da = a_own, a_own
                    bt_ = b_own[t] if own_b else b_all[t, bi]
                    for k in range(n):
                        a[k] = _threshold(b0v[k], beta[k], bt_[k])
                        g_t[k] = g_next[k] * alpha[k]
                        p_t[k] = p_next[k] * rho[k]
                else:
                    a, da = a_all[t, bi], da_all[t, bi]
                    for k in range(n):
                        g_t[k] = g_next[k] * alpha[k]
                        p_t[k] = p_next[k] * rho[k]
                # g_t = D_t dL/dz_t + alpha g_{t+1} (+ outer gradient of v_t), on S_t here;
                # carry (dL/dz_t before the outer gradient) is read on S_t only, rewritten on S_{t-1}
                # below; without an outer gradient gzt is a placeholder of the right type, never read
                gzt = g_z_out[t if tz == t_steps else 0, bi] if tz > 0 else carry
                bt = b_all[t, bi] if need_beta else zp
                if dense_support and n_cur * _DENSE_SUPPORT > n:
                    # a wide support (fresh layers: 20-35 % of the neurons): one vectorised pass
                    # over every neuron, zero off the support, in place of the indexed loop below
                    # (the same values; 2-5 ms faster per pass at 30 % support, captured arguments)
                    for k in range(n):
                        sk = s[k]
                        # _triangle_slope's operations, written out: through the call the
                        # loop did not vectorise (measured 15 % slower than the indexed loop)
                        dk = gamma * max(one - abs(sk), zero) / a[k]
                        uk = (carry[k] + gzt[k]) * dk
                        uk = uk if abs(sk) < one else zero
                        g_t[k] += uk
                        p_t[k] -= (uk + uk * sk) * beta[k]
                    n_cur = 0
                for e in range(n_cur):
                    k = s_cur[e]
                    if recompute:  # the derivative D_t, on the support only (at narrow steps a dense pass is slower)
                        dk = _triangle_slope(gamma, s[k], a[k], one, zero)
                        dk = dk / dt if dt != one else dk
                    else:
                        dk = da[k]
                    uk = (carry[k] + gzt[k] if tz > 0 else carry[k]) * dk
                    g_t[k] += uk
                    # p_t = rho p_{t+1} + beta dL/dA_t (+ outer gradient of b_t): -dL/dA_t = q is
                    # u (1 + s_t) on S_t (here) plus dt g_t z_{t-1} at the spikes of t - 1 (below)
                    _threshold_adjoint(k, uk + uk * s[k], p_t, beta, gq, gbe, bt, need_q, need_beta)
                if tv == t_steps or (tv == 1 and t == t_steps - 1):
                    gvt = g_v_out[t if tv == t_steps else 0, bi]
                    for k in range(n):
                        g_t[k] += gvt[k]
                # the spikes of t - 1 and the support S_{t-1}, in one pass (at t = 0 the support is
                # every neuron when the initial spikes need a gradient, else none)
                if t > 0:
                    if recompute:
                        n_ev, n_prev = spikes_and_gap_support(zp, s_all[t - 1, bi], ev, s_prev, zero, one)
                    else:
                        n_ev = support(zp, ev, zero)
                        n_prev = support(da_all[t - 1, bi], s_prev, zero)
                else:
                    n_ev = support(zp, ev, zero)
                    n_prev = n if need_z0 else 0
                    for k in range(n_prev):
                        s_prev[k] = k
                for e in range(n_ev):
                    k = ev[e]
                    if need_w:
                        zflat[off + e] = zp[k]
                    _threshold_adjoint(k, g_t[k] * zp[k] * dt, p_t, beta, gq, gbe, bt, need_q, need_beta)
                if tb == t_steps or (tb == 1 and t == t_steps - 1):
                    gbt = g_b_out[t if tb == t_steps else 0, bi]
                    for k in range(n):
                        p_t[k] += gbt[k]
                for k in range(n):
                    gi[k] = g_t[k] * oma[k]
                if need_win and keep_gi:
                    gi_all[t, bi][:] = gi
                # dL/dz_{t-1} = g_I W_rec^T - dt g_t A_t + (1 - rho) p_t, only on S_{t-1}
                # (two rows per dot product pass, sharing the loads of g_I: the same bits as one by one)
                e = 0
                while e + 2 <= n_prev:
                    k, k1 = s_prev[e], s_prev[e + 1]
                    carry[k], carry[k1] = dot2(
                        w[k], w[k1], gi, n,
                        omr[k] * p_t[k] - dt * g_t[k] * a[k], omr[k1] * p_t[k1] - dt * g_t[k1] * a[k1],
                    )
                    e += 2
                if e < n_prev:
                    k = s_prev[e]
                    carry[k] = dot(w[k], gi, n, omr[k] * p_t[k] - dt * g_t[k] * a[k])
                s_cur, s_prev = s_prev, s_cur
                n_cur = n_prev
                if need_w:  # keep g_I and the list of step t for dL/dW_rec (after the loop)
                    gb = gbuf[t]
                    for k in range(n):
                        gb[k] = gi[k]
                    ev_off[t] = off
                    off += n_ev
                if need_win:  # dL/dW_in += x_t^T dL/dI_t, eight steps per pass over dL/dW_in
                    xt = x_all[t, bi]
                    for i in range(d_in):
                        xw[slot, i] = xt[i]
                    slot += 1
                    if slot == _WIN or t == 0:
                        _flush_window(gwin, xw, gi_win, zero_row, slot)
                        slot = 0
                if need_alpha:  # dv_t/dalpha = v_{t-1} - I_t
                    vp = v_all[t - 1, bi] if t > 0 else v0[bi]
                    it = i_all[t, bi]
                    for k in range(n):
                        ga[k] += g_t[k] * (vp[k] - it[k])
                if need_rho:  # db_t/drho = b_{t-1} - z_{t-1}
                    bp = b_all[t - 1, bi] if t > 0 else bs0[bi]
                    for k in range(n):
                        gr[k] += p_t[k] * (bp[k] - zp[k])
                g_next, g_t = g_t, g_next
                p_next, p_t = p_t, p_next
            if need_w:  # dL/dW_rec += sum_t z_{t-1}^T g_I,t: per neuron that spiked
                _add_spike_rows(gw, evflat, ev_off, off, gbuf, zflat, cnt_j, t_list, z_list)
            for k in range(n):
                g_v0[bi, k] = g_next[k] * alpha[k]
                g_bs0[bi, k] = p_next[k] * rho[k]
                g_z0[bi, k] = carry[k] if need_z0 else zero


@njit(cache=True, fastmath={"contract"})
def _project(xr, w_in, out):  # pragma: no cover - compiled
    """``out = xr @ w_in`` for one row ``xr`` ``[d_in]``, each element summed from zero with one
    multiply-add per input feature in ascending order (contraction into fused multiply-adds
    allowed, reassociation not): the order in which MKL's float32 product sums on the CPUs this
    was measured on. Used only where :func:`project_rows` reproduced torch's product bit for bit
    (checked at run time, see :mod:`.lsnn_event`).

    Up to four features per pass over the row (``((out + x0 w0) + x1 w1) + ...``: the same chain
    of multiply-adds as one pass per feature), so that the row is loaded and stored once per four
    multiply-adds instead of once per multiply-add (15-30 % faster from ``d_in = 2`` on)."""
    n = out.shape[0]
    d_in = xr.shape[0]
    for k in range(n):
        out[k] = 0
    i = 0
    while i + 4 <= d_in:
        x0, x1, x2, x3 = xr[i], xr[i + 1], xr[i + 2], xr[i + 3]
        w0, w1, w2, w3 = w_in[i], w_in[i + 1], w_in[i + 2], w_in[i + 3]
        for k in range(n):
            out[k] = out[k] + x0 * w0[k] + x1 * w1[k] + x2 * w2[k] + x3 * w3[k]
        i += 4
    if i + 2 <= d_in:
        x0, x1 = xr[i], xr[i + 1]
        w0, w1 = w_in[i], w_in[i + 1]
        for k in range(n):
            out[k] = out[k] + x0 * w0[k] + x1 * w1[k]
        i += 2
    if i < d_in:
        x0 = xr[i]
        w0 = w_in[i]
        for k in range(n):
            out[k] = out[k] + x0 * w0[k]


@njit(cache=True, parallel=True)
def project_rows(x, w_in, out):  # pragma: no cover - compiled
    """``out = x @ w_in`` for ``x`` ``[M, d_in]``, ``w_in`` ``[d_in, N]``, ``out`` ``[M, N]``:
    :func:`_project` of every row, parallel over rows."""
    for r in prange(x.shape[0]):
        _project(x[r], w_in, out[r])


@njit(cache=True, parallel=True)
def reduce_chunks(parts, out):  # pragma: no cover - compiled
    """``out[i] = parts[0, i] + parts[1, i] + ...`` in chunk order, for 2-d ``[C, M]`` parts."""
    n_chunk, m = parts.shape
    for i in prange(m):
        acc = parts[0, i]
        for ch in range(1, n_chunk):
            acc += parts[ch, i]
        out[i] = acc
