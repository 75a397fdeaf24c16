r"""Interval simulation of an :class:`~spikerobust.nn.LSNNClassifier` under relative weight boxes (docs/verification.md).

Every weight and bias ``p`` (``W_in``, ``W_rec``, readout weight and bias) becomes the interval
``[p - ε|p|, p + ε|p|]``; optionally the neuron constants ``τ_mem``, ``τ_adapt``, ``b0`` and
``β_adapt`` too. The simulation follows the step order of :mod:`spikerobust.functional.lsnn`,
carrying bounds on every state variable (``v``, ``z``, ``b``, ``r``) as :class:`Interval`\ s and
computing every operation with the rule of :mod:`spikerobust.verify.rules` (the same interval
products as the feed-forward verifier)::

    b_t = ρ b + (1 - ρ) z           b, z >= 0 and 0 < ρ < 1: each bound from the same bounds
    A_t = b0 + β b                   A > 0 is checked (else ValueError)
    I_t = x_t W_in + z W_rec         centre/radius products, diag(W_rec) = 0 exactly
    v_t = α v + (1 - α) I - z A dt   z A ∈ [z_lo A_lo, z_hi A_hi] since z >= 0, A > 0
    z_t = H(v_t - A_t) 1[r <= 0] / dt
    r_t = clip(r + n z - 1, 0, n)    monotone in r and z: each bound from the same bounds

The spike: because ``A > 0``, ``(v - A)/A > 0`` exactly when ``v - A > 0`` (also in floating point:
a difference of distinct floats is never rounded to 0 and keeps its sign). So the spike is
*certain* when ``v_lo > A_hi``, *impossible* when ``v_hi <= A_lo`` (at ``v = A`` the LSNN does not
spike, ``H(0) = 0``) or refractory for sure, and *uncertain* otherwise (``z ∈ [0, 1/dt]``).
The refractory indicator ``1[r <= 0]`` is certain when ``r_hi <= 0`` and impossible when
``r_lo > 0``. With constant intervals, ``α = exp(-dt/τ)`` is increasing in ``τ``.

Each parameter is used at every step as if it could take a different value in its box each
time; this over-approximates (and so stays sound for) the fixed-parameter network. The bounds
are exact in real arithmetic; computed in floating point they carry rounding errors of the
order of the dtype's epsilon, so certify in float64 (``dtype=torch.float64``). The certificate is
about the network in exact arithmetic; a float32 implementation of it adds its own rounding
(about 1e-7 relative), which matters only for ε of that order.

With ``ε = 0`` every bound equals the plain forward pass bit for bit (every interval stays
degenerate, so the rules run the plain operations in the forward pass's order) and no spike
is uncertain.

Examples:
    >>> import torch
    >>> from spikerobust.nn import LSNNClassifier
    >>> model = LSNNClassifier(2, n_hidden=16, n_classes=3)
    >>> x = torch.randn(30, 4, 2)
    >>> lower, upper = lsnn_logit_bounds(model, x, epsilon=1e-3)
    >>> bool((lower <= model(x)).all() and (model(x) <= upper).all())
    True
    >>> res = lsnn_interval_simulation(model, x, epsilon=1e-3)
    >>> res.spike_status.shape  # [T, B, N]: 1 certain, 0 impossible, -1 uncertain
    torch.Size([30, 4, 16])
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional

import torch
from torch import nn

from .._checks import check_time_first
from ..functional.lsnn import LSNNLayer, zero_diagonal
from ..protocol import spiking_layers
from .interval import Interval, relative_interval, resolve_epsilon
from .rules import add, clip, decay, heaviside, le_zero, linear, matmul, mean, mul, stack, sub

__all__ = [
    "SpikeStatus",
    "LSNNIntervalResult",
    "lsnn_interval_simulation",
    "lsnn_logit_bounds",
    "lsnn_parts",
    "spike_status",
]


class SpikeStatus(enum.IntEnum):
    """Per neuron and step: is the spike the same for every parameter set in the box?"""

    UNCERTAIN = -1
    IMPOSSIBLE = 0
    CERTAIN = 1


class LSNNIntervalResult(NamedTuple):
    """Output of :func:`lsnn_interval_simulation`.

    Attributes:
        logits: :class:`Interval` of the logits, ``[B, C]``.
        spikes: :class:`Interval` of the spikes ``z_t``, ``[T, B, N]`` (each bound 0 or ``1/dt``).
        spike_status: ``int8`` ``[T, B, N]``: 1 certain spike, 0 impossible, -1 uncertain
            (:class:`SpikeStatus`).
        v: :class:`Interval` of the membrane potential ``[T, B, N]`` (``None`` unless requested).
        threshold: :class:`Interval` of the adaptive threshold ``A_t`` ``[T, B, N]`` (or ``None``).
    """

    logits: Interval
    spikes: Interval
    spike_status: torch.Tensor
    v: Optional[Interval] = None
    threshold: Optional[Interval] = None


def spike_status(spikes: Interval) -> torch.Tensor:
    """``int8`` status from spike bounds: 1 where ``lower > 0``, 0 where ``upper <= 0``, else -1."""
    lo, hi = spikes.lower > 0, spikes.upper > 0
    uncertain = torch.tensor(int(SpikeStatus.UNCERTAIN), dtype=torch.int8, device=lo.device)
    return torch.where(lo == hi, hi.to(torch.int8), uncertain)


def lsnn_parts(model) -> tuple:
    """``(layer, readout)`` of an LSNN classifier, found through the model protocol.

    The model must declare exactly one spiking layer (:func:`spikerobust.protocol.spiking_layers`)
    that exposes the LSNN's weights and constants (:class:`~spikerobust.functional.LSNNLayer`,
    with ``d_in``, ``dt`` and ``n_refractory``), and a linear ``readout`` of its time-averaged
    spikes, as :class:`~spikerobust.nn.LSNNClassifier` does.

    Raises:
        ValueError: naming what is missing.
    """
    layers = spiking_layers(model)
    readout = getattr(model, "readout", None)
    if len(layers) != 1 or not isinstance(layers[0], LSNNLayer) or not isinstance(readout, nn.Linear):
        raise ValueError(
            f"the LSNN interval simulation needs a model with one LSNN spiking layer and an nn.Linear `readout` "
            f"of its time-averaged spikes (an LSNNClassifier); {type(model).__name__} declares "
            f"{len(layers)} spiking layer(s) and readout={type(readout).__name__}"
        )
    return layers[0], readout


@torch.no_grad()
def lsnn_interval_simulation(
    model,
    x: torch.Tensor,
    epsilon: Optional[float] = None,
    *,
    neuron_constants: bool = False,
    dtype: Optional[torch.dtype] = None,
    return_states: bool = False,
    zeta: Optional[float] = None,
) -> LSNNIntervalResult:
    """Bounds on the logits and spikes of an LSNN classifier for every parameter set in the box.

    Args:
        model: an :class:`~spikerobust.nn.LSNNClassifier` (any model with one declared LSNN
            spiking layer and a linear ``readout``, see :func:`lsnn_parts`).
        x: input currents, time first.
        epsilon: relative half-width ``ε >= 0`` of every weight and bias interval.
        neuron_constants: also put ``τ_mem``, ``τ_adapt``, ``b0`` and ``β_adapt`` in
            ``[p - ε|p|, p + ε|p|]`` (needs ``ε < 1`` so that the time constants stay positive).
        dtype: compute in this dtype (default: the model's). Use ``torch.float64`` to certify.
        return_states: also return the bounds of ``v`` and of the threshold ``A`` over time.
        zeta: deprecated name of ``epsilon``.

    Returns:
        :class:`LSNNIntervalResult` (logit and spike intervals, spike status).

    Shape:
        ``x``: ``[T, B, d_in]`` → logits ``[B, C]``; spikes and status ``[T, B, N]``.

    Raises:
        ValueError: for a bad ``x``, model or ``epsilon``, or if the threshold interval reaches
            ``<= 0`` (possible only with negative ``β_adapt`` or huge ``ε``).
    """
    epsilon = resolve_epsilon(epsilon, zeta, owner="lsnn_interval_simulation")
    layer, readout = lsnn_parts(model)
    check_time_first(x, layer.d_in)
    dtype = layer.w_in.dtype if dtype is None else dtype
    x = x.to(device=layer.w_in.device, dtype=dtype)
    dt, n_refr = float(layer.dt), float(layer.n_refractory)
    if neuron_constants and epsilon >= 1.0:
        raise ValueError(
            f"epsilon must be < 1 when neuron_constants=True (time constants stay > 0), got {epsilon}"
        )

    def box(p: torch.Tensor, perturb: bool = True):
        """The parameter's interval ``p ± ε|p|`` (a plain tensor when it is exact)."""
        p = p.detach().to(dtype)
        return relative_interval(p, epsilon) if perturb and epsilon > 0 else p

    consts = neuron_constants
    w_rec = box(zero_diagonal(layer.w_rec.detach()))  # diag(W_rec) = 0 exactly, also in the box
    alpha, rho = decay(box(layer.tau_mem, consts), dt), decay(box(layer.tau_adapt, consts), dt)
    one_m_alpha, one_m_rho = sub(1.0, alpha), sub(1.0, rho)
    b0, beta = box(layer.b0, consts), box(layer.beta_adapt, consts)
    # feed-forward currents of all steps at once (x is exact)
    cur = matmul(x, box(layer.w_in))

    t_steps, batch, _ = x.shape
    zeros = torch.zeros(batch, w_rec.shape[-1], dtype=dtype, device=x.device)
    v = b = z = r = Interval.point(zeros)
    z_all, v_trace, a_trace = [], [], []
    a_min = None
    for t in range(t_steps):
        b = add(mul(rho, b), mul(one_m_rho, z))
        a = add(b0, mul(beta, b))
        a_min = a.lower if a_min is None else torch.minimum(a_min, a.lower)
        i = add(cur[t], matmul(z, w_rec))
        v = sub(add(mul(alpha, v), mul(one_m_alpha, i)), mul(mul(z, a), dt) if dt != 1.0 else mul(z, a))
        # spike H(v - A) (A > 0, so the sign of (v - A)/A is that of v - A), blocked while refractory
        z = mul(heaviside(sub(v, a)), le_zero(r))
        if dt != 1.0:
            z = mul(z, 1.0 / dt)
        r = clip(sub(add(r, mul(z, n_refr)), 1.0), 0.0, n_refr)
        z_all.append(z)
        if return_states:
            v_trace.append(v)
            a_trace.append(a)
    if not bool((a_min > 0).all()):
        raise ValueError(
            f"the threshold interval A = b0 + beta_adapt * b reaches {float(a_min.min()):.3g} <= 0; "
            f"the spike rule needs A > 0 (check b0 > 0, beta_adapt >= 0, or use a smaller epsilon)"
        )
    spikes = stack(z_all)  # [T, B, N]
    logits = linear(mean(spikes, dim=0), box(readout.weight), None if readout.bias is None else box(readout.bias))
    v_iv = stack(v_trace) if return_states else None
    a_iv = stack(a_trace) if return_states else None
    return LSNNIntervalResult(logits, spikes, spike_status(spikes), v_iv, a_iv)


def lsnn_logit_bounds(model, x: torch.Tensor, epsilon: Optional[float] = None, *, zeta: Optional[float] = None,
                      **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower, upper)`` logit bounds of an LSNN classifier over the box ``±ε|p|`` of every weight and bias.

    Keyword arguments go to :func:`lsnn_interval_simulation` (``neuron_constants``, ``dtype``).

    Shape:
        ``x``: ``[T, B, d_in]`` → ``lower``, ``upper``: ``[B, C]``.

    Examples:
        >>> import torch
        >>> from spikerobust.nn import LSNNClassifier
        >>> model = LSNNClassifier(2, n_hidden=8, n_classes=2)
        >>> lo, hi = lsnn_logit_bounds(model, torch.randn(20, 3, 2), 0.0)
        >>> torch.equal(lo, hi)
        True
    """
    epsilon = resolve_epsilon(epsilon, zeta, owner="lsnn_logit_bounds")
    res = lsnn_interval_simulation(model, x, epsilon, **kwargs)
    return res.logits.lower, res.logits.upper
