"""Statistical models of one phase-change-memory device (docs/pcm.md), as pure tensor functions.

Conductances are *normalised*: ``g = G / g_max`` with ``g_max = 25 µS``, so a fully-on device has
``g = 1``. The device equations, for a target conductance ``g_T`` in [0, 1]:

programming noise (one draw when the array is written)::

    σ_p(g_T) = (0.26348 + 1.9650·g_T − 1.1731·g_T²) µS          →  σ_p / g_max in normalised units
    g_p      = max(g_T + σ_p(g_T)/g_max · N(0, 1), 0)

drift (ν drawn once per device at programming, a device property)::

    μ_ν = clip(−0.0155·ln g_T + 0.0244, 0.049, 0.1)
    σ_ν = clip(−0.0125·ln g_T − 0.0059, 0.008, 0.045)
    ν   = |N(μ_ν, σ_ν)|
    g(t) = g_p · (t / t0)^(−ν)                                   for t ≥ t0

read (1/f) noise (a fresh draw at every evaluation time)::

    Q_s  = min(0.0088 / g_p^0.65, 0.2)
    g_r  = max(g(t) + |g(t)|·Q_s·sqrt(ln((t + t_read) / (2·t_read)))·N(0, 1), 0)

Choices where docs/pcm.md leaves room, and what this module does:

* The polynomial of σ_p is in µS for a 25 µS device and is divided by ``g_max`` (in µS) to get a
  normalised σ; with the default ``g_max = 25`` this is σ_p / 25.
* ``ln g_T`` at ``g_T = 0`` (the idle device of a differential pair) is taken at ``g_T = 1e-7``,
  which the clips turn into μ_ν = 0.1, σ_ν = 0.045; a zero conductance stays zero under drift.
* ``g_p`` in ``Q_s`` is the *programmed* normalised conductance (after programming noise, before
  drift), clamped below at 1e-7 so that ``Q_s`` is 0.2 for an empty device.
* A seeded ``generator`` draws on its own device and the draw is moved to the conductances'
  device, so a CPU generator gives the same numbers for conductances on any device.

Examples:
    >>> import torch
    >>> round(float(programming_noise_std(torch.tensor(1.0))) * 25, 5)   # µS at g_T = 1
    1.05538
    >>> mu, sd = drift_exponent_stats(torch.tensor([1.0, 0.01]))
    >>> [round(v, 4) for v in mu.tolist()], [round(v, 4) for v in sd.tolist()]
    ([0.049, 0.0958], [0.008, 0.045])

References:
    Nandakumar et al. (2019), Joshi et al. (2020) "Accurate deep neural network inference using
    computational phase-change memory", Nat. Commun. 11:2473; Büchel et al. (2022), SM "PCM noise model".
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch

__all__ = [
    "G_MAX_US",
    "PROG_COEFFS_US",
    "T_READ",
    "G_MIN_LOG",
    "programming_noise_std",
    "drift_exponent_stats",
    "read_noise_std",
    "program_conductance",
    "draw_drift_exponent",
    "drift_conductance",
    "read_conductance",
]

G_MAX_US = 25.0
"""Maximum device conductance in µS (docs/pcm.md)."""
PROG_COEFFS_US = (0.26348, 1.9650, -1.1731)
"""Coefficients (c0, c1, c2) of σ_p(g_T) = c0 + c1·g_T + c2·g_T² in µS."""
T_READ = 250e-9
"""Duration of one read in seconds (t_read of the 1/f noise)."""
G_MIN_LOG = 1e-7
"""Floor applied to normalised conductances inside logarithms and powers."""


def programming_noise_std(g_target: torch.Tensor, g_max: float = G_MAX_US) -> torch.Tensor:
    """Normalised programming-noise standard deviation σ_p(g_T)/g_max, clamped ≥ 0.

    Args:
        g_target: normalised target conductances ``g_T`` (any shape).
        g_max: the maximum conductance in µS that ``g = 1`` stands for.

    Returns:
        a tensor of the shape of ``g_target``.
    """
    c0, c1, c2 = PROG_COEFFS_US
    return ((c0 + c1 * g_target + c2 * g_target * g_target) / float(g_max)).clamp(min=0.0)


def drift_exponent_stats(g_target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Location μ_ν and scale σ_ν of the (folded) normal drift exponent for target ``g_T``."""
    log_g = torch.log(g_target.clamp(min=G_MIN_LOG))
    mu = (-0.0155 * log_g + 0.0244).clamp(0.049, 0.1)
    sigma = (-0.0125 * log_g - 0.0059).clamp(0.008, 0.045)
    return mu, sigma


