"""Registered model builders: ``get_model(name, **kwargs)``, ``list_models()``.

Registered: ``lsnn_ecg``, ``lsnn_speech`` (docs/lsnn.md and docs/tasks.md), ``cnn_fmnist`` (docs/tasks.md) and
``resnet32`` (docs/pcm.md).
"""

from . import cnn, lsnn, resnet  # noqa: F401  (their @register_model decorators run on import)
from .cnn import cnn_fmnist
from .registry import get_model, list_models, register_model
from .resnet import ResNetCIFAR, resnet32

__all__ = ["get_model", "list_models", "register_model", "cnn_fmnist", "resnet32", "ResNetCIFAR"]
