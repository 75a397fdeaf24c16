r"""Event-driven LSNN BPTT: compiled CPU kernels that compute on spikes.

An LSNN does far less work than a dense recurrent layer: trained networks spike in about a tenth
of the (neuron, step) pairs, and the triangular surrogate's derivative is zero outside
``|(v - A) / A| < 1``. :func:`lsnn_unroll_event` computes exactly what
:func:`~spikerobust.functional.lsnn_unroll` computes (the model of Bellec et al. 2018 as used by
Büchel et al. 2022), with two numba-compiled kernels that exploit this:

* **forward**: one kernel runs the whole time loop. The recurrent current ``z_{t-1} W_rec`` is
  the sum of the rows of ``W_rec`` belonging to the neurons that spiked at ``t - 1``, added in the
  order in which the machine's BLAS sums the reference's product with a 0/1 left operand:
  ascending, in blocks of ``kb`` neurons each summed from zero and then added in order (MKL's
  float32 ``[100, 256] @ [256, 256]`` uses two blocks of 128 on this project's machines; one block,
  the plain ascending sum, at most other shapes). ``kb`` is found at run time, once per shape and
  dtype, against torch's own product on one thread (:func:`_recurrent_block`; a
  ``RuntimeWarning`` where no block size reproduces it, and the plain ascending sum), and serves
  every thread count (a warning where torch's product sums otherwise on more threads). The element-wise
  update (adaptation, threshold, membrane, spike, refractory counter) is fused into the same loop
  over neurons, with the reference's operations in the reference's order: spikes and traces are
  bit-identical to the reference path.
* **backward**: one kernel runs the reverse-time adjoint recursion written out in
  :mod:`spikerobust.functional.lsnn_fused`. The gradient with respect to the spikes ``z_{t-1}`` is
  only ever used multiplied by the surrogate's derivative ``D_{t-1}``, so the product
  ``g_I W_rec^T`` is formed only at the neurons where ``D_{t-1} != 0`` (a masked product, one
  dot product per such neuron); ``dL/dW_rec = sum_t z_{t-1}^T g_{I_t}`` adds ``g_{I_t}`` into the
  rows of the neurons that spiked; ``dL/dW_in = sum_t x_t^T g_{I_t}`` is added once per window of
  eight steps (one pass over ``dL/dW_in`` per window); the gradients of ``alpha``, ``rho``, ``b0``
  and ``beta`` (and through them of ``tau_mem``, ``tau_adapt``, ``b0`` and ``beta_adapt``) are
  summed in the same pass.
* **traces**: with the triangular surrogate the forward kernel keeps, besides the spikes, only
  the relative gap ``s_t = (v_t - A_t) / A_t`` (marked outside the support where no spike is
  allowed); the backward kernel recomputes the adaptation ``b_t`` of each sample from its initial
  value and the spikes (into a ``[T, N]`` buffer of its own, before the sample's reverse-time
  loop), then the threshold and the surrogate's derivative (the threshold in one vectorised loop
  per step, the derivative on the support only), all with the forward kernel's operations, and
  finds the support ``|s_t| < 1``. Writing traces costs about as much as the arithmetic at these
  spike rates: one ``[T, B, N]`` trace instead of four (``b``, ``A``, ``s``, the derivative);
  ``b`` is still kept when its trace is asked for or the constants need gradients.

* **input currents**: ``x @ W_in`` is computed before the time loop, by a compiled kernel for
  narrow inputs (``d_in <= 8``; the ECG task has 2) where it reproduces torch's product bit for
  bit on the machine (checked once per shape, dtype and thread count; :func:`project`), by torch
  otherwise; its gradients come from the backward kernel.
* **memory**: both kernels walk their ``[T, B, N]`` traces one ``N``-long row per step and
  sample, rows ``B N`` elements apart, which the hardware prefetchers do not follow; each step asks
  for the next step's rows ahead of time (software prefetch), which took 15-20 % off both kernels.
  The index lists of spikes and supports are found 16 neurons at a time with a vector compress
  where the CPU has AVX-512.

Work per step and sample is therefore about ``N`` times (spikes + surrogate support + ~30
element-wise operations) instead of the ``2 N^2`` of two dense products: below the dense
matrix-product floor at the spike rates LSNNs run at (see the benchmark table in the README).

Both kernels are parallel over the batch (numba ``prange``, as many threads as
``torch.get_num_threads()``, on PyTorch's own OpenMP runtime where numba can use it, so that the
kernels' threads are torch's and no second pool competes with them) and deterministic: the
forward pass treats each sample on its own; the backward pass splits the batch into a fixed number of chunks (depending on the batch size
only), each accumulating its own partial weight gradients, summed in chunk order. The same inputs
give the same bits with one thread or two.

Compilation: the kernels are compiled on first use for each dtype (float32, float64) and cached
on disk (``numba``'s ``cache=True``); the first call of a fresh install spends tens of seconds
compiling, later processes load the cache in well under a second.

Scope: CPU tensors; a surrogate with a closed-form :meth:`~spikerobust.functional.Surrogate.derivative`
(others raise, naming the ``"reference"`` backend); neuron constants that are Python floats,
0-d tensors or ``[N]`` tensors. Under ``torch.func`` transforms (``vmap``, ``grad``) and while
``torch.compile`` traces, the dispatch in :func:`~spikerobust.functional.lsnn_unroll` uses the
reference path instead, as for ``"fused"``; other unsupported inputs (CUDA tensors, constants of
another shape, numba not installed) run the fused backend. First-order gradients only.

Shape:
    - ``x``: ``[T, B, d_in]`` (time first); ``w_in``: ``[d_in, N]``; ``w_rec``: ``[N, N]``
    - spikes and traces: ``[T, B, N]``; state tensors: ``[B, N]``

Examples:
    >>> import torch
    >>> from spikerobust.functional import LSNNParams, lsnn_unroll
    >>> x = torch.randn(20, 3, 2)
    >>> w_in, w_rec = torch.randn(2, 8), 0.3 * torch.randn(8, 8)
    >>> z_event, _, _ = lsnn_unroll(x, LSNNParams(), w_in, w_rec, backend="event")
    >>> z_ref, _, _ = lsnn_unroll(x, LSNNParams(), w_in, w_rec, backend="reference")
    >>> bool(torch.equal(z_event, z_ref))
    True

References:
    Bellec, Salaj, Subramoney, Legenstein, Maass. "Long short-term memory and learning-to-learn in
    networks of spiking neurons", NeurIPS 2018.
    Büchel, Faber, Muir. "Network insensitivity to parameter noise via adversarial regularization",
    ICLR 2022.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
import warnings
from typing import Optional, Sequence

import torch

from .lsnn_core import LSNNParams, hand_written_unroll, save_with_constants, saved_with_constants
from .surrogate import Triangle

__all__ = ["numba_available", "event_unsupported_reason", "lsnn_unroll_event", "project"]

_CONSTANTS = ("tau_mem", "tau_adapt", "beta_adapt", "b0")


@functools.lru_cache(maxsize=None)
def numba_available() -> bool:
    """Whether numba can be imported (the event backend needs it)."""
    return importlib.util.find_spec("numba") is not None


#: Serialises kernel launches: numba's ``workqueue`` threading layer is not thread-safe.
_LAUNCH = threading.Lock()

#: The process that started numba's OpenMP threading layer, once it has. GNU OpenMP is not
#: fork-safe: numba terminates a forked child at its first parallel launch (even on one thread),
#: so a child of that process runs the fused backend instead (:func:`event_unsupported_reason`).
_OPENMP_PID: Optional[int] = None


@functools.lru_cache(maxsize=None)
def _kernels():
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ:
        # OpenMP first: with PyTorch's OpenMP build numba's "omp" layer runs on the same runtime
        # and the same threads as torch. A separate pool ("workqueue", "tbb") competes with
        # torch's OpenMP threads, which keep spinning on the cores for a while after each torch
        # operation: with two threads the robust step measured 1.7-1.8x faster than with one on the
        # shared runtime, 1.00x with "workqueue" (benchmarks/bench_robust_step.py --thread-sweep).
        # The shared runtime's thread count is restored after every launch (see _launch).
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
    from . import _lsnn_event_kernels

    return _lsnn_event_kernels


def event_unsupported_reason(
    params: LSNNParams, tensors: Sequence[torch.Tensor] = (), n: Optional[int] = None
) -> Optional[str]:
    """Why the event kernels cannot run these inputs (beyond the fused backend's reasons), or ``None``.

    Args:
        params: neuron constants.
        tensors: the inputs (checked for device and dtype).
        n: number of neurons, to check the constants' shapes (skipped when ``None``).
    """
    if not numba_available():
        return "numba is not installed"
    if _OPENMP_PID is not None and _OPENMP_PID != os.getpid():
        return ("this process was forked from one that ran the kernels on OpenMP, which is not fork-safe "
                "(start worker processes with 'spawn' to use the event backend in them)")
    tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
    consts = [getattr(params, k) for k in _CONSTANTS]
    for t in tensors + [k for k in consts if isinstance(k, torch.Tensor)]:
        if t.device.type != "cpu":
            return f"tensors on {t.device} (the event kernels run on the CPU)"
        if t.dtype not in (torch.float32, torch.float64):
            return f"dtype {t.dtype} (float32 and float64 only)"
        if t.is_sparse or t.layout != torch.strided:
            return "non-strided tensors"
    for name, k in zip(_CONSTANTS, consts):
        if isinstance(k, torch.Tensor) and k.dim() > 0 and (k.dim() > 1 or (n is not None and k.shape[0] != n)):
            return f"{name} of shape {tuple(k.shape)} (scalars or [N] only)"
    return None


def _launch(kernel, *args) -> None:
    """Run a compiled kernel on ``torch.get_num_threads()`` threads (at most numba's pool), one
    launch at a time, and leave torch's thread count as it was (numba's OpenMP layer sets the
    shared runtime's count to its own pool size when it starts)."""
    import numba

    global _OPENMP_PID
    with _LAUNCH:
        threads = torch.get_num_threads()
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            kernel(*args)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        if _OPENMP_PID is None and numba.threading_layer() == "omp":
            _OPENMP_PID = os.getpid()


#: Widest input (``d_in``) for which :func:`project` uses the compiled kernel: measured against
#: torch's (MKL's) product for ``[10^4, d_in] @ [d_in, 256]`` in float32, the kernel took 0.47 vs
#: 1.08 ms at d_in = 2, 0.60 vs 0.89 at 4 and 0.93 vs 1.13 at 8 on one thread (0.25 vs 0.52,
#: 0.31 vs 0.62 and 0.43 vs 0.63 ms on two), and was slower from 16 on.
PROJECT_MAX_D_IN = 8

#: Byte alignment of the operands :func:`_projection_reproduces_torch` checks (torch's CPU
#: allocator aligns every tensor it allocates to 64 bytes).
_ALIGN = 64


@functools.lru_cache(maxsize=64)
def _projection_reproduces_torch(m: int, d_in: int, n: int, dtype: torch.dtype, threads: int) -> bool:
    """Whether :func:`._lsnn_event_kernels.project_rows` (from zero, one multiply-add per input
    feature in ascending order) gives the bits of torch's ``x @ w_in`` for
    ``[m, d_in] @ [d_in, n]`` in ``dtype`` on ``threads`` threads, checked on random data of that
    shape: a BLAS library chooses its kernel (and so its order of summation) by shape, data type,
    CPU and thread count, never by value, so one check stands for every input of the shape."""
    g = torch.Generator().manual_seed(m * 1009 + d_in * 31 + n)
    x = torch.randn(m, d_in, generator=g, dtype=dtype)
    w_in = torch.randn(d_in, n, generator=g, dtype=dtype)
    got = torch.empty(m, n, dtype=dtype)
    _launch(_kernels().project_rows, x.numpy(), w_in.numpy(), got.numpy())
    return bool(torch.equal(x @ w_in, got))


def project(x: torch.Tensor, w_in: torch.Tensor) -> torch.Tensor:
    """The input currents ``x @ w_in`` (no graph), bit for bit torch's product.

    For a narrow input (``d_in <= PROJECT_MAX_D_IN``; the ECG task's is 2) in a shape where the
    compiled :func:`._lsnn_event_kernels.project_rows` reproduced torch's product on this machine
    (:func:`_projection_reproduces_torch`, once per shape, dtype and thread count) it computes them
    itself, about twice as fast: MKL's product with two or four input features spends most of its
    time on a generic path. Elsewhere (wider inputs, float64, whose MKL product sums in another
    order, or a BLAS that does; operands that are not contiguous and 64-byte aligned, the layout
    the check ran on) it is torch's ``x @ w_in``. Either way the currents, and so the spikes, are
    the reference backend's.

    Examples:
        >>> import torch
        >>> x, w_in = torch.randn(30, 4, 2), torch.randn(2, 16)
        >>> bool(torch.equal(project(x, w_in), x @ w_in))
        True
    """
    with torch.no_grad():
        # only for the layout the check measured (contiguous, 64-byte aligned as torch allocates):
        # BLAS libraries may take other paths for transposed or misaligned operands
        if (x.dim() == 3 and w_in.dim() == 2 and 0 < w_in.shape[0] <= PROJECT_MAX_D_IN
                and x.shape[-1] == w_in.shape[0] and x.dtype == w_in.dtype
                and x.dtype in (torch.float32, torch.float64)
                and x.device.type == "cpu" and w_in.device.type == "cpu" and x.shape[0] * x.shape[1] > 0
                and x.is_contiguous() and w_in.is_contiguous()
                and x.data_ptr() % _ALIGN == 0 and w_in.data_ptr() % _ALIGN == 0):
            t_steps, batch, d_in = x.shape
            n = w_in.shape[1]
            if _projection_reproduces_torch(t_steps * batch, d_in, n, x.dtype, torch.get_num_threads()):
                out = torch.empty(t_steps, batch, n, dtype=x.dtype)
                _launch(_kernels().project_rows, _np(x.reshape(t_steps * batch, d_in)), _np(w_in),
                        out.view(t_steps * batch, n).numpy())
                return out
        return x @ w_in


def _block_candidates(n: int) -> list:
    """Block sizes to try for :func:`_recurrent_block`, likeliest first: one block (the plain
    ascending sum), the blocks MKL's single-precision product was found to use on this project's
    machines (128 for ``N = 256``, 192 from ``N = 384``, halves such as 100 or 150, 127 for
    ``N = 255``), then every other size."""
    first = [n, 128, 192, 256, 64, 96, 160, 224, 32, -(-n // 2), -(-n // 3), -(-n // 4), n // 2, n // 2 - 1]
    seen, out = set(), []
    for kb in first + list(range(1, n)):
        if 1 <= kb <= n and kb not in seen:
            seen.add(kb)
            out.append(kb)
    return out


def _block_draws(batch: int, n: int, dtype: torch.dtype) -> list:
    """Two random ``(z, w)`` pairs, ``z`` ``[batch, n]`` 0/1 (30 and 70 % ones), ``w`` ``[n, n]``."""
    g = torch.Generator().manual_seed(batch * 7919 + n)
    draws = []
    for density in (0.3, 0.7):
        w = torch.randn(n, n, generator=g, dtype=dtype)
        draws.append(((torch.rand(batch, n, generator=g) < density).to(dtype), w))
    return draws


def _reproduces(draws: list, kb: int, wanted: list) -> bool:
    """Whether the kernel's block sum with ``kb`` gives ``wanted`` (torch's products) on ``draws``."""
    kern = _kernels()
    got = torch.empty_like(wanted[0])
    head = min(got.shape[0], 8)  # a wrong order shows in the first rows already: the full check only after them
    for rows in (head, got.shape[0]):
        for (z, w), want in zip(draws, wanted):
            kern.recurrent_rows(z[:rows].numpy(), w.numpy(), kb, got[:rows].numpy())
            if not torch.equal(got[:rows], want[:rows]):
                return False
    return True


@functools.lru_cache(maxsize=64)
def _recurrent_block(batch: int, n: int, dtype: torch.dtype) -> int:
    """The block size with which the forward kernel's recurrent current has the bits of torch's
    ``z @ w_rec`` on one thread, for ``z`` ``[batch, n]`` (0/1) and ``w_rec`` ``[n, n]`` in
    ``dtype``, or 0 if no block size does (the kernel then keeps the plain ascending sum).

    A BLAS library sums a product in an order fixed by the shape, data type, CPU and thread count,
    never by value: MKL's float32 product sums ``[100, 256] @ [256, 256]`` over two blocks of 128
    (each from zero, ascending, then added), and its order changes with the batch size. Checked
    once per shape on two random 0/1 draws against :func:`._lsnn_event_kernels.recurrent_rows` (the
    kernel's own arithmetic). The one-thread order serves every thread count, so the event
    backend's results stay the same for any number of threads; where torch's product sums
    otherwise on more threads (MKL does at a few small batches), :func:`_block_for` says so."""
    draws = _block_draws(batch, n, dtype)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        wanted = [z @ w for z, w in draws]
    finally:
        torch.set_num_threads(threads)
    for kb in _block_candidates(n):
        if _reproduces(draws, kb, wanted):
            return kb
    warnings.warn(
        f"event backend: no block order of the recurrent sum reproduces torch's [{batch}, {n}] @ [{n}, {n}] "
        f"{str(dtype).replace('torch.', '')} product on this machine; its traces may differ from the reference "
        "backend's in the last bits (and a spike where the membrane lands within that rounding of the threshold)",
        RuntimeWarning,
        stacklevel=3,
    )
    return 0


@functools.lru_cache(maxsize=64)
def _block_for(batch: int, n: int, dtype: torch.dtype, threads: int) -> int:
    """:func:`_recurrent_block`, with a warning where torch's product on ``threads`` threads sums in
    another order than on one (the event backend keeps the one-thread order: the same bits for any
    thread count; the reference backend's then depend on the thread count)."""
    kb = _recurrent_block(batch, n, dtype)
    draws = _block_draws(batch, n, dtype) if kb and threads > 1 else []
    if draws and not _reproduces(draws, kb, [z @ w for z, w in draws]):
        warnings.warn(
            f"event backend: torch's [{batch}, {n}] @ [{n}, {n}] {str(dtype).replace('torch.', '')} product sums in "
            f"another order on {threads} threads than on one; the event backend keeps the one-thread order (the same "
            "bits for any thread count), so its traces may differ from the reference backend's in the last bits",
            RuntimeWarning,
            stacklevel=3,
        )
    return kb


def _vec(k, like: torch.Tensor, n: int) -> torch.Tensor:
    """A constant as a contiguous ``[N]`` tensor of ``like``'s dtype (floats cast as eager ops do)."""
    t = k.detach() if isinstance(k, torch.Tensor) else torch.tensor(k, dtype=like.dtype)
    t = t.to(like.dtype)
    return t.expand(n).contiguous() if t.dim() == 0 else t.contiguous()


def _np(t: torch.Tensor):
    return t.detach().contiguous().numpy()


def _empty(t_steps: int, batch: int, n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.empty(t_steps, batch, n, dtype=like.dtype)


def _run_forward(
    c, w, alpha, rho, b0, beta, state, n_refr, dt, derivative, mask, *, record_vb, record_i, spikes_into_c=False
):
    """Run the forward kernel; returns a dict of tensors (traces, last values, backward data).

    ``spikes_into_c``: write the spikes over the currents ``c`` (the kernel reads step ``t`` of
    ``c`` before it writes step ``t`` of the spikes), saving the one ``[T, B, N]`` allocation of
    the pass; only for a ``c`` nobody else reads (the no-grad path's own ``x @ W_in``).
    """
    t_steps, batch, n = c.shape
    binary_mask = mask is None or bool(((mask == 0) | (mask == 1)).all())
    mask = torch.ones(n, dtype=c.dtype) if mask is None else mask.detach().to(c.dtype).contiguous()
    v0, z0, bs0, r0 = (s.detach().to(c.dtype).contiguous() for s in state)
    one_m_alpha = 1.0 - alpha if isinstance(alpha, torch.Tensor) else 1.0 - alpha
    one_m_rho = 1.0 - rho if isinstance(rho, torch.Tensor) else 1.0 - rho
    vecs = [_vec(k, c, n) for k in (alpha, one_m_alpha, rho, one_m_rho, b0, beta)]
    consts = torch.tensor([dt, n_refr, 1.0, 0.0, _kernels().GAP_BLOCKED], dtype=c.dtype)
    keep = derivative is not None
    # the triangular surrogate's derivative is recomputed by the backward kernel from a gap trace,
    # which can only say "allowed" or "not" (a 0/1 mask)
    tri = keep and type(getattr(derivative, "__self__", None)) is Triangle and binary_mask
    gamma = torch.tensor([derivative.__self__.gamma if tri else 0.0], dtype=c.dtype)

    def buf(flag):
        return _empty(t_steps if flag else 0, batch, n, c)

    # with the triangular surrogate the forward kernel keeps the gap trace s alone and the backward
    # kernel recomputes b (from the spikes, unless its trace is recorded anyway), A_t and the
    # derivative: one [T, B, N] trace instead of four (b, A, s, the derivative); an empty "da"
    # tells it so
    out = dict(
        z=c if spikes_into_c else _empty(t_steps, batch, n, c), v=buf(record_vb), b=buf(record_vb),
        i=buf(record_i), a=buf(keep and not tri), s=buf(keep), da=buf(False), allowed=buf(keep and not tri),
        v_last=torch.empty(batch, n, dtype=c.dtype), b_last=torch.empty(batch, n, dtype=c.dtype),
        r_last=torch.empty(batch, n, dtype=c.dtype),
    )
    kb = _block_for(batch, n, c.dtype, torch.get_num_threads()) if c.dtype in (torch.float32, torch.float64) else 0
    _launch(
        _kernels().forward,
        _np(c), _np(w), *(v.numpy() for v in vecs), _np(v0), _np(z0), _np(bs0), _np(r0),
        mask.numpy(), consts.numpy(),
        *(out[k].numpy() for k in ("z", "v", "b", "i", "a", "s", "allowed", "v_last", "b_last", "r_last")),
        bool(record_vb), bool(record_i), bool(keep), gamma.numpy(), kb if kb > 0 else n,
    )
    out["gamma"] = gamma
    if keep and not tri:  # any other closed-form derivative: evaluated by torch, as "fused" does
        da = torch.mul(derivative(out["s"]), out["allowed"]).div_(out["a"])
        if dt != 1.0:
            da.div_(dt)
        out["da"] = da.contiguous()
    return out


class _EventRecurrence(torch.autograd.Function):
    """``(c, W_rec, alpha, rho, b0, beta, v0, z0, b_0, r0) -> (Z, V, B, r_T)`` by the event kernels.

    The fused backend's contract (``W_rec``, diagonal already zero, from autograd outside;
    ``V``/``B`` are traces when ``record`` is set, else the last values), except for the input
    projection, which it differentiates itself (``own_projection``): ``c = x @ W_in`` arrives
    computed without a graph, followed by ``x`` and ``W_in`` as the last two inputs; the backward
    kernel sums ``dL/dW_in`` directly and ``dL/dI`` (``[T, B, N]``) is only written when ``x``
    needs a gradient.
    """

    own_projection = True
    project = staticmethod(project)

    @staticmethod
    def forward(ctx, c, w, alpha, rho, b0, beta, v0, z0, bs0, r0, n_refr, dt, derivative, record, mask,
                x=None, w_in=None):
        needs = ctx.needs_input_grad
        need_vb = needs[2] or needs[3] or needs[5]
        own = ctx.own = len(needs) > 15  # called with x and w_in (own_projection)
        # with its own projection c is this function's alone (computed for it, read by nobody else):
        # the kernel writes the spikes over it, one [T, B, N] buffer fewer (as the no-grad path does)
        into_c = own and c.is_contiguous()
        out = _run_forward(
            c, w, alpha, rho, b0, beta, (v0, z0, bs0, r0), n_refr, dt, derivative, mask,
            record_vb=record or need_vb, record_i=needs[2], spikes_into_c=into_c,
        )
        if into_c:
            ctx.mark_dirty(c)
        keep_x = x.detach() if own and needs[16] else torch.empty(0)  # for dL/dW_in
        keep_w_in = w_in.detach() if own and needs[15] else torch.empty(0)  # for dL/dx
        save_with_constants(
            ctx, (w, v0, z0, bs0, out["z"], out["a"], out["da"], out["s"], out["v"], out["b"], out["i"],
                  keep_x, keep_w_in),
            (alpha, rho, b0, beta),
        )
        ctx.dt, ctx.record, ctx.n, ctx.gamma = dt, record, c.shape[-1], out["gamma"]
        ctx.mark_non_differentiable(out["r_last"])
        ctx.set_materialize_grads(False)
        if record:
            return out["z"], out["v"], out["b"], out["r_last"]
        return out["z"], out["v_last"], out["b_last"], out["r_last"]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_z_out, g_v_out, g_b_out, _g_r):
        (w, v0, z0, bs0, z_all, a_all, da_all, s_all, v_all, b_all, i_all, x, w_in), (alpha, rho, b0, beta) = (
            saved_with_constants(ctx)
        )
        t_steps, batch, n = z_all.shape
        like = z_all
        needs = ctx.needs_input_grad
        vecs = [
            _vec(k, like, n)
            for k in (alpha, 1.0 - alpha, rho, 1.0 - rho, beta, b0)
        ]
        consts = torch.tensor([ctx.dt, 0.0, 1.0, 0.0], dtype=like.dtype)

        def grad_in(g, record, spikes=False):
            if g is None:
                return torch.empty(0, batch, n, dtype=like.dtype)
            if spikes and t_steps > 1 and g.stride(0) == 0:  # one gradient broadcast over time (a
                g = g[:1]  # time average's): passed once, the kernel reads it at every step
            g = g.to(like.dtype).contiguous()
            return g if record else g.unsqueeze(0)

        kern = _kernels()
        chunks = kern.n_chunks(batch)
        need_w = needs[1]
        need_q = needs[4] or needs[5]
        empty_n = torch.empty(0, batch, n, dtype=like.dtype)
        own = ctx.own
        need_x, need_win = own and needs[15], own and needs[16]
        # dL/dI: the gradient of c, or (own projection) only what dL/dx needs
        gi_all = torch.empty_like(z_all) if (not own or need_x) else empty_n
        x_all = x.to(like.dtype).contiguous() if need_win else torch.empty(0, batch, 0, dtype=like.dtype)
        # the chunks' partial sums: the kernel zeroes each chunk's own on the thread that fills it
        g_win = torch.empty(chunks, x_all.shape[2], n, dtype=like.dtype)
        g_w = torch.empty(chunks if need_w else 1, n, n, dtype=like.dtype)
        parts = torch.empty(4, chunks, n, dtype=like.dtype)
        g_v0, g_z0, g_bs0 = (torch.empty(batch, n, dtype=like.dtype) for _ in range(3))
        _launch(
            kern.backward,
            _np(w), _np(z0.to(like.dtype)), _np(v0.to(like.dtype)), _np(bs0.to(like.dtype)),
            _np(z_all), _np(a_all), _np(da_all), _np(s_all),
            _np(v_all) if v_all.numel() else empty_n.numpy(),
            _np(b_all) if b_all.numel() else empty_n.numpy(),
            _np(i_all) if i_all.numel() else empty_n.numpy(),
            *(v.numpy() for v in vecs),
            consts.numpy(), ctx.gamma.numpy(),
            grad_in(g_z_out, True, spikes=True).numpy(), grad_in(g_v_out, ctx.record).numpy(),
            grad_in(g_b_out, ctx.record).numpy(),
            gi_all.numpy(), g_w.numpy(), *(p.numpy() for p in parts.unbind(0)),
            g_v0.numpy(), g_z0.numpy(), g_bs0.numpy(), x_all.numpy(), g_win.numpy(),
            bool(need_w), bool(needs[2]), bool(needs[3]), bool(need_q), bool(needs[5]), bool(needs[7]),
            bool(need_win),
        )

        def reduce(p: torch.Tensor) -> torch.Tensor:
            flat = p.reshape(p.shape[0], -1)
            res = torch.empty(flat.shape[1], dtype=p.dtype)
            _launch(kern.reduce_chunks, flat.numpy(), res.numpy())
            return res.reshape(p.shape[1:])

        def to_const(g, k):
            return g.sum() if k.dim() == 0 else g

        grads = [None] * len(needs)
        grads[0] = gi_all if needs[0] else None  # c: only when it came with a graph (not own_projection)
        if need_x:
            grads[15] = (gi_all.reshape(-1, n) @ w_in.t()).reshape(t_steps, batch, -1)  # x, w_in, c: one dtype
        if need_win:
            grads[16] = reduce(g_win)
        grads[1] = reduce(g_w) if need_w else None
        for pos, k in ((2, alpha), (3, rho), (4, b0), (5, beta)):
            if needs[pos]:
                grads[pos] = to_const(reduce(parts[pos - 2]), k)
        grads[6] = g_v0 if needs[6] else None
        grads[7] = g_z0 if needs[7] else None
        grads[8] = g_bs0 if needs[8] else None
        return tuple(grads)


def _plain_loop(c, w, alpha, rho, b0, beta, state, n_refr, dt, mask, return_states):
    """The forward kernels without recording for a backward pass: ``(z, v, b, r_last)``."""
    c = c.contiguous()
    out = _run_forward(c, w, alpha, rho, b0, beta, state, n_refr, dt, None, mask, record_vb=return_states,
                       record_i=False, spikes_into_c=True)
    v_out, b_out = (out["v"], out["b"]) if return_states else (out["v_last"], out["b_last"])
    return out["z"], v_out, b_out, out["r_last"]


lsnn_unroll_event = hand_written_unroll(
    "lsnn_unroll_event", __name__, _EventRecurrence, _plain_loop,
    """:func:`~spikerobust.functional.lsnn_unroll` computed by the event-driven kernels.

    The arguments of :func:`~spikerobust.functional.lsnn_unroll` (``backend`` aside; the
    ``spike_mask`` only of shape ``[N]``) and the reference backend's results: spikes and traces
    bit for bit, gradients equal to rounding. Call it directly only with supported inputs (CPU, a
    surrogate with a closed-form derivative, constants of shape ``[]`` or ``[N]``, outside
    ``torch.func`` transforms); ``lsnn_unroll(..., backend="event")`` checks and falls back by itself.

    Examples:
        >>> import torch
        >>> from spikerobust.functional import LSNNParams
        >>> w_rec = torch.randn(16, 16, requires_grad=True)
        >>> z, _, _ = lsnn_unroll_event(torch.randn(30, 4, 2), LSNNParams(), torch.randn(2, 16), w_rec)
        >>> z.sum().backward()
        >>> w_rec.grad.shape
        torch.Size([16, 16])
    """,
)

#: the entry point's examples run as doctests (it is made by ``hand_written_unroll``)
__test__ = {"lsnn_unroll_event": lsnn_unroll_event}
