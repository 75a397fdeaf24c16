"""Training methods, one small file each, all behind :class:`TrainingMethod.step`.

Every module in this package is imported here so that its ``@register_method`` runs; adding a
method is adding a file.
"""

import importlib
import pkgutil

from .base import (
    Standard,
    TrainingMethod,
    forward_with_aux,
    get_method,
    list_methods,
    method_class,
    register_method,
    task_loss,
)

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")
del _info

__all__ = ["TrainingMethod", "Standard", "forward_with_aux", "get_method", "method_class", "list_methods", "register_method", "task_loss"]
