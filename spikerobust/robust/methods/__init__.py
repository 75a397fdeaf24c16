"""Training methods, one small file each, all behind :class:`TrainingMethod.step`."""

from .base import Standard, TrainingMethod, forward_with_aux, get_method, list_methods, register_method, task_loss

__all__ = ["TrainingMethod", "Standard", "forward_with_aux", "get_method", "list_methods", "register_method", "task_loss"]
