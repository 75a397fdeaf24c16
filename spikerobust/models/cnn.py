"""The paper's Fashion-MNIST CNN (docs/tasks.md) as a plain ``nn.Sequential``.

Layers: conv 64@4×4 "same" → ReLU → max-pool 2 → conv 64@4×4 "valid" → ReLU → max-pool 2 →
flatten (64·5·5 = 1600) → dense 256 → ReLU → dense 64 → ReLU → dense 10.

Spatial sizes for a 28×28 image: "same" keeps 28, pooling gives 14; the "valid" 4×4 conv gives
14 − 4 + 1 = 11, pooling (floor) gives 5; so 64·5·5 = 1600 features reach the first dense layer.
PyTorch's ``padding="same"`` with an even kernel pads one more row/column at the bottom/right.
Weights are Glorot normal and biases zero (:func:`glorot_normal_init_`), as in the reference.

The per-channel input standardisation of docs/tasks.md belongs to the dataset transform, not to the
model. The model is a flat ``nn.Sequential`` of standard layers so that layer-walking tools (the
interval verifier, PCM conversion) can treat it layer by layer.

The model declares the protocol of :mod:`spikerobust.protocol`: batch-first input, no
auxiliary loss, no spiking layers.

Examples:
    >>> import torch
    >>> from spikerobust.protocol import input_layout
    >>> model = cnn_fmnist(image_size=20)          # (20 // 2 - 3) // 2 = 3, so 64·3·3 features
    >>> model[7].in_features, input_layout(model)
    (576, 'batch_first')
"""

from __future__ import annotations

import math

from torch import nn

from ..nn.lsnn import truncated_normal_
from ..protocol import BATCH_FIRST
from .registry import register_model

__all__ = ["SequentialCNN", "cnn_fmnist", "glorot_normal_init_"]


class SequentialCNN(nn.Sequential):
    """An ``nn.Sequential`` of standard layers declaring the model protocol (:mod:`spikerobust.protocol`).

    Shape:
        ``[B, C, H, W]`` (batch first) → logits ``[B, n_classes]``.
    """

    input_layout = BATCH_FIRST
    supports_aux_loss = False

    def spiking_layers(self) -> list:
        """None: every layer is a plain ReLU network layer."""
        return []


@register_model("cnn_fmnist")
def cnn_fmnist(
    n_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    dropout: float = 0.0,
) -> SequentialCNN:
    """Build the F-MNIST CNN of docs/tasks.md.

    Args:
        n_classes: outputs of the last dense layer (10 for Fashion-MNIST).
        in_channels: input image channels (1).
        image_size: input height = width (28); sets the flattened size.
        dropout: probability of an ``nn.Dropout`` placed on the input of each dense layer (the
            paper's dropout baseline). ``0`` (default) adds no dropout layers at all.

    Returns:
        a :class:`SequentialCNN` (an ``nn.Sequential``); input ``[B, in_channels, image_size, image_size]`` → logits
        ``[B, n_classes]``.

    Raises:
        ValueError: for a non-positive size or a dropout probability outside ``[0, 1)``.
    """
    if int(n_classes) < 1 or int(in_channels) < 1:
        raise ValueError(f"cnn_fmnist: n_classes and in_channels must be >= 1, got {n_classes}, {in_channels}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"cnn_fmnist: dropout must be in [0, 1), got {dropout}")
    side = (int(image_size) // 2 - 3) // 2  # same conv, pool 2, valid 4x4 conv, pool 2
    if side < 1:
        raise ValueError(f"cnn_fmnist: image_size must be >= 10, got {image_size}")
    flat = 64 * side * side

    def dense(d_in: int, d_out: int) -> list[nn.Module]:
        return ([nn.Dropout(dropout)] if dropout > 0 else []) + [nn.Linear(d_in, d_out)]

    model = SequentialCNN(
        nn.Conv2d(int(in_channels), 64, kernel_size=4, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, kernel_size=4, padding=0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        *dense(flat, 256),
        nn.ReLU(),
        *dense(256, 64),
        nn.ReLU(),
        *dense(64, int(n_classes)),
    )
    glorot_normal_init_(model)
    return model


def glorot_normal_init_(model: nn.Module) -> nn.Module:
    """Glorot-normal weights and zero biases for every ``nn.Conv2d`` and ``nn.Linear`` of ``model``.

    Glorot normal as JAX and Keras define it (the reference's framework): a normal truncated at
    ±2 of its scale, rescaled so that its standard deviation is exactly
    ``sqrt(2 / (fan_in + fan_out))``, with ``fan_in = in_channels·k_h·k_w`` and
    ``fan_out = out_channels·k_h·k_w`` for a convolution (``in``/``out`` features for a dense
    layer).

    Returns:
        ``model``, initialised in place.

    References:
        Glorot, Bengio. "Understanding the difficulty of training deep feedforward neural
        networks", AISTATS 2010.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
            truncated_normal_(m.weight, math.sqrt(2.0 / (fan_in + fan_out)))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
