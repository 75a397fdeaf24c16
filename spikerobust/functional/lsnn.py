r"""Pure LSNN dynamics (Bellec et al. 2018, the variant of docs/lsnn.md).

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

from typing import NamedTuple, Optional, Union

import torch

from .surrogate import Surrogate, Triangle

__all__ = [
    "LSNNParams",
    "LSNNState",
    "LSNNTrace",
    "lsnn_step",
    "lsnn_step_current",
    "lsnn_unroll",
    "zero_diagonal",
    "initial_state",
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


def initial_state(batch: int, n: int, *, dtype=None, device=None) -> LSNNState:
    """All-zero state for a batch of ``batch`` samples and ``n`` neurons."""
    zeros = torch.zeros(batch, n, dtype=dtype, device=device)
    return LSNNState(zeros, zeros, zeros, zeros)


def zero_diagonal(w_rec: torch.Tensor) -> torch.Tensor:
    """``w_rec`` with its diagonal set to zero (differentiable; the diagonal gets no gradient)."""
    return w_rec - torch.diag_embed(torch.diagonal(w_rec, dim1=-2, dim2=-1))


def _decay(tau: Scalar, dt: float) -> Scalar:
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
    alpha = _decay(params.tau_mem, dt) if alpha is None else alpha
    rho = _decay(params.tau_adapt, dt) if rho is None else rho
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


def lsnn_unroll(
    x: torch.Tensor,
    params: LSNNParams,
    w_in: torch.Tensor,
    w_rec: torch.Tensor,
    state: Optional[LSNNState] = None,
    *,
    return_states: bool = False,
    backend: str = "reference",
    spike_mask: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, LSNNState, Optional[LSNNTrace]]:
    """Run :func:`lsnn_step` over time, differentiably (BPTT through autograd).

    The input projection ``x @ W_in`` is one matmul for all steps; the recurrence loops.

    Args:
        backend: ``"reference"`` (default: this loop of :func:`lsnn_step_current`, BPTT by
            autograd), ``"fused"`` (:func:`~spikerobust.functional.lsnn_fused.lsnn_unroll_fused`:
            same results, hand-written backward pass, much faster), ``"event"``
            (:func:`~spikerobust.functional.lsnn_event.lsnn_unroll_event`: compiled CPU kernels
            that compute on spikes and on the surrogate's support; fused where they cannot run)
            or ``"auto"`` (event wherever it applies, i.e. numba is installed and the tensors are
            on the CPU, else fused, both needing a surrogate with a closed-form derivative and no
            ``torch.func`` transform; inside ``vmap``/``grad`` this loop runs with a surrogate
            those transforms accept). Every backend gives the same spikes bit for bit.
        spike_mask: optional 0/1 tensor ``[N]`` (broadcast over the batch and time) multiplied
            into every ``z_t`` inside the recurrence, as the reference's dropout does (one mask
            per optimisation step, no rescaling): a masked neuron never spikes, so it feeds
            neither the recurrence nor the readout, and neither resets nor adapts. Its surrogate
            gradient is masked too. Treated as a constant (no gradient).

    Shape:
        ``x`` ``[T, B, d_in]`` → spikes ``[T, B, N]``.

    Returns:
        ``(spikes, final_state, trace)`` where ``trace`` is an :class:`LSNNTrace` when
        ``return_states`` is set, else ``None``.
    """
    if backend != "reference":
        from .lsnn_fused import functorch_compatible, lsnn_unroll_fused, resolve_backend

        path = resolve_backend(backend, params, (x, w_in, w_rec, *(state or ())), n=w_in.shape[-1])
        if path == "event" and (spike_mask is None or tuple(spike_mask.shape) == (w_in.shape[-1],)):
            from .lsnn_event import lsnn_unroll_event

            return lsnn_unroll_event(
                x, params, w_in, w_rec, state, return_states=return_states, spike_mask=spike_mask
            )
        if path != "reference":
            return lsnn_unroll_fused(
                x, params, w_in, w_rec, state, return_states=return_states, spike_mask=spike_mask
            )
        params = functorch_compatible(params)
    t_steps, batch, _ = x.shape
    n = w_in.shape[-1]
    if state is None:
        state = initial_state(batch, n, dtype=x.dtype, device=x.device)
    w_rec = zero_diagonal(w_rec)
    alpha = _decay(params.tau_mem, params.dt)
    rho = _decay(params.tau_adapt, params.dt)
    currents = x @ w_in
    if spike_mask is not None:
        spike_mask = spike_mask.detach()
    spikes, vs, bs = [], [], []
    for t in range(t_steps):
        z, state = lsnn_step_current(
            currents[t], state, params, w_rec, alpha=alpha, rho=rho, spike_mask=spike_mask
        )
        spikes.append(z)
        if return_states:
            vs.append(state.v)
            bs.append(state.b)
    out = torch.stack(spikes)
    trace = None
    if return_states:
        b_trace = torch.stack(bs)
        trace = LSNNTrace(torch.stack(vs), b_trace, params.b0 + params.beta_adapt * b_trace)
    return out, state, trace
