r"""Dropout baseline: one random mask per training step over neurons, no rescaling.

The reference drops each neuron with probability ``p = 0.3`` with ONE mask per optimisation step
(shared by every sample of the batch and every time step) and does not rescale the kept units by
``1/(1−p)``. In the LSNN it multiplies the mask into the spikes ``z_t`` INSIDE the recurrence, so
a dropped neuron neither feeds the recurrence nor the readout, and neither resets nor adapts.
Evaluation is untouched: the masks exist only inside :meth:`Dropout.step` (or
:meth:`Dropout.masked`).

What is masked, per model type (``targets="auto"``):

- ``where="recurrent"`` (the default for spiking layers): every module that exposes a
  ``neuron_mask`` attribute and its size ``n_hidden`` (e.g. :class:`spikerobust.nn.LSNN`, found
  by that attribute, not by its class) gets ``module.neuron_mask`` = one mask ``[N]`` for the
  step; the layer multiplies it into ``z_t`` inside its recurrence.
- ``where="output"``: the same layers' OUTPUT spikes ``[T, B, N]`` are masked by a forward hook,
  i.e. only the readout sees the dropped neurons as silent; the recurrence is not masked.
- a model without such layers (e.g. the F-MNIST CNN): the INPUT of every ``nn.Linear`` layer
  ("dropout on the dense inputs"), one mask ``[features]`` per layer and step.

``targets`` may instead list module names (``dict(model.named_modules())`` keys), with
``where="input"``, ``"output"`` or ``"recurrent"``; input/output masks act on the last dimension
of that tensor.

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

__all__ = ["Dropout", "dropout_targets", "WHERE"]

#: Accepted values of ``where``.
WHERE = ("auto", "recurrent", "output", "input")


def _has_neuron_mask(module: nn.Module) -> bool:
    return hasattr(module, "neuron_mask") and isinstance(getattr(module, "n_hidden", None), int)


def dropout_targets(model: nn.Module, where: str = "auto") -> List[Tuple[str, str]]:
    """The default ``(module name, "recurrent"|"output"|"input")`` pairs that :class:`Dropout` masks.

    Args:
        model: the model.
        where: ``"auto"``/``"recurrent"``: spiking layers (modules with a ``neuron_mask``
            attribute) inside their recurrence; ``"output"``: those layers' outputs. Models
            without such layers: the inputs of every ``nn.Linear`` (with ``"auto"`` or
            ``"input"``).

    Raises:
        ValueError: when nothing can be masked as asked.

    Examples:
        >>> from spikerobust.nn import LSNNClassifier
        >>> dropout_targets(LSNNClassifier(2, 8, 3))
        [('lsnn', 'recurrent')]
        >>> dropout_targets(LSNNClassifier(2, 8, 3), where="output")
        [('lsnn', 'output')]
    """
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, got {where!r}")
    spiking = [name for name, m in model.named_modules() if _has_neuron_mask(m)]
    if spiking and where in ("auto", "recurrent", "output"):
        kind = "output" if where == "output" else "recurrent"
        return [(name, kind) for name in spiking]
    if where in ("recurrent", "output"):
        raise ValueError(
            f"dropout where={where!r}: the model has no spiking layer with a neuron_mask attribute; "
            f"pass targets=[module names]"
        )
    dense = [(name, "input") for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not dense:
        raise ValueError(
            "dropout: the model has neither a spiking layer (neuron_mask) nor nn.Linear layers; "
            "pass targets=[module names]"
        )
    return dense


@register_method("dropout")
class Dropout(SeededMixin, TrainingMethod):
    """Standard training with a per-step neuron mask (drop probability ``p``, no rescaling).

    Args:
        p: drop probability (the reference: 0.3).
        targets: ``"auto"`` (see the module docstring) or a list of module names.
        where: ``"auto"`` (default: inside the recurrence of spiking layers, else the inputs of
            the dense layers), ``"recurrent"``, ``"output"`` (output dropout of the spiking
            layers, the readout's view only) or ``"input"``. With explicit ``targets``,
            ``"auto"`` means ``"recurrent"`` for modules with a ``neuron_mask`` and ``"input"``
            otherwise.
        seed: seed of a private generator (``None``: the global torch RNG).

    Raises:
        ValueError: for ``p`` outside ``[0, 1)`` or an unknown ``where``.
    """

    def __init__(
        self,
        p: float = 0.3,
        targets: Union[str, Sequence[str]] = "auto",
        where: str = "auto",
        seed: Optional[int] = None,
    ) -> None:
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        if where not in WHERE:
            raise ValueError(f"where must be one of {WHERE}, got {where!r}")
        self.p = float(p)
        self.targets = targets if isinstance(targets, str) else list(targets)
        self.where = where
        self.seed = seed

    def _resolve(self, model: nn.Module) -> List[Tuple[str, str]]:
        if self.targets == "auto":
            return dropout_targets(model, self.where)
        if isinstance(self.targets, str):
            raise ValueError(f"targets must be 'auto' or a list of module names, got {self.targets!r}")
        modules = dict(model.named_modules())
        missing = [t for t in self.targets if t not in modules]
        if missing:
            raise ValueError(f"dropout targets {missing} are not modules of the model")
        out = []
        for t in self.targets:
            where = self.where
            if where == "auto":
                where = "recurrent" if _has_neuron_mask(modules[t]) else "input"
            if where == "recurrent" and not _has_neuron_mask(modules[t]):
                raise ValueError(f"dropout target {t!r} has no neuron_mask attribute: use where='input'/'output'")
            out.append((t, where))
        return out

    def _draw(self, n: int, like: torch.Tensor) -> torch.Tensor:
        u = self.rand_like(like.new_empty(n))
        return (u >= self.p).to(like.dtype)

    @contextlib.contextmanager
    def masked(self, model: nn.Module) -> Iterator[Dict[str, torch.Tensor]]:
        """Context in which the targets are masked; yields name → the 0/1 mask, fixed for the
        whole context (one mask per step). Recurrent masks are drawn on entry (set as the
        layer's ``neuron_mask``, restored on exit); input/output masks at the first forward pass."""
        masks: Dict[str, torch.Tensor] = {}
        handles = []
        restore: List[Tuple[nn.Module, Optional[torch.Tensor]]] = []
        modules = dict(model.named_modules())

        def apply(name: str, t: torch.Tensor) -> torch.Tensor:
            if not isinstance(t, torch.Tensor):
                return t
            if name not in masks:
                masks[name] = self._draw(t.shape[-1], t)
            return t * masks[name]

        try:
            for name, where in self._resolve(model):
                mod = modules[name]
                if where == "recurrent":
                    like = next(mod.parameters(), None)
                    like = like.detach() if like is not None else torch.empty(0)
                    masks[name] = self._draw(int(mod.n_hidden), like)
                    restore.append((mod, mod.neuron_mask))
                    mod.neuron_mask = masks[name]
                elif where == "input":
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
            for mod, old in reversed(restore):
                mod.neuron_mask = old

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        with self.masked(model):
            loss, _ = task_loss(model, x, y)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}
