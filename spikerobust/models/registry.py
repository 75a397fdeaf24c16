"""Model registry: builders register themselves by name (torchvision's ``register_model`` habit).

Examples:
    >>> from spikerobust.models import get_model, list_models
    >>> "lsnn_ecg" in list_models()
    True
    >>> model = get_model("lsnn_ecg", n_hidden=16)
"""

from __future__ import annotations

from typing import Callable, Dict

from torch import nn

__all__ = ["register_model", "get_model", "list_models"]

_MODELS: Dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model builder under ``name``."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _MODELS[name] is not fn:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return decorator


def get_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with builder keyword arguments ``kwargs``."""
    try:
        builder = _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {list_models()}") from None
    return builder(**kwargs)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)
