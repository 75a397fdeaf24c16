r"""Interval simulation of an :class:`~spikerobust.nn.LSNNClassifier` under relative weight boxes (docs/verification.md).

Every weight and bias ``p`` (``W_in``, ``W_rec``, readout weight and bias) becomes the interval
``[p - ζ|p|, p + ζ|p|]``; optionally the neuron constants ``τ_mem``, ``τ_adapt``, ``b0`` and
``β_adapt`` too. The simulation follows the step order of :mod:`spikerobust.functional.lsnn`,
carrying bounds on every state variable (``v``, ``z``, ``b``, ``r``)::

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
(about 1e-7 relative), which matters only for ζ of that order.

With ``ζ = 0`` every bound equals the plain forward pass bit for bit (same operations in the
same order) and no spike is uncertain.

Examples:
    >>> import torch
    >>> from spikerobust.nn import LSNNClassifier
    >>> model = LSNNClassifier(2, n_hidden=16, n_classes=3)
    >>> x = torch.randn(30, 4, 2)
    >>> lower, upper = lsnn_logit_bounds(model, x, zeta=1e-3)
    >>> bool((lower <= model(x)).all() and (model(x) <= upper).all())
    True
    >>> res = lsnn_interval_simulation(model, x, zeta=1e-3)
    >>> res.spike_status.shape  # [T, B, N]: 1 certain, 0 impossible, -1 uncertain
    torch.Size([30, 4, 16])
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from .._checks import check_time_first
from ..functional.lsnn import zero_diagonal
from .interval import Interval, check_zeta, relative_interval
from .rules import decay, linear

__all__ = [
    "SpikeStatus",
    "LSNNIntervalResult",
    "lsnn_interval_simulation",
    "lsnn_logit_bounds",
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
    lo, hi = (spikes.lower > 0).to(torch.int8), (spikes.upper > 0).to(torch.int8)
    # lo + hi: 2 certain, 1 uncertain, 0 impossible
    s = lo + hi
    return torch.where(s == 1, torch.full_like(s, -1), s // 2)


# Bounds are carried stacked: a tensor [2, ...] holds (lower, upper), so one kernel serves both.
# A neuron constant is either an exact tensor [N] or stacked bounds [2, 1, N].


def _stacked_const(value: torch.Tensor, zeta: float, perturb: bool) -> torch.Tensor:
    if not perturb or zeta == 0.0:
        return value
    iv = relative_interval(value, zeta)
    return torch.stack((iv.lower, iv.upper)).unsqueeze(1)


def _pos_times(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Stacked bounds of ``c * x`` for a strictly positive factor ``c`` and stacked ``x``.

    With ``c ∈ [c_lo, c_hi]``: lower ``= c_lo x_lo`` if ``x_lo >= 0`` else ``c_hi x_lo``; upper
    ``= c_hi x_hi`` if ``x_hi >= 0`` else ``c_lo x_hi``.
    """
    if c.dim() < 3:
        return c * x
    return torch.where(x >= 0, c * x, c.flip(0) * x)