def read_noise_std(g_prog: torch.Tensor, t: float, t_read: float = T_READ) -> torch.Tensor:
    """Relative read-noise std ``Q_s(g_p)·sqrt(ln((t + t_read)/(2 t_read)))`` (multiply by |g(t)|).

    Raises:
        ValueError: if ``t`` is not larger than ``t_read`` (the log would be ≤ 0 or negative).
    """
    t, t_read = float(t), float(t_read)
    if not t_read > 0 or not t > t_read:
        raise ValueError(f"read noise needs t > t_read > 0, got t={t}, t_read={t_read}")
    q_s = (0.0088 / g_prog.clamp(min=G_MIN_LOG).pow(0.65)).clamp(max=0.2)
    return q_s * math.sqrt(math.log((t + t_read) / (2.0 * t_read)))


def _standard_normal(like: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``N(0, 1)`` of ``like``'s shape and dtype, on ``like``'s device.

    A ``generator`` draws on its own device and the draw is then moved to ``like``'s device (the
    draw moves, not the generator): a seeded CPU generator serves devices on any accelerator and
    gives the same numbers there as on the CPU. Without one the global RNG of ``like``'s device draws.
    """
    device = like.device if generator is None else generator.device
    return torch.randn(like.shape, dtype=like.dtype, device=device, generator=generator).to(like.device)


def _add_noise(g: torch.Tensor, amplitude: Union[float, torch.Tensor], std: torch.Tensor,
               generator: Optional[torch.Generator]) -> torch.Tensor:
    """``max(g + amplitude·std·N(0, 1), 0)``: the noisy write and the noisy read of docs/pcm.md."""
    return (g + amplitude * std * _standard_normal(g, generator)).clamp(min=0.0)


def program_conductance(
    g_target: torch.Tensor,
    *,
    scale: float = 1.0,
    g_max: float = G_MAX_US,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Programmed conductance ``g_p = max(g_T + scale·σ_p(g_T)·N(0,1), 0)`` (normalised)."""
    if scale == 0:
        return g_target.clone()
    return _add_noise(g_target, float(scale), programming_noise_std(g_target, g_max), generator)


def draw_drift_exponent(
    g_target: torch.Tensor,
    *,
    fixed: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Per-device drift exponent ``ν = |N(μ_ν(g_T), σ_ν(g_T))|``, or the constant ``fixed`` for all."""
    if fixed is not None:
        return torch.full_like(g_target, float(fixed))
    mu, sigma = drift_exponent_stats(g_target)
    return (mu + sigma * _standard_normal(g_target, generator)).abs()


def drift_conductance(g_prog: torch.Tensor, nu: torch.Tensor, t: float, t0: float) -> torch.Tensor:
    """``g(t) = g_p·(t/t0)^(−ν)``; ``t = t0`` returns ``g_p`` exactly.

    Raises:
        ValueError: for ``t < t0`` or a non-positive ``t0`` (the power law holds from t0 on).
    """
    t, t0 = float(t), float(t0)
    if not t0 > 0 or not t >= t0:
        raise ValueError(f"drift needs t >= t0 > 0 (seconds since programming), got t={t}, t0={t0}")
    if t == t0:
        return g_prog.clone()
    return g_prog * torch.exp(-nu * math.log(t / t0))


def read_conductance(
    g_drift: torch.Tensor,
    g_prog: torch.Tensor,
    t: float,
    *,
    scale: float = 1.0,
    t_read: float = T_READ,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Read conductance ``max(g(t) + scale·|g(t)|·Q_s(g_p)·sqrt(ln(...))·N(0,1), 0)``."""
    if scale == 0:
        return g_drift.clone()
    return _add_noise(g_drift, float(scale) * g_drift.abs(), read_noise_std(g_prog, t, t_read), generator)
