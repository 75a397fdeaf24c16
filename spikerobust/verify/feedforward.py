"""Interval bounds for feed-forward networks (conv/dense ``nn.Sequential`` and the CIFAR ResNets) under ``±ε|p|`` weight boxes.

:func:`layer_interval` maps an input :class:`~spikerobust.verify.interval.Interval` through one
layer, with the layer's weight and bias as relative intervals (docs/verification.md), by calling
the rule of :mod:`spikerobust.verify.rules` for its operation; containers recurse. Supported:
``nn.Conv2d`` (zero padding), ``nn.Linear``, ``nn.BatchNorm1d/2d`` (evaluation mode: the running
statistics are exact, ``γ`` and ``β`` are boxed like every other parameter), ``nn.ReLU``,
``nn.MaxPool2d``, ``nn.Flatten``, ``nn.Dropout`` and ``nn.Identity`` (identity: the network is
certified in evaluation mode), nested ``nn.Sequential``, and the residual networks of
:mod:`spikerobust.models.resnet` (:class:`~spikerobust.models.resnet.ResNetCIFAR`, e.g. ResNet32:
the residual sum is the interval sum, the option-A shortcut a monotone map).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 2))
    >>> x = torch.randn(5, 1, 8, 8)
    >>> lower, upper = sequential_logit_bounds(net, x, epsilon=1e-2)
    >>> bool((lower <= net(x)).all() and (net(x) <= upper).all())
    True
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import nn

from .._checks import check_batch
from ..models.resnet import BasicBlock, ResNetCIFAR, ShortcutA
from ..protocol import BATCH_FIRST
from .interval import Interval, relative_interval, resolve_epsilon
from .rules import add, batch_norm, conv2d, flatten, linear, max_pool2d, mean, monotone, relu

__all__ = ["SUPPORTED_LAYERS", "layer_interval", "supported_layers", "register_layer", "sequential_interval",
           "sequential_logit_bounds"]

#: The module types :func:`layer_interval` propagates.
SUPPORTED_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Flatten,
                    nn.Dropout, nn.Identity, nn.Sequential, ShortcutA, BasicBlock, ResNetCIFAR)


def supported_layers() -> list[str]:
    """Names of the layer types :func:`layer_interval` supports."""
    return sorted(t.__name__ for t in SUPPORTED_LAYERS)


def register_layer(layer_type):
    """Removed: the layer types are fixed (:data:`SUPPORTED_LAYERS`); propagate other modules with the
    functions of :mod:`spikerobust.verify.rules`.

    Raises:
        NotImplementedError: always (after a ``DeprecationWarning``).
    """
    warnings.warn("register_layer is deprecated: the verifier supports a fixed set of layers", DeprecationWarning,
                  stacklevel=2)
    raise NotImplementedError(
        f"register_layer({getattr(layer_type, '__name__', layer_type)}): the feed-forward verifier no longer takes "
        f"new layer types; compose spikerobust.verify.rules functions for them instead"
    )


def _param(p: Optional[torch.Tensor], epsilon: float, dtype: torch.dtype):
    if p is None:
        return None
    p = p.detach().to(dtype)
    return relative_interval(p, epsilon) if epsilon > 0 else p


def layer_interval(layer: nn.Module, x: Interval, epsilon: float, dtype: torch.dtype) -> Interval:
    """Interval of ``layer``'s output for the input interval ``x``, every weight and bias in ``±ε|p|``.

    Args:
        layer: a module of one of the :data:`SUPPORTED_LAYERS` types.
        x: input interval.
        epsilon: relative half-width ``ε >= 0`` of every weight and bias.
        dtype: dtype of the parameters' intervals.

    Raises:
        ValueError: naming an unsupported layer, a non-zero padding mode or ``return_indices``.
    """
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise ValueError(
                f"sequential_interval: Conv2d with padding_mode={layer.padding_mode!r} is not supported (only 'zeros')"
            )
        return conv2d(x, _param(layer.weight, epsilon, dtype), _param(layer.bias, epsilon, dtype),
                      layer.stride, layer.padding, layer.dilation, layer.groups)
    if isinstance(layer, nn.Linear):
        return linear(x, _param(layer.weight, epsilon, dtype), _param(layer.bias, epsilon, dtype))
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if layer.running_mean is None:
            raise ValueError(f"sequential_interval: {layer!r} tracks no running statistics (evaluation mode needs them)")
        return batch_norm(x, layer.running_mean.to(dtype), layer.running_var.to(dtype),
                          _param(layer.weight, epsilon, dtype), _param(layer.bias, epsilon, dtype), layer.eps)
    if isinstance(layer, nn.ReLU):
        return relu(x)
    if isinstance(layer, nn.MaxPool2d):
        if layer.return_indices:
            raise ValueError("sequential_interval: MaxPool2d(return_indices=True) is not supported")
        return max_pool2d(x, layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
    if isinstance(layer, nn.Flatten):
        return flatten(x, layer.start_dim, layer.end_dim)
    if isinstance(layer, (nn.Dropout, nn.Identity)):
        return x
    if isinstance(layer, ShortcutA):
        return monotone(x, layer.forward)  # subsampling and zero padding are monotone
    if isinstance(layer, BasicBlock):
        out = relu(layer_interval(layer.bn1, layer_interval(layer.conv1, x, epsilon, dtype), epsilon, dtype))
        out = layer_interval(layer.bn2, layer_interval(layer.conv2, out, epsilon, dtype), epsilon, dtype)
        return relu(add(out, layer_interval(layer.shortcut, x, epsilon, dtype)))
    if isinstance(layer, ResNetCIFAR):
        out = relu(layer_interval(layer.bn1, layer_interval(layer.conv1, x, epsilon, dtype), epsilon, dtype))
        out = mean(layer_interval(layer.stages, out, epsilon, dtype), dim=(2, 3))
        return layer_interval(layer.fc, out, epsilon, dtype)
    if isinstance(layer, nn.Sequential):
        for i, sub in enumerate(layer):
            if not isinstance(sub, SUPPORTED_LAYERS):
                raise ValueError(
                    f"sequential_interval: unsupported layer [{i}] {type(sub).__name__} ({sub!r}); "
                    f"supported: {supported_layers()}"
                    + ("; spiking neuron layers (threshold and reset over time) have no interval rule"
                       if hasattr(sub, "threshold") else "")
                )
            x = layer_interval(sub, x, epsilon, dtype)
        return x
    raise ValueError(f"sequential_interval: unsupported layer {type(layer).__name__}; supported: {supported_layers()}")


@torch.no_grad()
def sequential_interval(model: nn.Module, x: torch.Tensor, epsilon: Optional[float] = None, *,
                        dtype: Optional[torch.dtype] = None, zeta: Optional[float] = None) -> Interval:
    """Interval of the outputs of ``model`` for every parameter set with ``|p' - p| <= ε|p|``.

    Args:
        model: an ``nn.Sequential`` of supported layers or a
            :class:`~spikerobust.models.resnet.ResNetCIFAR` (see :func:`supported_layers`).
        x: exact input batch, batch first.
        epsilon: relative half-width ``ε >= 0`` of every weight and bias interval.
        dtype: compute in this dtype (default: the model's); ``torch.float64`` to certify.
        zeta: deprecated name of ``epsilon``.

    Returns:
        an :class:`Interval` of the outputs.

    Shape:
        ``x``: the model's input, e.g. ``[B, 1, 28, 28]`` → ``[B, C]``.

    Raises:
        ValueError: for an unsupported model or layer (named), a bad ``epsilon`` or a bad input.
    """
    epsilon = resolve_epsilon(epsilon, zeta, owner="sequential_interval")
    if not isinstance(model, (nn.Sequential, ResNetCIFAR)):
        raise ValueError(
            f"sequential_interval: expected an nn.Sequential or a ResNetCIFAR, got {type(model).__name__}"
        )
    check_batch(x, BATCH_FIRST, example="[B, 1, 28, 28]")
    if dtype is None:
        first = next(model.parameters(), None)
        dtype = first.dtype if first is not None else x.dtype
    return layer_interval(model, Interval.point(x.to(dtype)), epsilon, dtype)


def sequential_logit_bounds(model: nn.Module, x: torch.Tensor, epsilon: Optional[float] = None, *,
                            zeta: Optional[float] = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower, upper)`` from :func:`sequential_interval`; shapes ``[B, C]``."""
    epsilon = resolve_epsilon(epsilon, zeta, owner="sequential_logit_bounds")
    out = sequential_interval(model, x, epsilon, **kwargs)
    return out.lower, out.upper
