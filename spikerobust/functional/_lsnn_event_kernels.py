"""numba kernels of the event-driven LSNN backend (imported lazily by :mod:`.lsnn_event`).

Every kernel works on NumPy views of contiguous CPU tensors and is specialised by numba for
float32 and float64; all arithmetic stays in the arrays' dtype (constants arrive as arrays of
that dtype, never as Python floats, which numba would promote to float64). Compiled code is
cached on disk (``cache=True``), next to this file or in numba's cache directory.

Determinism: the forward kernel is parallel over samples, which never interact. The backward
kernel is parallel over a fixed number of batch chunks (a function of ``B`` only); each chunk
accumulates its own partial weight and constant gradients, reduced afterwards in chunk order.
The result is the same bits for any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["forward", "backward", "reduce_chunks", "n_chunks"]

#: Number of batch chunks of the backward pass: fixed by the batch size only (determinism).
MAX_CHUNKS = 8


def n_chunks(batch: int) -> int:
    """Chunks the backward pass splits a batch of ``batch`` samples into."""
    return max(1, min(batch, MAX_CHUNKS))


@njit(cache=True, fastmath={"reassoc", "nsz"})
def _dot(row, vec, n, acc):  # pragma: no cover - compiled
    """``acc + sum_k row[k] * vec[k]``, reassociated (vectorised); a fixed order once compiled."""
    for k in range(n):
        acc += row[k] * vec[k]
    return acc


@njit(cache=True, parallel=True)
def forward(
    c, w, alpha, oma, rho, omr, b0, beta, v0, z0, bs0, r0, mask, consts,
    z_out, v_out, b_out, i_out, a_out, s_out, da_out, al_out, v_last, b_last, r_last,
    record_vb, record_i, keep, tri_gamma,
):  # pragma: no cover - compiled
    """The whole forward time loop, one sample per parallel iteration.

    ``consts = [dt, n_refr, 1, 0]`` in the arrays' dtype; ``mask`` ``[N]`` (0/1) multiplies the
    spikes (and so the surrogate's derivative) of every step. ``z_out`` receives the spikes; the
    traces (``v_out``, ``b_out``: ``record_vb``; ``i_out``: ``record_i``; ``a_out``, ``s_out``,
    ``al_out`` and, when ``tri_gamma[0] > 0``, the triangular surrogate's ``da_out``: ``keep``)
    only when asked, else they may have a zero-length time axis.
    """
    t_steps, batch, n = c.shape
    dt, n_refr, one, zero = consts[0], consts[1], consts[2], consts[3]
    unit_dt = dt == one
    gamma = tri_gamma[0]
    tri = gamma > zero
    for bi in prange(batch):
        v = v0[bi].copy()
        z = z0[bi].copy()
        b = bs0[bi].copy()
        r = r0[bi].copy()
        rec = np.empty(n, c.dtype)
        idx = np.empty(n, np.int64)
        ne = 0
        for k in range(n):
            if z[k] != zero:
                idx[ne] = k
                ne += 1
        for t in range(t_steps):
            # z_{t-1} @ W_rec: the rows of the neurons that spiked, in ascending order
            for k in range(n):
                rec[k] = zero
            for e in range(ne):
                j = idx[e]
                zj = z[j]
                wj = w[j]
                for k in range(n):
                    rec[k] += zj * wj[k]
            ct = c[t, bi]
            for k in range(n):
                zk = z[k]
                bk = rho[k] * b[k] + omr[k] * zk
                ak = b0[k] + beta[k] * bk
                cur = ct[k] + rec[k]
                vk = alpha[k] * v[k] + oma[k] * cur - zk * ak * dt
                allowed = (one if r[k] <= zero else zero) * mask[k]
                sk = (vk - ak) / ak
                zn = (one if sk > zero else zero) * allowed
                if not unit_dt:
                    zn = zn / dt
                rk = r[k] + n_refr * zn - one
                rk = max(rk, zero)
                r[k] = min(rk, n_refr)
                v[k] = vk
                b[k] = bk
                z[k] = zn
                z_out[t, bi, k] = zn
                if record_vb:
                    v_out[t, bi, k] = vk
                    b_out[t, bi, k] = bk
                if record_i:
                    i_out[t, bi, k] = cur
                if keep:
                    a_out[t, bi, k] = ak
                    s_out[t, bi, k] = sk
                    al_out[t, bi, k] = allowed
                    if tri:
                        d = gamma * max(one - abs(sk), zero) * allowed / ak
                        if not unit_dt:
                            d = d / dt
                        da_out[t, bi, k] = d
            ne = 0
            for k in range(n):
                if z[k] != zero:
                    idx[ne] = k
                    ne += 1
        v_last[bi] = v
        b_last[bi] = b
        r_last[bi] = r


@njit(cache=True, parallel=True)
def backward(
    w, z0, v0, bs0, z_all, a_all, da_all, s_all, v_all, b_all, i_all,
    alpha, oma, rho, omr, beta, consts, g_z_out, g_v_out, g_b_out,
    gi_all, g_w, g_alpha, g_rho, g_b0, g_beta, g_v0, g_z0, g_bs0,
    need_w, need_alpha, need_rho, need_q, need_beta, need_z0,
):  # pragma: no cover - compiled
    """The whole reverse-time pass (the adjoint recursion of :mod:`.lsnn_fused`), per chunk.

    ``g_z_out`` has ``T`` or 0 steps; ``g_v_out``/``g_b_out`` ``T`` (traces), 1 (last value
    only) or 0 (no gradient). ``g_w`` ``[C, N, N]`` and ``g_alpha``.. ``g_beta`` ``[C, N]`` get
    one partial sum per chunk. ``dL/dz_{t-1}`` is formed only where ``D_{t-1} != 0`` (it is
    only ever used multiplied by it), except at ``t = 0`` when ``need_z0``.
    """
    t_steps, batch, n = z_all.shape
    dt, zero = consts[0], consts[3]
    n_chunk = g_w.shape[0]
    tz, tv, tb = g_z_out.shape[0], g_v_out.shape[0], g_b_out.shape[0]
    for ch in prange(n_chunk):
        lo = (ch * batch) // n_chunk
        hi = ((ch + 1) * batch) // n_chunk
        gw = g_w[ch]
        ga, gr, gq, gbe = g_alpha[ch], g_rho[ch], g_b0[ch], g_beta[ch]
        carry = np.empty(n, z_all.dtype)
        g_next = np.empty(n, z_all.dtype)
        p_next = np.empty(n, z_all.dtype)
        g_t = np.empty(n, z_all.dtype)
        p_t = np.empty(n, z_all.dtype)
        q_t = np.empty(n, z_all.dtype)
        idx = np.empty(n, np.int64)
        for bi in range(lo, hi):
            for k in range(n):
                carry[k] = zero
                g_next[k] = zero
                p_next[k] = zero
            for t in range(t_steps - 1, -1, -1):
                zp = z_all[t - 1, bi] if t > 0 else z0[bi]
                da, s, a = da_all[t, bi], s_all[t, bi], a_all[t, bi]
                gi = gi_all[t, bi]
                for k in range(n):
                    gz = carry[k]
                    if tz > 0:
                        gz += g_z_out[t, bi, k]
                    u = gz * da[k]
                    g = u + g_next[k] * alpha[k]
                    if tv == t_steps:
                        g += g_v_out[t, bi, k]
                    elif tv == 1 and t == t_steps - 1:
                        g += g_v_out[0, bi, k]
                    q = u + u * s[k] + g * zp[k] * dt  # -dL/dA_t
                    p = p_next[k] * rho[k] - q * beta[k]
                    if tb == t_steps:
                        p += g_b_out[t, bi, k]
                    elif tb == 1 and t == t_steps - 1:
                        p += g_b_out[0, bi, k]
                    g_t[k] = g
                    q_t[k] = q
                    p_t[k] = p
                    gi[k] = g * oma[k]
                    carry[k] = omr[k] * p - dt * g * a[k]
                # dL/dz_{t-1} through W_rec, only where D_{t-1} != 0 (all of it at t = 0 if asked)
                if t > 0:
                    dprev = da_all[t - 1, bi]
                    ns = 0
                    for k in range(n):
                        if dprev[k] != zero:
                            idx[ns] = k
                            ns += 1
                    for e in range(ns):
                        k = idx[e]
                        carry[k] = _dot(w[k], gi, n, carry[k])
                elif need_z0:
                    for k in range(n):
                        carry[k] = _dot(w[k], gi, n, carry[k])
                # dL/dW_rec += z_{t-1}^T g_I: rows of the neurons that spiked at t-1
                if need_w:
                    for j in range(n):
                        zj = zp[j]
                        if zj != zero:
                            row = gw[j]
                            for k in range(n):
                                row[k] += zj * gi[k]
                if need_alpha:  # dv_t/dalpha = v_{t-1} - I_t
                    vp = v_all[t - 1, bi] if t > 0 else v0[bi]
                    it = i_all[t, bi]
                    for k in range(n):
                        ga[k] += g_t[k] * (vp[k] - it[k])
                if need_rho:  # db_t/drho = b_{t-1} - z_{t-1}
                    bp = b_all[t - 1, bi] if t > 0 else bs0[bi]
                    for k in range(n):
                        gr[k] += p_t[k] * (bp[k] - zp[k])
                if need_q:
                    for k in range(n):
                        gq[k] -= q_t[k]
                if need_beta:
                    bt = b_all[t, bi]
                    for k in range(n):
                        gbe[k] -= q_t[k] * bt[k]
                for k in range(n):
                    g_next[k] = g_t[k]
                    p_next[k] = p_t[k]
            for k in range(n):
                g_v0[bi, k] = g_next[k] * alpha[k]
                g_bs0[bi, k] = p_next[k] * rho[k]
                g_z0[bi, k] = carry[k]


@njit(cache=True, parallel=True)
def reduce_chunks(parts, out):  # pragma: no cover - compiled
    """``out[i] = parts[0, i] + parts[1, i] + ...`` in chunk order, for 2-d ``[C, M]`` parts."""
    n_chunk, m = parts.shape
    for i in prange(m):
        acc = parts[0, i]
        for ch in range(1, n_chunk):
            acc += parts[ch, i]
        out[i] = acc
