"""The LSNN's time loop, :func:`lsnn_unroll`, with its choice of backend (docs/lsnn.md).

The equations, the parameter and state types and the single step live in
:mod:`spikerobust.functional.lsnn_core` and are re-exported here, so
``from spikerobust.functional.lsnn import LSNNParams, lsnn_step`` keeps working. The hand-written
backends :mod:`~spikerobust.functional.lsnn_fused` and :mod:`~spikerobust.functional.lsnn_event`
build on ``lsnn_core`` too; this module sits above all three.

Shape:
    - ``x``: ``[T, B, d_in]`` (time first); ``w_in``: ``[d_in, N]``; ``w_rec``: ``[N, N]``
    - spikes and traces: ``[T, B, N]``; state tensors: ``[B, N]``

References:
    Bellec, Salaj, Subramoney, Legenstein, Maass. "Long short-term memory and learning-to-learn in
    networks of spiking neurons", NeurIPS 2018.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import lsnn_event, lsnn_fused
from .lsnn_core import (
    LSNNLayer,
    LSNNParams,
    LSNNState,
    LSNNTrace,
    Scalar,
    decay,
    initial_state,
    lsnn_step,
    lsnn_step_current,
    zero_diagonal,
)

__all__ = [
    "LSNNLayer",
    "LSNNParams",
    "LSNNState",
    "LSNNTrace",
    "Scalar",
    "decay",
    "lsnn_step",
    "lsnn_step_current",
    "lsnn_unroll",
    "zero_diagonal",
    "initial_state",
]


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
        x: input ``[T, B, d_in]``.
        params: neuron constants (:class:`LSNNParams`); the hand-written backends need a
            surrogate with a closed-form ``derivative(x)``.
        w_in: ``[d_in, N]``.
        w_rec: ``[N, N]``; its diagonal is ignored (and gets no gradient).
        state: initial :class:`LSNNState` (zeros if ``None``), e.g. the final state of the
            previous piece of a longer sequence; may require gradients.
        return_states: also return an :class:`LSNNTrace` of ``v``, ``b`` and the threshold.
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
        path = lsnn_fused.resolve_backend(backend, params, (x, w_in, w_rec, *(state or ())), n=w_in.shape[-1])
        if path == "event" and (spike_mask is None or tuple(spike_mask.shape) == (w_in.shape[-1],)):
            return lsnn_event.lsnn_unroll_event(
                x, params, w_in, w_rec, state, return_states=return_states, spike_mask=spike_mask
            )
        if path != "reference":
            return lsnn_fused.lsnn_unroll_fused(
                x, params, w_in, w_rec, state, return_states=return_states, spike_mask=spike_mask
            )
        params = lsnn_fused.functorch_compatible(params)
    t_steps, batch, _ = x.shape
    n = w_in.shape[-1]
    if state is None:
        state = initial_state(batch, n, dtype=x.dtype, device=x.device)
    w_rec = zero_diagonal(w_rec)
    alpha = decay(params.tau_mem, params.dt)
    rho = decay(params.tau_adapt, params.dt)
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
