r"""Adversarial model perturbation, AMP (Zheng, Zhang & Mao, CVPR 2021), as its paper defines it.

AMP minimises the "AMP loss" ``max_{‖Δ‖₂ ≤ r} L(θ + Δ)``, the worst loss in an L2 ball of radius
r (``radius``; the AMP paper's ε, an ABSOLUTE size, unlike the relative ε of the weight attack)
around θ. Per step, on the batch (Algorithm 1 of the AMP paper):

1. ``Δ = 0``; repeat ``n_inner`` times: ``Δ ← Δ + η·∇L(θ+Δ)`` (a plain, UNNORMALISED gradient
   ascent step of size η = ``inner_lr``, the AMP paper's ζ), then project back onto the ball:
   ``Δ ← Δ·min(1, r/‖Δ‖₂)``;
2. descend with ``∇L`` evaluated at ``θ + Δ``, Δ treated as a constant (the gradient is applied
   to θ by the optimiser).

The ball is PER TENSOR (each perturbed tensor's Δ has L2 norm ≤ r), as in the AMP authors' code,
which clips every parameter tensor's perturbation separately. The loss is the cross-entropy plus
an LSNN's rate regulariser. A small gradient gives a small Δ: the ball bounds the perturbation,
it does not set its size.

Defaults: ``radius = 0.1``, ``inner_lr = 1.0``, ``n_inner = 1`` (the AMP paper's CIFAR setting is
radius 0.5, inner step 1, one inner step). On the quick ECG preset (MIT-BIH, 64 neurons, 30 epochs, three
seeds) the defaults reached 84.4 % mean clean test accuracy against 81.3 % for standard
training, and radius 0.5 reached 80.0 % with one seed at 72.5 % (160 test beats, so one beat is
0.6 %): the smaller ball trained more reliably there.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    >>> delta = get_method("amp", radius=0.1, inner_lr=1.0, n_inner=3).perturbation(model, x, y)
    >>> all(float(d.norm()) <= 0.1 + 1e-6 for d in delta.values())
    True

References:
    Zheng, Zhang, Mao. "Regularizing Neural Networks via Adversarial Model Perturbation",
    CVPR 2021 (arXiv:2010.04925).
"""

from __future__ import annotations

import warnings
from typing import Dict, Optional

import torch
from torch import nn

from ..core import buffer_copies
from ..spec import at_least, non_negative
from .base import ParameterMethod, get_method, register_method, task_loss

__all__ = ["AMP"]


@register_method("amp")
class AMP(ParameterMethod):
    """Descend the loss at the worst point of a per-tensor L2 ball found by gradient ascent.

    Args:
        radius: radius r of each tensor's L2 ball (0.1).
        inner_lr: inner step size η of the unnormalised ascent ``Δ ← Δ + η·∇L`` (1.0; the AMP paper's ζ).
        n_inner: inner ascent steps K (1).
        epsilon: deprecated alias of ``radius``.
        include, exclude: glob patterns of the perturbed parameters.
        seed: accepted like every parameter method's; AMP draws nothing.

    Raises:
        ValueError: for a negative radius or step size, or ``n_inner < 0``.
    """

    def __init__(
        self,
        radius: float = 0.1,
        inner_lr: float = 1.0,
        n_inner: int = 1,
        epsilon: Optional[float] = None,
        **selection,
    ) -> None:
        if epsilon is not None:
            warnings.warn("AMP(epsilon=...) is deprecated; use radius=...", DeprecationWarning, stacklevel=2)
            radius = epsilon
        super().__init__(**selection)
        self.radius = non_negative("radius", radius)
        self.inner_lr = non_negative("inner_lr", inner_lr)
        self.n_inner = at_least("n_inner", n_inner, 0)

    @property
    def epsilon(self) -> float:
        """Deprecated alias of :attr:`radius`."""
        return self.radius

    def perturbation(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Δ after the inner ascent (name → tensor, detached); running statistics are not updated."""
        params = {n: p.detach() for n, p in self.select(model).items()}
        delta = {n: torch.zeros_like(p) for n, p in params.items()}
        names = list(params)
        for _ in range(self.n_inner):
            leaves = {n: (params[n] + delta[n]).requires_grad_(True) for n in names}
            with torch.enable_grad():
                loss, _ = task_loss(model, x, y, {**buffer_copies(model), **leaves})
                grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
            for n, g in zip(names, grads):
                if g is None:
                    continue
                d = delta[n] + self.inner_lr * g
                d_norm = float(d.norm())
                if d_norm > self.radius:
                    d = d * (self.radius / d_norm)
                delta[n] = d
        return delta

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        delta = self.perturbation(model, x, y)
        loss, _ = task_loss(model, x, y, {n: p + delta[n] for n, p in self.select(model).items()})
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach()), "loss_perturbed": float(loss.detach())}
