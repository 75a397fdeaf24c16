r"""Fast BPTT for the LSNN: the whole recurrence as one ``torch.autograd.Function``.

:func:`~spikerobust.functional.lsnn_unroll` with ``backend="reference"`` builds an autograd graph of
about twenty nodes per time step; backpropagating through it costs far more than the matrix
products it contains. :func:`lsnn_unroll_fused` computes the same thing with a hand-written pass:

* **forward**: the time loop of docs/lsnn.md with autograd off, performing exactly the reference's
  floating-point operations in the same order (into preallocated buffers), so spikes, membrane
  and threshold traces are bit-identical to the reference path. For the backward pass it keeps
  the thresholds ``A_t``, the scaled voltages ``s_t`` and ``D_t / A_t`` (below); the traces of
  ``v``, ``b`` and the currents only when a neuron constant needs a gradient or the caller asks
  for the traces;
* **backward**: the exact reverse-time recursion of the adjoints (below): about ten element-wise
  operations and one ``[B, N] x [N, N]`` product per step; the gradients of ``W_rec`` (one
  product over all steps) and of the neuron constants are computed after the loop.

With ``s_t = (v_t - A_t) / A_t``, ``D_t = sigma'(s_t) * 1[r_{t-1} <= 0] / dt`` and the adjoints
``g`` (gradient of the loss with respect to a quantity, summed over every path), step ``t`` of the
reverse pass is::

    g_vt   = g_v[t] + g_z[t] * D_t / A_t                         total gradient of v_t
    g_At   = -g_z[t] * D_t * v_t / A_t**2 - g_vt * z_{t-1} * dt  threshold
    g_bt   = g_b[t] + beta * g_At                                 total gradient of b_t
    g_It   = (1 - alpha) * g_vt                                   current (= gradient of x_t W_in)
    g_z[t-1] += g_It @ W_rec^T - g_vt * A_t * dt + (1 - rho) * g_bt
    g_v[t-1] += alpha * g_vt,     g_b[t-1] += rho * g_bt

and, after the loop, ``dL/dW_rec = sum_t z_{t-1}^T g_It`` (one product over all steps; the
diagonal is masked by :func:`~spikerobust.functional.zero_diagonal` outside),
``dL/dalpha = sum g_vt (v_{t-1} - I_t)``, ``dL/drho = sum g_bt (b_{t-1} - z_{t-1})``,
``dL/db0 = sum g_At`` and ``dL/dbeta = sum g_At b_t`` (sums over time and batch, down to each
constant's shape). The refractory counter carries no gradient, as in the reference.

The fused path needs the surrogate's closed-form derivative (:meth:`Surrogate.derivative`); snnTorch
surrogates wrapped by :func:`~spikerobust.functional.from_snntorch` have none and use the
reference path. Under ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``, ...) and while
``torch.compile`` traces, ``backend="auto"`` and ``backend="fused"`` also use the reference path;
inside a transform its surrogate is swapped for an equivalent one written the way ``torch.func``
requires (:func:`functorch_compatible`), so batched mismatch draws (``vmap``) and
``torch.func.grad`` work. The fused backward pass is first-order only (double backward raises).

Shape:
    - ``x``: ``[T, B, d_in]`` (time first); ``w_in``: ``[d_in, N]``; ``w_rec``: ``[N, N]``
    - spikes and traces: ``[T, B, N]``; state tensors: ``[B, N]``

Examples:
    >>> import torch
    >>> from spikerobust.functional import LSNNParams, lsnn_unroll
    >>> x = torch.randn(20, 3, 2)
    >>> w_in, w_rec = torch.randn(2, 8), 0.3 * torch.randn(8, 8)
    >>> z_fast, _, _ = lsnn_unroll_fused(x, LSNNParams(), w_in, w_rec)
    >>> z_ref, _, _ = lsnn_unroll(x, LSNNParams(), w_in, w_rec, backend="reference")
    >>> bool(torch.equal(z_fast, z_ref))
    True
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch

from .lsnn_core import LSNNParams, hand_written_unroll, save_with_constants, saved_with_constants
from .lsnn_event import event_unsupported_reason
from .surrogate import Surrogate, has_closed_form_derivative, heaviside

__all__ = [
    "BACKENDS",
    "fused_unsupported_reason",
    "resolve_backend",
    "functorch_compatible",
    "lsnn_unroll_fused",
]

#: Accepted values of ``backend``.
BACKENDS = ("auto", "event", "fused", "reference")


def fused_unsupported_reason(params: LSNNParams, tensors: Sequence[torch.Tensor] = ()) -> Optional[str]:
    """Why the fused path cannot run for ``params`` (and the given inputs), or ``None`` if it can.

    Static reasons (the surrogate, dtypes) and dynamic ones (an active ``torch.func`` transform,
    ``torch.compile`` tracing) are both reported.
    """
    if not has_closed_form_derivative(params.surrogate):
        return (
            f"surrogate {params.surrogate!r} has no closed-form derivative(x) "
            f"(e.g. a wrapped snnTorch surrogate)"
        )
    if torch._C._are_functorch_transforms_active():
        return "a torch.func transform (vmap/grad/jacrev/...) is active"
    if torch.compiler.is_compiling():
        return "torch.compile is tracing"
    dtypes = {t.dtype for t in tensors if isinstance(t, torch.Tensor)}
    for name in ("tau_mem", "tau_adapt", "beta_adapt", "b0"):
        value = getattr(params, name)
        if isinstance(value, torch.Tensor):
            dtypes.add(value.dtype)
    if len(dtypes) > 1:
        return f"mixed dtypes {sorted(str(d) for d in dtypes)}"
    return None


class _FunctorchSpike(torch.autograd.Function):
    """Heaviside forward, ``derivative(x)`` backward, in the form ``torch.func`` transforms accept
    (``setup_context`` and a generated vmap rule)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, derivative):
        return heaviside(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, derivative = inputs
        ctx.save_for_backward(x)
        ctx.derivative = derivative

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.derivative(x), None


class _FunctorchSurrogate(Surrogate):
    """The same surrogate (same forward, same derivative) usable under ``vmap``/``grad``."""

    name = "functorch"

    def __init__(self, inner: Surrogate) -> None:
        self.inner = inner

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.derivative(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _FunctorchSpike.apply(x, self.inner.derivative)


def functorch_compatible(params: LSNNParams) -> LSNNParams:
    """``params`` with a surrogate that works under ``torch.func`` transforms, when one is active.

    The reference loop differentiates through the surrogate's autograd function, which
    ``vmap``/``grad`` refuse unless it defines ``setup_context``; inside a transform, a surrogate
    with a closed-form derivative is swapped for an equivalent one that does. Outside transforms,
    or for surrogates without ``derivative(x)``, ``params`` is returned unchanged.
    """
    if not torch._C._are_functorch_transforms_active():
        return params
    if not has_closed_form_derivative(params.surrogate):
        return params
    return params._replace(surrogate=_FunctorchSurrogate(params.surrogate))


def resolve_backend(
    backend: str, params: LSNNParams, tensors: Sequence[torch.Tensor] = (), *, n: Optional[int] = None
) -> str:
    """Turn ``"auto"``/``"event"``/``"fused"``/``"reference"`` into the path that will run.

    ``"auto"`` picks ``"event"`` (:mod:`spikerobust.functional.lsnn_event`, compiled kernels that
    compute on spikes) whenever numba is installed and the inputs suit it (CPU tensors, constants
    of shape ``[]`` or ``[N]``), else ``"fused"``, and ``"reference"`` where
    :func:`fused_unsupported_reason` finds a reason (a ``torch.func`` transform, ``torch.compile``,
    mixed dtypes, a surrogate without a closed-form derivative). ``"event"`` behaves the same,
    running ``"fused"`` where the event kernels cannot. ``"fused"`` falls back to ``"reference"``
    only for the dynamic reasons. ``"event"`` and ``"fused"`` raise for a surrogate without a
    closed-form derivative (a configuration error).

    Args:
        backend: the requested backend, one of :data:`BACKENDS`.
        params: neuron constants (the surrogate and the constants' shapes and dtypes matter).
        tensors: the inputs (device and dtype matter).
        n: number of neurons, to check the constants' shapes for ``"event"``.

    Raises:
        ValueError: for an unknown ``backend``, or ``"event"``/``"fused"`` with an unsupported
            surrogate.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference":
        return "reference"
    if backend in ("event", "fused") and not has_closed_form_derivative(params.surrogate):
        raise ValueError(
            f"backend={backend!r} needs a surrogate with a closed-form derivative(x); "
            f"{params.surrogate!r} has none: use backend='reference' (or 'auto', which picks it)"
        )
    if fused_unsupported_reason(params, tensors) is not None:
        return "reference"
    if backend == "fused":
        return "fused"
    return "event" if event_unsupported_reason(params, tensors, n) is None else "fused"


class _Traces(NamedTuple):
    """What the forward loop returns (``None`` where not recorded)."""

    z: torch.Tensor  # spikes [T, B, N]
    v: torch.Tensor  # membrane: trace [T, B, N] when recorded, else the last value [B, N]
    b: torch.Tensor  # adaptation variable: same convention as v
    r_last: torch.Tensor  # refractory counter after the last step [B, N]
    i: Optional[torch.Tensor] = None  # currents x W_in + z W_rec [T, B, N]
    a: Optional[torch.Tensor] = None  # thresholds b0 + beta b [T, B, N]
    da: Optional[torch.Tensor] = None  # dz_t/dv_t = sigma'(s_t) 1[r_{t-1} <= 0] / (dt A_t)
    s: Optional[torch.Tensor] = None  # scaled voltages (v_t - A_t) / A_t


def _as_tensor(k, like: torch.Tensor) -> torch.Tensor:
    """A constant as a tensor of ``like``'s dtype; Python floats are cast exactly as eager ops do."""
    if isinstance(k, torch.Tensor):
        return k
    return torch.tensor(k, dtype=like.dtype, device=like.device)


def _forward_loop(
    c, w, alpha, rho, b0, beta, state, n_refr, dt, *, derivative=None, record_vb=False, record_i=False,
    mask=None,
) -> _Traces:
    """The docs/lsnn.md time loop without autograd, op for op the reference's arithmetic.

    Every operation writes into preallocated buffers (``out=``/in place) and Python-float
    constants become 0-d tensors of the input's dtype; neither changes a value: spikes and
    traces equal the reference path's bit for bit.

    Args:
        derivative: the surrogate's derivative; when given, the thresholds, the scaled voltages
            and ``dz_t/dv_t`` (``da``) are recorded for the backward pass.
        record_vb: record the traces of ``v`` and ``b`` (else only their last values).
        record_i: record the currents (needed for the gradient of ``alpha``).
        mask: optional 0/1 spike mask (broadcastable to ``[B, N]``) multiplied into ``z_t``
            (and into ``dz_t/dv_t``), as ``spike_mask`` of the reference path.
    """
    t_steps, batch, n = c.shape
    v0, z, b0_state, r = state
    like = dict(dtype=c.dtype, device=c.device)
    z_all = torch.empty(t_steps, batch, n, **like)

    def small():
        return torch.empty(batch, n, **like)

    def steps(record: bool):
        if record:
            full = torch.empty_like(z_all)
            return full, full.unbind(0)
        return None, [small()] * t_steps

    v_all, v_l = steps(record_vb)
    b_all, b_l = steps(record_vb)
    i_all, i_l = steps(record_i)
    keep = derivative is not None
    a_all, a_l = steps(keep)
    da_all, da_l = steps(keep)
    s_all, s_l = steps(keep)
    z_l, c_l = z_all.unbind(0), c.unbind(0)
    t1, t2, allowed = small(), small(), small()
    v, b = v0, b0_state
    one_m_rho = _as_tensor(1.0 - rho, c)  # 1 - rho in the precision of rho, as the reference
    one_m_alpha = _as_tensor(1.0 - alpha, c)
    alpha, rho, b0, beta = (_as_tensor(k, c) for k in (alpha, rho, b0, beta))
    unit_dt = dt == 1.0
    n_max = float(n_refr)
    mul, add, sub, mm = torch.mul, torch.add, torch.sub, torch.mm
    for t in range(t_steps):
        a, cur, s = a_l[t], i_l[t], s_l[t]
        # b = rho * b + (1 - rho) * z ;  a = b0 + beta * b
        mul(rho, b, out=t1)
        b = add(t1, mul(one_m_rho, z, out=t2), out=b_l[t])
        add(b0, mul(beta, b, out=t1), out=a)
        # current = i_in + z @ w_rec ;  v = alpha * v + (1 - alpha) * current - z * a * dt
        add(c_l[t], mm(z, w, out=t2), out=cur)
        mul(alpha, v, out=t1).add_(mul(one_m_alpha, cur, out=t2))
        mul(z, a, out=t2)
        if not unit_dt:
            t2.mul_(dt)
        v = sub(t1, t2, out=v_l[t])
        # z = H((v - a) / a) * 1[r <= 0] / dt ;  r = clip(r + n_refr * z - 1, 0, n_refr)
        torch.le(r, 0, out=allowed)
        sub(v, a, out=s).div_(a)
        z = torch.gt(s, 0, out=z_l[t]).mul_(allowed)
        if mask is not None:
            z.mul_(mask)
        if unit_dt:
            r = add(r, z, alpha=n_refr)  # == r + n_refr * z exactly (n_refr * z is exact)
        else:
            z.div_(dt)
            r = add(r, mul(z, n_refr, out=t1))
        r.sub_(1.0).clamp_(0.0, n_max)
        if keep:
            da = mul(derivative(s), allowed, out=da_l[t]).div_(a)
            if mask is not None:
                da.mul_(mask)
            if not unit_dt:
                da.div_(dt)
    if not record_vb:
        v_all, b_all = v, b
    return _Traces(z_all, v_all, b_all, r, i_all, a_all, da_all, s_all)


def _sum_to(grad: torch.Tensor, like) -> torch.Tensor:
    if like.dim() == 0:
        return grad.sum()
    return grad.sum_to_size(like.shape)


class _LSNNRecurrence(torch.autograd.Function):
    """``(c, W_rec, alpha, rho, b0, beta, v0, z0, b_0, r0) -> (Z, V, B, r_T)`` with exact BPTT.

    ``c = x @ W_in`` and ``W_rec`` (diagonal already zero) come from autograd outside; the four
    constants are tensors (any shape broadcastable to ``[B, N]``) or Python floats. ``V`` and
    ``B`` are traces ``[T, B, N]`` when ``record`` is set, else the last values ``[B, N]``.
    """

    @staticmethod
    def forward(ctx, c, w, alpha, rho, b0, beta, v0, z0, bs0, r0, n_refr, dt, derivative, record, mask=None):
        needs = ctx.needs_input_grad
        need_vb = needs[2] or needs[3] or needs[5]  # alpha, rho, beta read the traces
        tr = _forward_loop(
            c, w, alpha, rho, b0, beta, (v0, z0, bs0, r0), n_refr, dt,
            derivative=derivative, record_vb=record or need_vb, record_i=needs[2], mask=mask,
        )
        v_all = tr.v if need_vb else None
        b_all = tr.b if need_vb else None
        save_with_constants(
            ctx, (w, v0, z0, bs0, tr.z, tr.a, tr.da, tr.s, v_all, b_all, tr.i), (alpha, rho, b0, beta)
        )
        ctx.dt = dt
        ctx.record = record
        ctx.mark_non_differentiable(tr.r_last)
        ctx.set_materialize_grads(False)
        if need_vb and not record:  # traces kept for the gradients only: return the last values
            return tr.z, tr.v[-1].clone(), tr.b[-1].clone(), tr.r_last
        return tr.z, tr.v, tr.b, tr.r_last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_z_out, g_v_out, g_b_out, _g_r):
        (w, v0, z0, bs0, z_all, a_all, da_all, s_all, v_all, b_all, i_all), (alpha, rho, b0, beta) = (
            saved_with_constants(ctx)
        )
        dt = ctx.dt
        t_steps, batch, n = z_all.shape
        needs = ctx.needs_input_grad
        one_m_alpha = _as_tensor(1.0 - alpha, z_all)
        one_m_rho = _as_tensor(1.0 - rho, z_all)
        alpha_t, rho_t, beta_t = (_as_tensor(k, z_all) for k in (alpha, rho, beta))
        w_t = w.t()

        def per_step(needed: bool):
            if needed:
                full = torch.empty_like(z_all)
                return full, full.unbind(0)
            pair = [torch.empty_like(z0), torch.empty_like(z0)]  # ping-pong
            return None, [pair[t % 2] for t in range(t_steps)]

        # G: total dL/dv_t;  P: total dL/db_t;  Q = -dL/dA_t;  GI = dL/dI_t = (1 - alpha) G
        g_all, g_l = per_step(needs[2])
        p_all, p_l = per_step(needs[3])
        q_all, q_l = per_step(needs[4] or needs[5])
        gi_all = torch.empty_like(z_all)
        gi_l = gi_all.unbind(0)
        z_l, a_l, da_l, s_l = z_all.unbind(0), a_all.unbind(0), da_all.unbind(0), s_all.unbind(0)

        def outer(g, record):  # incoming gradient of a V/B output at step t (or None)
            if g is None:
                return lambda t: None
            if record:
                g_l = g.unbind(0)
                return lambda t: g_l[t]
            return lambda t: g if t == t_steps - 1 else None

        gz_at = outer(g_z_out, True)
        gv_at, gb_at = outer(g_v_out, ctx.record), outer(g_b_out, ctx.record)
        carry = torch.zeros_like(z0)  # dL/dz_t through step t+1
        g_next = p_next = torch.zeros_like(z0)  # read only
        mul, addcmul = torch.mul, torch.addcmul
        for t in range(t_steps - 1, -1, -1):
            g_z = carry
            if gz_at(t) is not None:
                g_z = carry.add_(gz_at(t))
            u = mul(g_z, da_l[t])  # reaches v_t through z_t
            g_t = addcmul(u, g_next, alpha_t, out=g_l[t])
            if gv_at(t) is not None:
                g_t.add_(gv_at(t))
            # -dL/dA_t = u v_t / A_t + dt g_t z_{t-1},  v_t / A_t = 1 + s_t
            q_t = addcmul(u, u, s_l[t], out=q_l[t])
            q_t.addcmul_(g_t, z_l[t - 1] if t > 0 else z0, value=dt)
            p_t = mul(p_next, rho_t, out=p_l[t]).addcmul_(q_t, beta_t, value=-1.0)
            if gb_at(t) is not None:
                p_t.add_(gb_at(t))
            g_i = mul(g_t, one_m_alpha, out=gi_l[t])
            carry = torch.mm(g_i, w_t)
            carry.addcmul_(g_t, a_l[t], value=-dt).addcmul_(p_t, one_m_rho)
            g_next, p_next = g_t, p_t

        grads = [None] * 15
        grads[0] = gi_all if needs[0] else None
        if needs[1]:
            g_w = z0.t() @ gi_all[0]
            if t_steps > 1:
                g_w = g_w.addmm_(z_all[:-1].reshape(-1, n).t(), gi_all[1:].reshape(-1, n))
            grads[1] = g_w
        if needs[2]:  # dv_t/dalpha = v_{t-1} - I_t
            v_prev = torch.cat([v0.unsqueeze(0), v_all[:-1]])
            grads[2] = _sum_to(g_all * v_prev.sub_(i_all), alpha)
        if needs[3]:  # db_t/drho = b_{t-1} - z_{t-1}
            b_prev = torch.cat([bs0.unsqueeze(0), b_all[:-1]])
            b_prev[0].sub_(z0)
            b_prev[1:].sub_(z_all[:-1])
            grads[3] = _sum_to(p_all * b_prev, rho)
        if needs[4]:
            grads[4] = -_sum_to(q_all, b0)
        if needs[5]:
            grads[5] = -_sum_to(q_all * b_all, beta)
        if needs[6]:
            grads[6] = g_next * alpha_t
        if needs[7]:
            grads[7] = carry
        if needs[8]:
            grads[8] = p_next * rho_t
        return tuple(grads)


def _plain_loop(c, w, alpha, rho, b0, beta, state, n_refr, dt, mask, return_states):
    """:func:`_forward_loop` without recording for a backward pass: ``(z, v, b, r_last)``."""
    tr = _forward_loop(c, w, alpha, rho, b0, beta, state, n_refr, dt, record_vb=return_states, mask=mask)
    return tr.z, tr.v, tr.b, tr.r_last


lsnn_unroll_fused = hand_written_unroll(
    "lsnn_unroll_fused", __name__, _LSNNRecurrence, _plain_loop,
    """:func:`~spikerobust.functional.lsnn_unroll` with the hand-written forward and backward pass.

    The arguments of :func:`~spikerobust.functional.lsnn_unroll` (``backend`` aside), the same
    results (bit-identical forward, gradients equal to rounding), much faster BPTT; the
    ``spike_mask`` also multiplies the surrogate derivative ``D_t`` in the backward pass. Without
    any input requiring a gradient (or under ``torch.no_grad``) it runs the plain loop and records
    no graph. Call it directly only outside ``torch.func`` transforms; the dispatch in
    ``lsnn_unroll(..., backend=...)`` takes care of that.

    Examples:
        >>> import torch
        >>> from spikerobust.functional import LSNNParams
        >>> w_in = torch.randn(2, 16, requires_grad=True)
        >>> z, _, _ = lsnn_unroll_fused(torch.randn(30, 4, 2), LSNNParams(), w_in, torch.randn(16, 16))
        >>> z.sum().backward()
        >>> w_in.grad.shape
        torch.Size([2, 16])
    """,
)

#: the entry point's examples run as doctests (it is made by ``hand_written_unroll``)
__test__ = {"lsnn_unroll_fused": lsnn_unroll_fused}
