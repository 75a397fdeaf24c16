r"""The LSNN's equations: parameters, state, one time step (Bellec et al. 2018, the variant of docs/lsnn.md).

One recurrent layer of ``N`` adaptive leaky integrate-and-fire neurons, dimensionless time steps.
With :math:`\alpha = e^{-dt/\tau_{mem}}`, :math:`\rho = e^{-dt/\tau_{adapt}}` and all state zero at
``t = 0``, one step ``t = 1..T`` computes, in this order::

    b_t = rho * b_{t-1} + (1 - rho) * z_{t-1}                  adaptation variable
    A_t = b0 + beta_adapt * b_t                                  adaptive threshold
    I_t = x_t @ W_in + z_{t-1} @ W_rec                           no bias, diag(W_rec) = 0
    v_t = alpha * v_{t-1} + (1 - alpha) * I_t - z_{t-1} * A_t * dt   reset by subtraction
    z_t = H((v_t - A_t) / A_t) * 1[r_{t-1} <= 0] / dt            spike, blocked while refractory
    r_t = clip(r_{t-1} + n_refr * z_t - 1, 0, n_refr)            refractory counter

The spike's gradient is a surrogate with respect to the scaled voltage ``(v - A) / A``
(triangular, ``gamma = 0.3``, by default). The refractory counter carries no gradient.

Hand-computed example (N = 1, x_1 = 1, then zeros; W_in = 1; tau_mem = 20 so alpha = e^{-1/20};
b0 = 0.01, beta = 2, tau_adapt = 98 so rho = e^{-1/98}; n_refr = 2):
``v_1 = (1 - alpha) * 1 = 0.04877``, ``A_1 = 0.01`` so ``z_1 = 1`` and ``r_1 = 1``;
``b_2 = 1 - rho = 0.01015``, ``A_2 = 0.01 + 2 * 0.01015 = 0.03030``,
``v_2 = alpha * v_1 - A_2 = 0.01609``: below threshold, and anyway blocked (``r_1 = 1``), ``r_2 = 0``.
(``tests/functional/test_lsnn_trace.py`` checks a longer trace of this kind number by number.)

This is the lowest module of the LSNN backends: the time loop with its backend choice
(:func:`~spikerobust.functional.lsnn.lsnn_unroll`), the fused backward pass
(:mod:`~spikerobust.functional.lsnn_fused`) and the event kernels
(:mod:`~spikerobust.functional.lsnn_event`) all build on it, and it imports none of them.
Everything public here is also importable from :mod:`spikerobust.functional.lsnn`.

Shape:
    - ``x_t``: ``[B, d_in]``; ``x``: ``[T, B, d_in]`` (time first)
    - ``w_in``: ``[d_in, N]``, ``w_rec``: ``[N, N]``
    - state tensors and ``z_t``: ``[B, N]``; neuron constants: scalars or ``[N]``

References:
    Bellec, Salaj, Subramoney, Legenstein, Maass. "Long short-term memory and learning-to-learn in
    networks of spiking neurons", NeurIPS 2018.
    Büchel, Faber, Muir. "Network insensitivity to parameter noise via adversarial regularization",
    ICLR 2022.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Protocol, Union, runtime_checkable

import torch

from .surrogate import Surrogate, Triangle, has_closed_form_derivative

__all__ = [
    "LSNNParams",
    "LSNNState",
    "LSNNTrace",
    "LSNNLayer",
    "Scalar",
    "decay",
    "initial_state",
    "lsnn_step",
    "lsnn_step_current",
    "hand_written_unroll",
    "save_with_constants",
    "saved_with_constants",
    "unroll_hand_written",
    "unroll_inputs",
    "unroll_outputs",
    "zero_diagonal",
]

Scalar = Union[float, torch.Tensor]


class LSNNParams(NamedTuple):
    """Neuron constants of an LSNN layer (docs/lsnn.md defaults).

    ``tau_mem``, ``tau_adapt``, ``beta_adapt`` and ``b0`` may be Python floats, 0-d tensors or
    per-neuron tensors of shape ``[N]`` (and may require gradients or be perturbed like weights).

    Attributes:
        tau_mem: membrane time constant in steps (20).
        tau_adapt: adaptation time constant in steps (98, the reference value).
        beta_adapt: adaptation strength (2.0).
        b0: base threshold (0.01).
        n_refractory: refractory period in steps (2).
        dt: time step (1.0).
        surrogate: spike function with surrogate gradient (triangular, gamma 0.3).
    """

    tau_mem: Scalar = 20.0
    tau_adapt: Scalar = 98.0
    beta_adapt: Scalar = 2.0
    b0: Scalar = 0.01
    n_refractory: int = 2
    dt: float = 1.0
    surrogate: Surrogate = Triangle(0.3)


class LSNNState(NamedTuple):
    """State of an LSNN layer: membrane ``v``, spikes ``z``, adaptation ``b``, refractory ``r``.

    Shape: each ``[B, N]``.
    """

    v: torch.Tensor
    z: torch.Tensor
    b: torch.Tensor
    r: torch.Tensor


class LSNNTrace(NamedTuple):
    """Time traces recorded by :func:`lsnn_unroll` with ``return_states=True``.

    Shape: each ``[T, B, N]``; ``threshold = b0 + beta_adapt * b``.
    """

    v: torch.Tensor
    b: torch.Tensor
    threshold: torch.Tensor


@runtime_checkable
class LSNNLayer(Protocol):
    """What a module running these equations over time exposes (e.g. :class:`spikerobust.nn.LSNN`).

    Code that must rerun a layer's time loop itself (the PCM simulator reads ``w_in`` and
    ``w_rec`` from crossbars at every step) recognises it by this protocol, not by its class, so
    ``spikerobust.robust`` needs no import of ``spikerobust.nn``. ``isinstance(module, LSNNLayer)``
    checks that the members exist.

    Attributes:
        w_in: input weights ``[d_in, N]``.
        w_rec: recurrent weights ``[N, N]`` (the diagonal is ignored).
    """

    w_in: torch.Tensor
    w_rec: torch.Tensor

    def neuron_params(self) -> LSNNParams:
        """The neuron constants the layer runs with."""

    def spike_mask(self) -> Optional[torch.Tensor]:
        """``None``, or the 0/1 mask ``[N]`` multiplied into every ``z_t`` (``spike_mask`` of the unroll)."""


def initial_state(batch: int, n: int, *, dtype=None, device=None) -> LSNNState:
    """All-zero state for a batch of ``batch`` samples and ``n`` neurons."""
    zeros = torch.zeros(batch, n, dtype=dtype, device=device)
    return LSNNState(zeros, zeros, zeros, zeros)


def zero_diagonal(w_rec: torch.Tensor) -> torch.Tensor:
    """``w_rec`` with its diagonal set to zero (differentiable; the diagonal gets no gradient)."""
    return w_rec - torch.diag_embed(torch.diagonal(w_rec, dim1=-2, dim2=-1))


def decay(tau: Scalar, dt: float) -> Scalar:
    """The per-step decay factor ``exp(-dt / tau)`` (``alpha`` from ``tau_mem``, ``rho`` from ``tau_adapt``).

    A tensor ``tau`` gives a tensor (differentiable, same shape); a Python number gives a Python
    float, computed in float64 so every backend starts from the same constant.

    Examples:
        >>> round(decay(20.0, 1.0), 5)
        0.95123
    """
    if isinstance(tau, torch.Tensor):
        return torch.exp(-dt / tau)
    return torch.exp(torch.tensor(-dt / float(tau), dtype=torch.float64)).item()


def lsnn_step_current(
    i_in: torch.Tensor,
    state: LSNNState,
    params: LSNNParams,
    w_rec: torch.Tensor,
    *,
    alpha: Optional[Scalar] = None,
    rho: Optional[Scalar] = None,
    spike_mask: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, LSNNState]:
    """One LSNN step given the feed-forward current ``i_in = x_t @ W_in`` (docs/lsnn.md).

    ``w_rec`` is used as given: pass it through :func:`zero_diagonal` first (the unroll does).
    ``alpha``/``rho`` may be precomputed decays (``exp(-dt/tau)``) to save work in a time loop.
    ``spike_mask`` (0/1, ``[N]`` or broadcastable to ``[B, N]``) multiplies ``z_t`` before it is
    returned and stored: a masked neuron emits no spike, so it neither feeds the recurrence or
    the readout nor resets, adapts or turns refractory (dropout inside the recurrence).

    Returns:
        ``(z_t, new_state)``.
    """
    dt = params.dt
    alpha = decay(params.tau_mem, dt) if alpha is None else alpha
    rho = decay(params.tau_adapt, dt) if rho is None else rho
    v, z, b, r = state
    b = rho * b + (1.0 - rho) * z
    a = params.b0 + params.beta_adapt * b
    current = i_in + z @ w_rec
    v = alpha * v + (1.0 - alpha) * current - z * a * dt
    allowed = (r <= 0).to(v.dtype)
    z_new = params.surrogate((v - a) / a) * allowed / dt
    if spike_mask is not None:
        z_new = z_new * spike_mask
    r = torch.clamp(r + params.n_refractory * z_new.detach() - 1.0, 0.0, float(params.n_refractory))
    return z_new, LSNNState(v, z_new, b, r)


def lsnn_step(
    x_t: torch.Tensor,
    state: LSNNState,
    params: LSNNParams,
    w_in: torch.Tensor,
    w_rec: torch.Tensor,
) -> tuple[torch.Tensor, LSNNState]:
    """One LSNN step from the input frame ``x_t`` (docs/lsnn.md); the diagonal of ``w_rec`` is ignored.

    Shape:
        ``x_t`` ``[B, d_in]``, ``w_in`` ``[d_in, N]``, ``w_rec`` ``[N, N]`` → ``z_t`` ``[B, N]``.

    Examples:
        >>> import torch
        >>> p = LSNNParams()
        >>> s = initial_state(1, 1)
        >>> z, s = lsnn_step(torch.ones(1, 1), s, p, torch.ones(1, 1), torch.zeros(1, 1))
        >>> z.item(), round(s.v.item(), 5)
        (1.0, 0.04877)
    """
    return lsnn_step_current(x_t @ w_in, state, params, zero_diagonal(w_rec))


def unroll_inputs(owner: str, x, params: LSNNParams, w_in, w_rec, state: Optional[LSNNState], *,
                  own_projection: bool = False, project=None):
    """What the hand-written backends (fused, event) compute before their time loop.

    Args:
        own_projection: the backend differentiates the input projection itself (it receives
            ``x`` and ``w_in`` and returns their gradients): ``c`` is computed without a graph,
            by ``project(x, w_in)`` when given (the backend's own product, with torch's bits).

    Returns:
        ``(c, w, alpha, rho, b0, beta, state, n_refr, dt, needs_graph)``: the input currents
        ``x @ w_in`` ``[T, B, N]``, ``w_rec`` with a zero diagonal, the decays and constants, the
        initial state (zeros if ``None``), and whether any input requires a gradient.

    Raises:
        ValueError: naming ``owner``, if the surrogate has no closed-form derivative.
    """
    if not has_closed_form_derivative(params.surrogate):
        raise ValueError(
            f"{owner}: surrogate {params.surrogate!r} has no closed-form derivative(x); "
            f"use lsnn_unroll(..., backend='reference')"
        )
    batch, n = x.shape[1], w_in.shape[-1]
    if state is None:
        state = initial_state(batch, n, dtype=x.dtype, device=x.device)
    dt = float(params.dt)
    w = zero_diagonal(w_rec)
    alpha = decay(params.tau_mem, dt)
    rho = decay(params.tau_adapt, dt)
    b0, beta = params.b0, params.beta_adapt
    if own_projection:
        with torch.no_grad():  # the same product (the same bits) without autograd's record of it
            c = project(x, w_in) if project is not None else x @ w_in
        inputs = (x, w_in, w, alpha, rho, b0, beta, state.v, state.z, state.b)
    else:
        c = x @ w_in
        inputs = (c, w, alpha, rho, b0, beta, state.v, state.z, state.b)
    needs_graph = torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs)
    return c, w, alpha, rho, b0, beta, state, params.n_refractory, dt, needs_graph


def unroll_outputs(params: LSNNParams, z_all, v_out, b_out, r_last, return_states: bool):
    """``(spikes, final_state, trace or None)`` from a hand-written backend's loop results
    (``v_out``/``b_out``: traces ``[T, B, N]`` when ``return_states``, else the last values)."""
    if return_states:
        final = LSNNState(v_out[-1], z_all[-1], b_out[-1], r_last)
        return z_all, final, LSNNTrace(v_out, b_out, params.b0 + params.beta_adapt * b_out)
    return z_all, LSNNState(v_out, z_all[-1], b_out, r_last), None


def unroll_hand_written(
    owner: str, recurrence, plain_loop, x, params: LSNNParams, w_in, w_rec, state: Optional[LSNNState],
    *, return_states: bool, spike_mask: Optional[torch.Tensor],
):
    """The body the hand-written backends (fused, event) share around their own time loops.

    :func:`unroll_inputs`, then ``recurrence.apply(...)`` (their ``torch.autograd.Function``) when
    an input requires a gradient, else ``plain_loop(...)`` under ``torch.no_grad`` (no graph), then
    :func:`unroll_outputs`.

    Args:
        owner: the backend's function name, for error messages.
        recurrence: ``torch.autograd.Function`` taking ``(c, w, alpha, rho, b0, beta, v0, z0, b_0, r0,
            n_refr, dt, derivative, return_states, mask)`` and returning ``(z, v, b, r_last)``;
            one with ``own_projection = True`` also takes ``x, w_in`` (last) and returns their
            gradients itself (``c`` then arrives without a graph, computed by its static
            ``project(x, w_in)`` if it has one).
        plain_loop: ``(c, w, alpha, rho, b0, beta, state, n_refr, dt, mask, return_states) ->
            (z, v, b, r_last)`` without autograd.
        x, params, w_in, w_rec, state, return_states, spike_mask: as
            :func:`~spikerobust.functional.lsnn_unroll`.

    Returns:
        ``(spikes, final_state, trace or None)``.
    """
    own = bool(getattr(recurrence, "own_projection", False))
    c, w, alpha, rho, b0, beta, state, n_refr, dt, needs_graph = unroll_inputs(
        owner, x, params, w_in, w_rec, state, own_projection=own, project=getattr(recurrence, "project", None) if own else None
    )
    mask = None if spike_mask is None else spike_mask.detach().to(dtype=c.dtype, device=c.device)
    if needs_graph:
        z_all, v_out, b_out, r_last = recurrence.apply(
            c, w, alpha, rho, b0, beta, state.v, state.z, state.b, state.r.detach(),
            n_refr, dt, params.surrogate.derivative, return_states, mask, *((x, w_in) if own else ()),
        )
    else:
        with torch.no_grad():
            z_all, v_out, b_out, r_last = plain_loop(c, w, alpha, rho, b0, beta, tuple(state), n_refr, dt, mask,
                                                     return_states)
    return unroll_outputs(params, z_all, v_out, b_out, r_last, return_states)


def hand_written_unroll(name: str, module: str, recurrence, plain_loop, doc: str):
    """The public entry point of a hand-written backend: :func:`unroll_hand_written` with
    ``recurrence`` and ``plain_loop``, under the signature of
    :func:`~spikerobust.functional.lsnn_unroll` less ``backend``.

    Args:
        name: the function's name (also used in error messages), e.g. ``"lsnn_unroll_event"``.
        module: the module it is published from (its ``__module__``).
        recurrence, plain_loop: as :func:`unroll_hand_written`.
        doc: its docstring, to which the sections ``Returns:`` and ``Raises:`` (the same for
            every backend) are added.

    Returns:
        ``unroll(x, params, w_in, w_rec, state=None, *, return_states=False, spike_mask=None)``.
    """

    def unroll(x: torch.Tensor, params: LSNNParams, w_in: torch.Tensor, w_rec: torch.Tensor,
               state: Optional[LSNNState] = None, *, return_states: bool = False,
               spike_mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, LSNNState, Optional[LSNNTrace]]:
        return unroll_hand_written(name, recurrence, plain_loop, x, params, w_in, w_rec, state,
                                   return_states=return_states, spike_mask=spike_mask)

    unroll.__name__ = unroll.__qualname__ = name
    unroll.__module__ = module
    unroll.__doc__ = doc.rstrip() + "\n" + _HAND_WRITTEN_SECTIONS
    return unroll


_HAND_WRITTEN_SECTIONS = """
    Returns:
        ``(spikes [T, B, N], final_state, trace or None)``.

    Raises:
        ValueError: if the surrogate has no closed-form derivative.
    """


def save_with_constants(ctx, tensors, consts) -> None:
    """``ctx.save_for_backward`` of ``tensors`` and of the neuron constants ``consts`` that are
    tensors; the others (Python floats) are kept on ``ctx`` (see :func:`saved_with_constants`)."""
    ctx.const_is_tensor = tuple(isinstance(k, torch.Tensor) for k in consts)
    ctx.const_floats = tuple(None if isinstance(k, torch.Tensor) else k for k in consts)
    ctx.save_for_backward(*tensors, *(k for k in consts if isinstance(k, torch.Tensor)))


def saved_with_constants(ctx) -> tuple[list, tuple]:
    """``(tensors, consts)`` as given to :func:`save_with_constants`."""
    saved = list(ctx.saved_tensors)
    n_const = sum(ctx.const_is_tensor)
    tensors, const_tensors = saved[: len(saved) - n_const], iter(saved[len(saved) - n_const:])
    consts = tuple(next(const_tensors) if is_t else f for is_t, f in zip(ctx.const_is_tensor, ctx.const_floats))
    return tensors, consts
