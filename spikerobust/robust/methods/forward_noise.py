r"""Forward noise (Murray & Edwards 1994), alone or combined with the robust loss (docs/robust-training.md).

Each step draws a fresh relative Gaussian perturbation of the selected parameters and evaluates
the task loss there, with the perturbation held constant (a stop-gradient), so the gradient of

.. math::  L_{nat}(\theta + \mathrm{sg}(\eta |\theta| \odot R)), \qquad R \sim \mathcal{N}(0, I),

is applied to θ itself (η = 0.3). The perturbed tensors are passed to
:func:`torch.func.functional_call`; the model's parameters are never overwritten.

With ``beta > 0`` ("forward noise + β") the paper's robust loss is added, computed at the CLEAN
parameters (:func:`~spikerobust.robust.adversarial.robust_loss_backward` with the clean forward
pass as its target).

Randomness: with ``seed=None`` the draws come from the global torch generator (so the trainer's
RNG checkpointing makes resumed runs identical); with a seed, from a private generator whose
state is part of :meth:`state_dict`. Under data-parallel training every rank draws its own
noise unless the ranks share the seed; see :mod:`spikerobust.robust.distributed`.

It is :class:`~spikerobust.robust.methods.noise_injection.NoiseInjection` with ``mode="relative"``,
no clipping and its own defaults (η = 0.3, the paper's 10 attack steps), except that the robust
loss's target is computed by the robust loss itself (no separate clean forward pass, so no
``loss_clean`` metric).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    >>> method = ForwardNoise(seed=0)
    >>> metrics = method.step(model, torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0]),
    ...                       torch.optim.SGD(model.parameters(), lr=0.1))
    >>> sorted(metrics), method.mode, method.n_steps
    (['loss', 'loss_noisy'], 'relative', 10)
"""

from __future__ import annotations

from typing import Dict, Mapping

import torch

from ..spec import AttackSpec
from .base import SeededMixin, register_method  # noqa: F401  (SeededMixin re-exported)
from .noise_injection import NoiseInjection

__all__ = ["ForwardNoise", "forward_noise_params", "SeededMixin"]


def forward_noise_params(
    params: Mapping[str, torch.Tensor], eta: float, noise: Mapping[str, torch.Tensor]
) -> Dict[str, torch.Tensor]:
    """``θ + stopgrad(η·|θ| ⊙ R)`` for every tensor: differentiable in θ with identity Jacobian.

    Args:
        params: name → θ (live parameters).
        eta: relative noise level η.
        noise: name → standard normal draw ``R`` of the same shape.

    Examples:
        >>> import torch
        >>> p = {"w": torch.tensor([2.0, -1.0], requires_grad=True)}
        >>> out = forward_noise_params(p, 0.5, {"w": torch.tensor([1.0, 1.0])})
        >>> out["w"].detach()
        tensor([ 3.0000, -0.5000])
    """
    return {n: p + (float(eta) * p.detach().abs() * noise[n]).detach() for n, p in params.items()}


@register_method("forward_noise")
class ForwardNoise(NoiseInjection):
    """Task loss at ``θ + stopgrad(η|θ|⊙N(0,1))``, a fresh draw each step; optional ``+ β·L_rob``.

    Args:
        eta: relative noise level η (the paper: 0.3).
        beta: weight of the robust loss (0: forward noise alone; the paper uses 0.1 for ECG and CNN).
        n_steps, epsilon, sigma_init, eps_c, objective: robust-loss attack settings, each
            overriding ``attack`` (default ``AttackSpec()``, docs/robust-training.md), used only
            when ``beta > 0``.
        include, exclude: glob patterns of the perturbed parameters (default: every trainable
            tensor except normalisation layers).
        seed: seed of a private generator (``None``: the global torch RNG).
        attack: the whole attack as one :class:`~spikerobust.robust.spec.AttackSpec`.

    Returns of :meth:`step`:
        ``{"loss_noisy": L_nat at the noisy point, "loss": the same value (no clean pass is
        made without β), "loss_rob": L_rob (only with β > 0)}``.
    """

    default_attack = AttackSpec()
    fixed_settings = {"mode": "relative", "clip_sigma": None}

    def __init__(
        self,
        eta: float = 0.3,
        beta: float = 0.0,
        **attack_and_selection,
    ) -> None:
        fixed = sorted(set(self.fixed_settings) & set(attack_and_selection))
        if fixed:
            raise TypeError(f"ForwardNoise() got an unexpected keyword argument {fixed[0]!r}")
        super().__init__(eta=eta, beta=beta, **self.fixed_settings, **attack_and_selection)

    def draw(self, params: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """One draw ``R ~ N(0, I)`` per selected tensor."""
        return {n: self.randn_like(p.detach()) for n, p in params.items()}

    def clean_target(self, model, x, y):
        """No separate clean pass: the robust loss computes its target f(x, θ)."""
        return None, {}

    def step(self, model, x, y, optimizer):
        metrics = super().step(model, x, y, optimizer)
        metrics["loss_noisy"] = metrics["loss"]
        return metrics
