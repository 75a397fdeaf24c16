"""Hardware-aware training by weight-noise injection, optionally with the robust loss (docs/robust-training.md and docs/pcm.md).

Each step draws fresh Gaussian noise and evaluates the task loss at the noisy weights via
``torch.func.functional_call``; the noise is a constant (no gradient), so the gradient is applied
to the clean θ. Two noise scales:

* ``mode="relative"``: ``θ + η·|θ| ⊙ N(0, 1)`` (the forward noise of docs/robust-training.md, per weight);
* ``mode="layer_range"``: ``θ + η·max|θ_layer| · N(0, 1)`` (one std per parameter tensor, the
  additive noise used for PCM training, where device noise scales with the layer's mapped range).

With ``beta > 0`` the robust loss of docs/robust-training.md is added (``L_rob`` at the clean θ, attack of
``n_steps`` sign steps, default 3 as in the paper's PCM runs) through
:func:`spikerobust.robust.adversarial.robust_loss_backward`, which accumulates ``β·∇L_rob`` into
``.grad``. After the optimiser step, weights can be clipped to ``±clip_sigma·std`` of their own
tensor (docs/pcm.md: 2σ); the clip is applied to every selected tensor with ≥ 2 dimensions (weight
matrices and kernels), not to biases.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> from spikerobust.robust.methods import get_method
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> method = get_method("noise_injection", eta=0.1, mode="layer_range", clip_sigma=2.0, seed=0)
    >>> sorted(method.step(model, torch.randn(16, 4), torch.randint(0, 3, (16,)), opt))
    ['loss']
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from ..adversarial import robust_loss_backward
from ..core import randn_like
from ..spec import PCM_N_STEPS, AttackSpec, non_negative
from .base import AttackMethod, register_method, task_loss

__all__ = ["NoiseInjection", "inject_noise", "clip_to_sigma", "MODES"]

MODES = ("relative", "layer_range")


def _check(eta: float, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    non_negative("eta", eta)


def inject_noise(
    params: Mapping[str, torch.Tensor],
    eta: float,
    mode: str = "relative",
    generator: Optional[torch.Generator] = None,
) -> Dict[str, torch.Tensor]:
    """Noisy copies ``θ + stopgrad(noise)`` of ``params`` (gradients still flow to θ).

    Args:
        params: name → tensor.
        eta: relative noise size η.
        mode: ``"relative"`` (std ``η·|θ|`` per element) or ``"layer_range"`` (std ``η·max|θ|`` per tensor).
        generator: random generator; the draws are made on its device and moved to each tensor's
            (:func:`spikerobust.robust.core.randn_like`), so a CPU generator serves CUDA tensors.

    Raises:
        ValueError: unknown mode or negative η.
    """
    _check(eta, mode)
    out = {}
    for name, p in params.items():
        with torch.no_grad():
            n = randn_like(p, generator)
            std = p.abs() if mode == "relative" else p.abs().max()
            noise = float(eta) * std * n
        out[name] = p + noise
    return out


@torch.no_grad()
def clip_to_sigma(params: Mapping[str, torch.Tensor], clip_sigma: float) -> None:
    """Clip every tensor with ≥ 2 dims in place to ``±clip_sigma·std`` of itself (population std)."""
    for p in params.values():
        if p.dim() >= 2 and p.numel() > 1:
            c = float(clip_sigma) * p.std(unbiased=False)
            p.copy_(torch.maximum(torch.minimum(p, c), -c))


@register_method("noise_injection")
class NoiseInjection(AttackMethod):
    """Noise-injection training step, optionally plus ``β·L_rob`` and weight clipping.

    Args:
        eta: noise size η (relative to |θ| or to the layer's max |θ|).
        mode: ``"relative"`` or ``"layer_range"``.
        beta: weight of the robust loss (0: noise injection alone).
        n_steps, epsilon, sigma_init, objective, eps_c: fields of the robust loss's attack, each
            overriding ``attack`` (default: 3 steps for the PCM experiments, ε = 0.1,
            σ_init = 1e-3, ``"kl"``; docs/robust-training.md).
        clip_sigma: after each step clip weight tensors to ±clip_sigma·std (``None``: off; docs/pcm.md: 2).
        include, exclude: glob patterns of the noisy/attacked parameters (default: all trainable
            tensors except normalisation layers).
        seed: seed of the noise and attack start (``None``: global RNG); the private generator's
            state is part of :meth:`state_dict`, so a resumed run draws the same noise.
        attack: the whole attack as one :class:`~spikerobust.robust.spec.AttackSpec`.

    Metrics of :meth:`step`: ``loss`` (task loss at the noisy weights); with ``beta > 0`` also
    ``loss_clean`` (task loss at θ, from the forward pass that is the robust loss's target) and
    ``loss_rob``.
    """

    default_attack = AttackSpec(n_steps=PCM_N_STEPS)

    def __init__(
        self,
        eta: float = 0.1,
        mode: str = "relative",
        beta: float = 0.0,
        clip_sigma: Optional[float] = None,
        **attack_and_selection,
    ) -> None:
        _check(eta, mode)
        if clip_sigma is not None and not float(clip_sigma) > 0:
            raise ValueError(f"clip_sigma must be > 0 or None, got {clip_sigma}")
        super().__init__(**attack_and_selection)
        self.eta = float(eta)
        self.mode = mode
        self.beta = non_negative("beta", beta)
        self.clip_sigma = None if clip_sigma is None else float(clip_sigma)

    def clean_target(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
                     ) -> Tuple[Optional[torch.Tensor], Dict[str, float]]:
        """The robust loss's target f(x, θ) (``None``: the robust loss computes it) and its metrics."""
        clean_loss, clean_logits = task_loss(model, x, y)
        return clean_logits, {"loss_clean": float(clean_loss.detach())}

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        params = self.select(model)
        gen = self.generator()
        noisy = inject_noise(params, self.eta, self.mode, gen)
        loss, _ = task_loss(model, x, y, params=noisy)
        metrics = {"loss": float(loss.detach())}
        if self.beta > 0:
            target, extra = self.clean_target(model, x, y)
            metrics["loss_rob"] = robust_loss_backward(
                model, x, beta=self.beta, spec=self.attack, params=params, generator=gen, y=y,
                target_logits=target, natural_loss=loss,
            )
            metrics.update(extra)
        else:
            loss.backward()
        optimizer.step()
        if self.clip_sigma is not None:
            clip_to_sigma(params, self.clip_sigma)
        return metrics
