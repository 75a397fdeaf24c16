"""Interval bounds for feed-forward networks (``nn.Sequential`` of conv/dense layers) under ``±ζ|p|`` weight boxes.

Each supported layer type has a handler registered with :func:`register_layer`; a handler maps an
input :class:`~spikerobust.verify.interval.Interval` to an output interval, with the layer's
weight and bias as relative intervals (docs/verification.md). Supported: ``nn.Conv2d`` (zero padding),
``nn.Linear``, ``nn.ReLU``, ``nn.MaxPool2d``, ``nn.Flatten``, ``nn.Dropout`` and ``nn.Identity``
(identity: the network is certified in evaluation mode) and nested ``nn.Sequential``.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 2))
    >>> x = torch.randn(5, 1, 8, 8)
    >>> lower, upper = sequential_logit_bounds(net, x, zeta=1e-2)
    >>> bool((lower <= net(x)).all() and (net(x) <= upper).all())
    True
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Type

import torch
from torch import nn

from .interval import Interval, check_zeta, relative_interval
from .rules import conv2d, flatten, linear, max_pool2d, relu

__all__ = ["register_layer", "supported_layers", "sequential_interval", "sequential_logit_bounds"]

LayerHandler = Callable[[nn.Module, Interval, float, torch.dtype], Interval]
_LAYERS: Dict[Type[nn.Module], LayerHandler] = {}


def register_layer(layer_type: Type[nn.Module]) -> Callable[[LayerHandler], LayerHandler]:
    """Decorator registering ``handler(layer, x, zeta, dtype) -> Interval`` for ``layer_type``."""

    def decorator(fn: LayerHandler) -> LayerHandler:
        _LAYERS[layer_type] = fn
        return fn

    return decorator


def supported_layers() -> list[str]:
    """Names of the layer types with a registered handler."""
    return sorted(t.__name__ for t in _LAYERS)


def _param(p: Optional[torch.Tensor], zeta: float, dtype: torch.dtype):
    if p is None:
        return None
    p = p.detach().to(dtype)
    return relative_interval(p, zeta) if zeta > 0 else p


@register_layer(nn.Conv2d)
def _conv2d(layer: nn.Conv2d, x: Interval, zeta: float, dtype: torch.dtype) -> Interval:
    if layer.padding_mode != "zeros":
        raise ValueError(
            f"sequential_interval: Conv2d with padding_mode={layer.padding_mode!r} is not supported (only 'zeros')"
        )
    return conv2d(
        x,
        _param(layer.weight, zeta, dtype),
        _param(layer.bias, zeta, dtype),
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
    )


@register_layer(nn.Linear)
def _linear(layer: nn.Linear, x: Interval, zeta: float, dtype: torch.dtype) -> Interval:
    return linear(x, _param(layer.weight, zeta, dtype), _param(layer.bias, zeta, dtype))


@register_layer(nn.ReLU)
def _relu(layer: nn.ReLU, x: Interval, zeta: float, dtype: torch.dtype) -> Interval:
    return relu(x)


@register_layer(nn.MaxPool2d)
def _max_pool(layer: nn.MaxPool2d, x: Interval, zeta: float, dtype: torch.dtype) -> Interval:
    if layer.return_indices:
        raise ValueError("sequential_interval: MaxPool2d(return_indices=True) is not supported")
    return max_pool2d(x, layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)


@register_layer(nn.Flatten)
def _flatten(layer: nn.Flatten, x: Interval, zeta: float, dtype: torch.dtype) -> Interval:
    return flatten(x, layer.start_dim, layer.end_dim)


@register_layer(nn.Dropout)
@register_layer(nn.Identity)
def _identity(layer: nn.Module, x: Interval, zeta: float, dtype: torch.dtype) -> Interval:
    return x


@register_layer(nn.Sequential)
def _sequential(layer: nn.Sequential, x: Interval, zeta: float, dtype: torch.dtype) -> Interval:
    for i, sub in enumerate(layer):
        handler = _LAYERS.get(type(sub))
        if handler is None:
            raise ValueError(
                f"sequential_interval: unsupported layer [{i}] {type(sub).__name__} ({sub!r}); "
                f"supported: {supported_layers()}"
                + ("; spiking neuron layers (threshold and reset over time) have no interval rule" if hasattr(sub, "threshold") else "")
            )
        x = handler(sub, x, zeta, dtype)
    return x


@torch.no_grad()
def sequential_interval(model: nn.Sequential, x: torch.Tensor, zeta: float, *, dtype: Optional[torch.dtype] = None) -> Interval:
    """Interval of the outputs of ``model`` for every parameter set with ``|p' - p| <= ζ|p|``.

    Args:
        model: an ``nn.Sequential`` of supported layers (see :func:`supported_layers`).
        x: exact input batch.
        zeta: relative half-width ``ζ >= 0`` of every weight and bias interval.
        dtype: compute in this dtype (default: the model's); ``torch.float64`` to certify.

    Returns:
        an :class:`Interval` of the outputs.

    Shape:
        ``x``: the model's input, e.g. ``[B, 1, 28, 28]`` → ``[B, C]``.

    Raises:
        ValueError: for an unsupported layer (named), a bad ``zeta`` or a non-tensor input.
    """
    zeta = check_zeta(zeta)
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"sequential_interval: expected an nn.Sequential, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("sequential_interval: x must be a floating-point tensor batch, e.g. [B, 1, 28, 28]")
    if dtype is None:
        first = next(model.parameters(), None)
        dtype = first.dtype if first is not None else x.dtype
    return _sequential(model, Interval.point(x.to(dtype)), zeta, dtype)


def sequential_logit_bounds(model: nn.Sequential, x: torch.Tensor, zeta: float, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower, upper)`` from :func:`sequential_interval`; shapes ``[B, C]``."""
    out = sequential_interval(model, x, zeta, **kwargs)
    return out.lower, out.upper
