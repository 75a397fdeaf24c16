"""Helpers shared by mismatch, attacks, the robust loss, the methods, the landscape and the trainer.

- :func:`resolve_params`: the parameter selection (``params`` as given, else ``include``/``exclude``
  globs over :func:`~spikerobust.robust.params.select_parameters`);
- :func:`model_mode`: put a model in train or eval mode and restore every submodule's mode;
- :func:`iter_batches` / :func:`as_batches`: ``(x, y)`` or an iterable of ``(x, y)`` batches;
- :func:`randn_like` / :func:`rand_like`: seeded draws with ONE device rule: the draw is made on
  the generator's device (CPU for every generator this package creates) and moved to the
  tensor's device, so a CPU generator works with CUDA parameters everywhere, and a seed gives the
  same numbers on every device; without a generator the global RNG of the tensor's device is used;
- :func:`seeded_generator`: ``generator`` or a CPU generator seeded with ``seed``;
- :func:`functional_logits` / :func:`buffer_copies`: logits at substituted parameters without
  touching the model or its running statistics;
- :func:`count_correct` / :func:`accuracy`: the one accuracy loop (eval mode, no gradients).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 2))
    >>> with torch.no_grad():
    ...     _ = model[0].weight.copy_(torch.eye(2)), model[0].bias.zero_()
    >>> x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]), torch.tensor([0, 1, 1])
    >>> accuracy(model, (x, y))
    0.6666666666666666
    >>> g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    >>> bool(torch.equal(randn_like(torch.zeros(3), g1), torch.randn(3, generator=g2)))
    True
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn
from torch.func import functional_call

from .params import select_parameters

__all__ = [
    "Batch",
    "Data",
    "resolve_params",
    "model_mode",
    "iter_batches",
    "as_batches",
    "check_logits",
    "seeded_generator",
    "randn_like",
    "rand_like",
    "buffer_copies",
    "functional_logits",
    "count_correct",
    "accuracy",
    "first_device",
]

Batch = Tuple[torch.Tensor, torch.Tensor]
Data = Union[Batch, Iterable[Batch]]


def resolve_params(
    model: nn.Module,
    params: Optional[Mapping[str, torch.Tensor]] = None,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
) -> Dict[str, torch.Tensor]:
    """The parameter selection to perturb: ``params`` as given, else :func:`select_parameters`.

    Raises:
        ValueError: for an empty selection or a name that is not a parameter/buffer of ``model``.
    """
    if params is None:
        return select_parameters(model, include, exclude)
    params = dict(params)
    if not params:
        raise ValueError("params: the parameter selection is empty; select at least one tensor")
    known = dict(model.named_parameters())
    known.update(dict(model.named_buffers()))
    for name, value in params.items():
        if name not in known:
            raise ValueError(f"params: {name!r} is not a parameter or buffer of the model")
        if tuple(value.shape) != tuple(known[name].shape):
            raise ValueError(
                f"params[{name!r}] has shape {tuple(value.shape)}, the model's tensor {tuple(known[name].shape)}"
            )
    return params


@contextlib.contextmanager
def model_mode(model: nn.Module, train: bool) -> Iterator[nn.Module]:
    """Put every submodule in train (``True``) or eval mode, restoring each one's mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


def _is_pair(data) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)


def iter_batches(data: Data) -> Iterator[Batch]:
    """The ``(x, y)`` batches of ``data`` one at a time (a ``DataLoader`` is not kept in memory).

    Raises:
        ValueError: if a batch is not an ``(x, y)`` pair of tensors with labels ``[B]``.
    """
    batches = [tuple(data)] if _is_pair(data) else data
    for i, batch in enumerate(batches):
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise ValueError(f"data: batch {i} must be an (x, y) pair, got {type(batch).__name__}")
        x, y = batch[0], batch[1]
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or y.dim() != 1:
            raise ValueError(f"data: batch {i} must hold a tensor x and integer labels y of shape [B]")
        yield x, y


def as_batches(data: Data) -> List[Batch]:
    """``data`` as a list of ``(x, y)`` batches: one ``(x, y)`` tuple of tensors, or an iterable of
    them (e.g. a ``DataLoader``; it is iterated once and kept in memory).

    Raises:
        ValueError: if a batch is not an ``(x, y)`` pair of tensors or there is no batch.
    """
    batches = list(iter_batches(data))
    if not batches:
        raise ValueError("data holds no batch; expected (x, y) or an iterable of (x, y) batches")
    return batches


