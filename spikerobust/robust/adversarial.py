r"""The paper's robust loss (docs/robust-training.md, Algorithm 1) and its gradient through the diagonal Jacobian.

For a batch X, the attack (:func:`~spikerobust.robust.attacks.pga_attack`, objective ``"kl"`` by
default) finds θ* near θ; the robust loss is
:math:`L_{rob} = \mathrm{KL}(\mathrm{softmax} f(X, \theta) \,\|\, \mathrm{softmax} f(X, \theta^*))`.
Its gradient with respect to θ has two parts:

- through the target f(X, θ), which is **not** detached: ordinary autograd;
- through θ*, with the diagonal Jacobian of the attack (signs and the start noise held constant)::

      J = 1 + sign(θ) ⊙ (σ_init·R + step·Σ_t sign(g_t)),   step = ε/N_steps
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

from typing import Any, Mapping, Optional

import torch
from torch import nn

from .attacks import pga_attack, robustness_loss
from .core import functional_logits, resolve_params
from .spec import AttackSpec

__all__ = ["robust_loss_backward", "diagonal_jacobian"]


def diagonal_jacobian(
    theta: torch.Tensor,
    noise: torch.Tensor,
    sign_sum: torch.Tensor,
    spec: Optional[AttackSpec] = None,
    **fields: Any,
) -> torch.Tensor:
    """``J = 1 + sign(θ) ⊙ (σ_init·R + step·Σ_t sign(g_t))`` (docs/robust-training.md), step = ε/N_steps.

    Args:
        theta, noise, sign_sum: the clean tensor, the start's draw ``R`` and ``Σ_t sign(g_t)``.
        spec: the attack (its ``sigma_init`` and :attr:`~AttackSpec.step_size`).
        **fields: ``epsilon``, ``n_steps``, ``sigma_init``, ``step``: override those fields of ``spec``.

    Examples:
        >>> import torch
        >>> diagonal_jacobian(torch.tensor([2.0, -1.0, 0.0]), torch.zeros(3), torch.tensor([3.0, 3.0, 3.0]),
        ...                   AttackSpec(epsilon=0.1, n_steps=3, sigma_init=0.0))
        tensor([1.1000, 0.9000, 1.0000])
    """
    spec = AttackSpec.build(spec, where="diagonal_jacobian", **fields)
    step = spec.step_size * sign_sum if spec.n_steps > 0 else torch.zeros_like(sign_sum)
    return 1.0 + torch.sign(theta) * (spec.sigma_init * noise + step)


def robust_loss_backward(
    model: nn.Module,
    x: torch.Tensor,
    *,
    beta: float,
    spec: Optional[AttackSpec] = None,
    params: Optional[Mapping[str, torch.Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    y: Optional[torch.Tensor] = None,
    target_logits: Optional[torch.Tensor] = None,
    natural_loss: Optional[torch.Tensor] = None,
    **fields: Any,
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
        spec: the attack (default ``AttackSpec()``: N_steps = 10,
            ε = 0.1, σ_init = 1e-3, ε_c = 0, objective ``"kl"``, as the paper); the objectives
            ``"ce"``/``"madry"`` need ``y``.
        params: name → parameter to attack (default :func:`select_parameters`); the live
            ``nn.Parameter`` objects, whose ``.grad`` receives the result.
        generator: random generator for the start ``R``.
        y: labels ``[B]`` (only for ``"ce"``/``"madry"``).
        target_logits: f(x, θ) already computed by the caller with its graph (e.g. the logits of
            the natural loss), reused as the target instead of a second clean forward pass.
        natural_loss: a loss tensor (e.g. L_nat) added before the single backward pass, so that
            a graph shared with ``target_logits`` is traversed once.
        **fields: ``n_steps``, ``epsilon``, ``sigma_init``, ``eps_c``, ``objective``, ``step``:
            override those fields of ``spec``.

    Returns:
        L_rob as a float (without β).

    Raises:
        ValueError: bad attack settings, an empty selection, or an output that is not logits.
    """
    spec = AttackSpec.build(spec, where="robust_loss_backward", **fields)
    selected = resolve_params(model, params)
    if target_logits is None:
        target_logits = functional_logits(model, x, {}, y)
    attack = pga_attack(model, x, selected, spec, y=y, target_logits=target_logits.detach(), generator=generator,
                        evaluate_end=False)
    # θ* is the attack's own buffer, used by nothing else: a new leaf on it needs no copy
    leaves = {n: t.detach().requires_grad_(True) for n, t in attack.theta_star.items()}
    logits_adv = functional_logits(model, x, leaves, y)
    l_rob = robustness_loss(spec.objective, target_logits, logits_adv, y)
    total = float(beta) * l_rob
    if natural_loss is not None:
        total = total + natural_loss
    total.backward()
    with torch.no_grad():
        for n, p in selected.items():
            g_star = leaves[n].grad
            if g_star is None or not p.requires_grad:
                continue
            jac = diagonal_jacobian(p.detach(), attack.noise[n], attack.sign_sum[n], spec)
            if p.grad is None:
                p.grad = jac * g_star
            else:
                p.grad.add_(jac * g_star)
    return float(l_rob.detach())
