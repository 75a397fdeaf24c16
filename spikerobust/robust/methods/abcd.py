r"""Adversarial block coordinate descent, ABCD (Cicek & Soatto 2019), as specified in docs/robust-training.md.

Per batch, ``n_inner = 2`` iterations, each from the CURRENT stored parameters w:

1. draw a random half mask ``M_a`` (every element independently 1 with probability ½);
2. ascent on the masked half: ``w½ = w + η_A·M_a ⊙ ∇L(w)`` (η_A = 0.1, the raw gradient);
3. descent on the other half from w½: the stored parameters are set to w½, ``.grad`` is set to
   ``(1 − M_a) ⊙ ∇L(w½)`` and ``optimizer.step()`` is called; afterwards the elements under
   ``M_a`` are put back to their w½ value, so the descent step touches ONLY the complementary
   half (Adam's momentum would otherwise move them as well; its moment estimates do see the zero
   gradients there).

How w½ relates to the stored parameters: after an iteration the stored parameters equal w½ on
``M_a`` (the ascent is kept, not undone) and ``w½ − update`` on ``1 − M_a``; the next iteration
starts from there. This in-place change of the parameters is the method's documented inner loop.

Because the ascent is kept, a coordinate moves up by ``η_A·g`` when masked and down by the
optimiser's step otherwise: with plain SGD the drift is about ``½(η_A − lr)·g``, so use
``lr > η_A``; an adaptive optimiser (Adam, steps of about ``lr`` whatever the gradient's size)
with a small lr lets the raw-gradient ascent dominate and training diverges (observed on a toy
MLP with Adam(1e-2)). Lower ``eta_a`` in that case.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(3, 2)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> m = get_method("abcd", seed=0)
    >>> sorted(m.step(model, torch.randn(8, 3), torch.randint(0, 2, (8,)), opt))
    ['loss', 'loss_half']
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
from torch import nn

from ..params import select_parameters
from ..spec import at_least, non_negative
from .base import ParameterMethod, get_method, register_method, task_loss

__all__ = ["ABCD", "abcd_iteration"]


def _grads(model, x, y, params):
    loss, _ = task_loss(model, x, y)
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
    return loss, {n: (g if g is not None else torch.zeros_like(params[n])) for n, g in zip(names, grads)}


def abcd_iteration(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    masks: Mapping[str, torch.Tensor],
    *,
    eta_a: float = 0.1,
    params: Optional[Mapping[str, torch.Tensor]] = None,
) -> Dict[str, float]:
    """One ABCD iteration with given 0/1 masks ``M_a`` (name → tensor); see the module docstring.

    Returns:
        ``{"loss": L(w), "loss_half": L(w½)}``.
    """
    params = dict(params) if params is not None else select_parameters(model)
    optimizer.zero_grad(set_to_none=True)
    loss, g = _grads(model, x, y, params)
    with torch.no_grad():
        for n, p in params.items():
            p.add_(float(eta_a) * masks[n] * g[n])  # w½ stored in place
        w_half = {n: p.detach().clone() for n, p in params.items()}
    optimizer.zero_grad(set_to_none=True)
    loss_half, _ = task_loss(model, x, y)
    loss_half.backward()
    with torch.no_grad():
        for n, p in params.items():
            if p.grad is not None:
                p.grad.mul_(1.0 - masks[n])
    optimizer.step()
    with torch.no_grad():
        for n, p in params.items():
            keep = masks[n].bool()
            p[keep] = w_half[n][keep]
    optimizer.zero_grad(set_to_none=True)
    return {"loss": float(loss.detach()), "loss_half": float(loss_half.detach())}


@register_method("abcd")
class ABCD(ParameterMethod):
    """``n_inner`` ABCD iterations per batch (the paper: 2) with ascent size ``eta_a`` (0.1).

    Args:
        n_inner: inner iterations L per batch.
        eta_a: ascent step η_A on the masked half.
        include, exclude: glob patterns of the parameters taking part (others train normally:
            their gradient is not masked).
        seed: seed of a private generator for the masks (``None``: global torch RNG).
    """

    def __init__(
        self,
        n_inner: int = 2,
        eta_a: float = 0.1,
        **selection,
    ) -> None:
        super().__init__(**selection)
        self.n_inner = at_least("n_inner", n_inner, 1)
        self.eta_a = non_negative("eta_a", eta_a)

    def draw_masks(self, params: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Random half masks: each element 1 with probability ½, else 0."""
        return {n: (self.rand_like(p.detach()) < 0.5).to(p.dtype) for n, p in params.items()}

    def step(self, model, x, y, optimizer):
        params = self.select(model)
        first = None
        for _ in range(self.n_inner):
            out = abcd_iteration(model, x, y, optimizer, self.draw_masks(params), eta_a=self.eta_a, params=params)
            first = out if first is None else first
        return {"loss": first["loss"], "loss_half": out["loss_half"]}
