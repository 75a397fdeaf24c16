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

from ..adversarial import robust_loss_backward
from ..spec import non_negative
from .base import AttackMethod, register_method, task_loss

__all__ = ["Adversarial"]


@register_method("adversarial")
class Adversarial(AttackMethod):
    """One step of Algorithm 1: ``L_nat`` (CE + an LSNN's rate regulariser) plus ``β·L_rob``.

    The clean forward pass is shared: its logits are both the prediction of ``L_nat`` and the
    (non-detached) target f(X, θ) of ``L_rob``, and one backward pass covers both losses; the
    θ* branch is added through the diagonal Jacobian (:func:`robust_loss_backward`).

    Args:
        beta: β_rob (docs/robust-training.md: speech 0.5, ECG 0.25, CNN 0.25).
        n_steps, epsilon, sigma_init, eps_c, objective: fields of the attack; each overrides
            ``attack`` (default ``AttackSpec()``: 10 steps,
            ε = 0.1, σ_init = 1e-3, ε_c = 0, ``"kl"``).
        include, exclude: glob patterns of the attacked parameters (default: every trainable
            tensor except normalisation layers).
        seed: seed of the attack's random start (``None``: the global torch RNG).
        attack: the whole attack as one :class:`~spikerobust.robust.spec.AttackSpec`.
    """

    def __init__(self, beta: float = 0.25, **attack_and_selection) -> None:
        super().__init__(**attack_and_selection)
        self.beta = non_negative("beta", beta)

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        params = self.select(model)
        loss_nat, logits = task_loss(model, x, y)
        l_rob = robust_loss_backward(
            model, x, beta=self.beta, spec=self.attack, params=params, generator=self.generator(), y=y,
            target_logits=logits, natural_loss=loss_nat,
        )
        optimizer.step()
        return {"loss": float(loss_nat.detach()), "loss_rob": l_rob}
