r"""Adversarial weight perturbation, AWP (Wu et al. 2020), as specified in docs/robust-training.md.

Per step, on the batch ``(X, y)``:

1. ``θ*_raw``: 10 sign-gradient steps ascending the cross-entropy from θ (no random start), each
   of element-wise size ``ε|θ|/10`` with ε = 0.2, using
   :func:`~spikerobust.robust.attacks.pga_attack` (objective ``"ce"``); so
   ``|θ*_raw − θ| ≤ ε|θ|`` element-wise;
2. ``θ* = θ + γ(θ*_raw − θ)``, γ = 0.1;
3. the update applies ``∇_{θ*} L_nat(θ*)`` (CE plus an LSNN's rate regulariser) to θ: the
   perturbation is a constant, the optimiser steps θ.

The model is never overwritten: θ* lives in a dict passed to ``functional_call``.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    >>> method = get_method("awp")
    >>> star = method.perturb(model, x, y)
    >>> w = model[0].weight
    >>> bool(((star["0.weight"] - w).abs() <= 0.1 * 0.2 * w.abs() + 1e-7).all())
    True
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from ..attacks import pga_attack
from ..spec import AttackSpec, at_least, non_negative
from .base import AttackMethod, get_method, register_method, task_loss

__all__ = ["AWP"]


@register_method("awp")
class AWP(AttackMethod):
    """Train on the task loss at the scaled-down sign-PGA point θ* (docs/robust-training.md).

    Args:
        gamma: scaling γ of the raw perturbation (0.1).
        epsilon: relative box of the raw attack ε (0.2).
        n_steps: sign steps (10, at least 1), each of size ``ε|θ|/n_steps``.
        sigma_init, eps_c, objective, step, attack: the rest of the raw attack
            (:class:`~spikerobust.robust.spec.AttackSpec`; default no random start, ε_c = 0, the
            cross-entropy, as docs/robust-training.md).
        include, exclude: glob patterns of the perturbed parameters.
        seed: seed of a private generator (``None``: the global torch RNG; the attack has no
            random start, but draws its unused start noise).
    """

    #: the raw attack: ε = 0.2, no random start, the cross-entropy
    default_attack = AttackSpec(epsilon=0.2, sigma_init=0.0, objective="ce")

    def __init__(self, gamma: float = 0.1, **attack_and_selection) -> None:
        super().__init__(**attack_and_selection)
        at_least("n_steps", self.n_steps, 1)
        self.gamma = non_negative("gamma", gamma)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """θ* = θ + γ(θ*_raw − θ) for the batch, in the model's current mode (detached tensors)."""
        params = self.select(model)
        raw = pga_attack(model, x, params, self.attack, y=y, generator=self.generator()).theta_star
        return {n: p.detach() + self.gamma * (raw[n] - p.detach()) for n, p in params.items()}

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        params = self.select(model)
        star = self.perturb(model, x, y)
        # θ + (θ* − θ) with the difference constant: value θ*, gradient reaches θ unchanged.
        shifted = {n: p + (star[n] - p.detach()) for n, p in params.items()}
        loss, _ = task_loss(model, x, y, shifted)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach()), "loss_perturbed": float(loss.detach())}