def _times_nonneg(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Stacked bounds of ``c * x`` for an any-signed factor ``c`` and ``0 <= x``.

    lower ``= c_lo x_lo`` if ``c_lo >= 0`` else ``c_lo x_hi``; upper ``= c_hi x_hi`` if
    ``c_hi >= 0`` else ``c_hi x_lo``. An exact ``c`` must be non-negative (callers check).
    """
    if c.dim() < 3:
        return c * x
    return torch.where(c >= 0, c * x, c * x.flip(0))


def _one_minus(c: torch.Tensor) -> torch.Tensor:
    return 1.0 - c if c.dim() < 3 else 1.0 - c.flip(0)


def _decays(tau: torch.Tensor, zeta: float, perturb: bool, dt: float) -> torch.Tensor:
    if not perturb or zeta == 0.0:
        return torch.exp(-dt / tau)
    iv = decay(relative_interval(tau, zeta), dt)
    return torch.stack((iv.lower, iv.upper)).unsqueeze(1)


@torch.no_grad()
def lsnn_interval_simulation(
    model,
    x: torch.Tensor,
    zeta: float,
    *,
    neuron_constants: bool = False,
    dtype: Optional[torch.dtype] = None,
    return_states: bool = False,
) -> LSNNIntervalResult:
    """Bounds on the logits and spikes of an LSNN classifier for every parameter set in the box.

    Args:
        model: an :class:`~spikerobust.nn.LSNNClassifier` (any module with ``.lsnn``, an
            :class:`~spikerobust.nn.LSNN`, and ``.readout``, an ``nn.Linear``).
        x: input currents, time first.
        zeta: relative half-width ``ζ >= 0`` of every weight and bias interval.
        neuron_constants: also put ``τ_mem``, ``τ_adapt``, ``b0`` and ``β_adapt`` in
            ``[p - ζ|p|, p + ζ|p|]`` (needs ``ζ < 1`` so that the time constants stay positive).
        dtype: compute in this dtype (default: the model's). Use ``torch.float64`` to certify.
        return_states: also return the bounds of ``v`` and of the threshold ``A`` over time.

    Returns:
        :class:`LSNNIntervalResult` (logit and spike intervals, spike status).

    Shape:
        ``x``: ``[T, B, d_in]`` → logits ``[B, C]``; spikes and status ``[T, B, N]``.

    Raises:
        ValueError: for a bad ``x`` or ``zeta``, or if the threshold interval reaches ``<= 0``
            (possible only with negative ``β_adapt`` or huge ``ζ``).
    """
    zeta = check_zeta(zeta)
    layer, readout = model.lsnn, model.readout
    check_time_first(x, layer.d_in)
    dtype = layer.w_in.dtype if dtype is None else dtype
    x = x.to(device=layer.w_in.device, dtype=dtype)
    dt, n_refr = float(layer.dt), float(layer.n_refractory)
    if neuron_constants and zeta >= 1.0:
        raise ValueError(f"zeta must be < 1 when neuron_constants=True (time constants stay > 0), got {zeta}")

    cast = lambda t: t.detach().to(dtype)  # noqa: E731
    w_in, w_rec = cast(layer.w_in), zero_diagonal(cast(layer.w_rec))
    alpha = _decays(cast(layer.tau_mem), zeta, neuron_constants, dt)
    rho = _decays(cast(layer.tau_adapt), zeta, neuron_constants, dt)
    one_m_alpha, one_m_rho = _one_minus(alpha), _one_minus(rho)
    b0 = _stacked_const(cast(layer.b0), zeta, neuron_constants)
    beta = _stacked_const(cast(layer.beta_adapt), zeta, neuron_constants)
    if beta.dim() < 3 and not bool((beta >= 0).all()):
        beta = torch.stack((beta, beta)).unsqueeze(1)  # negative entries: the sign-aware path

    t_steps, batch, _ = x.shape
    n = w_in.shape[-1]
    # Feed-forward currents for all steps: centre x W_in, radius ζ |x| |W_in| (x is exact).
    cur_c = x @ w_in
    cur_r = zeta * (x.abs() @ w_in.abs()) if zeta > 0 else None
    w_rec_abs = w_rec.abs()
    sign = torch.tensor([-1.0, 1.0], dtype=dtype, device=x.device).view(2, 1, 1)

    # stacked state bounds [2, B, N]: index 0 lower, 1 upper
    v = b = z = r = torch.zeros(2, batch, n, dtype=dtype, device=x.device)
    z_all, v_trace, a_trace = [], [], []
    a_min = None
    for t in range(t_steps):
        # adaptation and threshold (b, z >= 0; ρ, 1 - ρ > 0)
        b = _pos_times(rho, b) + _pos_times(one_m_rho, z)
        a = b0 + _times_nonneg(beta, b)
        a_min = a[0] if a_min is None else torch.minimum(a_min, a[0])
        # input + recurrent current, centre/radius (z in [0, 1/dt] so |z_c| = z_c)
        z_c = (z[0] + z[1]) * 0.5
        centre = cur_c[t] + z_c @ w_rec
        z_r = (z[1] - z[0]) * 0.5
        if zeta > 0:
            radius = cur_r[t] + (zeta * z_c + (1.0 + zeta) * z_r) @ w_rec_abs
            i = centre + sign * radius
        elif bool(z_r.any()):  # impossible at ζ = 0 (every spike is certain), kept for safety
            i = centre + sign * (z_r @ w_rec_abs)
        else:
            i = centre.expand(2, batch, n)
        # membrane: α v + (1 - α) I - z A dt, with z A ∈ [z_lo A_lo, z_hi A_hi] (z >= 0, A > 0)
        reset = (z * a).flip(0)
        v = _pos_times(alpha, v) + _pos_times(one_m_alpha, i) - (reset * dt if dt != 1.0 else reset)
        # spike H(v - A) (A > 0): lower from v_lo - A_hi, upper from v_hi - A_lo; blocked while
        # refractory: certainly allowed if r_hi <= 0, possibly allowed if r_lo <= 0
        allowed = (r.flip(0) <= 0).to(dtype)
        z = ((v - a.flip(0)) > 0).to(dtype) * allowed
        if dt != 1.0:
            z = z / dt
        r = torch.clamp(r + n_refr * z - 1.0, 0.0, n_refr)
        z_all.append(z)
        if return_states:
            v_trace.append(v)
            a_trace.append(a)
    if not bool((a_min > 0).all()):
        raise ValueError(
            f"the threshold interval A = b0 + beta_adapt * b reaches {float(a_min.min()):.3g} <= 0; "
            f"the spike rule needs A > 0 (check b0 > 0, beta_adapt >= 0, or use a smaller zeta)"
        )
    z_all = torch.stack(z_all, dim=1)  # [2, T, B, N]
    spikes = Interval.trusted(z_all[0], z_all[1])
    rates = Interval.trusted(spikes.lower.mean(dim=0), spikes.upper.mean(dim=0))
    w_out, b_out = cast(readout.weight), cast(readout.bias) if readout.bias is not None else None
    if zeta > 0:
        logits = linear(rates, relative_interval(w_out, zeta), None if b_out is None else relative_interval(b_out, zeta))
    elif torch.equal(rates.lower, rates.upper):
        logits = Interval.point(F.linear(rates.lower, w_out, b_out))
    else:
        logits = linear(rates, w_out, b_out)
    v_iv = a_iv = None
    if return_states:
        v_st, a_st = torch.stack(v_trace, dim=1), torch.stack(a_trace, dim=1)
        v_iv, a_iv = Interval.trusted(v_st[0], v_st[1]), Interval.trusted(a_st[0], a_st[1])
    return LSNNIntervalResult(logits, spikes, spike_status(spikes), v_iv, a_iv)


def lsnn_logit_bounds(model, x: torch.Tensor, zeta: float, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower, upper)`` logit bounds of an LSNN classifier over the box ``±ζ|p|`` of every weight and bias.

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
    res = lsnn_interval_simulation(model, x, zeta, **kwargs)
    return res.logits.lower, res.logits.upper
