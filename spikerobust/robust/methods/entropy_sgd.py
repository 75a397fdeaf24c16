r"""Entropy-SGD (Chaudhari et al. 2019), as specified in docs/robust-training.md.

Entropy-SGD descends the local entropy of the loss. Per optimisation step ``t`` (counted from 0
by this method), with x the stored parameters and the scoping coupling

.. math::  \gamma_t = \gamma_0 (1 + \gamma_1)^t = 0.01 \cdot 1.001^t,

an inner chain x' (started at x) runs ``L = 10`` Langevin steps on the batch,

.. math::
    x' \leftarrow x' - \eta' \,[\nabla f(x') - \gamma_t (x - x')] + \sqrt{\eta'}\,\sigma\,\mathcal{N}(0, I),
    \qquad \mu \leftarrow \alpha\,\mu + (1 - \alpha)\,x',

with Langevin learning rate η' = 0.1, noise σ = 1e-4 (the Entropy-SGD paper's ε), averaging
α = 0.75 and μ started at x.
The outer gradient is ``γ_t (x − μ)``; it is written into ``.grad`` and the optimiser steps x.
The chain runs on tensors passed to ``functional_call``: the model is not changed before the
optimiser step. Every Langevin step uses the same batch (the interface gives one batch per step;
the original draws a fresh mini-batch per Langevin step).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> method = get_method("entropy_sgd")
    >>> round(method.gamma(0), 6), round(method.gamma(1000), 6)
    (0.01, 0.027169)
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

import torch

from ..core import buffer_copies
from ..spec import at_least, non_negative
from .base import ParameterMethod, get_method, register_method, task_loss

__all__ = ["EntropySGD"]


@register_method("entropy_sgd")
class EntropySGD(ParameterMethod):
    """Langevin inner loop around x, outer step on ``γ_t (x − μ)``.

    Args:
        n_langevin: Langevin steps L (10).
        langevin_lr: η' (0.1).
        noise: σ (1e-4).
        gamma0, gamma1: scoping ``γ_t = γ0·(1 + γ1)^t`` (0.01, 0.001).
        alpha: averaging α of μ (0.75).
        include, exclude: glob patterns of the parameters taking part (others get no gradient).
        seed: seed of a private generator for the Langevin noise (``None``: global RNG).
    """

    def __init__(
        self,
        n_langevin: int = 10,
        langevin_lr: float = 0.1,
        noise: float = 1e-4,
        gamma0: float = 0.01,
        gamma1: float = 0.001,
        alpha: float = 0.75,
        **selection,
    ) -> None:
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        super().__init__(**selection)
        self.n_langevin = at_least("n_langevin", n_langevin, 1)
        self.langevin_lr = non_negative("langevin_lr", langevin_lr)
        self.noise = non_negative("noise", noise)
        self.gamma0 = non_negative("gamma0", gamma0)
        self.gamma1 = non_negative("gamma1", gamma1)
        self.alpha = float(alpha)
        self.t = 0

    def gamma(self, t: Optional[int] = None) -> float:
        """Scoping ``γ_t = γ0·(1 + γ1)^t`` (default: the current step count)."""
        return self.gamma0 * (1.0 + self.gamma1) ** (self.t if t is None else int(t))

    def state_dict(self) -> Dict[str, object]:
        return {**super().state_dict(), "t": int(self.t)}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        super().load_state_dict(state)
        self.t = int(state.get("t", 0))

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        params = self.select(model)
        names = list(params)
        gamma = self.gamma()
        xs = {n: p.detach() for n, p in params.items()}
        xp = {n: t.clone() for n, t in xs.items()}
        mu = {n: t.clone() for n, t in xs.items()}
        first = None
        for _ in range(self.n_langevin):
            leaves = {n: t.requires_grad_(True) for n, t in ((n, xp[n].detach().clone()) for n in names)}
            with torch.enable_grad():
                loss, _ = task_loss(model, x, y, {**buffer_copies(model), **leaves})
                grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
            first = float(loss.detach()) if first is None else first
            with torch.no_grad():
                for n, g in zip(names, grads):
                    g = torch.zeros_like(xp[n]) if g is None else g
                    dx = g - gamma * (xs[n] - xp[n])
                    xp[n] = xp[n] - self.langevin_lr * dx
                    if self.noise > 0:
                        xp[n] = xp[n] + math.sqrt(self.langevin_lr) * self.noise * self.randn_like(xp[n])
                    mu[n] = self.alpha * mu[n] + (1.0 - self.alpha) * xp[n]
        for n, p in params.items():
            p.grad = gamma * (xs[n] - mu[n])
        optimizer.step()
        self.t += 1
        return {"loss": first, "gamma": gamma}