def check_logits(out, y: torch.Tensor, *, batched: bool = False) -> torch.Tensor:
    """Check that a model output is logits ``[B, C]`` (``[K, B, C]`` when ``batched``) for labels ``y [B]``.

    Raises:
        ValueError: naming the expected shape.
    """
    want = 3 if batched else 2
    if not isinstance(out, torch.Tensor) or out.dim() != want or out.shape[-2] != y.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the model must return logits of shape [B, C] with B = {y.shape[0]} (the number of labels), got {got}"
        )
    return out


def seeded_generator(seed: Optional[int] = 0, generator: Optional[torch.Generator] = None) -> Optional[torch.Generator]:
    """``generator`` when given, else a CPU generator seeded with ``seed`` (``None``: no generator)."""
    if generator is not None or seed is None:
        return generator
    return torch.Generator().manual_seed(int(seed))


def _draw_device(t: torch.Tensor, generator: Optional[torch.Generator]) -> torch.device:
    return generator.device if generator is not None else t.device


def randn_like(t: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Standard normal draws of ``t``'s shape and dtype on ``t``'s device (see the module's device rule)."""
    return torch.randn(t.shape, generator=generator, device=_draw_device(t, generator), dtype=t.dtype).to(t.device)


def rand_like(t: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Uniform [0, 1) draws of ``t``'s shape and dtype on ``t``'s device (see the module's device rule)."""
    return torch.rand(t.shape, generator=generator, device=_draw_device(t, generator), dtype=t.dtype).to(t.device)


def buffer_copies(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Copies of ``model``'s buffers when some module is training, else ``{}``.

    Passed to :func:`torch.func.functional_call` next to perturbed parameters, so a forward pass
    in training mode (BatchNorm) updates the copies and not the model's running statistics.

    Returns:
        ``{buffer name: clone}``, empty when every module is in eval mode.
    """
    if not any(m.training for m in model.modules()):
        return {}
    return {name: b.clone() for name, b in model.named_buffers()}


def functional_logits(
    model: nn.Module, x: torch.Tensor, params: Mapping[str, torch.Tensor], y: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Logits of ``model`` at ``params`` (a partial mapping) without updating running statistics."""
    out = functional_call(model, {**buffer_copies(model), **dict(params)}, (x,), strict=False)
    if y is not None:
        check_logits(out, y)
    elif not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError(f"the model must return logits of shape [B, C], got {getattr(out, 'shape', type(out))}")
    return out


def first_device(model: nn.Module, params: Optional[Mapping[str, torch.Tensor]] = None) -> torch.device:
    """The device of the first tensor of ``params``, else of the model's first parameter (CPU without any)."""
    for t in (params or {}).values():
        return t.device
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def count_correct(
    model: nn.Module, data: Data, params: Optional[Mapping[str, torch.Tensor]] = None
) -> Tuple[int, int]:
    """``(correct, total)`` of ``model`` (at ``params``, a partial mapping, when given) over ``data``.

    Runs in eval mode without gradients (the mode is restored); batches are moved to the device of
    ``params`` (else of the model) one at a time.
    """
    correct = total = 0
    dev = first_device(model, params)
    with model_mode(model, False), torch.no_grad():
        for x, y in iter_batches(data):
            x, y = x.to(dev), y.to(dev)
            out = model(x) if params is None else functional_call(model, dict(params), (x,), strict=False)
            check_logits(out, y)
            correct += int((out.argmax(-1) == y.to(out.device)).sum())
            total += int(y.shape[0])
    return correct, total


def accuracy(model: nn.Module, data: Data, params: Optional[Mapping[str, torch.Tensor]] = None) -> float:
    """Accuracy in ``[0, 1]`` of :func:`count_correct`.

    Raises:
        ValueError: when ``data`` holds no sample, or the model does not return logits ``[B, C]``.
    """
    correct, total = count_correct(model, data, params)
    if total == 0:
        raise ValueError("accuracy: the data holds no sample")
    return correct / total
