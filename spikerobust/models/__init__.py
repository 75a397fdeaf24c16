"""Registered model builders: ``get_model(name, **kwargs)``, ``list_models()``."""

from . import lsnn  # noqa: F401  (registers lsnn_ecg, lsnn_speech)
from .registry import get_model, list_models, register_model

__all__ = ["get_model", "list_models", "register_model"]
