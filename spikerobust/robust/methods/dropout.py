r"""Dropout baseline (SPEC §3): one random mask per training step over neurons, no rescaling.

The reference drops each neuron with probability ``p = 0.3`` with ONE mask per optimisation step
(shared by every sample of the batch and every time step) and does not rescale the kept units by
``1/(1−p)``. This file implements that model-agnostically with forward hooks that exist only
during :meth:`Dropout.step`; evaluation is untouched.

What is masked, per model type (``targets="auto"``):

- a model containing a :class:`spikerobust.nn.LSNN` layer (e.g. ``LSNNClassifier``): the OUTPUT
  spikes ``[T, B, N]`` of every LSNN layer, i.e. the hidden neurons as seen by the readout, one
  mask ``[N]`` for the step. The recurrent dynamics inside the layer are not masked.
- any other model (e.g. the F-MNIST CNN): the INPUT of every ``nn.Linear`` layer (SPEC §7:
  "dropout on the dense inputs"), one mask ``[features]`` per layer and step.

``targets`` may instead list module names (``dict(model.named_modules())`` keys), with
``where="input"`` or ``"output"``; the mask acts on the last dimension of that tensor.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> method = get_method("dropout", p=0.3, seed=0)
    >>> with method.masked(model) as masks:
    ...     _ = model(torch.randn(5, 4))
    >>> sorted(masks), masks["2"].shape
    (['0', '2'], torch.Size([8]))
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .base import SeededMixin, TrainingMethod, get_method, register_method, task_loss

__all__ = ["Dropout", "dropout_targets"]


def dropout_targets(model: nn.Module) -> List[Tuple[str, str]]:
    """The default ``(module name, "input"|"output")`` pairs that :class:`Dropout` masks.

    Examples:
        >>> from spikerobust.nn import LSNNClassifier
        >>> dropout_targets(LSNNClassifier(2, 8, 3))
        [('lsnn', 'output')]
    """
    from ...nn.lsnn import LSNN

    lsnn = [(name, "output") for name, m in model.named_modules() if isinstance(m, LSNN)]
    if lsnn:
        return lsnn
    dense = [(name, "input") for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not dense:
        raise ValueError(
            "dropout: the model has neither an LSNN layer nor nn.Linear layers; pass targets=[module names]"
        )
    return dense


@register_method("dropout")
class Dropout(SeededMixin, TrainingMethod):
    """Standard training with a per-step neuron mask (drop probability ``p``, no rescaling).

    Args:
        p: drop probability (SPEC: 0.3).
        targets: ``"auto"`` (see the module docstring) or a list of module names.
        where: for explicit ``targets``: mask the module's ``"input"`` or ``"output"``.
        seed: seed of a private generator (``None``: the global torch RNG).
    """

    def __init__(
        self,
        p: float = 0.3,
        targets: Union[str, Sequence[str]] = "auto",
        where: str = "input",
        seed: Optional[int] = None,
    ) -> None:
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        if where not in ("input", "output"):
            raise ValueError(f"where must be 'input' or 'output', got {where!r}")
        self.p = float(p)
        self.targets = targets if isinstance(targets, str) else list(targets)
        self.where = where
        self.seed = seed
        self._generator = None

    def _resolve(self, model: nn.Module) -> List[Tuple[str, str]]:
        if self.targets == "auto":
            return dropout_targets(model)
        if isinstance(self.targets, str):
            raise ValueError(f"targets must be 'auto' or a list of module names, got {self.targets!r}")
        modules = dict(model.named_modules())
        missing = [t for t in self.targets if t not in modules]
        if missing:
            raise ValueError(f"dropout targets {missing} are not modules of the model")
        return [(t, self.where) for t in self.targets]

    @contextlib.contextmanager
    def masked(self, model: nn.Module) -> Iterator[Dict[str, torch.Tensor]]:
        """Context in which the targets are masked; yields name → the 0/1 mask (drawn lazily at the
        first forward pass, then fixed for the whole context, i.e. one mask per step)."""
        masks: Dict[str, torch.Tensor] = {}
        handles = []
        modules = dict(model.named_modules())

        def apply(name: str, t: torch.Tensor) -> torch.Tensor:
            if not isinstance(t, torch.Tensor):
                return t
            if name not in masks:
                u = self.rand_like(t.new_empty(t.shape[-1]))
                masks[name] = (u >= self.p).to(t.dtype)
            return t * masks[name]

        try:
            for name, where in self._resolve(model):
                mod = modules[name]
                if where == "input":
                    def pre(m, args, _n=name):
                        return (apply(_n, args[0]),) + tuple(args[1:])
                    handles.append(mod.register_forward_pre_hook(pre))
                else:
                    def post(m, args, out, _n=name):
                        if isinstance(out, tuple):
                            return (apply(_n, out[0]),) + out[1:]
                        return apply(_n, out)
                    handles.append(mod.register_forward_hook(post))
            yield masks
        finally:
            for h in handles:
                h.remove()

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        with self.masked(model):
            loss, _ = task_loss(model, x, y)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}
