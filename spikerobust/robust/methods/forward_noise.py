r"""Forward noise (Murray & Edwards 1994), alone or combined with the robust loss (SPEC §3).

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

from typing import Dict, Iterable, Mapping, Optional

import torch

from ..params import select_parameters
from .base import TrainingMethod, register_method, task_loss

__all__ = ["ForwardNoise", "forward_noise_params", "SeededMixin"]


class SeededMixin:
    """A private ``torch.Generator`` created lazily from ``self.seed`` (``None``: global RNG).

    Its state round-trips through :meth:`state_dict` / :meth:`load_state_dict` (tensors only), so a
    checkpointed run resumes with the same draws.
    """

    seed: Optional[int] = None
    _generator: Optional[torch.Generator] = None

    def generator(self, device: torch.device) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        device = torch.device(device)
        if self._generator is None or self._generator.device.type != device.type:
            self._generator = torch.Generator(device=device).manual_seed(int(self.seed))
        return self._generator

    def randn_like(self, t: torch.Tensor) -> torch.Tensor:
        """Standard normal draws of ``t``'s shape/dtype/device from this method's generator."""
        g = self.generator(t.device)
        return torch.randn(t.shape, generator=g, device=t.device, dtype=t.dtype)

    def rand_like(self, t: torch.Tensor) -> torch.Tensor:
        """Uniform [0, 1) draws of ``t``'s shape/dtype/device from this method's generator."""
        g = self.generator(t.device)
        return torch.rand(t.shape, generator=g, device=t.device, dtype=t.dtype)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        if self._generator is None:
            return {}
        return {"generator_state": self._generator.get_state(), "generator_device": str(self._generator.device)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if "generator_state" in state:
            dev = state.get("generator_device", "cpu")
            self._generator = torch.Generator(device=dev)
            self._generator.set_state(state["generator_state"].cpu())


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
class ForwardNoise(SeededMixin, TrainingMethod):
    """Task loss at ``θ + stopgrad(η|θ|⊙N(0,1))``, a fresh draw each step; optional ``+ β·L_rob``.

    Args:
        eta: relative noise level η (SPEC: 0.3).
        beta: weight of the robust loss (0: forward noise alone; SPEC uses 0.1 for ECG and CNN).
        n_steps, epsilon, sigma_init, eps_c, objective: robust-loss attack settings (SPEC §2),
            used only when ``beta > 0``.
        include, exclude: glob patterns of the perturbed parameters (default: every trainable
            tensor except normalisation layers).
        seed: seed of a private generator (``None``: the global torch RNG).

    Returns of :meth:`step`:
        ``{"loss_noisy": L_nat at the noisy point, "loss": the same value (no clean pass is
        made without β), "loss_rob": L_rob (only with β > 0)}``.
    """

    def __init__(
        self,
        eta: float = 0.3,
        beta: float = 0.0,
        n_steps: int = 10,
        epsilon: float = 0.1,
        sigma_init: float = 1e-3,
        eps_c: float = 0.0,
        objective: str = "kl",
        include: Optional[Iterable[str]] = None,
        exclude: Optional[Iterable[str]] = None,
        seed: Optional[int] = None,
    ) -> None:
        if not float(eta) >= 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        if not float(beta) >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.eta = float(eta)
        self.beta = float(beta)
        self.n_steps = int(n_steps)
        self.epsilon = float(epsilon)
        self.sigma_init = float(sigma_init)
        self.eps_c = float(eps_c)
        self.objective = objective
        self.include = list(include) if include is not None else None
        self.exclude = list(exclude) if exclude is not None else None
        self.seed = seed
        self._generator = None

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
            from ..adversarial import robust_loss_backward

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
