"""The paper's method: adversarial regularisation in weight space, ``L = L_nat + β_rob·L_rob`` (docs/robust-training.md).

Examples:
    >>> import torch
    >>> from spikerobust.nn import LSNNClassifier
    >>> from spikerobust.robust.methods import get_method
    >>> model = LSNNClassifier(2, 8, 2)
    >>> opt = torch.optim.Adam(model.parameters(), 1e-3)
    >>> method = get_method("adversarial", beta=0.25, n_steps=2)
    >>> sorted(method.step(model, torch.randn(20, 4, 2), torch.tensor([0, 1, 0, 1]), opt))
    ['loss', 'loss_rob']
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch

from ..adversarial import robust_loss_backward
from ..params import select_parameters
from .base import SeededMixin, TrainingMethod, register_method, task_loss

__all__ = ["Adversarial"]


@register_method("adversarial")
class Adversarial(SeededMixin, TrainingMethod):
    """One step of Algorithm 1: ``L_nat`` (CE + an LSNN's rate regulariser) plus ``β·L_rob``.

    The clean forward pass is shared: its logits are both the prediction of ``L_nat`` and the
    (non-detached) target f(X, θ) of ``L_rob``, and one backward pass covers both losses; the
    θ* branch is added through the diagonal Jacobian (:func:`robust_loss_backward`).

    Args:
        beta: β_rob (docs/robust-training.md: speech 0.5, ECG 0.25, CNN 0.25).
        n_steps: attack steps (10).
        epsilon: relative attack size (0.1).
        sigma_init: random-start size (1e-3).
        eps_c: constant term of the attack box (0).
        objective: robustness objective (``"kl"``).
        include, exclude: glob patterns of the attacked parameters (default: every trainable
            tensor except normalisation layers).
        seed: seed of the attack's random start (``None``: a fresh random generator state).
    """

    def __init__(
        self,
        beta: float = 0.25,
        n_steps: int = 10,
        epsilon: float = 0.1,
        sigma_init: float = 1e-3,
        eps_c: float = 0.0,
        objective: str = "kl",
        include: Optional[Iterable[str]] = None,
        exclude: Optional[Iterable[str]] = None,
        seed: Optional[int] = None,
    ) -> None:
        if not float(beta) >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)
        self.n_steps = int(n_steps)
        self.epsilon = float(epsilon)
        self.sigma_init = float(sigma_init)
        self.eps_c = float(eps_c)
        self.objective = objective
        self.include = list(include) if include is not None else None
        self.exclude = list(exclude) if exclude is not None else None
        self.seed = seed

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        params = select_parameters(model, self.include, self.exclude)
        loss_nat, logits = task_loss(model, x, y)
        l_rob = robust_loss_backward(
            model, x, beta=self.beta, n_steps=self.n_steps, epsilon=self.epsilon,
            sigma_init=self.sigma_init, eps_c=self.eps_c, objective=self.objective, params=params,
            generator=self.generator(next(iter(params.values())).device), y=y,
            target_logits=logits, natural_loss=loss_nat,
        )
        optimizer.step()
        return {"loss": float(loss_nat.detach()), "loss_rob": l_rob}
