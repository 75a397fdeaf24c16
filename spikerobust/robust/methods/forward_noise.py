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

Examples:
    >>> import torch
    >>> from spikerobust.nn import LSNNClassifier
    >>> from spikerobust.robust.methods import get_method
    >>> model = LSNNClassifier(2, 8, 2)
    >>> opt = torch.optim.Adam(model.parameters(), 1e-3)
    >>> sorted(get_method("forward_noise").step(model, torch.randn(20, 4, 2), torch.tensor([0, 1, 0, 1]), opt))
    ['loss', 'loss_noisy']
"""

from __future__ import annotations

from typing import Dict, Mapping

import torch

from ..adversarial import robust_loss_backward
from ..params import select_parameters
from .adversarial import Adversarial
from .base import SeededMixin, register_method, task_loss  # noqa: F401  (SeededMixin re-exported)

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
class ForwardNoise(Adversarial):
    """Task loss at ``θ + stopgrad(η|θ|⊙N(0,1))``, a fresh draw each step; optional ``+ β·L_rob``.

    Args:
        eta: relative noise level η (the paper: 0.3).
        beta: weight of the robust loss (0: forward noise alone; the paper uses 0.1 for ECG and CNN).
        n_steps, epsilon, sigma_init, eps_c, objective: robust-loss attack settings (docs/robust-training.md),
            used only when ``beta > 0``.
        include, exclude: glob patterns of the perturbed parameters (default: every trainable
            tensor except normalisation layers).
        seed: seed of a private generator (``None``: the global torch RNG).

    Returns of :meth:`step`:
        ``{"loss_noisy": L_nat at the noisy point, "loss": the same value (no clean pass is
        made without β), "loss_rob": L_rob (only with β > 0)}``.
    """

    def __init__(self, eta: float = 0.3, beta: float = 0.0, **attack) -> None:
        if not float(eta) >= 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        super().__init__(beta=beta, **attack)
        self.eta = float(eta)

    def draw(self, params: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """One draw ``R ~ N(0, I)`` per selected tensor."""
        return {n: self.randn_like(p.detach()) for n, p in params.items()}

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        params = select_parameters(model, self.include, self.exclude)
        noisy = forward_noise_params(params, self.eta, self.draw(params))
        loss_noisy, _ = task_loss(model, x, y, noisy)
        metrics = {"loss": float(loss_noisy.detach()), "loss_noisy": float(loss_noisy.detach())}
        if self.beta > 0:
            metrics["loss_rob"] = robust_loss_backward(
                model, x, beta=self.beta, n_steps=self.n_steps, epsilon=self.epsilon,
                sigma_init=self.sigma_init, eps_c=self.eps_c, objective=self.objective,
                params=params, generator=self.generator(next(iter(params.values())).device), y=y,
                natural_loss=loss_noisy,
            )
        else:
            loss_noisy.backward()
        optimizer.step()
        return metrics
