r"""The paper's robust loss (docs/robust-training.md, Algorithm 1) and its gradient through the diagonal Jacobian.

For a batch X, the attack (:func:`~spikerobust.robust.attacks.pga_attack`, objective ``"kl"`` by
default) finds θ* near θ; the robust loss is
:math:`L_{rob} = \mathrm{KL}(\mathrm{softmax} f(X, \theta) \,\|\, \mathrm{softmax} f(X, \theta^*))`.
Its gradient with respect to θ has two parts:

- through the target f(X, θ), which is **not** detached: ordinary autograd;
- through θ*, with the diagonal Jacobian of the attack (signs and the start noise held constant)::

      J = 1 + sign(θ) ⊙ (σ_init·R + (ε/N_steps)·Σ_t sign(g_t))
      ∇_θ L_rob ⊇ J ⊙ ∇_{θ*} L_rob

This is exact whenever θ* is the element-wise function
``θ* = θ + σ_init|θ|⊙R + ((ε|θ| + ε_c)/N_steps)⊙Σ_t sign(g_t)`` of θ with the signs fixed
(``d|θ|/dθ = sign(θ)``), which ``tests/robust/test_adversarial.py`` checks against autograd.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    >>> x = torch.randn(16, 4)
    >>> l_rob = robust_loss_backward(model, x, beta=0.25, n_steps=3)
    >>> l_rob >= 0.0, model[0].weight.grad.shape
    (True, torch.Size([8, 4]))
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from .attacks import functional_logits, pga_attack, robustness_loss
from .mismatch import resolve_params

__all__ = ["robust_loss_backward", "diagonal_jacobian"]


def diagonal_jacobian(
    theta: torch.Tensor,
    noise: torch.Tensor,
    sign_sum: torch.Tensor,
    *,
    epsilon: float,
    n_steps: int,
    sigma_init: float,
) -> torch.Tensor:
    """``J = 1 + sign(θ) ⊙ (σ_init·R + (ε/N_steps)·Σ_t sign(g_t))`` (docs/robust-training.md).

    Examples:
        >>> import torch
        >>> diagonal_jacobian(torch.tensor([2.0, -1.0, 0.0]), torch.zeros(3), torch.tensor([3.0, 3.0, 3.0]),
        ...                   epsilon=0.1, n_steps=3, sigma_init=0.0)
        tensor([1.1000, 0.9000, 1.0000])
    """
    step = (float(epsilon) / int(n_steps)) * sign_sum if int(n_steps) > 0 else torch.zeros_like(sign_sum)
    return 1.0 + torch.sign(theta) * (float(sigma_init) * noise + step)


def robust_loss_backward(
    model: nn.Module,
    x: torch.Tensor,
    *,
    beta: float,
    n_steps: int = 10,
    epsilon: float = 0.1,
    sigma_init: float = 1e-3,
    eps_c: float = 0.0,
    objective: str = "kl",
    params: Optional[Mapping[str, torch.Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    y: Optional[torch.Tensor] = None,
    target_logits: Optional[torch.Tensor] = None,
    natural_loss: Optional[torch.Tensor] = None,
) -> float:
    """β·L_rob(f(x, θ), f(x, θ*)) with θ* from the attack; ACCUMULATES its gradient into ``.grad``.

    The gradient reaching each selected parameter is ``β·(J ⊙ ∇_{θ*} L_rob + ∇_θ L_rob|target)``:
    the θ* branch through the diagonal Jacobian ``J``, plus ordinary autograd through the clean
    target f(x, θ), which is not detached. Parameters outside the selection (e.g. BatchNorm affine)
    get their ordinary gradient through both branches. Gradients are added to existing ``.grad``;
    nothing is zeroed and the optimiser is not stepped. The forward passes run in the model's
    current train/eval mode and do not update normalisation running statistics.

    Args:
        model: any ``nn.Module`` returning logits ``[B, C]``.
        x: the batch (the model's input layout, e.g. ``[T, B, d_in]`` for an LSNN).
        beta: weight β_rob of the robust loss.
        n_steps: attack steps N_steps (default 10, as the paper).
        epsilon: relative attack size ε (0.1).
        sigma_init: relative size of the random start (1e-3).
        eps_c: constant term of the box (0).
        objective: ``"kl"`` (default) or another of
            :data:`~spikerobust.robust.attacks.OBJECTIVES`; ``"ce"``/``"madry"`` need ``y``.
        params: name → parameter to attack (default :func:`select_parameters`); the live
            ``nn.Parameter`` objects, whose ``.grad`` receives the result.
        generator: random generator for the start ``R``.
        y: labels ``[B]`` (only for ``"ce"``/``"madry"``).
        target_logits: f(x, θ) already computed by the caller with its graph (e.g. the logits of
            the natural loss), reused as the target instead of a second clean forward pass.
        natural_loss: a loss tensor (e.g. L_nat) added before the single backward pass, so that
            a graph shared with ``target_logits`` is traversed once.

    Returns:
        L_rob as a float (without β).

    Raises:
        ValueError: bad attack settings, an empty selection, or an output that is not logits.
    """
    selected = resolve_params(model, params)
    if target_logits is None:
        target_logits = functional_logits(model, x, {}, y)
    attack = pga_attack(
        model, x, selected, epsilon=epsilon, n_steps=n_steps, objective=objective,
        sigma_init=sigma_init, eps_c=eps_c, y=y, target_logits=target_logits.detach(), generator=generator,
        evaluate_end=False,
    )
    # θ* is the attack's own buffer, used by nothing else: a new leaf on it needs no copy
    leaves = {n: t.detach().requires_grad_(True) for n, t in attack.theta_star.items()}
    logits_adv = functional_logits(model, x, leaves, y)
    l_rob = robustness_loss(objective, target_logits, logits_adv, y)
    total = float(beta) * l_rob
    if natural_loss is not None:
        total = total + natural_loss
    total.backward()
    with torch.no_grad():
        for n, p in selected.items():
            g_star = leaves[n].grad
            if g_star is None or not p.requires_grad:
                continue
            jac = diagonal_jacobian(
                p.detach(), attack.noise[n], attack.sign_sum[n],
                epsilon=epsilon, n_steps=n_steps, sigma_init=sigma_init,
            )
            if p.grad is None:
                p.grad = jac * g_star
            else:
                p.grad.add_(jac * g_star)
    return float(l_rob.detach())
