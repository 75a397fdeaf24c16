"""Registered model builders: ``get_model(name, **kwargs)``, ``list_models()``.

Registered: ``lsnn_ecg``, ``lsnn_speech`` (SPEC §1, §7), ``cnn_fmnist`` (SPEC §7) and
``resnet32`` (SPEC §6).
"""

from . import cnn, lsnn, resnet  # noqa: F401  (their @register_model decorators run on import)
from .cnn import cnn_fmnist
from .registry import get_model, list_models, register_model
from .resnet import ResNetCIFAR, resnet32

__all__ = ["get_model", "list_models", "register_model", "cnn_fmnist", "resnet32", "ResNetCIFAR"]
