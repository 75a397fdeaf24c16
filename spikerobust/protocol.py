"""The model protocol: what a model declares about itself, read by model-agnostic code.

Training loops, mismatch, PCM, verification and analysis must know three things about a model
without asking for its class (``spikerobust.robust`` may not even import ``spikerobust.nn``):

- **input layout**: ``"time_first"`` (``[T, B, F]``, the LSNN's) or ``"batch_first"``
  (``[B, ...]``, images, the default). Declared by the class attribute ``input_layout``.
- **auxiliary loss**: whether ``forward(x, return_aux_loss=True)`` returns ``(logits, aux)``
  (the LSNN's firing-rate regulariser of docs/lsnn.md). Declared by the class attribute
  ``supports_aux_loss = True``.
- **spiking layers**: the modules that run spiking dynamics over time (an
  :class:`~spikerobust.nn.LSNN`). Declared by a method ``spiking_layers() -> list``.

A module that declares nothing gets the defaults: batch first, no auxiliary loss, and the
spiking layers its children declare (none for a plain convolutional network). Wrappers that hold
the model in ``.module`` (``DataParallel``, ``DistributedDataParallel``) are looked through.
This module imports only ``torch``, so any part of the package may use it.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 2))
    >>> input_layout(net), has_auxiliary_loss(net), spiking_layers(net)
    ('batch_first', False, [])
    >>> batch_dim(net)
    0
    >>> class Recurrent(nn.Module):
    ...     input_layout = "time_first"
    ...     def spiking_layers(self):
    ...         return [self]
    >>> m = Recurrent()
    >>> input_layout(m), batch_dim(m), spiking_layers(m) == [m]
    ('time_first', 1, True)
    >>> spiking_layers(nn.Sequential(m, nn.Linear(2, 2))) == [m]  # found in the children
    True
"""

from __future__ import annotations

import warnings
from typing import List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

__all__ = [
    "LAYOUTS",
    "TIME_FIRST",
    "BATCH_FIRST",
    "check_layout",
    "resolve_layout",
    "input_layout",
    "batch_dim",
    "has_auxiliary_loss",
    "forward_with_auxiliary_loss",
    "spiking_layers",
    "unwrap",
]

TIME_FIRST = "time_first"
BATCH_FIRST = "batch_first"
#: The input layouts a model may declare.
LAYOUTS = (TIME_FIRST, BATCH_FIRST)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``DataParallel``/``DistributedDataParallel`` wrappers (``.module``), else ``model``."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def check_layout(layout: str) -> str:
    """``layout`` if it is one of :data:`LAYOUTS`.

    Raises:
        ValueError: for any other value.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"input layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


def resolve_layout(layout: Optional[str], time_first: Optional[bool], *, owner: str,
                   model: Optional[nn.Module] = None) -> str:
    """The layout from a ``layout`` argument, or from the former boolean ``time_first`` (deprecated).

    For functions that took ``time_first=`` and now take ``layout=``: ``time_first`` still works
    for one release with a ``DeprecationWarning``. With neither given, the layout ``model``
    declares (:func:`input_layout`) is used.

    Raises:
        ValueError: if both are given and disagree, or neither is given and there is no ``model``.

    Examples:
        >>> resolve_layout("time_first", None, owner="f")
        'time_first'
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     resolve_layout(None, False, owner="f")
        'batch_first'
    """
    if time_first is not None:
        warnings.warn(
            f"{owner}: time_first= is deprecated; pass layout='time_first' or 'batch_first' (or leave it "
            f"out: the model's declared input_layout is used)",
            DeprecationWarning,
            stacklevel=3,
        )
        from_flag = TIME_FIRST if time_first else BATCH_FIRST
        if layout is not None and check_layout(layout) != from_flag:
            raise ValueError(f"{owner}: layout={layout!r} contradicts time_first={time_first!r}")
        return from_flag
    if layout is not None:
        return check_layout(layout)
    if model is None:
        raise ValueError(f"{owner}: pass layout='time_first' ([T, B, F]) or 'batch_first' ([B, ...])")
    return input_layout(model)


def input_layout(model: nn.Module) -> str:
    """The model's declared input layout, ``"time_first"`` or ``"batch_first"`` (the default).

    Raises:
        ValueError: if the model declares a layout outside :data:`LAYOUTS`.
    """
    return check_layout(getattr(unwrap(model), "input_layout", BATCH_FIRST))


def batch_dim(model_or_layout: Union[nn.Module, str]) -> int:
    """The batch axis of the model's input (or of a layout name): 1 if time first, else 0."""
    layout = model_or_layout if isinstance(model_or_layout, str) else input_layout(model_or_layout)
    return 1 if check_layout(layout) == TIME_FIRST else 0


def has_auxiliary_loss(model: nn.Module) -> bool:
    """Whether ``model(x, return_aux_loss=True)`` returns ``(logits, aux)`` (``supports_aux_loss``)."""
    return bool(getattr(model, "supports_aux_loss", False) or getattr(unwrap(model), "supports_aux_loss", False))


def forward_with_auxiliary_loss(
    model: nn.Module, x: torch.Tensor, params: Optional[Mapping[str, torch.Tensor]] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(logits, aux)``: the model's auxiliary loss, or a zero scalar for a model without one.

    Args:
        model: any module; one with :func:`has_auxiliary_loss` is called with ``return_aux_loss=True``.
        x: the input batch, in the model's layout.
        params: evaluate the model functionally at these tensors
            (``torch.func.functional_call``, a partial mapping: unnamed parameters keep their
            values); the model is not mutated.

    Examples:
        >>> import torch
        >>> logits, aux = forward_with_auxiliary_loss(torch.nn.Linear(3, 2), torch.ones(4, 3))
        >>> logits.shape, float(aux)
        (torch.Size([4, 2]), 0.0)
    """
    aux = has_auxiliary_loss(model)
    kwargs = {"return_aux_loss": True} if aux else {}
    if params is None:
        out = model(x, **kwargs)
    else:
        out = torch.func.functional_call(model, dict(params), (x,), kwargs, strict=False)
    if aux:
        return out[0], out[1]
    return out, out.new_zeros(())


def spiking_layers(model: nn.Module) -> List[nn.Module]:
    """The modules of ``model`` that run spiking dynamics over time, in module order.

    A module declaring ``spiking_layers()`` answers for itself and everything below it; otherwise
    the declarations of its children are collected (so a plain network has none).
    """
    declared = getattr(model, "spiking_layers", None)
    if callable(declared):
        return list(declared())
    out: List[nn.Module] = []
    for child in model.children():
        out.extend(spiking_layers(child))
    return out
