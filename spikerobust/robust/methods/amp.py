r"""Adversarial model perturbation, AMP (Zheng, Zhang & Mao 2020), from its own formulation.

AMP minimises the "AMP loss" ``max_{‖Δ‖ ≤ ε} L(θ + Δ)``. Per step, on the batch:

1. ``Δ = 0``; repeat ``n_inner`` times: ``Δ ← Δ + ζ·∇L(θ+Δ)/‖∇L(θ+Δ)‖₂`` (normalised gradient
   ascent on the cross-entropy), then project onto the ball: if ``‖Δ‖₂ > ε``,
   ``Δ ← ε·Δ/‖Δ‖₂``;
2. descend with ``∇L`` evaluated at ``θ + Δ``, Δ treated as a constant (applied to θ).

Norms and the ball are PER TENSOR (SPEC §3), so each selected tensor's perturbation has
L2 norm ≤ ε. Defaults follow the AMP paper's usual setting (one inner step, ζ = ε = 0.5);
the loss is CE plus an LSNN's rate regulariser.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    >>> delta = get_method("amp", epsilon=0.1, inner_lr=1.0, n_inner=3).perturbation(model, x, y)
    >>> all(float(d.norm()) <= 0.1 + 1e-6 for d in delta.values())
    True
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import torch
from torch import nn

from ..attacks import _buffer_copies
from ..params import select_parameters
from .base import TrainingMethod, get_method, register_method, task_loss

__all__ = ["AMP"]


@register_method("amp")
class AMP(TrainingMethod):
    """Descend the CE at the worst point of a per-tensor L2 ball found by normalised ascent.

    Args:
        epsilon: radius ε of each tensor's L2 ball (0.5).
        inner_lr: inner step size ζ (0.5).
        n_inner: inner ascent steps K (1).
        include, exclude: glob patterns of the perturbed parameters.
    """

    def __init__(
        self,
        epsilon: float = 0.5,
        inner_lr: float = 0.5,
        n_inner: int = 1,
        include: Optional[Iterable[str]] = None,
        exclude: Optional[Iterable[str]] = None,
    ) -> None:
        if not float(epsilon) >= 0 or not float(inner_lr) >= 0:
            raise ValueError(f"epsilon and inner_lr must be >= 0, got {epsilon}, {inner_lr}")
        if int(n_inner) < 0:
            raise ValueError(f"n_inner must be >= 0, got {n_inner}")
        self.epsilon = float(epsilon)
        self.inner_lr = float(inner_lr)
        self.n_inner = int(n_inner)
        self.include = list(include) if include is not None else None
        self.exclude = list(exclude) if exclude is not None else None

    def perturbation(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Δ after the inner ascent (name → tensor, detached); running statistics are not updated."""
        params = {n: p.detach() for n, p in select_parameters(model, self.include, self.exclude).items()}
        delta = {n: torch.zeros_like(p) for n, p in params.items()}
        names = list(params)
        for _ in range(self.n_inner):
            leaves = {n: (params[n] + delta[n]).requires_grad_(True) for n in names}
            with torch.enable_grad():
                loss, _ = task_loss(model, x, y, {**_buffer_copies(model), **leaves})
                grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
            for n, g in zip(names, grads):
                if g is None:
                    continue
                norm = g.norm()
                if norm > 0:
                    delta[n] = delta[n] + self.inner_lr * g / norm
                d_norm = delta[n].norm()
                if d_norm > self.epsilon:
                    delta[n] = delta[n] * (self.epsilon / d_norm)
        return delta

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        delta = self.perturbation(model, x, y)
        params = select_parameters(model, self.include, self.exclude)
        loss, _ = task_loss(model, x, y, {n: p + delta[n] for n, p in params.items()})
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach()), "loss_perturbed": float(loss.detach())}
